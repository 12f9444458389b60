# CTest driver (cmake -P): every public header compiles on its own, as C11 and as C++11,
# with -Wall -Wextra -pedantic -Werror, and declares its functions inside extern "C" so C++
# programs link against the C library. Headers are globbed, so new ones are checked too.
# Variables: SOURCE_DIR WORK_DIR C_COMPILER CXX_COMPILER (CXX_COMPILER may be empty),
# MPI_INCLUDES ('|'-separated; empty: dagrad/mpi.h is skipped).
cmake_minimum_required(VERSION 3.20)

file(GLOB headers RELATIVE ${SOURCE_DIR}/include ${SOURCE_DIR}/include/dagrad.h
  ${SOURCE_DIR}/include/dagrad/*.h)
list(SORT headers)
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
set(failed "")
foreach(h ${headers})
  string(MAKE_C_IDENTIFIER ${h} id)
  # dagrad/mpi.h includes <mpi.h>: compiled with MPI's include directories, skipped
  # when dagrad was configured without MPI
  set(extra "")
  if(h STREQUAL "dagrad/mpi.h")
    if(NOT MPI_INCLUDES)
      message(STATUS "skipped: ${h} (built without MPI)")
      continue()
    endif()
    # without MPI's deprecated C++ bindings, whose own headers warn under -Wextra
    set(extra -DOMPI_SKIP_MPICXX -DMPICH_SKIP_MPICXX)
    string(REPLACE "|" ";" dirs "${MPI_INCLUDES}")
    foreach(d ${dirs})
      list(APPEND extra -I${d})
    endforeach()
  endif()
  file(READ ${SOURCE_DIR}/include/${h} text)
  if(NOT h STREQUAL "dagrad.h" AND NOT text MATCHES "#ifdef __cplusplus[ \t\r\n]+extern \"C\" {")
    list(APPEND failed "${h}: no '#ifdef __cplusplus extern \"C\" {' block")
  endif()
  # Included twice: the include guard must make the second inclusion harmless.
  file(WRITE ${WORK_DIR}/${id}.c "#include <${h}>\n#include <${h}>\nint dg_tu_${id};\n")
  file(WRITE ${WORK_DIR}/${id}.cpp "#include <${h}>\n#include <${h}>\nint dg_tu_${id};\n")
  set(runs "C11|${C_COMPILER}|-std=c11|${WORK_DIR}/${id}.c")
  if(CXX_COMPILER)
    list(APPEND runs "C++11|${CXX_COMPILER}|-std=c++11|${WORK_DIR}/${id}.cpp")
  endif()
  foreach(r ${runs})
    string(REPLACE "|" ";" r "${r}")
    list(GET r 0 lang)
    list(GET r 1 compiler)
    list(GET r 2 std)
    list(GET r 3 tu)
    execute_process(COMMAND ${compiler} ${std} -Wall -Wextra -pedantic -Werror -fsyntax-only
      -I${SOURCE_DIR}/include ${extra} ${tu} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
    if(rc EQUAL 0)
      message(STATUS "ok: ${h} as ${lang}")
    else()
      list(APPEND failed "${h} as ${lang}:\n${out}")
    endif()
  endforeach()
endforeach()
list(LENGTH headers n)
if(failed)
  string(REPLACE ";" "\n" failed "${failed}")
  message(FATAL_ERROR "header check failed:\n${failed}")
endif()
message(STATUS "all ${n} public headers compile on their own as C11 and C++")
