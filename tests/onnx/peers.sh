#!/bin/sh
# The ONNX peer tests (CTest onnx_checker, onnx_ort, onnx_torch): dagrad's ONNX files read by
# other programs, other programs' files read by dagrad.
#   peers.sh checker|ort|torch ONNX_PEER WORK_DIR
#   peers.sh example ONNX_PEER WORK_DIR MNIST_BINARY
#   checker  the ONNX checker (python3-onnx, full_check) accepts every file dagrad exports:
#            the course MLP, the CNN (when this build has conv ops) and one model per op form
#   ort      ONNX Runtime (npm onnxruntime-node) runs those files; its outputs match dagrad's
#            within 1e-5 (the MLP and the CNN on 1,000 MNIST test images)
#   torch    models exported by PyTorch (the course MLP, a small CNN) load in dagrad and match
#            PyTorch's outputs within 1e-5; dagrad trains each one more epoch, exports it
#            again, and ONNX Runtime runs that file with dagrad's results (checked when it and
#            the checker are available)
#   example  examples/mnist --export writes a model that dagrad loads and runs (and the
#            checker accepts, when present); needs the MNIST training files
# "Within 1e-5": |a - b| <= 1e-5 max(1, |b|) (absolute for outputs up to 1, relative above).
# Exit 77 (CTest: skipped) when the peer a mode needs is missing, saying which. Data: MNIST
# from $DG_MNIST_DIR, else <repo>/data/mnist (scripts/get_mnist.sh; synthetic digits without
# either: their larger activations need the relative part of the tolerance). ONNX Runtime is looked for in
# $DG_ORT_DIR/node_modules, then <repo>/data/onnxruntime/node_modules
# (scripts/get_onnxruntime.sh puts it there); Python in $DG_PYTHON, /usr/bin/python3, python3.
set -u
mode=$1 peer=$2 work=$3
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tol=1e-5
if [ -z "${DG_MNIST_DIR:-}" ] && [ -d "$root/data/mnist" ]; then
    DG_MNIST_DIR="$root/data/mnist"
    export DG_MNIST_DIR
fi

skip() { echo "SKIP: $*"; exit 77; }
die() { echo "FAILED: $*"; exit 1; }

# find_python MODULE: prints a Python that can import MODULE
find_python() {
    for py in ${DG_PYTHON:-} /usr/bin/python3 python3; do
        if command -v "$py" >/dev/null 2>&1 && "$py" -c "import $1" >/dev/null 2>&1; then
            echo "$py"
            return 0
        fi
    done
    return 1
}

# find_ort: sets NODE_PATH to a node_modules holding onnxruntime-node
find_ort() {
    command -v node >/dev/null 2>&1 || return 1
    for ortdir in ${DG_ORT_DIR:-} "$root/data/onnxruntime"; do
        if [ -d "$ortdir/node_modules/onnxruntime-node" ]; then
            NODE_PATH="$ortdir/node_modules"
            export NODE_PATH
            return 0
        fi
    done
    return 1
}

# the zoo's model names (after export-zoo)
zoo() { for f in "$work"/*.input.npy; do basename "$f" .input.npy; done; }

rm -rf "$work" && mkdir -p "$work" || die "cannot make $work"
"$peer" data "$work" 1000 || die "preparing the data"

case $mode in
checker)
    py=$(find_python onnx) || skip "the ONNX checker needs python3-onnx (apt-get install python3-onnx)"
    "$peer" export-mlp "$work" >/dev/null || die "exporting the MLP"
    if "$peer" features | grep -q cnn; then
        "$peer" export-cnn "$work" >/dev/null || die "exporting the CNN"
    fi
    "$peer" export-zoo "$work" >/dev/null || die "exporting the zoo"
    "$py" "$here/check_models.py" "$work"/*.onnx || die "the ONNX checker refused a file"
    ;;
ort)
    find_ort || skip "needs node and onnxruntime-node (bash scripts/get_onnxruntime.sh)"
    "$peer" export-mlp "$work" || die "exporting the MLP"
    "$peer" export-zoo "$work" || die "exporting the zoo"
    set -- "$work/mlp.onnx" "$work/test_images.npy" "$work/mlp.ort"
    nets=mlp
    if "$peer" features | grep -q cnn; then
        "$peer" export-cnn "$work" || die "exporting the CNN"
        set -- "$@" "$work/cnn.onnx" "$work/test_images_nchw.npy" "$work/cnn.ort"
        nets="mlp cnn"
    fi
    for z in $(zoo); do set -- "$@" "$work/$z.onnx" "$work/$z.input.npy" "$work/$z.ort"; done
    node "$here/ort_run.js" "$@" || die "ONNX Runtime could not run dagrad's files"
    for net in $nets; do
        for k in 0 1; do
            "$peer" compare "$work/$net.dagrad.$k.npy" "$work/$net.ort.$k.npy" $tol ||
                die "$net output $k"
        done
    done
    for z in $(zoo); do
        "$peer" compare "$work/$z.dagrad.0.npy" "$work/$z.ort.0.npy" $tol || die "model $z"
    done
    ;;
torch)
    py=$(find_python torch) || skip "needs PyTorch (apt-get install python3-torch)"
    "$py" "$here/torch_models.py" "$work" || die "PyTorch's export"
    d=$work
    "$peer" run "$d/torch_mlp.onnx" "$d/test_images.npy" "$d/torch_mlp.dagrad" || die "import"
    "$peer" compare "$d/torch_mlp.ref.npy" "$d/torch_mlp.dagrad.0.npy" $tol || die "MLP vs PyTorch"
    "$peer" train "$d/torch_mlp.onnx" "$d/train_images.npy" "$d/train_labels.npy" \
        "$d/test_images.npy" "$d/test_labels.npy" "$d/mlp_trained.onnx" "$d/mlp_trained.dagrad" ||
        die "training the imported MLP"
    trained="$d/mlp_trained.onnx $d/test_images.npy $d/mlp_trained.ort"
    if "$peer" features | grep -q cnn; then
        "$peer" run "$d/torch_cnn.onnx" "$d/cnn_input.npy" "$d/torch_cnn.dagrad" || die "CNN import"
        "$peer" compare "$d/torch_cnn.ref.npy" "$d/torch_cnn.dagrad.0.npy" $tol || die "CNN vs PyTorch"
        "$peer" train "$d/torch_cnn.onnx" "$d/train_images.npy" "$d/train_labels.npy" \
            "$d/cnn_input.npy" "$d/test_labels.npy" "$d/cnn_trained.onnx" "$d/cnn_trained.dagrad" ||
            die "training the imported CNN"
        trained="$trained $d/cnn_trained.onnx $d/cnn_input.npy $d/cnn_trained.ort"
    else
        # no convolution in this build: the import must refuse the CNN cleanly, naming the node
        msg=$("$peer" run "$d/torch_cnn.onnx" "$d/cnn_input.npy" "$d/torch_cnn.dagrad" 2>&1)
        rc=$?
        echo "$msg"
        [ $rc -eq 1 ] && echo "$msg" | grep -q "(Conv): op 'Conv' is not supported" ||
            die "the CNN's import should fail with a message naming the Conv node"
        echo "CNN: this build has no convolution ops; the import refused the model cleanly"
    fi
    missing=""
    if find_ort; then
        # shellcheck disable=SC2086 # the list of model, input, prefix triples
        node "$here/ort_run.js" $trained || die "ONNX Runtime could not run the retrained models"
        set -- $trained
        while [ $# -ge 3 ]; do
            base=${3%.ort}
            for f in "$3".*.npy; do
                k=${f##*.ort.}
                "$peer" compare "$base.dagrad.$k" "$f" $tol || die "retrained model $base output $k"
            done
            shift 3
        done
    else
        missing="ONNX Runtime"
    fi
    if cpy=$(find_python onnx); then
        "$cpy" "$here/check_models.py" "$d"/*_trained.onnx || die "the checker refused a retrained model"
    else
        missing="$missing${missing:+, }python3-onnx"
    fi
    [ -z "$missing" ] || skip "PyTorch's models loaded, matched and trained; no $missing to read the retrained files"
    ;;
example)
    data=${DG_MNIST_DIR:-$root/data/mnist}
    [ -f "$data/train-images-idx3-ubyte" ] || [ -f "$data/train-images-idx3-ubyte.gz" ] ||
        skip "no MNIST training files (scripts/get_mnist.sh, or set DG_MNIST_DIR)"
    "$4" --data "$data" --epochs 1 --no-augment --threads 1 --no-dot --out "$work" \
        --export "$work/course.onnx" >"$work/example.log" 2>&1 || {
        cat "$work/example.log"
        die "examples/mnist --export"
    }
    grep "exported ONNX model" "$work/example.log" || die "no export message"
    "$peer" run "$work/course.onnx" "$work/test_images.npy" "$work/course.dagrad" ||
        die "dagrad could not load and run the example's model"
    if py=$(find_python onnx); then
        "$py" "$here/check_models.py" "$work/course.onnx" || die "the checker refused it"
    fi
    ;;
*)
    echo "usage: peers.sh checker|ort|torch|example ONNX_PEER WORK_DIR [MNIST_BINARY]" >&2
    exit 2
    ;;
esac
echo "onnx $mode: passed"
