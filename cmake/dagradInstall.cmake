# Install rules for dagrad (included from the top-level CMakeLists.txt):
#   include/dagrad.h, include/dagrad/*.h      -> <prefix>/include
#   libdagrad.a, libdagrad.so.<version>       -> <prefix>/<libdir>
#   libdagrad_mpi.a and dagrad/mpi.h          (only when built with MPI)
#   CMake package (dagradConfig.cmake)        -> <prefix>/<libdir>/cmake/dagrad
#   pkg-config file (dagrad.pc)               -> <prefix>/<libdir>/pkgconfig
# Both package files locate the prefix relative to themselves, so the tree can be installed
# with `cmake --install build --prefix P` into any P (and moved afterwards).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set_target_properties(dagrad_static PROPERTIES EXPORT_NAME dagrad_static)
set_target_properties(dagrad_shared PROPERTIES EXPORT_NAME dagrad_shared)

install(TARGETS dagrad_static dagrad_shared
  EXPORT dagradTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${PROJECT_SOURCE_DIR}/include/dagrad.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
if(DG_HAVE_MPI)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/dagrad DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
    FILES_MATCHING PATTERN "*.h")
  # the MPI layer: dagrad::mpi (libdagrad_mpi.a), which needs MPI and threads
  set_target_properties(dagrad_mpi PROPERTIES EXPORT_NAME mpi)
  install(TARGETS dagrad_mpi EXPORT dagradTargets ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
else()
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/dagrad DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
    FILES_MATCHING PATTERN "*.h" PATTERN "mpi.h" EXCLUDE)
endif()

set(DG_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/dagrad)
install(EXPORT dagradTargets NAMESPACE dagrad:: FILE dagradTargets.cmake
  DESTINATION ${DG_CMAKE_DIR})
set(DG_NEEDS_ZLIB OFF)
if(TARGET ZLIB::ZLIB)
  set(DG_NEEDS_ZLIB ON)
endif()
# The libraries link OpenMP::OpenMP_C and ZLIB::ZLIB publicly, so the package config must
# find them again (find_dependency) before loading the exported targets.
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/dagradConfig.cmake.in
  ${PROJECT_BINARY_DIR}/dagradConfig.cmake INSTALL_DESTINATION ${DG_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/dagradConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/dagradConfig.cmake
  ${PROJECT_BINARY_DIR}/dagradConfigVersion.cmake DESTINATION ${DG_CMAKE_DIR})

# pkg-config: the prefix is ${pcfiledir} followed by as many ".." as <libdir>/pkgconfig
# has components. Static users need the private flags (pkg-config --static): OpenMP, zlib,
# Graphviz and libm as plain linker flags. Requires.private would make every pkg-config
# call fail where zlib.pc or libgvc.pc is missing, and would add Graphviz's include
# directory to every user's Cflags.
file(RELATIVE_PATH DG_PC_TO_PREFIX /root/${CMAKE_INSTALL_LIBDIR}/pkgconfig /root)
option(DG_PC_RPATH "dagrad.pc: link programs with an rpath to the installed library" ON)
set(DG_PC_RPATH_FLAG "")
if(DG_PC_RPATH)
  set(DG_PC_RPATH_FLAG " -Wl,-rpath,\${libdir}")
endif()
set(DG_PC_LIBS_PRIVATE "${OpenMP_C_FLAGS}")
if(DG_NEEDS_ZLIB)
  string(APPEND DG_PC_LIBS_PRIVATE " -lz")
endif()
if(DG_HAVE_GRAPHVIZ)
  foreach(dir ${DG_GVC_LIBRARY_DIRS})
    if(NOT dir IN_LIST CMAKE_C_IMPLICIT_LINK_DIRECTORIES)
      string(APPEND DG_PC_LIBS_PRIVATE " -L${dir}")
    endif()
  endforeach()
  foreach(lib ${DG_GVC_LIBRARIES}) # gvc, cgraph, cdt
    string(APPEND DG_PC_LIBS_PRIVATE " -l${lib}")
  endforeach()
endif()
string(APPEND DG_PC_LIBS_PRIVATE " -lm")
string(STRIP "${DG_PC_LIBS_PRIVATE}" DG_PC_LIBS_PRIVATE)
configure_file(${PROJECT_SOURCE_DIR}/dagrad.pc.in ${PROJECT_BINARY_DIR}/dagrad.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/dagrad.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
