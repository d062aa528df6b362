#!/usr/bin/env python3
"""Runs DeepSeek's official inference/model.py on a checkpoint written by
dsv4-mkmodel, with FP32 activations and the pure-torch kernels of
torch_kernel.py, and writes a fixture (safetensors) with its logits.

    python3 run_official.py --official DIR --ckpt CKPT --out FILE
                            [--tokens N] [--prefill K] [--seed S] [--modes reference,exact]

--official is a folder holding the official model.py (fetched from the
public mirror named in the architecture spec §0/§11 at run time; never
committed).  For each numerics mode the fixture holds:
  <mode>.prefill.logits   [N, V] one prefill of all N tokens
  <mode>.decode.logits    [N-K, V] prefill K tokens, then one token at a time
  <mode>.layer.<i>.out    [N, hc*dim] hidden streams after block i (prefill)
  <mode>.layer.<i>.compressed  [N/ratio, head_dim] compressed KV entries emitted
  <mode>.layer.<i>.topk        [N, k] indexer top-k (CSA layers; -1 = invalid)
  <mode>.layer.<i>.index_keys  [N/4, index_head_dim] indexer keys
plus `tokens` [N] (I64) and metadata (command, config, torch version).
"""
import argparse
import importlib
import json
import os
import sys
import tempfile

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))


def model_args(cfg, max_seq, experts_fp4):
    rs = cfg.get("rope_scaling") or {}
    return dict(
        max_batch_size=1, max_seq_len=max_seq, dtype="fp8", scale_fmt="ue8m0",
        scale_dtype="fp8", expert_dtype="fp4" if experts_fp4 else None,
        vocab_size=cfg["vocab_size"], dim=cfg["hidden_size"],
        moe_inter_dim=cfg["moe_intermediate_size"], n_layers=cfg["num_hidden_layers"],
        n_hash_layers=cfg.get("num_hash_layers", 0), n_mtp_layers=0,
        n_heads=cfg["num_attention_heads"], n_routed_experts=cfg["n_routed_experts"],
        n_shared_experts=cfg.get("n_shared_experts", 1),
        n_activated_experts=cfg["num_experts_per_tok"], score_func=cfg.get("scoring_func", "sqrtsoftplus"),
        route_scale=cfg["routed_scaling_factor"], swiglu_limit=cfg.get("swiglu_limit", 0.0),
        q_lora_rank=cfg["q_lora_rank"], head_dim=cfg["head_dim"],
        rope_head_dim=cfg["qk_rope_head_dim"], norm_eps=cfg["rms_norm_eps"],
        o_groups=cfg["o_groups"], o_lora_rank=cfg["o_lora_rank"],
        window_size=cfg["sliding_window"], compress_ratios=tuple(cfg["compress_ratios"]),
        compress_rope_theta=cfg["compress_rope_theta"],
        original_seq_len=rs.get("original_max_position_embeddings", 0),
        rope_theta=cfg["rope_theta"], rope_factor=rs.get("factor", 1),
        beta_fast=rs.get("beta_fast", 32), beta_slow=rs.get("beta_slow", 1),
        index_n_heads=cfg["index_n_heads"], index_head_dim=cfg["index_head_dim"],
        index_topk=cfg["index_topk"], hc_mult=cfg["hc_mult"],
        hc_sinkhorn_iters=cfg["hc_sinkhorn_iters"], hc_eps=cfg["hc_eps"])


def import_official(official_dir):
    """model.py with our kernel module, all-position logits and an FP32
    Hadamard (the shipped rotate_activation asserts BF16)."""
    tk = importlib.import_module("torch_kernel")
    sys.modules["kernel"] = tk
    sys.path.insert(0, official_dir)
    m = importlib.import_module("model")
    m.rotate_activation = tk.hadamard
    m.ParallelHead.get_logits = lambda self, x: F.linear(x.float(), self.weight)
    return m, tk


def dequant_fp8(w, s):
    r, c = w.shape
    return w.float() * s.float().repeat_interleave(128, 0)[:r].repeat_interleave(128, 1)[:, :c]


def load_weights(model, ckpt_dir):
    """The checkpoint into the model: every parameter must be found with a
    matching shape; FP8 weights go to float parameters dequantized."""
    sd = {}
    index = os.path.join(ckpt_dir, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) \
        else ["model.safetensors"]
    for f in files:
        sd.update(load_file(os.path.join(ckpt_dir, f)))
    used, problems = set(), []
    for name, p in model.named_parameters():
        if name not in sd:
            problems.append(f"missing {name} {tuple(p.shape)} {p.dtype}")
            continue
        t = sd[name]
        used.add(name)
        if p.dtype == torch.float4_e2m1fn_x2:
            t = t.view(torch.float4_e2m1fn_x2)
        elif p.dtype.is_floating_point and p.dtype.itemsize >= 2 and t.dtype == torch.float8_e4m3fn:
            sname = name[: -len("weight")] + "scale"
            t = dequant_fp8(t, sd[sname])
            used.add(sname)
        if tuple(t.shape) != tuple(p.shape):
            problems.append(f"shape {name}: checkpoint {tuple(t.shape)} model {tuple(p.shape)}")
            continue
        with torch.no_grad():
            p.copy_(t.to(p.device).to(p.dtype) if t.dtype != p.dtype else t.to(p.device))
    extra = sorted(set(sd) - used)
    return problems, extra


def run(m, tk, cfg, ckpt, tokens, prefill_k, mode, device):
    tk.set_mode(mode)
    torch.set_default_dtype(torch.float32)
    torch.set_default_device(device)
    args = m.ModelArgs(**model_args(cfg, len(tokens) + 8, True))
    out = {}

    def fresh():
        model = m.Transformer(args)
        problems, extra = load_weights(model, ckpt)
        if problems:
            raise SystemExit("checkpoint does not load:\n  " + "\n  ".join(problems[:20]))
        for p in model.parameters():  # FP32 activations: BF16 params upcast
            if p.dtype == torch.bfloat16:
                p.data = p.data.float()
        return model, extra

    model, extra = fresh()
    hidden, topk = {}, {}
    hooks = [blk.register_forward_hook(
        lambda mod, inp, o, i=i: hidden.__setitem__(i, o.detach().float().flatten(-2)[0].cpu()))
        for i, blk in enumerate(model.layers)]
    for i, blk in enumerate(model.layers):
        if getattr(blk.attn, "indexer", None) is not None:
            hooks.append(blk.attn.indexer.register_forward_hook(
                lambda mod, inp, o, i=i: topk.__setitem__(i, o.detach()[0].to(torch.int32).cpu())))
    ids = torch.tensor([tokens], device=device)
    out[f"{mode}.prefill.logits"] = model(ids, 0)[0].float().cpu()
    for h in hooks:
        h.remove()
    n = len(tokens)
    for i, hs in hidden.items():
        out[f"{mode}.layer.{i}.out"] = hs.contiguous()
        attn = model.layers[i].attn
        if attn.compress_ratio and n // attn.compress_ratio:
            # compressed entries emitted by the prefill (after norm, RoPE, rounding)
            out[f"{mode}.layer.{i}.compressed"] = \
                attn.compressor.kv_cache[0, : n // attn.compress_ratio].float().cpu().contiguous()
        if i in topk:
            out[f"{mode}.layer.{i}.topk"] = topk[i].contiguous()  # -1 = invalid
            out[f"{mode}.layer.{i}.index_keys"] = \
                attn.indexer.kv_cache[0, : n // 4].float().cpu().contiguous()
    del model
    model, _ = fresh()
    model(ids[:, :prefill_k], 0)
    dec = [model(ids[:, t:t + 1], t)[0, -1].float().cpu() for t in range(prefill_k, len(tokens))]
    out[f"{mode}.decode.logits"] = torch.stack(dec)
    del model
    torch.cuda.empty_cache()
    return out, extra


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--official", required=True)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--prefill", type=int, default=16)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--modes", default="exact,reference")
    ap.add_argument("--no-layers", action="store_true", help="leave per-layer hidden streams out")
    a = ap.parse_args()
    sys.path.insert(0, HERE)
    m, tk = import_official(a.official)
    cfg = json.load(open(os.path.join(a.ckpt, "config.json")))
    g = torch.Generator().manual_seed(a.seed)
    tokens = torch.randint(0, cfg["vocab_size"], (a.tokens,), generator=g).tolist()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    fixture = {"tokens": torch.tensor(tokens, dtype=torch.int64)}
    report = {}
    for mode in a.modes.split(","):
        out, extra = run(m, tk, cfg, a.ckpt, tokens, a.prefill, mode, device)
        if a.no_layers:  # hidden streams are large; entries and top-k sets are not
            out = {k: v for k, v in out.items() if not (".layer." in k and k.endswith(".out"))}
        fixture.update(out)
        p, d = out[f"{mode}.prefill.logits"], out[f"{mode}.decode.logits"]
        diff = (p[a.prefill:] - d).abs().max().item() / p.abs().max().item()
        agree = (p[a.prefill:].argmax(-1) == d.argmax(-1)).float().mean().item()
        report[mode] = {"prefill_vs_decode_rel": diff, "argmax_agree": agree,
                        "extra_tensors_not_loaded": len(extra)}
        print(f"{mode}: prefill vs decode max|diff|/max|logit| = {diff:.3g}, argmax agree {agree:.3f}; "
              f"{len(extra)} checkpoint tensors unused", flush=True)
    meta = {"command": " ".join(sys.argv), "torch": torch.__version__, "report": json.dumps(report),
            "config": json.dumps(cfg), "prefill_k": str(a.prefill)}
    save_file({k: v.contiguous() for k, v in fixture.items()}, a.out, metadata=meta)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
