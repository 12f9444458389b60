# The ONNX peer tests (tests/onnx/peers.sh): ONNX Runtime, the ONNX checker and PyTorch read
# dagrad's files and write files for dagrad. Each skips (status 77) when its peer is missing.
add_executable(onnx_peer ${CMAKE_CURRENT_LIST_DIR}/onnx_peer.c)
target_link_libraries(onnx_peer PRIVATE dagrad_static)
# the CNN parts run once dagrad has convolution ops
file(READ ${PROJECT_SOURCE_DIR}/include/dagrad/ops.h DG_OPS_HEADER)
if(DG_OPS_HEADER MATCHES "dg_convolve2d")
  target_compile_definitions(onnx_peer PRIVATE DG_PEER_HAVE_CNN)
endif()
foreach(mode checker ort torch)
  add_test(NAME onnx_${mode}
           COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/peers.sh ${mode} $<TARGET_FILE:onnx_peer>
                   ${CMAKE_CURRENT_BINARY_DIR}/onnx_${mode})
  set_tests_properties(onnx_${mode} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600)
endforeach()
if(DG_BUILD_EXAMPLES) # examples/mnist --export
  add_test(NAME onnx_example
           COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/peers.sh example $<TARGET_FILE:onnx_peer>
                   ${CMAKE_CURRENT_BINARY_DIR}/onnx_example $<TARGET_FILE:mnist>)
  set_tests_properties(onnx_example PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600)
endif()
