#!/bin/sh
# Runs an example and checks how it ended: exact exit status and, for each REGEX given,
# a line of its output (stdout and stderr together) matching it (grep -E); a REGEX that
# starts with ! must match no line.
# usage: expect.sh STATUS [REGEX ...] -- COMMAND [ARGS ...]
want="$1"
shift
n=0
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
    n=$((n + 1))
    eval "re_$n=\$1"
    shift
done
[ "$1" = "--" ] || { echo "expect.sh: missing -- before the command" >&2; exit 2; }
shift
out="$("$@" 2>&1)"
got=$?
printf '%s\n' "$out"
fail=0
if [ "$got" != "$want" ]; then
    echo "expect.sh: exit status $got, expected $want" >&2
    fail=1
fi
i=1
while [ "$i" -le "$n" ]; do
    eval "re=\$re_$i"
    case "$re" in
    !*)
        if printf '%s\n' "$out" | grep -Eq -- "${re#!}"; then
            echo "expect.sh: an output line matches '${re#!}', which none should" >&2
            fail=1
        fi ;;
    *)
        if ! printf '%s\n' "$out" | grep -Eq -- "$re"; then
            echo "expect.sh: no output line matches '$re'" >&2
            fail=1
        fi ;;
    esac
    i=$((i + 1))
done
exit "$fail"
