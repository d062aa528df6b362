#!/usr/bin/env python3
"""Times HF transformers' DeepseekV4ForCausalLM (eager attention) on a
dsv4-mkmodel checkpoint: the anchor that tests/bench/run-gpu-bench.sh
divides the CUDA backend's rates by.

    python3 hf_bench.py --ckpt CKPT [--dtype bfloat16] [--context 4096]
                        [--steps 8] [--prefill 1024]

Weights are loaded as run_hf.py loads them (dequantized, renamed, experts
stacked), then cast to --dtype.  Prints two lines the bench script reads:
    hf prefill: N tokens in S s: R tokens/s
    hf decode: context C: M ms/token
Prefill is the median of three calls after a warm-up; decode is timed after
a real prefill of --context tokens (HF's cache), the median of --steps
one-token steps, each synchronized.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_hf import Release, hf_config, load_hf  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    ap.add_argument("--context", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--prefill", type=int, default=1024)
    a = ap.parse_args()
    from transformers import DeepseekV4ForCausalLM

    cfg, config = hf_config(a.ckpt)
    dtype = getattr(torch, a.dtype)
    with torch.device("cuda"):  # random init on the GPU: seconds, not minutes
        model = DeepseekV4ForCausalLM(config).float().eval()
    rel = Release(a.ckpt)
    problems = load_hf(model, rel, cfg["n_routed_experts"])
    if problems:
        print("hf_bench: loading problems:", *problems[:10], sep="\n  ", file=sys.stderr)
        sys.exit(1)
    del rel
    model = model.to(dtype)
    torch.cuda.empty_cache()
    print(f"hf model: {config.num_hidden_layers} layers, {a.dtype}, eager, "
          f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    g = torch.Generator().manual_seed(5)
    vocab = cfg["vocab_size"]
    with torch.no_grad():
        ids = torch.randint(0, vocab, (1, a.prefill), generator=g).cuda()
        model(ids[:, :16])  # warm-up (kernels, allocator)
        runs = []
        for _ in range(3):  # the median of three: HF's own time moves run to run
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            model(ids)
            torch.cuda.synchronize()
            runs.append(time.perf_counter() - t0)
        dt = statistics.median(runs)
        print(f"hf prefill: {a.prefill} tokens in {dt:.3f} s: {a.prefill / dt:.1f} tokens/s "
              f"(median of 3: {', '.join(f'{r:.3f}' for r in runs)} s)")
        del ids
        torch.cuda.empty_cache()
        ctx = torch.randint(0, vocab, (1, a.context + a.steps), generator=g).cuda()
        o = model(ctx[:, : a.context], use_cache=True)
        pkv, times = o.past_key_values, []
        for t in range(a.context, a.context + a.steps):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            o = model(ctx[:, t:t + 1], past_key_values=pkv, use_cache=True)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
            pkv = o.past_key_values
        print(f"hf decode: context {a.context}: {statistics.median(times) * 1e3:.3f} ms/token")


if __name__ == "__main__":
    main()
