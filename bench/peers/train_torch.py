#!/usr/bin/env python3
"""Time training steps of an MLP with per-sample PerNodeDrop masks in PyTorch.

The peer of `pnd bench train`. Each masked dense layer draws a
(batch, d_in, d_out) Bernoulli tensor for every step, the way a per-sample
masked layer written with framework tensor operations does, and computes
    z[k] = x[k] @ (W * m[k] / (1 - p)) + b
with an einsum. Scheme `none` is the plain nn.Linear network. The inputs are
random pixels in [0, 1): only the time matters. One line of tab-separated
results goes to stdout.

Usage: train_torch.py [--hidden 256,256] [--batch 128] [--p 0.2]
                      [--scheme pernodedrop|none] [--steps 5] [--threads 1]
                      [--dtype float32|float64] [--train-size 55000]
"""
import argparse
import statistics
import sys
import time

try:
    import torch
except ImportError:
    print("train_torch.py: PyTorch is not installed (apt-get install python3-torch)",
          file=sys.stderr)
    sys.exit(3)


class PerNodeDropDense(torch.nn.Module):
    """Dense layer with a fresh mask on every connection of every sample."""

    def __init__(self, d_in, d_out, p, dtype):
        super().__init__()
        self.p = p
        self.weight = torch.nn.Parameter(
            torch.randn(d_in, d_out, dtype=dtype) * (2.0 / d_in) ** 0.5)
        self.bias = torch.nn.Parameter(torch.zeros(d_out, dtype=dtype))

    def forward(self, x):
        if not self.training or self.p == 0:
            return x @ self.weight + self.bias
        keep = 1.0 - self.p
        shape = (x.shape[0],) + tuple(self.weight.shape)
        mask = torch.bernoulli(torch.full(shape, keep, dtype=x.dtype)) / keep
        return torch.einsum("bi,bio->bo", x, self.weight * mask) + self.bias


def build(widths, scheme, p, dtype):
    layers = []
    for i in range(len(widths) - 1):
        last = i == len(widths) - 2
        if scheme == "pernodedrop" and not last:
            layers.append(PerNodeDropDense(widths[i], widths[i + 1], p, dtype))
        else:
            layers.append(torch.nn.Linear(widths[i], widths[i + 1], dtype=dtype))
        if not last:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", default="256,256")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--p", type=float, default=0.2)
    parser.add_argument("--scheme", choices=["pernodedrop", "none"], default="pernodedrop")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--train-size", type=int, default=55000)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    dtype = getattr(torch, args.dtype)
    widths = [784] + [int(h) for h in args.hidden.split(",")] + [10]
    model = build(widths, args.scheme, args.p, dtype)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    x = torch.rand(args.batch, 784, dtype=dtype)
    y = torch.randint(0, 10, (args.batch,))

    def step():
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()

    step()  # warm-up: allocations and kernel selection
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    # The median step: a step slowed by another job on a shared machine
    # moves it less than the mean. pnd bench train reports the same.
    per_step = statistics.median(times)
    steps_per_epoch = -(-args.train_size // args.batch)
    print("peer\tscheme\tdtype\tthreads\tbatch\thidden\tsteps\ts_per_step\ts_per_epoch")
    print(f"torch-{torch.__version__}\t{args.scheme}\t{args.dtype}\t{args.threads}\t"
          f"{args.batch}\t{args.hidden}\t{args.steps}\t{per_step:.6f}\t"
          f"{per_step * steps_per_epoch:.3f}")


if __name__ == "__main__":
    main()
