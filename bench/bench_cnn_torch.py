# The PyTorch side of bench_cnn: the example's CNN (examples/mnist_cnn: conv 32 5x5 pad 2,
# ReLU, max pool 2, conv 64 5x5, ReLU, max pool 2, dense 256 ReLU, dropout 0.25, dense 10),
# softmax cross-entropy, Adam lr 1e-3, over the same IDX file in the same (file) order, the
# last batch partial (60,000 = 937 x 64 + 32), for several epochs.
#
#   bench_cnn_torch.py epochs IMAGES LABELS THREADS BATCH EPOCHS [STEPS]
#     prints "epoch <k> seconds <s> loss <mean loss of the epoch's last 50 steps>" per epoch
#     and "maxrss_kb <peak resident set size>" at the end
#   bench_cnn_torch.py convs THREADS BATCH
#     prints "conv <name> <fwd|dx|dw> seconds <median>" for the model's two convolutions
#
# Run by bench_cnn with OPENBLAS_NUM_THREADS=1 (so Debian's OpenBLAS does not fight
# PyTorch's own threads) and torch.set_num_threads equal to dagrad's.
import gzip
import resource
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


def model():
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 32, 5, padding=2),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 64, 5),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(1600, 256),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.25),
        torch.nn.Linear(256, 10),
    )


def epochs(images_path, labels_path, threads, batch, n_epochs, max_steps):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x_all = torch.from_numpy(read_idx(images_path).astype(np.float32) / 255.0).unsqueeze(1)
    y_all = torch.from_numpy(read_idx(labels_path).astype(np.int64))
    net = model()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    steps = (x_all.shape[0] + batch - 1) // batch
    if max_steps > 0:
        steps = min(steps, max_steps)
    for e in range(1, n_epochs + 1):
        losses = []
        start = time.perf_counter()
        for s in range(steps):
            xb = x_all[s * batch : (s + 1) * batch]
            yb = y_all[s * batch : (s + 1) * batch]
            opt.zero_grad()
            loss = loss_fn(net(xb), yb)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        seconds = time.perf_counter() - start
        tail = losses[-50:]
        print("epoch %d seconds %.4f loss %.4f" % (e, seconds, sum(tail) / len(tail)), flush=True)
    print("maxrss_kb %d" % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def median_seconds(fn, reps=21):
    for _ in range(3):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


def convs(threads, batch):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    for name, c, o, h, pad in (("conv1", 1, 32, 28, 2), ("conv2", 32, 64, 14, 0)):
        conv = torch.nn.Conv2d(c, o, 5, padding=pad)
        x = torch.rand(batch, c, h, h, requires_grad=True)
        y = conv(x)
        dy = torch.rand_like(y)

        def fwd():
            with torch.no_grad():
                conv(x)

        def dx():
            torch.autograd.grad(y, x, dy, retain_graph=True)

        def dw():
            torch.autograd.grad(y, conv.weight, dy, retain_graph=True)

        print("conv %s fwd seconds %.6f" % (name, median_seconds(fwd)))
        print("conv %s dx seconds %.6f" % (name, median_seconds(dx)))
        print("conv %s dw seconds %.6f" % (name, median_seconds(dw)), flush=True)


def main():
    if sys.argv[1] == "epochs":
        max_steps = int(sys.argv[7]) if len(sys.argv) > 7 else 0
        epochs(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]),
               max_steps)
    else:
        convs(int(sys.argv[2]), int(sys.argv[3]))


if __name__ == "__main__":
    main()
