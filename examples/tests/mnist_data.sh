#!/bin/sh
# examples/mnist says exactly what is wrong with its data, on tiny IDX files made here:
#   - DG_MNIST_DIR naming a missing directory is an error, not a silent switch to data/mnist;
#   - a t10k images file without its labels file is named as such (not "no t10k files"),
#     and a split of the training images is held out instead;
#   - a training images file without its labels file is named as such;
#   - the training-curve SVG shades the epochs trained on distorted images, names the test
#     set and says when the test curves use averaged weights, and says none of it otherwise;
#   - checkpoints remember their data set and layers (a sidecar), --predict refuses a
#     mismatch and calls a missing file missing; --resume refuses a cosine schedule (it
#     would start at the checkpoint's step); unwritable outputs stop a run before it trains;
#   - the tutorial's MNIST program (optional third argument), given training files without
#     a test set, is skipped (77) saying it needs the t10k files and where they come from.
# usage: mnist_data.sh MNIST_BINARY WORK_DIR [TUTORIAL_MNIST_BINARY]
bin="$1" work="$2" tutorial="$3"
# The example would take t10k files from DG_MNIST_DIR (scripts/test.sh sets it); these
# checks are about the directories made here alone.
unset DG_MNIST_DIR
rm -rf "$work" && mkdir -p "$work/half-test" "$work/half-train" || exit 1
fail=0

# idx_images FILE N / idx_labels FILE N: N blank 28x28 images, or labels 0, 1, ..., 9, 0, ...
byte() { printf '%b' "\\0$(printf %o "$1")"; }
be32() { byte $(($1 >> 24 & 255)); byte $(($1 >> 16 & 255)); byte $(($1 >> 8 & 255)); byte $(($1 & 255)); }
idx_images() { { printf '\000\000\010\003'; be32 "$2"; be32 28; be32 28
    head -c $(($2 * 784)) /dev/zero; } >"$1"; }
idx_labels() { { printf '\000\000\010\001'; be32 "$2"; i=0
    while [ "$i" -lt "$2" ]; do byte $((i % 10)); i=$((i + 1)); done; } >"$1"; }

# check NAME STATUS REGEX... -- COMMAND...: the status, and for each REGEX a matching
# output line (a leading ! means: no line may match)
check() {
    name="$1" want="$2"
    shift 2
    res=""
    while [ "$1" != "--" ]; do
        res="$res$1
"
        shift
    done
    shift
    out=$("$@" 2>&1)
    got=$?
    printf '%s\n' "$out" | sed -n '1,6s/^/    /p'
    if [ "$got" != "$want" ]; then
        echo "mnist_data: $name: exit status $got, expected $want" >&2
        fail=1
    fi
    printf '%s' "$res" >"$work/regexes"
    while IFS= read -r re; do
        case "$re" in
        !*) ! printf '%s\n' "$out" | grep -Eq -- "${re#!}" ;;
        *) printf '%s\n' "$out" | grep -Eq -- "$re" ;;
        esac || { echo "mnist_data: $name: output fails '$re'" >&2; fail=1; }
    done <"$work/regexes"
}

idx_images "$work/half-test/train-images-idx3-ubyte" 40
idx_labels "$work/half-test/train-labels-idx1-ubyte" 40
idx_images "$work/half-test/t10k-images-idx3-ubyte" 10
idx_images "$work/half-train/train-images-idx3-ubyte" 40

check "DG_MNIST_DIR missing" 1 "DG_MNIST_DIR is set to '$work/missing', which is not a directory" \
    -- env DG_MNIST_DIR="$work/missing" "$bin" --epochs 1 --no-dot --out "$work/out"
check "t10k labels missing" 0 "no t10k-labels-idx1-ubyte\[\.gz\] there \(only the t10k images\)" \
    -- "$bin" --data "$work/half-test" --epochs 1 --batch 4 --index 0 --no-dot --out "$work/out"
check "held out instead" 0 "the last 8 training images are held out as the test set" \
    -- "$bin" --data "$work/half-test" --epochs 1 --batch 4 --index 0 --no-dot --out "$work/out"
check "train labels missing" 1 "has train-images-idx3-ubyte\[\.gz\] but no train-labels" \
    -- "$bin" --data "$work/half-train" --epochs 1 --no-dot --out "$work/out"
# Checkpoints: the sidecar records the data set and layers; --predict refuses a mismatch
# with a message naming it, and a missing file is called missing, not a layer mismatch.
ck="$work/ckpt/m.ckpt"
check "save" 0 "saved checkpoint .*m\.ckpt \(and .*m\.ckpt\.meta\)" \
    -- "$bin" --data "$work/half-test" --epochs 1 --batch 4 --index 0 --no-dot --out "$work/ckpt" \
    --save "$ck"
check "predict, other data set" 1 "m\.ckpt was trained on --dataset mnist, not fashion:" \
    "!^argmax" -- "$bin" --data "$work/half-test" --dataset fashion --index 0 --out "$work/ckpt" \
    --predict "$ck"
check "predict, other layers" 1 "m\.ckpt was trained with --hidden 50,20, not 30" \
    -- "$bin" --data "$work/half-test" --hidden 30 --index 0 --out "$work/ckpt" --predict "$ck"
check "predict, no file" 1 "--predict: no checkpoint file '$work/ckpt/none\.ckpt'" \
    "!use the same --hidden" \
    -- "$bin" --data "$work/half-test" --index 0 --out "$work/ckpt" --predict "$work/ckpt/none.ckpt"
check "predict, same options" 0 "^loaded checkpoint" "argmax" \
    -- "$bin" --data "$work/half-test" --index 0 --out "$work/ckpt" --predict "$ck"
# --resume adds epochs; a cosine over them would start at the checkpoint's step: refused.
check "resume, cosine" 2 "--resume with --schedule cosine: the checkpoint has taken 8 steps" \
    "!^epoch" -- "$bin" --data "$work/half-test" --epochs 1 --batch 4 --no-dot \
    --out "$work/ckpt" --resume "$ck" --schedule cosine
check "resume, constant" 0 "^resumed .*m\.ckpt after 8 steps" "^epoch  1/1" \
    -- "$bin" --data "$work/half-test" --epochs 1 --batch 4 --index 0 --no-dot \
    --out "$work/ckpt" --resume "$ck"
# Outputs that cannot be written are found before training starts.
check "unwritable --out" 1 "cannot write in '/proc/nope'" "!^epoch" \
    -- "$bin" --data "$work/half-test" --epochs 1 --batch 4 --no-dot --out /proc/nope
check "unwritable --save" 1 "cannot write in '/proc/nope'" "!^epoch" \
    -- "$bin" --data "$work/half-test" --epochs 1 --batch 4 --no-dot --out "$work/ckpt" \
    --save /proc/nope/m.ckpt

# svg_has NAME FILE REGEX...: each REGEX (a leading ! means: none) against the SVG
svg_has() {
    name="$1" file="$2"
    shift 2
    for re in "$@"; do
        case "$re" in
        !*) ! grep -Eq -- "${re#!}" "$file" ;;
        *) grep -Eq -- "$re" "$file" ;;
        esac || { echo "mnist_data: $name: $file fails '$re'" >&2; fail=1; }
    done
}
check "plot, augmented" 0 "epochs 1-2 distorted, the last 1 as they are" \
    -- "$bin" --data "$work/half-test" --epochs 3 --aug-clean 1 --augment --ema 0.9 --batch 4 \
    --index 0 --no-dot --out "$work/plot-aug"
svg_has "plot, augmented" "$work/plot-aug/mnist_training.svg" ">test \(averaged weights\)<" \
    ">trained on distorted images<" "Shaded: epochs 1-2, trained on randomly distorted images" \
    "Test set: the last 8 training images, held out; its curves use an exponential moving average"
check "plot, plain" 0 "augmentation: off" \
    -- "$bin" --data "$work/half-test" --epochs 2 --no-augment --batch 4 --index 0 --no-dot \
    --out "$work/plot"
svg_has "plot, plain" "$work/plot/mnist_training.svg" ">test<" "Test set: the last 8 training images" \
    "!distorted" "!averag"
if [ -n "$tutorial" ]; then
    check "tutorial without t10k" 77 "needs the official t10k test files" \
        -- "$tutorial" "$work/half-test" 40 1
fi
[ "$fail" -eq 0 ] && echo "mnist_data: ok"
exit "$fail"
