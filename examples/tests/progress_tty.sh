#!/bin/sh
# The MNIST example on an 80-column terminal (a pseudo-terminal made by script(1)): the
# progress bar is drawn, and no line it or the example prints is longer than 79
# characters, so nothing wraps and every redraw replaces the previous one. Skipped (77)
# without script(1) or without MNIST data.
# usage: progress_tty.sh MNIST_BINARY WORK_DIR
bin="$1" work="$2"
command -v script >/dev/null 2>&1 || { echo "SKIP: script(1) is not installed"; exit 77; }
mkdir -p "$work" || exit 1
log="$work/tty.log"
# --epochs 2: the run's ETA is shown from the first epoch on
script -qec "stty cols 80 rows 24; exec '$bin' --epochs 2 --threads 1 --no-dot --out '$work'" \
    /dev/null >"$log" 2>&1
rc=$?
if grep -q "no MNIST training files" "$log"; then
    echo "SKIP: no MNIST training files (run scripts/get_mnist.sh, or set DG_MNIST_DIR)"
    exit 77
fi
[ "$rc" -eq 0 ] || { cat "$log"; echo "progress_tty: the example failed (status $rc)" >&2; exit 1; }
# Every piece of output between carriage returns and newlines is one line as the terminal
# shows it; the clear-to-end-of-line sequence takes no room. Lines naming an absolute path
# (data, outputs) are as long as the path and left out.
esc=$(printf '\033')
tr '\r' '\n' <"$log" | sed "s/${esc}\[K//g" >"$work/tty.lines"
long=$(awk 'length($0) > 79 && !/ \//' "$work/tty.lines")
bars=$(grep -c '^epoch [0-9]*/2 \[.*\].* ETA .*(run ' "$work/tty.lines")
sed -n '1,40p' "$work/tty.lines"
fail=0
if [ -n "$long" ]; then
    printf 'progress_tty: lines longer than 79 characters at 80 columns:\n%s\n' "$long" >&2
    fail=1
fi
if [ "$bars" -lt 1 ]; then
    echo "progress_tty: no progress bar with the run's ETA was drawn" >&2
    fail=1
fi
[ "$fail" -eq 0 ] && echo "progress_tty: ok ($bars bar redraws, none over 79 characters)"
exit "$fail"
