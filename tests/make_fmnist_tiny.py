#!/usr/bin/env python3
"""Write the tiny Fashion-MNIST fixture of the train test suite.

Copies the first 64 training and the first 32 test images and labels of
Fashion-MNIST (Debian package dataset-fashion-mnist) into gzipped IDX
files under tests/data/, with the gzip timestamp fixed so that the output
is the same bytes on every run.

Usage: tests/make_fmnist_tiny.py [SOURCE_DIR] [OUTPUT_DIR]
"""
import gzip
import struct
import sys

SOURCE = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist"
OUTPUT = sys.argv[2] if len(sys.argv) > 2 else "tests/data"
COUNTS = {"train": 64, "t10k": 32}


def copy_first(kind, part, count):
    with gzip.open(f"{SOURCE}/{part}-{kind}-ubyte.gz", "rb") as f:
        data = f.read()
    magic, n = struct.unpack(">II", data[:8])
    if kind.startswith("images"):
        rows, cols = struct.unpack(">II", data[8:16])
        header = struct.pack(">IIII", magic, count, rows, cols)
        body = data[16:16 + count * rows * cols]
    else:
        header = struct.pack(">II", magic, count)
        body = data[8:8 + count]
    out = f"{OUTPUT}/fmnist_tiny_{part}-{kind}-ubyte.gz"
    with open(out, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
            gz.write(header + body)


for part, count in COUNTS.items():
    copy_first("images-idx3", part, count)
    copy_first("labels-idx1", part, count)
