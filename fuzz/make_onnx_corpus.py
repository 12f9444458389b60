#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_onnx (fuzz/corpus/onnx/) with the ONNX project's own Python
package (onnx.helper), an implementation independent of dagrad's writer, and, when PyTorch is
installed, one model exported by torch.onnx.export. Seeds named valid_* pass the ONNX checker
and must load in dagrad (tests/test_io_fuzz_corpus.c replays them); the others exercise the
loader's refusals. Each seed stays under the fuzzers' 8192-byte input limit.

Needs Debian's python3-onnx (and python3-torch for the torch seed). From the repository root:
    /usr/bin/python3 fuzz/make_onnx_corpus.py
"""
import io
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "onnx")
rng = np.random.default_rng(7)


def weights(name, *shape):
    return numpy_helper.from_array(rng.uniform(-1, 1, shape).astype(np.float32), name)


def ints(name, values):
    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)


def batch_input(name, *dims):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", *dims])


def output(name, *dims):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", *dims])


def save(name, nodes, inputs, outputs, inits, opset=13, check=True):
    graph = helper.make_graph(nodes, name, inputs, outputs, inits)
    model = helper.make_model(graph, producer_name="make_onnx_corpus",
                              opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    if check:
        onnx.checker.check_model(model, full_check=True)
    data = model.SerializeToString()
    assert len(data) < 8192, (name, len(data))
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


N = helper.make_node
save("valid_mlp", [
    N("Gemm", ["x", "W1", "b1"], ["h"], name="/fc1/Gemm", transB=1),
    N("Relu", ["h"], ["r"], name="/fc1/Relu"),
    N("Gemm", ["r", "W2", "b2"], ["logits"], name="/fc2/Gemm"),
    N("Softmax", ["logits"], ["y"], name="/Softmax", axis=-1),
], [batch_input("x", 4)], [output("y", 2)],
    [weights("W1", 3, 4), weights("b1", 3), weights("W2", 3, 2), weights("b2", 2)])

save("valid_flatten", [
    N("Flatten", ["x"], ["f"], axis=1),
    N("MatMul", ["f", "W"], ["m"]),
    N("Add", ["m", "b"], ["a"]),
    N("LogSoftmax", ["a"], ["y"], axis=1),
], [batch_input("x", 2, 3)], [output("y", 2)], [weights("W", 6, 2), weights("b", 2)])

save("valid_shapes", [
    N("Reshape", ["x", "shape"], ["r"]),
    N("Transpose", ["r"], ["t"], perm=[0, 2, 1]),
    N("Identity", ["t"], ["i"]),
    N("Dropout", ["i"], ["y"]),
], [batch_input("x", 6)], [output("y", 3, 2)], [ints("shape", [0, -1, 3])])

save("valid_unary", [
    N("Constant", [], ["two"], value=numpy_helper.from_array(np.array(2, np.float32))),
    N("Constant", [], ["half"], value_float=0.5),
    N("Sigmoid", ["x"], ["a"]),
    N("Tanh", ["a"], ["b"]),
    N("Exp", ["b"], ["c"]),
    N("Log", ["c"], ["d"]),
    N("Abs", ["d"], ["e"]),
    N("Neg", ["e"], ["f"]),
    N("LeakyRelu", ["f"], ["g"], alpha=0.1),
    N("Pow", ["g", "two"], ["h"]),
    N("Sqrt", ["h"], ["i"]),
    N("Mul", ["i", "half"], ["j"]),
    N("Sub", ["j", "x"], ["k"]),
    N("Div", ["k", "two"], ["y"]),
], [batch_input("x", 5)], [output("y", 5)], [])

# float_data instead of raw_data, and an initializer listed as an input too (IR 3 style)
w = helper.make_tensor("W", TensorProto.FLOAT, [3, 2], rng.uniform(-1, 1, 6).tolist())
save("valid_float_data", [N("MatMul", ["x", "W"], ["y"])],
     [batch_input("x", 3), helper.make_tensor_value_info("W", TensorProto.FLOAT, [3, 2])],
     [output("y", 2)], [w])

save("valid_cnn", [
    N("Conv", ["x", "W", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]),
    N("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["n"], epsilon=1e-5,
      momentum=0.9),
    N("Relu", ["n"], ["r"]),
    N("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
    N("Pad", ["p", "zero_pads"], ["q"], mode="constant"),
    N("AveragePool", ["q"], ["a"], kernel_shape=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1),
    N("GlobalAveragePool", ["a"], ["y"]),
], [batch_input("x", 1, 6, 6)], [output("y", 2, 1, 1)],
    [weights("W", 2, 1, 3, 3), weights("b", 2), weights("gamma", 2), weights("beta", 2),
     weights("mean", 2), numpy_helper.from_array(np.array([0.5, 2.0], np.float32), "var"),
     ints("zero_pads", [0] * 8)])

save("unsupported_op", [N("Einsum", ["x", "W"], ["y"], equation="nij,jk->nik")],
     [batch_input("x", 2, 3)], [output("y", 2, 2)], [weights("W", 3, 2)])
save("unsupported_opset", [N("Relu", ["x"], ["y"])], [batch_input("x", 3)], [output("y", 3)], [],
     opset=11, check=False)
save("bad_shape", [N("Add", ["x", "b"], ["y"])], [batch_input("x", 3)], [output("y", 3)],
     [weights("b", 4)], check=False)

try:
    import torch
except ImportError:
    torch = None
if torch is not None:
    torch.manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(6, 4), torch.nn.ReLU(),
                              torch.nn.Linear(4, 3), torch.nn.LogSoftmax(dim=1))
    buf = io.BytesIO()
    torch.onnx.export(net, torch.zeros(2, 2, 3), buf, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=13)
    model = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(model, full_check=True)
    with open(os.path.join(OUT, "valid_torch_mlp"), "wb") as f:
        f.write(buf.getvalue())
print("wrote", sorted(os.listdir(OUT)))
