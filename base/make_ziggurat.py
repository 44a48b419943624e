#!/usr/bin/python3
"""Write base/rng_ziggurat.h, the tables of the normal ziggurat in rng_sample.c.

Usage: python3 base/make_ziggurat.py > base/rng_ziggurat.h

The ziggurat of G. Marsaglia and W. W. Tsang ("The Ziggurat Method for
Generating Random Variables", J. Stat. Softw. 5(8), 2000) covers the density
f(x) = exp(-x^2 / 2) on x >= 0 with N layers of equal area v. Layer 0 is the
base strip of width r plus the tail beyond r, drawn as a rectangle of
width x[0] = v / f(r). Layer i (1 <= i < N) spans heights f(x[i]) to
f(x[i+1]) with width x[i], where x[1] = r, f(x[i+1]) = f(x[i]) + v / x[i]
and x[N] = 0. r is the value for which the top layer ends exactly at
f(0) = 1; it is found here by bisection.

Tables, with one entry per layer i:
    threshold[i]  ceil(2^53 x[i+1] / x[i]): a 53-bit integer u below it gives
                  a point u x[i] / 2^53 inside the curve for the whole layer;
    width[i]      x[i] / 2^53, which turns the 53-bit integer into x;
    height[i]     f(x[i]), and height[N] = 1, for the wedge test.
"""
import math

N_LAYERS = 256
BISECTION_STEPS = 200


def density(x):
    return math.exp(-0.5 * x * x)


def tail_area(r):
    return math.sqrt(math.pi / 2.0) * math.erfc(r / math.sqrt(2.0))


def boundaries(r):
    """Return (x, excess) where excess > 0 means the layers overshoot f(0)."""
    v = r * density(r) + tail_area(r)
    x = [v / density(r), r]
    for _ in range(2, N_LAYERS):
        y = density(x[-1]) + v / x[-1]
        if y >= 1.0:
            return x, 1.0
        x.append(math.sqrt(-2.0 * math.log(y)))
    excess = density(x[-1]) + v / x[-1] - 1.0
    x.append(0.0)
    return x, excess


def solve_r():
    low, high = 2.0, 5.0
    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (low + high)
        _, excess = boundaries(mid)
        if excess > 0.0:
            low = mid     # layers too thick: the base must start further out
        else:
            high = mid
    return high


def main():
    r = solve_r()
    x, excess = boundaries(r)
    assert len(x) == N_LAYERS + 1, len(x)
    assert abs(excess) < 1e-12, excess
    scale = 2.0 ** 53
    thresholds = [math.ceil(scale * x[i + 1] / x[i]) for i in range(N_LAYERS)]
    widths = [x[i] / scale for i in range(N_LAYERS)]
    heights = [density(x[i]) for i in range(N_LAYERS)] + [1.0]

    print("/* Ziggurat tables for pnd_rng_normal, written by base/make_ziggurat.py")
    print(" * (%d layers, r = %.17g, layer area v = %.17g). Do not edit. */"
          % (N_LAYERS, r, r * density(r) + tail_area(r)))
    print("#ifndef PND_RNG_ZIGGURAT_H")
    print("#define PND_RNG_ZIGGURAT_H")
    print()
    print("#include <stdint.h>")
    print()
    print("#define ZIGGURAT_LAYERS %d" % N_LAYERS)
    print("#define ZIGGURAT_R %s" % r.hex())
    print()
    print("static const uint64_t ziggurat_threshold[ZIGGURAT_LAYERS] = {")
    for i in range(0, N_LAYERS, 3):
        print("    " + ", ".join("0x%014xULL" % t for t in thresholds[i:i + 3]) + ",")
    print("};")
    print()
    print("static const double ziggurat_width[ZIGGURAT_LAYERS] = {")
    for i in range(0, N_LAYERS, 3):
        print("    " + ", ".join(w.hex() for w in widths[i:i + 3]) + ",")
    print("};")
    print()
    print("static const double ziggurat_height[ZIGGURAT_LAYERS + 1] = {")
    for i in range(0, N_LAYERS + 1, 3):
        print("    " + ", ".join(h.hex() for h in heights[i:i + 3]) + ",")
    print("};")
    print()
    print("#endif")


if __name__ == "__main__":
    main()
