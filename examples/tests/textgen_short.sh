#!/bin/sh
# Short textgen run for CTest on the King James Bible (scripts/get_text.sh; skipped, exit 77,
# when the text is missing): one epoch of a small LSTM on the first 300,000 characters must
# reach 3.3 held-out bits per character (about 2.8 observed; a uniform guess over the 72
# characters is 6.2), save a checkpoint, and write text from it that starts with the prime.
# Then bad input: a prime with a character outside the model's alphabet (status 2), the same
# checkpoint loaded again unchanged afterwards.
# usage: textgen_short.sh TEXTGEN_BINARY SOURCE_DIR WORK_DIR
bin="$1" src="$2" work="$3"
text="${DG_TEXT:-$src/data/text/kjv.txt}"
if [ ! -s "$text" ]; then
    echo "SKIP: no text at $text (run scripts/get_text.sh)"
    exit 77
fi
mkdir -p "$work" || exit 1
ckpt="$work/short.ckpt"
"$bin" --text "$text" --max-chars 300000 --hidden 64 --unroll 32 --batch 32 --epochs 1 \
    --threads 1 --save "$ckpt" --expect-bpc 3.3 --dot "$work/textgen.dot" || {
    echo "textgen_short: training failed" >&2
    exit 1
}
out="$("$bin" --load "$ckpt" --sample 80 --prime "And the LORD" --seed 3)" || {
    echo "textgen_short: sampling failed" >&2
    exit 1
}
echo "sample: $out"
case "$out" in "And the LORD"?*) ;; *) echo "textgen_short: sample lacks the prime" >&2; exit 1 ;; esac
sum1="$(cksum <"$ckpt")"
"$bin" --load "$ckpt" --sample 10 --prime "caf$(printf '\303\251')" 2>"$work/prime.err"
rc=$?
cat "$work/prime.err"
if [ "$rc" -ne 2 ] || ! grep -q "not in the model's alphabet" "$work/prime.err"; then
    echo "textgen_short: a prime outside the alphabet gave status $rc" >&2
    exit 1
fi
[ "$(cksum <"$ckpt")" = "$sum1" ] || { echo "textgen_short: checkpoint changed" >&2; exit 1; }
echo "textgen_short: ok"
