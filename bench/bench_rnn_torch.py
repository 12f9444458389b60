# The PyTorch side of bench_rnn: the identical character model (embedding 64, one LSTM
# layer or GRU of `hidden` units, dense output, mean cross-entropy over all steps), Adam
# lr 2e-3 with gradient-norm clipping at 5, trained on the same text cut into the same
# `batch` streams and walked `unroll` characters at a time with the state carried between
# segments and detached (truncated backpropagation through time), exactly as
# examples/textgen does. Prints one line per epoch: "epoch <k> seconds <s> loss <mean>".
# Run by bench_rnn with OPENBLAS_NUM_THREADS=1 so that Debian's OpenBLAS does not fight
# PyTorch's own threads.
import sys
import time

import torch


class Model(torch.nn.Module):
    def __init__(self, cell, vocab, embed, hidden):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, embed)
        rnn = torch.nn.LSTM if cell == "lstm" else torch.nn.GRU
        self.rnn = rnn(embed, hidden, batch_first=True)
        self.out = torch.nn.Linear(hidden, vocab)

    def forward(self, x, state):
        h, state = self.rnn(self.embed(x), state)
        return self.out(h.reshape(-1, h.shape[-1])), state


def detach(state):
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


def main():
    path, cell, hidden, batch, unroll, epochs, threads, max_chars = sys.argv[1:9]
    hidden, batch, unroll, epochs, threads, max_chars = map(
        int, (hidden, batch, unroll, epochs, threads, max_chars))
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    text = open(path, "rb").read()
    if max_chars > 0:
        text = text[:max_chars]
    alphabet = sorted(set(text))
    index = {b: i for i, b in enumerate(alphabet)}
    cls = torch.tensor([index[b] for b in text], dtype=torch.long)
    n_train = int(len(text) * 0.95)
    length = n_train // batch
    streams = cls[: length * batch].view(batch, length)
    segments = (length - 1) // unroll
    model = Model(cell, len(alphabet), 64, hidden)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    for epoch in range(1, epochs + 1):
        state = None
        total = 0.0
        start = time.perf_counter()
        for s in range(segments):
            x = streams[:, s * unroll : (s + 1) * unroll]
            y = streams[:, s * unroll + 1 : (s + 1) * unroll + 1]
            opt.zero_grad()
            logits, state = model(x, state)
            loss = loss_fn(logits, y.reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            state = detach(state)
            total += loss.item()
        seconds = time.perf_counter() - start
        print("epoch %d seconds %.4f loss %.4f" % (epoch, seconds, total / segments), flush=True)


if __name__ == "__main__":
    main()
