#!/usr/bin/env python3
"""Held-out perplexity of an exported checkpoint, three ways on the same
samples (train.py's heldout.json; loss on the answer and EOS as in
training):
  official  DeepSeek's inference/model.py with run_official.py's kernels,
            reference numerics (FP8/FP4 activation rounding as shipped)
  dsv4      our engine: dsv4-run --dump-logits, reference numerics
  hf        transformers' DeepseekV4ForCausalLM (FP32, eager) on the
            dequantized weights

    ppl.py --ckpt DIR --heldout heldout.json --official DIR --dsv4-run BIN
           [--limit N] [--jobs J] --out ppl.json
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))


def nll(logits, ids, p):
    """Summed NLL of ids[p:] given logits rows p-1 .. n-2, and the count."""
    lg = torch.as_tensor(logits, dtype=torch.float64)
    tgt = torch.tensor(ids[p:])
    lp = torch.log_softmax(lg[p - 1:len(ids) - 1], -1)
    return -lp[torch.arange(len(tgt)), tgt].sum().item(), len(tgt)


def official(ckpt, samples, official_dir):
    import run_official as ro
    m, tk = ro.import_official(official_dir)
    tk.set_mode("reference")
    cfg = json.load(open(os.path.join(ckpt, "config.json")))
    torch.set_default_dtype(torch.float32)
    torch.set_default_device("cuda")
    args = m.ModelArgs(**ro.model_args(cfg, max(len(s["ids"]) for s in samples) + 8, True))
    out = []
    for s in samples:
        model = m.Transformer(args)
        problems, _ = ro.load_weights(model, ckpt)
        if problems:
            raise SystemExit("checkpoint does not load: " + "; ".join(problems[:5]))
        for prm in model.parameters():
            if prm.dtype == torch.bfloat16:
                prm.data = prm.data.float()
        with torch.no_grad():
            lg = model(torch.tensor([s["ids"]]), 0)[0].float().cpu()
        out.append(nll(lg, s["ids"], s["prompt_len"]))
        del model
    torch.set_default_device("cpu")
    return out


def dsv4(ckpt, samples, binary, jobs):
    def one(s):
        with tempfile.NamedTemporaryFile(suffix=".logits") as f:
            subprocess.run([binary, "--model", ckpt, "--threads", "1", "--numerics", "reference",
                            "--tokens", ",".join(map(str, s["ids"])), "--n-predict", "1",
                            "--dump-logits", f.name], check=True, capture_output=True)
            raw = open(f.name, "rb").read()
        head, body = raw.split(b"\n", 1)
        _, _, rows, _, vocab = head.decode().split()
        lg = np.frombuffer(body, dtype=np.float32).reshape(int(rows), int(vocab))
        return nll(lg, s["ids"], s["prompt_len"])
    with ThreadPoolExecutor(jobs) as ex:
        return list(ex.map(one, samples))


def hf(ckpt, samples):
    import run_hf
    from transformers import DeepseekV4Config, DeepseekV4ForCausalLM
    cfg = json.load(open(os.path.join(ckpt, "config.json")))
    h = {k: v for k, v in cfg.items() if k not in ("quantization_config", "expert_dtype")}
    h["num_nextn_predict_layers"] = 0
    h["compress_ratios"] = cfg["compress_ratios"][: cfg["num_hidden_layers"]]
    config = DeepseekV4Config(**h)
    config._attn_implementation = "eager"
    model = DeepseekV4ForCausalLM(config).cuda().float().eval()
    problems = run_hf.load_hf(model, run_hf.Release(ckpt), cfg["n_routed_experts"])
    if problems:
        raise SystemExit("HF load: " + "; ".join(problems[:5]))
    out = []
    with torch.no_grad():
        for s in samples:
            lg = model(torch.tensor([s["ids"]]).cuda()).logits[0].float().cpu()
            out.append(nll(lg, s["ids"], s["prompt_len"]))
    return out


def ppl(parts):
    return math.exp(sum(a for a, _ in parts) / sum(b for _, b in parts))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--heldout", required=True)
    ap.add_argument("--official", required=True)
    ap.add_argument("--dsv4-run", required=True)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=16)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    samples = json.load(open(a.heldout))
    if a.limit:
        samples = samples[: a.limit]
    res = {"samples": len(samples), "tokens": sum(len(s["ids"]) - s["prompt_len"] for s in samples)}
    per = {"dsv4": dsv4(a.ckpt, samples, a.dsv4_run, a.jobs),
           "official": official(a.ckpt, samples, a.official),
           "hf": hf(a.ckpt, samples)}
    for k, v in per.items():
        res[f"{k}_ppl"] = ppl(v)
    res["dsv4_vs_official"] = res["dsv4_ppl"] / res["official_ppl"] - 1
    res["dsv4_vs_hf"] = res["dsv4_ppl"] / res["hf_ppl"] - 1
    json.dump(res, open(a.out, "w"), indent=1)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
