# Cross-compiling dagrad for ARM64 Linux on an x86-64 Debian machine (scripts/test_arm64.sh):
# Debian's gcc-aarch64-linux-gnu, the arm64 C library, zlib and libgomp from Debian's arm64
# architecture (multiarch), and programs run by qemu-user (qemu-aarch64-static), which
# CTest puts in front of every test program.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu /)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
# "-L /": the multiarch loader and C library (/lib/aarch64-linux-gnu), the ones the
# program was linked with; the cross toolchain's own copy may be another release, and
# mixing the two hangs in pthread_create.
set(CMAKE_CROSSCOMPILING_EMULATOR /usr/bin/qemu-aarch64-static -L /)
