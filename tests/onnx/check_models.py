"""The ONNX checker (Debian's python3-onnx) on every file given: onnx.checker.check_model with
full_check, which also runs ONNX's shape inference. Exits 77 when the package is missing."""
import sys

try:
    import onnx
except ImportError:
    print("SKIP: the ONNX checker needs python3-onnx (apt-get install python3-onnx)")
    sys.exit(77)

for path in sys.argv[1:]:
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    ops = sorted({n.op_type for n in model.graph.node})
    print(f"checker: {path} is valid (opset {model.opset_import[0].version}, ops {', '.join(ops)})")
