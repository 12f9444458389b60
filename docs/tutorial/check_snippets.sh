#!/bin/sh
# Checks that every ```c block of the given Markdown pages appears, line for line, in one of
# the given C files (the tutorial's programs, which CTest builds and runs, and the public
# headers), so a snippet in the docs is always code that compiles and runs. Leading and
# trailing whitespace are ignored; a line "/* ... */" inside a block separates pieces that
# are looked up separately.
# usage: check_snippets.sh FILE.c|FILE.h... PAGE.md...
if [ $# -lt 2 ]; then
    echo "usage: check_snippets.sh FILE.c|FILE.h... PAGE.md..." >&2
    exit 2
fi
exec awk '
function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t\r]+$/, "", s); return s }
function check() {
    if (np > 0) {
        pieces++
        if (index(src "\n", "\n" piece "\n") == 0) {
            printf "%s:%d: this snippet is not in any of the checked C files\n", FILENAME, start
            bad++
        }
    }
    np = 0; piece = ""
}
FILENAME ~ /\.[ch]$/ { src = src "\n" trim($0); next }
FILENAME ~ /\.md$/ {
    if (!inblock && $0 ~ /^```c[ \t]*$/) { inblock = 1; np = 0; piece = ""; start = FNR + 1; next }
    if (!inblock) next
    if ($0 ~ /^```[ \t]*$/) { check(); inblock = 0; next }
    line = trim($0)
    if (line == "/* ... */") { check(); start = FNR + 1; next }
    piece = np++ ? piece "\n" line : line
}
END {
    if (pieces == 0) { print "check_snippets: no ```c blocks found"; exit 1 }
    printf "check_snippets: %d snippets, %d not found\n", pieces, bad
    exit bad > 0
}' "$@"
