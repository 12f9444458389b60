# The tutorial's programs (docs/tutorial/*.c) are built and run as tests, and every C
# snippet of docs/TUTORIAL.md, docs/CUSTOM_OPS.md and docs/ONNX.md must appear in one of them (or in a
# public header), so the documentation cannot drift away from code that compiles and runs.
# Included from tests/CMakeLists.txt.
set(DG_TUTORIAL_DIR ${PROJECT_SOURCE_DIR}/docs/tutorial)
set(DG_TUTORIAL_OUT ${CMAKE_CURRENT_BINARY_DIR}/tutorial-out) # checkpoints and DOT files
file(MAKE_DIRECTORY ${DG_TUTORIAL_OUT})
file(GLOB DG_TUTORIAL_SOURCES CONFIGURE_DEPENDS ${DG_TUTORIAL_DIR}/*.c)
foreach(src ${DG_TUTORIAL_SOURCES})
  get_filename_component(name ${src} NAME_WE)
  add_executable(tutorial_${name} ${src})
  target_link_libraries(tutorial_${name} PRIVATE dagrad_static)
  if(name STREQUAL "mnist")
    # 5,000 training digits for 2 epochs reach about 90%; skipped (77) without the data
    # (scripts/get_mnist.sh).
    add_test(NAME tutorial_mnist
             COMMAND tutorial_mnist ${PROJECT_SOURCE_DIR}/data/mnist 5000 2 85
             WORKING_DIRECTORY ${DG_TUTORIAL_OUT})
    set_tests_properties(tutorial_mnist PROPERTIES SKIP_RETURN_CODE 77)
  else()
    add_test(NAME tutorial_${name} COMMAND tutorial_${name} WORKING_DIRECTORY ${DG_TUTORIAL_OUT})
  endif()
  set_tests_properties(tutorial_${name} PROPERTIES TIMEOUT 300)
endforeach()
file(GLOB DG_PUBLIC_HEADERS ${PROJECT_SOURCE_DIR}/include/dagrad/*.h)
add_test(NAME tutorial_snippets
         COMMAND sh ${DG_TUTORIAL_DIR}/check_snippets.sh ${DG_TUTORIAL_SOURCES} ${DG_PUBLIC_HEADERS}
                 ${PROJECT_SOURCE_DIR}/docs/TUTORIAL.md ${PROJECT_SOURCE_DIR}/docs/CUSTOM_OPS.md
                 ${PROJECT_SOURCE_DIR}/docs/ONNX.md)
