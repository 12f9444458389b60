# The PyTorch side of bench_mlp: the identical 784-512-256-10 ReLU MLP, softmax
# cross-entropy, Adam lr 1e-3, batch 128, one epoch over the same IDX files in the same
# (file) order, dropping the last partial batch. Prints "seconds <s> loss <mean of last 50>".
# Run by bench_mlp with OPENBLAS_NUM_THREADS=1 so Debian's OpenBLAS does not fight
# PyTorch's own threads.
import gzip
import sys
import time

import numpy as np
import torch


def read_idx(path):
    opener = gzip.open if open(path, "rb").read(2) == b"\x1f\x8b" else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main():
    images_path, labels_path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x_all = torch.from_numpy(read_idx(images_path).reshape(-1, 784).astype(np.float32) / 255.0)
    y_all = torch.from_numpy(read_idx(labels_path).astype(np.int64))
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 512),
        torch.nn.ReLU(),
        torch.nn.Linear(512, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 10),
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    batch = 128
    steps = x_all.shape[0] // batch
    losses = []
    start = time.perf_counter()
    for s in range(steps):
        xb = x_all[s * batch : (s + 1) * batch]
        yb = y_all[s * batch : (s + 1) * batch]
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    seconds = time.perf_counter() - start
    print("seconds %.4f loss %.4f" % (seconds, sum(losses[-50:]) / len(losses[-50:])))


if __name__ == "__main__":
    main()
