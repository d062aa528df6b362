#!/usr/bin/env python3
"""How far the official code's own reference-numerics logits move when every
quantizer input is multiplied by (1 + 1e-6 * N(0,1)) -- a stand-in for an
independent, correct engine that sums in a different order (spec §11a).
An engine's reference-mode logits are judged against this envelope.

    python3 envelope.py --official DIR --ckpt CKPT --tokens N --runs K --name NAME --out FILE.json

Uses the same tokens (seed 1) and model set-up as run_official.py.  Writes
(or updates) FILE.json: {NAME: {"runs": [max|d|/max|ref| per run],
"argmax_agree": [...], "max_rel": max of runs}}.
"""
import argparse
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run_official as ro  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--official", required=True)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--name", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    m, tk = ro.import_official(a.official)
    cfg = json.load(open(os.path.join(a.ckpt, "config.json")))
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, cfg["vocab_size"], (a.tokens,), generator=g).tolist()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tk.set_mode("reference")
    torch.set_default_dtype(torch.float32)
    torch.set_default_device(device)
    args = m.ModelArgs(**ro.model_args(cfg, len(tokens) + 8, True))
    orig_aq, orig_fp4 = tk.act_quant, tk.fp4_act_quant
    state = {"gen": None}

    def jitter(x):
        if state["gen"] is None:
            return x
        n = torch.randn(x.shape, generator=state["gen"], device="cpu").to(x.device)
        return x * (1 + 1e-6 * n).to(x.dtype)

    def act_quant(x, block_size=128, scale_fmt=None, scale_dtype=torch.float32, inplace=False):
        if inplace:
            x.copy_(jitter(x))
            return orig_aq(x, block_size, scale_fmt, scale_dtype, True)
        return orig_aq(jitter(x), block_size, scale_fmt, scale_dtype)

    def fp4_act_quant(x, block_size=32, inplace=False):
        x.copy_(jitter(x))
        return orig_fp4(x, block_size, inplace)

    tk.act_quant, tk.fp4_act_quant = act_quant, fp4_act_quant
    m.act_quant, m.fp4_act_quant = act_quant, fp4_act_quant

    def logits():
        model = m.Transformer(args)
        problems, _ = ro.load_weights(model, a.ckpt)
        assert not problems, problems[:5]
        for p in model.parameters():
            if p.dtype == torch.bfloat16:
                p.data = p.data.float()
        return model(torch.tensor([tokens], device=device), 0)[0].float().cpu()

    ref = logits()
    runs, agree = [], []
    for r in range(a.runs):
        state["gen"] = torch.Generator().manual_seed(1000 + r)
        out = logits()
        runs.append((out - ref).abs().max().item() / ref.abs().max().item())
        agree.append((out.argmax(-1) == ref.argmax(-1)).float().mean().item())
        state["gen"] = None
    res = json.load(open(a.out)) if os.path.exists(a.out) else {}
    res[a.name] = {"tokens": a.tokens, "runs": runs, "argmax_agree": agree, "max_rel": max(runs),
                   "torch": torch.__version__}
    json.dump(res, open(a.out, "w"), indent=1, sort_keys=True)
    print(a.name, "envelope max rel", max(runs), "argmax", min(agree))


if __name__ == "__main__":
    main()
