#!/bin/sh
# resume.sh LAUNCH_A -- LAUNCH_B -- PROGRAM DIR: trains 25 of 50 steps with LAUNCH_A's
# ranks and saves a checkpoint (rank 0 writes it), then resumes it with LAUNCH_B's
# (another number of ranks) for the other 25; PROGRAM checks the result against one
# process trained for 50 steps.
a=""; b=""
while [ "$1" != "--" ]; do a="$a $1"; shift; done
shift
while [ "$1" != "--" ]; do b="$b $1"; shift; done
shift
prog=$1 dir=$2
mkdir -p "$dir" && rm -f "$dir/resume.ckpt"
$a "$prog" --save "$dir/resume.ckpt" --save-at 25 || exit 1
[ -f "$dir/resume.ckpt" ] || { echo "resume: no checkpoint written"; exit 1; }
$b "$prog" --load "$dir/resume.ckpt"
