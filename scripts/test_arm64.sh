#!/usr/bin/env bash
# Builds dagrad for ARM64 with Debian's cross compiler and runs its tests under qemu-user,
# on an x86-64 Debian 12 machine: `bash scripts/test_arm64.sh` (as root it installs what it
# needs; a few minutes). Not part of CI (emulation is slow); run it before changing code
# that depends on the CPU. The Graphviz renderer and the MPI layer are left out (their
# arm64 libraries are not installed). Two tests are skipped: test_install (it builds an
# outside project with the host's compiler) and example_mnist_cnn_short (a CNN training
# run, over 10 minutes emulated). Examples run by shell scripts need the kernel to start
# ARM64 programs through qemu (binfmt_misc), which the script registers when it can.
#
# Environment: DG_BUILD_DIR (default <repo>/build-arm64), DG_JOBS, DG_SKIP_APT=1.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${DG_BUILD_DIR:-$ROOT/build-arm64}
JOBS=${DG_JOBS:-$(nproc 2>/dev/null || echo 2)}

if [ "$(id -u)" = 0 ] && [ "${DG_SKIP_APT:-0}" != 1 ] && command -v apt-get >/dev/null; then
    dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-remove gcc-aarch64-linux-gnu \
        qemu-user-static zlib1g-dev:arm64 libgomp1:arm64 cmake make >/dev/null || exit 1
fi
# Let the kernel run ARM64 programs through qemu (for the examples' shell-script tests).
BINFMT=/proc/sys/fs/binfmt_misc
if [ "$(id -u)" = 0 ] && [ ! -e $BINFMT/qemu-aarch64 ]; then
    [ -e $BINFMT/register ] || mount -t binfmt_misc binfmt_misc $BINFMT 2>/dev/null
    [ -e $BINFMT/register ] && printf '%s' ':qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64-static:F' >$BINFMT/register 2>/dev/null
fi

cmake -S "$ROOT" -B "$BUILD" -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/toolchain-aarch64.cmake" \
    -DCMAKE_BUILD_TYPE=Release -DDG_WERROR=ON -DDG_WITH_GRAPHVIZ=OFF -DDG_WITH_MPI=OFF || exit 1
cmake --build "$BUILD" -j "$JOBS" || exit 1
cd "$BUILD" && ctest -j "$JOBS" --timeout 900 -E "^(test_install|example_mnist_cnn_short)$"
