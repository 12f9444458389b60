#!/bin/sh
# mnist or mnist_cnn --distributed under mpirun, on a small synthetic data set written here
# (600 28x28 images whose class is drawn as stripes; perl writes the IDX files).
# usage: mnist_dist.sh [--cnn] CASE BINARY WORK_DIR MPIEXEC [MPIEXEC_ARGS...]
#   same      1 process and 2 processes (--distributed, the same global batch of 35, the
#             last of each epoch 25 rows: 12 and 13 per process) end with the
#             same test loss and accuracy (within 2e-3) and both write a checkpoint;
#             the 2 processes' checkpoint resumes on 3, the one process's on 2; for the
#             CNN also: 1 epoch on 2 processes resumed on 3 for a second ends where 2
#             epochs on one process do (constant learning rate)
#   missing   rank 1 cannot read its data: every rank stops with status 1 and a message
#   mismatch  rank 1 builds another model (--hidden; --filters for the CNN): refused before
#             the first step
# --cnn: BINARY is examples/mnist_cnn (the default model, dropout 0.25: every process draws
# the masks one process draws for its rows, dg_dropout_set_row_offset; see bn for what
# differs), trained on all 600 images (the last batch of an epoch 5 rows: 2 and 3 per
# process) and tested on 200 more written as t10k files. One more case:
#   bn        --batch-norm on 2 processes (4 epochs): every process normalises with its own rows'
#             statistics, the running statistics are averaged after every step and end
#             equal on both; the test result is within 0.05 of one process's
#             (each process's statistics are not the global batch's), the
#             checkpoint evaluates to the same test result under --predict, and a
#             second run with 2 threads per process saves bitwise the same checkpoint
cnn=0
if [ "$1" = --cnn ]; then cnn=1; shift; fi
case_=$1 bin=$2 work=$3
shift 3
mpi="$*"
unset DG_MNIST_DIR # its t10k files would replace the held-out synthetic images
mkdir -p "$work/data" || exit 1
# IDX files: COUNT PREFIX SEED, stripes of brightness $ink over noise in [0, $noise)
ink=192 noise=64
write_idx() {
perl -e '
    my ($dir, $n, $prefix, $s, $ink, $noise) = @ARGV;
    open(my $im, ">", "$dir/$prefix-images-idx3-ubyte") or die "$!";
    open(my $lb, ">", "$dir/$prefix-labels-idx1-ubyte") or die "$!";
    binmode $im; binmode $lb;
    print $im pack("N4", 0x803, $n, 28, 28);
    print $lb pack("N2", 0x801, $n);
    for my $i (0 .. $n - 1) {
        my $c = ($i * 7) % 10;
        my @px;
        for my $p (0 .. 783) {
            $s = ($s * 1103515245 + 12345) % 2147483648;
            my $v = $s % $noise;
            my $row = int($p / 28);
            push @px, (($row % 10) == $c ? $ink : 0) + $v;
        }
        print $im pack("C*", @px);
        print $lb pack("C", $c);
    }
' "$work/data" "$1" "$2" "$3" "$ink" "$noise" || { echo "mnist_dist: perl could not write the data"; exit 1; }
}
# the CNN learns clear stripes perfectly in one epoch: faint ones leave a loss to compare
[ $cnn = 1 ] && ink=96 noise=160
write_idx 600 train 12345
common="--data $work/data --epochs 2 --batch 35 --no-dot --threads 1 --index 0"
steps=28 # 2 epochs of 14 steps (mnist holds 110 images out for testing)
other="--hidden 50,30"
differs="parameter 2 'hidden2/W' is \[50,30\] on rank 1 but \[50,20\] on rank 0"
if [ $cnn = 1 ]; then
    write_idx 200 t10k 777
    common="$common --no-render"
    steps=36 # 2 epochs of 18 steps
    other="--filters 32,48"
    differs="parameter 2 'conv2/W' is \[48,32,5,5\] on rank 1 but \[64,32,5,5\] on rank 0"
else
    common="$common --no-augment"
    [ "$case_" = bn ] && { echo "mnist_dist: bn is a --cnn case"; exit 2; }
fi
case $case_ in
same)
    one=$("$bin" $common --out "$work/one" --save "$work/one.ckpt" 2>&1) ||
        { echo "$one"; echo "mnist_dist: one process failed"; exit 1; }
    two=$($mpi -np 2 "$bin" --distributed $common --out "$work/two" --save "$work/two.ckpt" 2>&1) ||
        { echo "$two"; echo "mnist_dist: two processes failed"; exit 1; }
    echo "$two"
    l1=$(echo "$one" | grep '^test set:')
    l2=$(echo "$two" | grep '^test set:')
    echo "one process:   $l1"
    echo "two processes: $l2"
    echo "$two" | grep -q '^distributed: 2 processes' || { echo "mnist_dist: not distributed"; exit 1; }
    [ "$(echo "$two" | grep -c '^test set:')" = 1 ] ||
        { echo "mnist_dist: the result was not printed once (by rank 0 only)"; exit 1; }
    [ -f "$work/one.ckpt" ] && [ -f "$work/two.ckpt" ] || { echo "mnist_dist: no checkpoint"; exit 1; }
    echo "$l1 $l2" | awk '{ gsub(",", ""); l1 = $4; a1 = $6; l2 = $12; a2 = $14;
        d = l1 - l2; if (d < 0) d = -d; e = a1 - a2; if (e < 0) e = -e;
        if (l1 == "" || l2 == "" || d > 2e-3 || e > 2e-3) { print "mnist_dist: results differ"; exit 1 }
        print "mnist_dist: same result (loss difference " d ", accuracy difference " e ")" }' ||
        exit 1
    # the checkpoint of 2 processes resumes on 3 (and one process's on 2); the CNN's
    # --epochs counts the whole run, mnist's the epochs to add
    more=1
    [ $cnn = 1 ] && more=3
    for run in "3 two" "2 one"; do
        set -- $run
        out=$($mpi -np "$1" "$bin" --distributed $common --epochs $more --resume "$work/$2.ckpt" \
            --out "$work/resume" 2>&1) || { echo "$out"; echo "mnist_dist: resume on $1 failed"; exit 1; }
        echo "$out" | grep '^resumed'
        [ "$(echo "$out" | grep -c "^resumed .*$2.ckpt after $steps steps")" = 1 ] ||
            { echo "$out"; echo "mnist_dist: no resume of $2.ckpt on $1 processes"; exit 1; }
    done
    [ $cnn = 1 ] || exit 0
    # the CNN: 1 epoch on 2 processes, saved and resumed on 3 for the second, ends where one
    # process training 2 epochs at once does (a constant learning rate: a cosine over one
    # epoch is not the first half of one over two)
    c="$common --schedule constant"
    one=$("$bin" $c --out "$work/one" 2>&1) || { echo "$one"; echo "mnist_dist: one process failed"; exit 1; }
    out=$($mpi -np 2 "$bin" --distributed $c --epochs 1 --out "$work/two" --save "$work/half.ckpt" 2>&1) ||
        { echo "$out"; echo "mnist_dist: the first epoch on 2 processes failed"; exit 1; }
    out=$($mpi -np 3 "$bin" --distributed $c --resume "$work/half.ckpt" --out "$work/two" 2>&1) ||
        { echo "$out"; echo "mnist_dist: the second epoch on 3 processes failed"; exit 1; }
    echo "$out" | grep -q '^resuming at epoch 2 of 2' || { echo "$out"; echo "mnist_dist: did not resume at epoch 2"; exit 1; }
    l1=$(echo "$one" | grep '^test set:')
    l2=$(echo "$out" | grep '^test set:')
    echo "2 epochs on one process:           $l1"
    echo "1 on 2 processes, resumed on 3:    $l2"
    echo "$l1 $l2" | awk '{ gsub(",", ""); l1 = $4; a1 = $6; l2 = $12; a2 = $14;
        d = l1 - l2; if (d < 0) d = -d; e = a1 - a2; if (e < 0) e = -e;
        if (l1 == "" || l2 == "" || d > 2e-3 || e > 2e-3) { print "mnist_dist: resumed result differs"; exit 1 }
        print "mnist_dist: the resumed run ends where one process does" }' || exit 1
    ;;
missing)
    out=$($mpi -np 1 "$bin" --distributed $common --out "$work/m" : \
        -np 1 "$bin" --distributed $common --data "$work/no-such-dir" --out "$work/m" 2>&1)
    rc=$?
    echo "$out"
    [ $rc = 1 ] || { echo "mnist_dist: exit status $rc, expected 1"; exit 1; }
    echo "$out" | grep -q "no MNIST training files" || { echo "mnist_dist: rank 1 said nothing"; exit 1; }
    echo "$out" | grep -q "stopping: mpi: rank 1 of 2: could not load its data" ||
        { echo "mnist_dist: rank 0 did not say why it stopped"; exit 1; }
    ;;
mismatch)
    out=$($mpi -np 1 "$bin" --distributed $common --out "$work/x" : \
        -np 1 "$bin" --distributed $common $other --out "$work/x" 2>&1)
    rc=$?
    echo "$out"
    [ $rc = 1 ] || { echo "mnist_dist: exit status $rc, expected 1"; exit 1; }
    n=$(echo "$out" | grep -c "rank 1's model differs from rank 0's: $differs")
    [ "$n" = 2 ] || { echo "mnist_dist: $n of 2 ranks named the difference"; exit 1; }
    if echo "$out" | grep -q "^epoch"; then echo "mnist_dist: training started"; exit 1; fi
    ;;
bn)
    common="$common --epochs 4" # the running statistics settle
    one=$("$bin" $common --batch-norm --out "$work/one" 2>&1) ||
        { echo "$one"; echo "mnist_dist: one process failed"; exit 1; }
    two=$($mpi -np 2 "$bin" --distributed $common --batch-norm --out "$work/two" \
        --save "$work/bn.ckpt" 2>&1) || { echo "$two"; echo "mnist_dist: two processes failed"; exit 1; }
    echo "$two"
    echo "$two" | grep -q '^batch norm, distributed: each process normalises' ||
        { echo "mnist_dist: no word on batch norm"; exit 1; }
    echo "$two" | grep -q '^batch norm: running statistics equal on all 2 processes' ||
        { echo "mnist_dist: the running statistics were not shown equal"; exit 1; }
    l1=$(echo "$one" | grep '^test set:')
    l2=$(echo "$two" | grep '^test set:')
    echo "one process:   $l1"
    echo "two processes: $l2"
    echo "$l1 $l2" | awk '{ gsub(",", ""); l1 = $4; a1 = $6; l2 = $12; a2 = $14;
        e = a1 - a2; if (e < 0) e = -e;
        if (l1 == "" || l2 == "" || e > 0.05) { print "mnist_dist: results too far apart"; exit 1 }
        print "mnist_dist: close result (accuracy difference " e ")" }' || exit 1
    p=$("$bin" $common --batch-norm --predict "$work/bn.ckpt" --out "$work/two" 2>&1) ||
        { echo "$p"; echo "mnist_dist: --predict failed"; exit 1; }
    l3=$(echo "$p" | grep '^test set:')
    echo "--predict:     $l3"
    [ -n "$l3" ] && [ "$l3" = "$l2" ] ||
        { echo "mnist_dist: the checkpoint does not give the distributed run's result"; exit 1; }
    # a second run, with 2 threads per process, saves bitwise the same checkpoint
    c2=$(echo "$common" | sed 's/--threads 1/--threads 2/')
    out=$($mpi -np 2 "$bin" --distributed $c2 --batch-norm --out "$work/two" \
        --save "$work/bn2.ckpt" 2>&1) || { echo "$out"; echo "mnist_dist: the second run failed"; exit 1; }
    cmp "$work/bn.ckpt" "$work/bn2.ckpt" ||
        { echo "mnist_dist: two runs on 2 processes saved different checkpoints"; exit 1; }
    echo "mnist_dist: a second run (2 threads per process) saved bitwise the same checkpoint"
    ;;
*) echo "mnist_dist: unknown case $case_"; exit 2 ;;
esac
