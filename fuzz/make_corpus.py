#!/usr/bin/env python3
"""Writes the seed corpus in fuzz/corpus/ from an independent Python implementation of the
formats in docs/FORMATS.md (so the seeds also cross-check the C writers). Run from the
repository root: python3 fuzz/make_corpus.py"""
import gzip
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def write(target, name, data):
    os.makedirs(os.path.join(ROOT, target), exist_ok=True)
    with open(os.path.join(ROOT, target, name), "wb") as f:
        f.write(data)


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def checkpoint(tensors):
    """tensors: list of (kind, name, dims, values); kind 1 = parameter, 2 = state."""
    out = b"DAGRADCK" + struct.pack("<II", 1, len(tensors))
    for kind, name, dims, values in tensors:
        nb = name.encode()
        out += struct.pack("<II", kind, len(nb)) + nb + struct.pack("<I", len(dims))
        out += b"".join(struct.pack("<Q", d) for d in dims)
        out += b"".join(struct.pack("<f", v) for v in values)
    return out + struct.pack("<Q", fnv1a64(out))


def npy(header, values, major=1):
    h = header.encode()
    pre = b"\x93NUMPY" + bytes([major, 0])
    pre += struct.pack("<H", len(h)) if major == 1 else struct.pack("<I", len(h))
    return pre + h + b"".join(struct.pack("<f", v) for v in values)


def idx_images(count, rows, cols):
    px = bytes((7 * i + 3 * j) % 256 for i in range(count) for j in range(rows * cols))
    return struct.pack(">IIII", 0x803, count, rows, cols) + px


def idx_labels(count):
    return struct.pack(">II", 0x801, count) + bytes((3 * i + 1) % 10 for i in range(count))


def idx_input(images, labels, from_files):
    """The fuzz_idx input: split point (2 bytes, big-endian), mode byte, the two files."""
    return struct.pack(">H", len(images)) + bytes([from_files]) + images + labels


params = [(1, "w", [2, 3], [0.5, -1, 2, 0, 3.25, -7]), (1, "b", [3], [1, 2, 3]),
          (1, "param#2", [1], [9])]
state = [(2, "step", [], [4])]
write("checkpoint", "with_state", checkpoint(params + state))
write("checkpoint", "params_only", checkpoint(params))
write("checkpoint", "wrong_shape", checkpoint([(1, "w", [3, 2], [0] * 6)] + params[1:]))
write("checkpoint", "empty", checkpoint([]))

write("npy", "v1_2x3", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
                           + " " * 3 + "\n", [1, 2, 3, 4, 5, 6]))
write("npy", "v1_scalar", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (), }\n", [1]))
write("npy", "v1_vec", npy('{"shape": (4,), "descr": "<f4", "fortran_order": False}\n',
                           [1, 2, 3, 4]))
write("npy", "v2_4d", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 1, 2), }\n",
                          [1, 2, 3, 4], major=2))
write("npy", "v3_f8", npy("{'descr': '<f8', 'fortran_order': True, 'shape': (1,), }\n",
                          [0, 0], major=3))

img, lbl = idx_images(3, 4, 2), idx_labels(3)
write("idx", "raw_mem", idx_input(img, lbl, 0))
write("idx", "raw_file", idx_input(img, lbl, 1))
write("idx", "gz_mem", idx_input(gzip.compress(img, mtime=0), gzip.compress(lbl, mtime=0), 0))
write("idx", "gz_file", idx_input(gzip.compress(img, mtime=0), gzip.compress(lbl, mtime=0), 1))
write("idx", "mnist_like", idx_input(gzip.compress(idx_images(2, 28, 28), mtime=0),
                                     idx_labels(2), 0))
write("idx", "swapped", idx_input(lbl, img, 0))
