#!/usr/bin/python3
"""NumPy peer of `pnd bench sim`: the same Monte Carlo estimate, vectorised.

The network is a readout model: one masked layer z = (W o M) x + b of h
nodes on d inputs, a linear readout y = V z + e of c rows and the squared
loss 1/2 |y - t|^2. Every draw masks every connection with a fresh inverted
Bernoulli value (PerNodeDrop with one sample), and the script reports the
mean and standard error of the loss and the draws per second.

pnd bench sim passes --net-dir with its own network saved as .npy files, so
both sides estimate the same E[l]; without it the network is random.

Draws are processed in blocks of --block masks of shape (block, h, d), the
vectorised form that a NumPy user would write. Pin the thread count with
OMP_NUM_THREADS and OPENBLAS_NUM_THREADS (pnd bench sets both to the count
it uses itself). The output is one line of key=value pairs for pnd bench.
"""

import argparse
import sys
import time

import numpy as np


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d", type=int, default=256, help="input dimension")
    parser.add_argument("--h", type=int, default=128, help="masked layer width")
    parser.add_argument("--c", type=int, default=10, help="readout rows")
    parser.add_argument("--p", type=float, default=0.1, help="drop probability in [0, 1)")
    parser.add_argument("--draws", type=int, default=2000, help="Monte Carlo draws")
    parser.add_argument("--block", type=int, default=64,
                        help="draws masked at once (memory: block * h * d doubles)")
    parser.add_argument("--seed", type=int, default=1, help="seed of numpy.random")
    parser.add_argument("--net-dir", default=None,
                        help="folder with W.npy (h, d), b.npy (h, 1), V.npy (c, h), "
                             "e.npy (c, 1), x.npy (1, d), t.npy (1, c), as pnd bench "
                             "sim writes them; without it the network is random")
    args = parser.parse_args()
    if not 0.0 <= args.p < 1.0:
        parser.error("--p must be in [0, 1)")
    if min(args.d, args.h, args.c, args.draws, args.block) < 1:
        parser.error("--d, --h, --c, --draws and --block must be at least 1")
    return args


def main():
    args = parse_args()
    rng = np.random.Generator(np.random.PCG64DXSM(args.seed))
    if args.net_dir is not None:
        def load(name):
            return np.load("%s/%s.npy" % (args.net_dir, name))
        W = load("W")
        b, V, e = load("b")[:, 0], load("V"), load("e")[:, 0]
        x, t = load("x")[0], load("t")[0]
        (h, d), c = W.shape, V.shape[0]
    else:
        d, h, c = args.d, args.h, args.c
        W = rng.normal(0.0, 1.0 / np.sqrt(d), (h, d))
        b = rng.normal(0.0, 0.1, h)
        V = rng.normal(0.0, 1.0 / np.sqrt(h), (c, h))
        e = rng.normal(0.0, 0.1, c)
        x = rng.normal(0.0, 1.0, d)
        t = rng.normal(0.0, 1.0, c)
    keep = 1.0 - args.p

    losses = np.empty(args.draws)
    start = time.perf_counter()
    for first in range(0, args.draws, args.block):
        count = min(args.block, args.draws - first)
        # a_ui = W_ui x_i, masked per connection: z = sum_i a_ui m_ui + b.
        masks = (rng.random((count, h, d)) < keep) / keep
        z = np.einsum("bhd,hd->bh", masks, W * x) + b
        y = z @ V.T + e
        losses[first:first + count] = 0.5 * np.sum((y - t) ** 2, axis=1)
    elapsed = time.perf_counter() - start

    mean = losses.mean()
    se = losses.std(ddof=1) / np.sqrt(args.draws)
    print("draws=%d elapsed_s=%.6f draws_per_s=%.6g connections_per_s=%.6g "
          "mean=%.10g se=%.4g" % (args.draws, elapsed, args.draws / elapsed,
                                  args.draws * h * d / elapsed, mean, se))
    return 0


if __name__ == "__main__":
    sys.exit(main())
