# CTest entries for packaging (included from tests/CMakeLists.txt):
#   test_install  installs into a temporary prefix and builds an outside program against
#                 the CMake package and pkg-config (tests/install/run_install_test.cmake)
#   test_headers  every public header compiles alone as C11 and C++ (tests/test_headers.cmake)
find_program(DG_CXX_COMPILER NAMES c++ g++ clang++)
find_program(DG_PKG_CONFIG NAMES pkg-config pkgconf)
set(DG_TEST_EXTRA_FLAGS "")
if(DG_SANITIZE)
  # The installed library carries no sanitizer link flags; the outside program needs them.
  set(DG_TEST_EXTRA_FLAGS "-fsanitize=address,undefined")
endif()

# dagrad/mpi.h needs MPI's headers; without MPI it is skipped (and not installed).
set(DG_TEST_MPI_INCLUDES "")
if(DG_HAVE_MPI)
  string(JOIN "|" DG_TEST_MPI_INCLUDES ${MPI_C_INCLUDE_DIRS})
endif()
add_test(NAME test_headers COMMAND ${CMAKE_COMMAND} -DSOURCE_DIR=${PROJECT_SOURCE_DIR}
  "-DMPI_INCLUDES=${DG_TEST_MPI_INCLUDES}"
  -DWORK_DIR=${CMAKE_CURRENT_BINARY_DIR}/test_headers -DC_COMPILER=${CMAKE_C_COMPILER}
  -DCXX_COMPILER=${DG_CXX_COMPILER} -P ${CMAKE_CURRENT_SOURCE_DIR}/test_headers.cmake)
set_tests_properties(test_headers PROPERTIES TIMEOUT 300)

if(DG_CXX_COMPILER AND DG_PKG_CONFIG)
  add_test(NAME test_install COMMAND ${CMAKE_COMMAND} -DBUILD_DIR=${PROJECT_BINARY_DIR}
    -DSOURCE_DIR=${PROJECT_SOURCE_DIR} -DWORK_DIR=${CMAKE_CURRENT_BINARY_DIR}/test_install
    -DLIBDIR=${CMAKE_INSTALL_LIBDIR} -DC_COMPILER=${CMAKE_C_COMPILER}
    -DCXX_COMPILER=${DG_CXX_COMPILER} -DPKG_CONFIG=${DG_PKG_CONFIG}
    "-DEXTRA_FLAGS=${DG_TEST_EXTRA_FLAGS}"
    -P ${CMAKE_CURRENT_SOURCE_DIR}/install/run_install_test.cmake)
  set_tests_properties(test_install PROPERTIES TIMEOUT 600)
else()
  message(WARNING "test_install skipped: needs a C++ compiler and pkg-config")
endif()
