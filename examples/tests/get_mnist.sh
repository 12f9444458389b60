#!/bin/sh
# scripts/get_mnist.sh takes the best data it can and says which, checked on every path it
# has that works offline:
#   1. a local directory ($DG_MNIST_DIR) with the official files: copied, md5-verified;
#   2. run again: the verified set already there is kept;
#   3. no local files: downloaded from $DG_MNIST_URL, here a local HTTP server
#      (python3 -m http.server on 127.0.0.1) serving the official files, after a first
#      mirror that answers 404;
#   4. a mirror serving a corrupted file, DG_MNIST_DIR naming a missing directory and npm
#      unreachable: the bad file is refused by its md5, the missing directory reported,
#      and the script fails without leaving training files behind.
# Needs the official MNIST (DG_MNIST_DIR or ../shared/data/mnist next to the sources) and
# python3; skipped (77) without them.
# usage: get_mnist.sh SOURCE_DIR WORK_DIR
src="$1" work="$2"
official=""
for d in "${DG_MNIST_DIR:-}" "$src/${DG_MNIST_DIR:-}" "$src/../shared/data/mnist"; do
    if [ -n "$d" ] && [ -f "$d/train-images-idx3-ubyte.gz" ] && [ -f "$d/t10k-labels-idx1-ubyte.gz" ]; then
        official="$(cd "$d" && pwd)"
        break
    fi
done
[ -n "$official" ] || { echo "SKIP: no official MNIST .gz files (set DG_MNIST_DIR)"; exit 77; }
command -v python3 >/dev/null 2>&1 || { echo "SKIP: python3 is not installed"; exit 77; }
get="$src/scripts/get_mnist.sh"
rm -rf "$work" && mkdir -p "$work/empty" "$work/bad" || exit 1
unset DG_MNIST_URL http_proxy HTTP_PROXY https_proxy HTTPS_PROXY all_proxy ALL_PROXY
fail=0
# expect NAME STATUS REGEX [!REGEX]: the last run's status and output (a leading ! means no
# line may match)
expect() {
    name="$1" want="$2"
    shift 2
    sed 's/^/    /' "$work/log"
    if [ "$status" != "$want" ]; then
        echo "get_mnist test: $name: exit status $status, expected $want" >&2
        fail=1
    fi
    for re in "$@"; do
        case "$re" in
        !*) if grep -Eq -- "${re#!}" "$work/log"; then
                echo "get_mnist test: $name: output matches '${re#!}'" >&2
                fail=1
            fi ;;
        *) if ! grep -Eq -- "$re" "$work/log"; then
                echo "get_mnist test: $name: no output line matches '$re'" >&2
                fail=1
            fi ;;
        esac
    done
}

echo "1. local copy from $official"
DG_MNIST_DIR="$official" bash "$get" "$work/local" >"$work/log" 2>&1
status=$?
expect "local copy" 0 "using the full official MNIST \(60,000 training \+ 10,000 test images\)" "copied from $official"
[ -f "$work/local/train-images-idx3-ubyte.gz" ] || { echo "no training images copied" >&2; fail=1; }

echo "2. run again"
DG_MNIST_DIR="$official" bash "$get" "$work/local" >"$work/log" 2>&1
status=$?
expect "second run" 0 "already in $work/local"

# A local HTTP server: the official files, and a copy in bad/ with one file corrupted.
for f in "$official"/*-ubyte.gz; do ln -s "$f" "$work/bad/"; done
rm "$work/bad/t10k-labels-idx1-ubyte.gz"
{ gzip -dc "$official/t10k-labels-idx1-ubyte.gz"; printf 'x'; } | gzip -n >"$work/bad/t10k-labels-idx1-ubyte.gz"
python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$official/.." >"$work/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null' EXIT
port=""
i=0
while [ -z "$port" ] && [ "$i" -lt 50 ]; do
    sleep 0.1
    port=$(sed -n 's/.*Serving HTTP on 127\.0\.0\.1 port \([0-9]*\).*/\1/p' "$work/server.log")
    i=$((i + 1))
done
[ -n "$port" ] || { cat "$work/server.log"; echo "get_mnist test: no HTTP server" >&2; exit 1; }
mirror="http://127.0.0.1:$port/$(basename "$official")"

echo "3. download from $mirror"
DG_MNIST_DIR="$work/empty" DG_MNIST_URL="http://127.0.0.1:$port/no-such-dir $mirror" \
    bash "$get" "$work/download" >"$work/log" 2>&1
status=$?
expect "download" 0 "train-images-idx3-ubyte.gz: download failed: .*404" \
    "downloaded from $mirror"
for f in "$official"/*-ubyte.gz; do
    cmp -s "$f" "$work/download/$(basename "$f")" || { echo "$f differs after download" >&2; fail=1; }
done

echo "4. a corrupted mirror, a missing DG_MNIST_DIR, no npm registry"
kill "$server"
wait "$server" 2>/dev/null
python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$work/bad" >"$work/server.log" 2>&1 &
server=$!
port=""
i=0
while [ -z "$port" ] && [ "$i" -lt 50 ]; do
    sleep 0.1
    port=$(sed -n 's/.*Serving HTTP on 127\.0\.0\.1 port \([0-9]*\).*/\1/p' "$work/server.log")
    i=$((i + 1))
done
DG_MNIST_DIR="$work/missing" DG_MNIST_URL="http://127.0.0.1:$port" \
    npm_config_registry=http://127.0.0.1:9/ npm_config_fetch_retries=0 \
    npm_config_cache="$work/npm-cache" bash "$get" "$work/corrupt" >"$work/log" 2>&1
status=$?
expect "corrupted download" 1 "DG_MNIST_DIR is set to '$work/missing', which is not a directory" \
    "127.0.0.1:$port/t10k-labels-idx1-ubyte.gz: md5 [0-9a-f]* is not the official" "!downloaded from"
if ls "$work/corrupt"/train-* >/dev/null 2>&1; then
    echo "get_mnist test: training files left behind after a failure" >&2
    fail=1
fi
[ "$fail" -eq 0 ] && echo "get_mnist test: ok"
exit "$fail"
