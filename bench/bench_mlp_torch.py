# The PyTorch side of bench_mlp: the identical ReLU MLP (784-H1-H2-10), softmax
# cross-entropy, Adam lr 1e-3, over the same IDX files in the same (file) order with the
# last batch partial, for a number of epochs; prints "epoch <e> seconds <s> loss <mean>" per
# epoch. Run by bench_mlp with OPENBLAS_NUM_THREADS=1 (and OPENBLAS_CORETYPE where Debian's
# OpenBLAS needs it) so OpenBLAS does not fight PyTorch's own threads.
# usage: bench_mlp_torch.py DIR H1 H2 BATCH THREADS EPOCHS FLUSH_DENORMAL(0|1)
import gzip
import os
import sys
import time

import numpy as np
import torch


def read_idx(path):
    if not os.path.exists(path):
        path = path + ".gz"
    opener = gzip.open if open(path, "rb").read(2) == b"\x1f\x8b" else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main():
    d, h1, h2, batch, threads, epochs, flush = sys.argv[1:8]
    h1, h2, batch, threads, epochs = int(h1), int(h2), int(batch), int(threads), int(epochs)
    torch.set_num_threads(threads)
    if flush == "1":
        torch.set_flush_denormal(True)
    torch.manual_seed(0)
    x_all = torch.from_numpy(
        read_idx(d + "/train-images-idx3-ubyte").reshape(-1, 784).astype(np.float32) / 255.0
    )
    y_all = torch.from_numpy(read_idx(d + "/train-labels-idx1-ubyte").astype(np.int64))
    model = torch.nn.Sequential(
        torch.nn.Linear(784, h1),
        torch.nn.ReLU(),
        torch.nn.Linear(h1, h2),
        torch.nn.ReLU(),
        torch.nn.Linear(h2, 10),
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    n = x_all.shape[0]
    for e in range(1, epochs + 1):
        total = 0.0
        start = time.perf_counter()
        for s in range(0, n, batch):
            xb = x_all[s : s + batch]
            yb = y_all[s : s + batch]
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            total += loss.item() * xb.shape[0]
        seconds = time.perf_counter() - start
        print("epoch %d seconds %.4f loss %.4f" % (e, seconds, total / n), flush=True)


if __name__ == "__main__":
    main()
