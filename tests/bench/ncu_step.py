#!/usr/bin/env python3
"""Summarizes an `ncu --metrics gpu__time_duration.sum --csv` log of gpu_bench
(tests/bench/ncu-step.sh): the last forward's launches (from its last
dsv4_embed on) in order, then each kernel's launches and total time, most
first.  Exit 1 when the log holds no forward."""
import csv
import io
import sys


UNITS = {"ns": 1e-3, "nsecond": 1e-3, "us": 1.0, "usecond": 1.0, "ms": 1e3, "msecond": 1e3,
         "byte": 1.0, "Kbyte": 1e3, "Mbyte": 1e6, "Gbyte": 1e9, "KB": 1e3, "MB": 1e6, "GB": 1e9}


def launches(path):
    """(kernel, grid, us, stream, bytes read from DRAM or None) per launch."""
    text = open(path, encoding="utf-8", errors="replace").read()
    at = text.find('"ID"')
    if at < 0:
        return []
    by_id = {}
    for r in csv.DictReader(io.StringIO(text[at:])):
        metric = r.get("Metric Name")
        if metric not in ("gpu__time_duration.sum", "dram__bytes_read.sum"):
            continue
        value = float(r["Metric Value"].replace(",", "")) * UNITS.get(r.get("Metric Unit", ""), 1.0)
        launch = by_id.setdefault(r["ID"], {"name": r["Kernel Name"].split("(")[0],
                                            "grid": r["Grid Size"], "stream": r.get("Stream", "?")})
        launch[metric] = value
    out = []
    for launch in by_id.values():
        if "gpu__time_duration.sum" in launch:
            out.append((launch["name"], launch["grid"], launch["gpu__time_duration.sum"],
                        launch["stream"], launch.get("dram__bytes_read.sum")))
    return out


def main():
    seq = launches(sys.argv[1])
    starts = [i for i, launch in enumerate(seq) if launch[0] == "dsv4_embed"]
    if not starts:
        print("ncu_step: no forward (no dsv4_embed launch) in the log")
        return 1
    step = seq[starts[-1]:]
    total = sum(launch[2] for launch in step)
    main_stream = step[0][3]
    print(f"last forward: {len(step)} launches, {total:.1f} us of kernel time under ncu "
          f"(stream 'side': beside the main stream, off its critical path when it keeps up)")
    print("| # | kernel | grid | stream | us | MB read | GB/s |")
    print("|---|---|---|---|---|---|---|")
    for i, (name, grid, t, st, nbytes) in enumerate(step):
        mb = "" if nbytes is None else f"{nbytes / 1e6:.2f}"
        rate = "" if nbytes is None or t <= 0 else f"{nbytes / t / 1e3:.0f}"
        print(f"| {i} | {name} | {grid} | {'main' if st == main_stream else 'side'} | {t:.2f} | {mb} | {rate} |")
    by = {}
    for name, grid, t, _, _ in step:
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
