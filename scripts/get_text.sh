#!/usr/bin/env bash
# Gets the English text examples/textgen trains on: the King James Version of the Bible
# (public domain, 4.3 MB of plain ASCII prose in 73 distinct characters) as shipped by
# Debian's packages bible-kjv-text (the compressed text) and bible-kjv (the `bible` program
# that prints it). Written to data/text/kjv.txt, one verse per numbered paragraph, lines
# wrapped at 80 columns.
#
# Usage: scripts/get_text.sh [OUT_DIR]     (default: <repo>/data/text)
# Uses the installed `bible` when there is one (apt-get install bible-kjv); otherwise
# downloads the two packages with `apt-get download` (no root needed) and unpacks them in a
# temporary directory. Idempotent: an existing kjv.txt is left alone.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
out="${1:-$root/data/text}"
mkdir -p "$out"
target="$out/kjv.txt"
if [[ -s "$target" ]]; then
    echo "get_text: $target already there"
    exit 0
fi
range="gen1:1-rev22:21"
if command -v bible >/dev/null 2>&1 && [[ -s /usr/lib/bible.data ]]; then
    COLUMNS=80 bible "$range" >"$target.tmp"
else
    command -v apt-get >/dev/null 2>&1 || { echo "get_text: needs apt-get (Debian)" >&2; exit 1; }
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    echo "get_text: fetching Debian packages bible-kjv and bible-kjv-text"
    (cd "$tmp" && apt-get download -q bible-kjv bible-kjv-text >/dev/null 2>&1) || {
        echo "get_text: apt-get download bible-kjv bible-kjv-text failed (run apt-get update?)" >&2
        exit 1
    }
    for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$tmp/root"; done
    COLUMNS=80 "$tmp/root/usr/bin/bible" -p "$tmp/root/usr/lib" "$range" >"$target.tmp"
fi
size=$(wc -c <"$target.tmp")
if [[ "$size" -lt 4000000 ]]; then
    echo "get_text: expected about 4.3 MB of text, got $size bytes" >&2
    rm -f "$target.tmp"
    exit 1
fi
mv "$target.tmp" "$target"
echo "get_text: wrote $target ($size bytes)"
