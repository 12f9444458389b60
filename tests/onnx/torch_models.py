"""PyTorch's side of the peer tests: the course MLP (784-50-20-10, ReLU) and a small CNN, each
trained briefly so that its weights (and batch-norm statistics) are not the initial ones,
exported with torch.onnx.export (batch dimension dynamic), and their outputs on the test
images saved for comparison with dagrad's.
    python3 torch_models.py DIR      (reads DIR/test_images.npy, DIR/train_*.npy)
writes DIR/torch_mlp.onnx, torch_mlp.ref.npy, torch_cnn.onnx, cnn_input.npy,
torch_cnn.ref.npy. Exits 77 when PyTorch is missing."""
import os
import sys

try:
    import numpy as np
    import torch
    from torch import nn
except ImportError:
    print("SKIP: needs PyTorch (Debian: apt-get install python3-torch)")
    sys.exit(77)

out = sys.argv[1]
torch.manual_seed(0)
torch.set_num_threads(1)
test = torch.from_numpy(np.load(os.path.join(out, "test_images.npy")))
train_x = torch.from_numpy(np.load(os.path.join(out, "train_images.npy")))
train_y = torch.from_numpy(np.load(os.path.join(out, "train_labels.npy"))).long()


def train(net, shape, steps=100):
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    net.train()
    for s in range(steps):
        i = (s * 32) % (len(train_x) - 32)
        loss = nn.functional.cross_entropy(net(train_x[i:i + 32].reshape(shape)), train_y[i:i + 32])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()


def export(net, name, x, opset):
    path = os.path.join(out, name + ".onnx")
    torch.onnx.export(net, x[:2], path, input_names=["images"], output_names=["logits"],
                      dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
                      opset_version=opset)
    with torch.no_grad():
        np.save(os.path.join(out, name + ".ref.npy"), net(x).numpy().astype(np.float32))
    print(f"torch: exported {path} (opset {opset})")


mlp = nn.Sequential(nn.Flatten(), nn.Linear(784, 50), nn.ReLU(), nn.Linear(50, 20), nn.ReLU(),
                    nn.Linear(20, 10))
train(mlp, (-1, 28, 28))
export(mlp, "torch_mlp", test, 13)

# batch norm after the ReLU, where PyTorch's exporter keeps it as its own node
cnn = nn.Sequential(nn.Conv2d(1, 4, 5), nn.ReLU(), nn.BatchNorm2d(4), nn.MaxPool2d(2),
                    nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                    nn.Linear(8 * 6 * 6, 10), nn.LogSoftmax(dim=1))
train(cnn, (-1, 1, 28, 28))
cnn_input = test.reshape(-1, 1, 28, 28).contiguous()
np.save(os.path.join(out, "cnn_input.npy"), cnn_input.numpy())
export(cnn, "torch_cnn", cnn_input, 17)
