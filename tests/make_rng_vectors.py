#!/usr/bin/python3
"""Write the reference outputs of numpy's PCG64 and PCG64DXSM for check_rng.c.

Usage: /usr/bin/python3 tests/make_rng_vectors.py tests/data

Each case sets numpy's bit_generator.state to a 128-bit state and increment,
optionally calls bit_generator.advance, then records raw 64-bit outputs
(random_raw). For the seeded cases the state and increment come from the
reference library's srandom(initstate, initseq), computed here with Python
integers, so the C test also checks pnd_pcg64_init and pnd_pcg64dxsm_init.

File format, one case per block:
    case INITSTATE INITSEQ STATE INC ADVANCE N
followed by N lines with one output each. All numbers are hex; INITSTATE and
INITSEQ are "-" when the case sets STATE and INC directly.
"""
import os
import sys

import numpy as np

MASK128 = (1 << 128) - 1
PCG64_MULTIPLIER = (2549297995355413924 << 64) + 4865540595714422341
CHEAP_MULTIPLIER = 0xDA942042E4DD58B5
N_OUTPUTS = 8

# (initstate, initseq) pairs seeded like srandom, then direct (state, inc).
SEEDED_CASES = [
    (42, 54),
    (0, 0),
    (0x0123456789ABCDEF_FEDCBA9876543210, 0xDEADBEEF_CAFEBABE_0BADF00D_12345678),
]
DIRECT_CASES = [
    (0x1, 0x1),
    (MASK128, MASK128),
    (0x9E3779B97F4A7C15_F39CC0605CEDC834, 0x2545F4914F6CDD1D_0000000000000001),
]
# advance deltas, as numbers modulo 2^128 (the last one is -5).
ADVANCE_DELTAS = [1, 1000, (1 << 100) + 12345, (1 << 128) - 5]


def srandom(initstate, initseq, multiplier):
    """Return (state, inc) after the reference library's srandom."""
    inc = ((initseq << 1) | 1) & MASK128
    state = 0
    state = (state * multiplier + inc) & MASK128
    state = (state + initstate) & MASK128
    state = (state * multiplier + inc) & MASK128
    return state, inc


def outputs(bit_generator_class, state, inc, advance):
    bit_generator = bit_generator_class()
    bit_generator.state = {
        "bit_generator": bit_generator_class.__name__,
        "state": {"state": state, "inc": inc},
        "has_uint32": 0,
        "uinteger": 0,
    }
    if advance:
        bit_generator.advance(advance)
    return [int(x) for x in bit_generator.random_raw(N_OUTPUTS)]


def write_cases(path, bit_generator_class, multiplier):
    lines = [
        "# Reference outputs of numpy.random.%s (numpy %s), written by"
        % (bit_generator_class.__name__, np.__version__),
        "# tests/make_rng_vectors.py. Block format: case INITSTATE INITSEQ"
        " STATE INC ADVANCE N,",
        "# then N raw 64-bit outputs; all numbers hex, '-' when not seeded.",
    ]
    cases = []
    for initstate, initseq in SEEDED_CASES:
        state, inc = srandom(initstate, initseq, multiplier)
        cases.append(("%x" % initstate, "%x" % initseq, state, inc, 0))
    for state, inc in DIRECT_CASES:
        cases.append(("-", "-", state, inc, 0))
    state, inc = srandom(42, 54, multiplier)
    for delta in ADVANCE_DELTAS:
        cases.append(("%x" % 42, "%x" % 54, state, inc, delta))

    for initstate, initseq, state, inc, advance in cases:
        lines.append("case %s %s %x %x %x %d"
                     % (initstate, initseq, state, inc, advance, N_OUTPUTS))
        for value in outputs(bit_generator_class, state, inc, advance):
            lines.append("%016x" % value)
    with open(path, "w") as out:
        out.write("\n".join(lines) + "\n")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_rng_vectors.py OUTPUT_DIRECTORY")
    directory = sys.argv[1]
    write_cases(os.path.join(directory, "rng_pcg64.txt"),
                np.random.PCG64, PCG64_MULTIPLIER)
    write_cases(os.path.join(directory, "rng_pcg64dxsm.txt"),
                np.random.PCG64DXSM, CHEAP_MULTIPLIER)


if __name__ == "__main__":
    main()
