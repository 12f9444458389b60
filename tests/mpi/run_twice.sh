#!/bin/sh
# run_twice.sh LAUNCH... -- PROGRAM ARGS...: runs `LAUNCH PROGRAM ARGS --hash` twice, the
# second time with one thread per rank and the reduction on the calling thread
# (--threads 1 --overlap 0) instead of the defaults, and fails unless both runs print the
# same "hash" line: training is bitwise reproducible from run to run.
launch=""
while [ $# -gt 0 ] && [ "$1" != "--" ]; do launch="$launch $1"; shift; done
shift
first=$($launch "$@" --hash) || { echo "$first"; echo "run_twice: first run failed"; exit 1; }
second=$($launch "$@" --hash --threads 1 --overlap 0) ||
    { echo "$second"; echo "run_twice: second run failed"; exit 1; }
h1=$(echo "$first" | grep '^hash ')
h2=$(echo "$second" | grep '^hash ')
echo "$first"
echo "first run:  $h1"
echo "second run: $h2"
if [ -z "$h1" ] || [ "$h1" != "$h2" ]; then
    echo "run_twice: the two runs differ"
    exit 1
fi
echo "run_twice: bitwise identical"
