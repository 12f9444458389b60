# The PyTorch side of bench_memory: the identical model (w2: the 784-512-256-10 ReLU MLP,
# batch 128; cnn: examples/mnist_cnn's CNN, batch 64), softmax cross-entropy, Adam lr 1e-3,
# the last batch partial, one epoch over 60,000 random images held as bytes and converted per
# batch, as bench_memory's own loop does. Its peak resident memory is measured by
# bench_memory (getrusage of this process); it also prints it. Run with
# OPENBLAS_NUM_THREADS=1; arguments: the thread count, the model (w2 or cnn).
import resource
import sys

import torch


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    which = sys.argv[2] if len(sys.argv) > 2 else "w2"
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(12345)
    images = torch.randint(0, 256, (60000, 784), dtype=torch.uint8, generator=g)
    labels = torch.arange(60000, dtype=torch.int64) % 10
    if which == "w2":
        model = torch.nn.Sequential(
            torch.nn.Linear(784, 512),
            torch.nn.ReLU(),
            torch.nn.Linear(512, 256),
            torch.nn.ReLU(),
            torch.nn.Linear(256, 10),
        )
        batch, shape = 128, (-1, 784)
    else:
        from bench_cnn_torch import model as cnn_model  # the example's CNN, as bench_cnn times it

        model = cnn_model()
        batch, shape = 64, (-1, 1, 28, 28)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    for start in range(0, images.shape[0], batch):
        xb = (images[start : start + batch].float() / 255.0).reshape(shape)
        yb = labels[start : start + batch]
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print("rss %d loss %.4f" % (peak, loss.item()))


if __name__ == "__main__":
    main()
