#!/usr/bin/env python3
"""Summarizes an `ncu --metrics gpu__time_duration.sum --csv` log of gpu_bench
(tests/bench/ncu-step.sh): the last forward's launches (from its last
dsv4_embed on) in order, then each kernel's launches and total time, most
first.  Exit 1 when the log holds no forward."""
import csv
import io
import sys


def launches(path):
    text = open(path, encoding="utf-8", errors="replace").read()
    at = text.find('"ID"')
    if at < 0:
        return []
    rows = csv.DictReader(io.StringIO(text[at:]))
    out = []
    for r in rows:
        if r.get("Metric Name") != "gpu__time_duration.sum":
            continue
        unit = r.get("Metric Unit", "ns")
        scale = {"ns": 1e-3, "us": 1.0, "usecond": 1.0, "nsecond": 1e-3, "ms": 1e3}.get(unit, 1e-3)
        value = float(r["Metric Value"].replace(",", "")) * scale
        out.append((r["Kernel Name"].split("(")[0], r["Grid Size"], value, r.get("Stream", "?")))
    return out


def main():
    seq = launches(sys.argv[1])
    starts = [i for i, launch in enumerate(seq) if launch[0] == "dsv4_embed"]
    if not starts:
        print("ncu_step: no forward (no dsv4_embed launch) in the log")
        return 1
    step = seq[starts[-1]:]
    total = sum(t for _, _, t, _ in step)
    main_stream = step[0][3]
    print(f"last forward: {len(step)} launches, {total:.1f} us of kernel time under ncu "
          f"(stream 'side': beside the main stream, off its critical path when it keeps up)")
    print("| # | kernel | grid | stream | us |")
    print("|---|---|---|---|---|")
    for i, (name, grid, t, st) in enumerate(step):
        print(f"| {i} | {name} | {grid} | {'main' if st == main_stream else 'side'} | {t:.2f} |")
    by = {}
    for name, grid, t, _ in step:
        n, s = by.get((name, grid), (0, 0.0))
        by[(name, grid)] = (n + 1, s + t)
    print()
    print("| kernel | grid | launches | us | share |")
    print("|---|---|---|---|---|")
    for (name, grid), (n, s) in sorted(by.items(), key=lambda kv: -kv[1][1]):
        print(f"| {name} | {grid} | {n} | {s:.1f} | {100 * s / total:.1f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
