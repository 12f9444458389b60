# CTest driver (cmake -P) for the install test: installs the build tree into a temporary
# prefix, checks the installed layout, then builds tests/install/consumer.c as an outside
# program both ways a user would - through the CMake package and through pkg-config with the
# plain C compiler - and runs each build (they check a gradient and exit 0 on success).
# Variables: BUILD_DIR SOURCE_DIR WORK_DIR LIBDIR C_COMPILER CXX_COMPILER PKG_CONFIG
#            EXTRA_FLAGS (e.g. the sanitizer flags the library was built with).
cmake_minimum_required(VERSION 3.20)

function(run_step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "install test: ${what} failed (${rc}):\n${ARGN}\n${out}")
  endif()
  message(STATUS "ok: ${what}")
  set(STEP_OUTPUT "${out}" PARENT_SCOPE)
endfunction()

set(prefix ${WORK_DIR}/prefix)
set(libdir ${prefix}/${LIBDIR})
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
run_step("cmake --install" ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})

foreach(f include/dagrad.h include/dagrad/core.h include/dagrad/ops.h ${LIBDIR}/libdagrad.a
    ${LIBDIR}/libdagrad.so ${LIBDIR}/cmake/dagrad/dagradConfig.cmake
    ${LIBDIR}/cmake/dagrad/dagradConfigVersion.cmake ${LIBDIR}/pkgconfig/dagrad.pc)
  if(NOT EXISTS ${prefix}/${f})
    message(FATAL_ERROR "install test: ${f} was not installed under ${prefix}")
  endif()
endforeach()
# The shared library is versioned: libdagrad.so -> libdagrad.so.<major> -> .so.<version>.
file(GLOB sonames ${libdir}/libdagrad.so.*)
if(NOT sonames)
  message(FATAL_ERROR "install test: no versioned libdagrad.so.N in ${libdir}")
endif()

# 1. CMake package: find_package(dagrad CONFIG REQUIRED), all targets, from C and C++.
set(flags "-Wall -Wextra -pedantic -Werror ${EXTRA_FLAGS}")
run_step("configure the outside CMake project" ${CMAKE_COMMAND}
  -S ${SOURCE_DIR}/tests/install -B ${WORK_DIR}/cmake-build -DCMAKE_PREFIX_PATH=${prefix}
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER=${C_COMPILER}
  -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DCMAKE_C_FLAGS=${flags} -DCMAKE_CXX_FLAGS=${flags}
  -DCMAKE_EXE_LINKER_FLAGS=${EXTRA_FLAGS})
run_step("build the outside CMake project" ${CMAKE_COMMAND} --build ${WORK_DIR}/cmake-build)
foreach(t dagrad dagrad_static dagrad_shared cxx)
  run_step("run consumer_${t}" ${WORK_DIR}/cmake-build/consumer_${t})
  message(STATUS "  ${STEP_OUTPUT}")
endforeach()

# 2. pkg-config with the plain compiler: shared by default, static with --static.
# PKG_CONFIG_LIBDIR holds dagrad.pc alone, as on a machine without zlib.pc or libgvc.pc:
# dagrad.pc must not need them.
set(ENV{PKG_CONFIG_LIBDIR} ${libdir}/pkgconfig)
unset(ENV{PKG_CONFIG_PATH})
run_step("pkg-config --modversion dagrad" ${PKG_CONFIG} --modversion dagrad)
run_step("pkg-config --cflags dagrad" ${PKG_CONFIG} --cflags dagrad)
if(STEP_OUTPUT MATCHES "graphviz|-I/usr/include")
  message(FATAL_ERROR "install test: pkg-config --cflags dagrad gives '${STEP_OUTPUT}': "
    "a user needs dagrad's include directory alone")
endif()
run_step("pkg-config --cflags --libs dagrad" ${PKG_CONFIG} --cflags --libs dagrad)
separate_arguments(pc_flags UNIX_COMMAND "${STEP_OUTPUT}")
separate_arguments(extra UNIX_COMMAND "${EXTRA_FLAGS}")
# The README's command as it stands, then the program run with no LD_LIBRARY_PATH: the
# rpath in dagrad.pc's Libs finds libdagrad.so.0 under the prefix.
run_step("cc consumer.c $(pkg-config --cflags --libs dagrad)" ${C_COMPILER} -std=c11 -Wall
  -Wextra -pedantic -Werror ${extra} ${SOURCE_DIR}/tests/install/consumer.c ${pc_flags} -lm
  -o ${WORK_DIR}/consumer_pc_shared)
unset(ENV{LD_LIBRARY_PATH})
run_step("run consumer_pc_shared without LD_LIBRARY_PATH" ${WORK_DIR}/consumer_pc_shared)
message(STATUS "  ${STEP_OUTPUT}")

# Static, as the README says: the same flags with --static and -ldagrad replaced by
# -l:libdagrad.a, linking the archive itself rather than the .so, so Libs.private must name
# everything libdagrad.a needs (OpenMP, zlib, Graphviz, m).
run_step("pkg-config --static --cflags --libs dagrad" ${PKG_CONFIG} --static --cflags --libs
  dagrad)
separate_arguments(pc_static UNIX_COMMAND "${STEP_OUTPUT}")
list(TRANSFORM pc_static REPLACE "^-ldagrad$" "-l:libdagrad.a")
run_step("cc consumer.c $(pkg-config --static ...)" ${C_COMPILER} -std=c11 -Wall -Wextra
  -pedantic -Werror ${extra} ${SOURCE_DIR}/tests/install/consumer.c ${pc_static}
  -o ${WORK_DIR}/consumer_pc_static)
run_step("run consumer_pc_static" ${WORK_DIR}/consumer_pc_static)
message(STATUS "  ${STEP_OUTPUT}")
