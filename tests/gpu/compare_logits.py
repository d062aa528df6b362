#!/usr/bin/env python3
"""Compares two dsv4-run --dump-logits files (GPU against CPU): per row
max|d| / max|ref| <= tol, and the argmax equal unless the reference's top
two are within 2e-3 (a tie).  Prints one TAP-style line; exit 1 on failure."""
import sys

import numpy as np


def read(path):
    with open(path, "rb") as f:
        head = f.readline().split()
        rows, vocab = int(head[2]), int(head[4])
        return np.frombuffer(f.read(), dtype="<f4").reshape(rows, vocab)


def main():
    ref, got, tol, name = read(sys.argv[1]), read(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    if ref.shape != got.shape:
        print(f"not ok {name}: shapes {ref.shape} vs {got.shape}")
        return 1
    rel = np.abs(ref - got).max(axis=1) / np.abs(ref).max(axis=1)
    top2 = np.sort(ref, axis=1)[:, -2:]
    tie = (top2[:, 1] - top2[:, 0]) <= 2e-3 * np.abs(top2[:, 1])
    bad = (ref.argmax(axis=1) != got.argmax(axis=1)) & ~tie
    over = np.nonzero(rel > tol)[0]
    first = f", first over tol at row {over[0]}" if len(over) else ""
    ok = rel.max() <= tol and not bad.any()
    print(f"{'ok' if ok else 'not ok'} {name}: rows {ref.shape[0]}, worst rel {rel.max():.3g} "
          f"(tol {tol}){first}, argmax mismatches {int(bad.sum())}, ties {int(tie.sum())}")
    return 0 if ok else 1


sys.exit(main())
