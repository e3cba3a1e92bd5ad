#!/usr/bin/env python3
"""Cut tessera's embedded Fashion-MNIST subset out of the full set.

Usage: python3 scripts/cut_fashion_mnist_subset.py [SOURCE_DIR] [OUT_DIR]

SOURCE_DIR holds the four gzip IDX files of the full Fashion-MNIST set
(default /work/shared/datasets/fashion-mnist); OUT_DIR receives the subset
(default ssl/data/fashion-mnist-subset). The subset is the first 10,000
training and the first 2,000 test images with their labels, in their original
order. The output gzip files carry mtime 0 and no file name, so re-running the
script gives the same bytes (for the same zlib). Standard library only.
"""

import gzip
import os
import struct
import sys

IMAGE_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
LABEL_MAGIC = 0x00000801  # unsigned bytes, 1 dimension

SPLITS = [
    ("train", 10_000),
    ("t10k", 2_000),
]


def read_idx(path, expected_magic):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic, count = struct.unpack(">II", raw[:8])
    if magic != expected_magic:
        sys.exit(f"{path}: magic 0x{magic:08x}, expected 0x{expected_magic:08x}")
    ndims = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndims, raw[4 : 4 + 4 * ndims])
    header_len = 4 + 4 * ndims
    item = 1
    for d in dims[1:]:
        item *= d
    body = raw[header_len:]
    if len(body) != count * item:
        sys.exit(f"{path}: header says {count} items of {item} bytes, found {len(body)} bytes")
    return dims, item, body


def write_idx(path, magic, dims, body):
    header = struct.pack(">I", magic) + struct.pack(">" + "I" * len(dims), *dims)
    with open(path, "wb") as out:
        # filename="" keeps the source name out of the gzip header; mtime=0 makes it reproducible.
        with gzip.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=9, mtime=0) as gz:
            gz.write(header + body)


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/datasets/fashion-mnist"
    dst = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "..", "ssl", "data", "fashion-mnist-subset")
    os.makedirs(dst, exist_ok=True)
    for split, n in SPLITS:
        for kind, magic in (("images-idx3-ubyte", IMAGE_MAGIC), ("labels-idx1-ubyte", LABEL_MAGIC)):
            name = f"{split}-{kind}.gz"
            dims, item, body = read_idx(os.path.join(src, name), magic)
            if dims[0] < n:
                sys.exit(f"{name}: only {dims[0]} items, {n} wanted")
            write_idx(os.path.join(dst, name), magic, (n,) + tuple(dims[1:]), body[: n * item])
            print(f"{name}: {n} of {dims[0]} items, shape {(n,) + tuple(dims[1:])}")


if __name__ == "__main__":
    main()
