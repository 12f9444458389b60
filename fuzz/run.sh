#!/bin/sh
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for SECONDS seconds
# (default 60) on a copy of its seed corpus in fuzz/corpus/<target>/. Exits non-zero if
# any target finds a crash, a leak, a hang or undefined behaviour; the input that did it
# is left in BUILD_DIR/artifacts/.
#   fuzz/run.sh [SECONDS] [BUILD_DIR]        (BUILD_DIR defaults to build-fuzz)
# Needs Debian's clang, libclang-rt-14-dev (or the runtime of your clang) and libomp-dev.
set -eu
secs=${1:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${2:-$root/build-fuzz}
jobs=${DG_FUZZ_JOBS:-2}

CC=${CC:-clang} cmake -S "$root/fuzz" -B "$build" >/dev/null
cmake --build "$build" -j"$jobs" --target fuzz_idx fuzz_checkpoint fuzz_npy fuzz_onnx

mkdir -p "$build/artifacts"
status=0
for t in idx checkpoint npy onnx; do
  # Work on a copy: new inputs the fuzzer finds stay out of the committed corpus.
  work="$build/corpus-$t"
  mkdir -p "$work"
  cp "$root/fuzz/corpus/$t/"* "$work/"
  echo "== fuzz_$t for ${secs}s"
  if ! ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    "$build/fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
      -max_len=8192 -print_final_stats=1 -artifact_prefix="$build/artifacts/fuzz_$t-" \
      "$work" >"$build/fuzz_$t.log" 2>&1; then
    echo "fuzz_$t FAILED: see $build/fuzz_$t.log and $build/artifacts/"
    tail -n 40 "$build/fuzz_$t.log"
    status=1
  else
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$build/fuzz_$t.log" || true
    echo "fuzz_$t: no crash, leak, hang or UB"
  fi
done
exit $status
