#!/bin/sh
# mnist --distributed under mpirun, on a small synthetic data set written here (600
# 28x28 images whose class is drawn as stripes; perl writes the IDX files).
# usage: mnist_dist.sh CASE MNIST_BINARY WORK_DIR MPIEXEC [MPIEXEC_ARGS...]
#   same      1 process and 2 processes (--distributed, the same global batch of 35, the
#             last of each epoch 25 rows: 12 and 13 per process) end with the
#             same test loss and accuracy (within 2e-3) and both write a checkpoint;
#             the 2 processes' checkpoint resumes on 3, the one process's on 2
#   missing   rank 1 cannot read its data: every rank stops with status 1 and a message
#   mismatch  rank 1 builds another model (--hidden): refused before the first step
case_=$1 bin=$2 work=$3
shift 3
mpi="$*"
unset DG_MNIST_DIR # its t10k files would replace the held-out synthetic images
mkdir -p "$work/data" || exit 1
perl -e '
    my ($dir, $n) = @ARGV;
    open(my $im, ">", "$dir/train-images-idx3-ubyte") or die "$!";
    open(my $lb, ">", "$dir/train-labels-idx1-ubyte") or die "$!";
    binmode $im; binmode $lb;
    print $im pack("N4", 0x803, $n, 28, 28);
    print $lb pack("N2", 0x801, $n);
    my $s = 12345;
    for my $i (0 .. $n - 1) {
        my $c = ($i * 7) % 10;
        my @px;
        for my $p (0 .. 783) {
            $s = ($s * 1103515245 + 12345) % 2147483648;
            my $noise = $s % 64;
            my $row = int($p / 28);
            push @px, (($row % 10) == $c ? 192 : 0) + $noise;
        }
        print $im pack("C*", @px);
        print $lb pack("C", $c);
    }
' "$work/data" 600 || { echo "mnist_dist: perl could not write the data"; exit 1; }
common="--data $work/data --epochs 2 --batch 35 --no-augment --no-dot --threads 1 --index 0"
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
    # the checkpoint of 2 processes resumes on 3 (and one process's on 2)
    for run in "3 two" "2 one"; do
        set -- $run
        out=$($mpi -np "$1" "$bin" --distributed $common --epochs 1 --resume "$work/$2.ckpt" \
            --out "$work/resume" 2>&1) || { echo "$out"; echo "mnist_dist: resume on $1 failed"; exit 1; }
        echo "$out" | grep '^resumed'
        [ "$(echo "$out" | grep -c "^resumed .*$2.ckpt after 28 steps")" = 1 ] ||
            { echo "$out"; echo "mnist_dist: no resume of $2.ckpt on $1 processes"; exit 1; }
    done
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
        -np 1 "$bin" --distributed $common --hidden 50,30 --out "$work/x" 2>&1)
    rc=$?
    echo "$out"
    [ $rc = 1 ] || { echo "mnist_dist: exit status $rc, expected 1"; exit 1; }
    n=$(echo "$out" | grep -c "rank 1's model differs from rank 0's: parameter 2 'hidden2/W' is \[50,30\] on rank 1 but \[50,20\] on rank 0")
    [ "$n" = 2 ] || { echo "mnist_dist: $n of 2 ranks named the difference"; exit 1; }
    if echo "$out" | grep -q "^epoch"; then echo "mnist_dist: training started"; exit 1; fi
    ;;
*) echo "mnist_dist: unknown case $case_"; exit 2 ;;
esac
