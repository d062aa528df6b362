#!/usr/bin/env python3
"""Runs HF transformers' DeepseekV4ForCausalLM (FP32, eager) on a checkpoint
written by dsv4-mkmodel and compares it with an official-code fixture of
run_official.py (exact numerics) on the same tokens.

    python3 run_hf.py --ckpt CKPT --fixture official-tiny-a.safetensors [--out FILE]

Weights are dequantized to FP32 (FP8 x E8M0 128x128 blocks, FP4 x per-32
E8M0), renamed from the release's names to HF's, and routed experts are
stacked as HF stores them (gate_up_proj [E, 2I, H] gate rows first,
down_proj [E, H, I]).  HF is a semantic reference: it has no FP8/FP4
activation simulation, so it is compared with the official *exact* mode.
"""
import argparse
import json
import os
import re
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

FP4 = torch.tensor([0, .5, 1, 1.5, 2, 3, 4, 6, -0., -.5, -1, -1.5, -2, -3, -4, -6])

# HF name (after "model.layers.L.") -> release name (after "layers.L.")
LAYER = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "attn_hc.fn": "hc_attn_fn", "attn_hc.base": "hc_attn_base", "attn_hc.scale": "hc_attn_scale",
    "ffn_hc.fn": "hc_ffn_fn", "ffn_hc.base": "hc_ffn_base", "ffn_hc.scale": "hc_ffn_scale",
    "self_attn.q_a_proj.weight": "attn.wq_a.weight",
    "self_attn.q_a_norm.weight": "attn.q_norm.weight",
    "self_attn.q_b_proj.weight": "attn.wq_b.weight",
    "self_attn.kv_proj.weight": "attn.wkv.weight",
    "self_attn.kv_norm.weight": "attn.kv_norm.weight",
    "self_attn.o_a_proj.weight": "attn.wo_a.weight",
    "self_attn.o_b_proj.weight": "attn.wo_b.weight",
    "self_attn.sinks": "attn.attn_sink",
    "self_attn.compressor.kv_proj.weight": "attn.compressor.wkv.weight",
    "self_attn.compressor.gate_proj.weight": "attn.compressor.wgate.weight",
    "self_attn.compressor.position_bias": "attn.compressor.ape",
    "self_attn.compressor.kv_norm.weight": "attn.compressor.norm.weight",
    "self_attn.compressor.indexer.kv_proj.weight": "attn.indexer.compressor.wkv.weight",
    "self_attn.compressor.indexer.gate_proj.weight": "attn.indexer.compressor.wgate.weight",
    "self_attn.compressor.indexer.position_bias": "attn.indexer.compressor.ape",
    "self_attn.compressor.indexer.kv_norm.weight": "attn.indexer.compressor.norm.weight",
    "self_attn.compressor.indexer.q_b_proj.weight": "attn.indexer.wq_b.weight",
    "self_attn.compressor.indexer.weights_proj.weight": "attn.indexer.weights_proj.weight",
    "self_attn.compressor.indexer.scorer.weights_proj.weight": "attn.indexer.weights_proj.weight",
    "mlp.gate.weight": "ffn.gate.weight",
    "mlp.gate.e_score_correction_bias": "ffn.gate.bias",
    "mlp.gate.tid2eid": "ffn.gate.tid2eid",
    "mlp.shared_experts.gate_proj.weight": "ffn.shared_experts.w1.weight",
    "mlp.shared_experts.up_proj.weight": "ffn.shared_experts.w3.weight",
    "mlp.shared_experts.down_proj.weight": "ffn.shared_experts.w2.weight",
}
GLOBAL = {
    "model.embed_tokens.weight": "embed.weight", "lm_head.weight": "head.weight",
    "model.norm.weight": "norm.weight", "model.hc_head.hc_fn": "hc_head_fn",
    "model.hc_head.hc_base": "hc_head_base", "model.hc_head.hc_scale": "hc_head_scale",
}


class Release:
    """The checkpoint's tensors by release name, dequantized on demand."""

    def __init__(self, ckpt):
        index = os.path.join(ckpt, "model.safetensors.index.json")
        files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) \
            else ["model.safetensors"]
        self.sd = {}
        for f in files:
            self.sd.update(load_file(os.path.join(ckpt, f)))
        self.used = set()

    def get(self, name):
        t = self.sd[name]
        self.used.add(name)
        scale = name[: -len("weight")] + "scale" if name.endswith(".weight") else None
        if t.dtype == torch.float8_e4m3fn:
            s = self.sd[scale].float()
            self.used.add(scale)
            r, c = t.shape
            return t.float() * s.repeat_interleave(128, 0)[:r].repeat_interleave(128, 1)[:, :c]
        if t.dtype == torch.int8 and scale in self.sd:  # packed FP4
            u = t.view(torch.uint8).long()
            w = torch.stack([FP4[u & 15], FP4[u >> 4]], -1).flatten(-2)
            self.used.add(scale)
            return w * self.sd[scale].float().repeat_interleave(32, 1)
        return t.float() if t.is_floating_point() else t


def load_hf(model, rel, n_experts):
    problems = []
    targets = dict(model.named_parameters())
    targets.update(dict(model.named_buffers()))
    for name, p in targets.items():
        m = re.match(r"model\.layers\.(\d+)\.(.*)$", name)
        try:
            if m and m.group(2) == "mlp.experts.gate_up_proj":
                L = m.group(1)
                t = torch.stack([torch.cat([rel.get(f"layers.{L}.ffn.experts.{e}.w1.weight"),
                                            rel.get(f"layers.{L}.ffn.experts.{e}.w3.weight")])
                                 for e in range(n_experts)])
            elif m and m.group(2) == "mlp.experts.down_proj":
                L = m.group(1)
                t = torch.stack([rel.get(f"layers.{L}.ffn.experts.{e}.w2.weight") for e in range(n_experts)])
            elif m and m.group(2) in LAYER:
                t = rel.get(f"layers.{m.group(1)}.{LAYER[m.group(2)]}")
            elif name in GLOBAL:
                t = rel.get(GLOBAL[name])
            else:
                if name in dict(model.named_parameters()):
                    problems.append(f"no release tensor for HF parameter {name}")
                continue
        except KeyError as e:
            problems.append(f"{name}: release tensor {e} missing")
            continue
        if tuple(t.shape) != tuple(p.shape):
            problems.append(f"{name}: release {tuple(t.shape)} vs HF {tuple(p.shape)}")
            continue
        with torch.no_grad():
            p.copy_(t.to(p.dtype).to(p.device))
    return problems


def hf_config(ckpt):
    """The checkpoint's config.json, and the HF DeepseekV4Config made from it
    (release-only keys dropped, no MTP layers, eager attention)."""
    from transformers import DeepseekV4Config

    cfg = json.load(open(os.path.join(ckpt, "config.json")))
    hf_cfg = {k: v for k, v in cfg.items() if k not in ("quantization_config", "expert_dtype")}
    hf_cfg["num_nextn_predict_layers"] = 0
    hf_cfg["compress_ratios"] = cfg["compress_ratios"][: cfg["num_hidden_layers"]]
    config = DeepseekV4Config(**hf_cfg)
    config._attn_implementation = "eager"
    return cfg, config


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--fixture", required=True)
    ap.add_argument("--out")
    a = ap.parse_args()
    from transformers import DeepseekV4ForCausalLM

    cfg, config = hf_config(a.ckpt)
    torch.set_default_dtype(torch.float32)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    model = DeepseekV4ForCausalLM(config).to(dev).float().eval()
    rel = Release(a.ckpt)
    problems = load_hf(model, rel, cfg["n_routed_experts"])
    unused = sorted(set(rel.sd) - rel.used)
    print(f"HF: {len(problems)} loading problems, {len(unused)} release tensors unused")
    for p in problems[:15]:
        print("  ", p)
    for u in unused[:5]:
        print("   unused:", u)
    with safe_open(a.fixture, "pt") as f:
        tokens = f.get_tensor("tokens")
        ref = f.get_tensor("exact.prefill.logits")
    with torch.no_grad():
        out = model(tokens[None].to(dev)).logits[0].float().cpu()
    diff = (out - ref).abs().max().item() / ref.abs().max().item()
    agree = (out.argmax(-1) == ref.argmax(-1)).float().mean().item()
    per_pos = ((out - ref).abs().amax(-1) / ref.abs().max()).tolist()
    first_bad = next((i for i, d in enumerate(per_pos) if d > 1e-4), None)
    print(f"HF vs official (exact): max|diff|/max|logit| = {diff:.3g}, argmax agree {agree:.3f}, "
          f"first position over 1e-4: {first_bad}")
    # the decode path: prefill K tokens, then one token at a time on HF's cache
    with safe_open(a.fixture, "pt") as f:
        keys = set(f.keys())
        k = int(f.metadata().get("prefill_k", "0"))
        dec_ref = f.get_tensor("exact.decode.logits") if "exact.decode.logits" in keys else None
    dec = None
    if dec_ref is not None and k:
        ids = tokens[None].to(dev)
        with torch.no_grad():
            o = model(ids[:, :k], use_cache=True)
            pkv, dec = o.past_key_values, []
            for t in range(k, len(tokens)):
                o = model(ids[:, t:t + 1], past_key_values=pkv, use_cache=True)
                pkv = o.past_key_values
                dec.append(o.logits[0, -1].float().cpu())
        dec = torch.stack(dec)
        dd = (dec - dec_ref).abs().max().item() / dec_ref.abs().max().item()
        da = (dec.argmax(-1) == dec_ref.argmax(-1)).float().mean().item()
        print(f"HF decode vs official decode (exact): max|diff|/max|logit| = {dd:.3g}, argmax agree {da:.3f}")
    if a.out:
        res = {"tokens": tokens, "hf.prefill.logits": out.contiguous()}
        if dec is not None:
            res["hf.decode.logits"] = dec.contiguous()
        save_file(res, a.out,
                  metadata={"report": json.dumps({"rel": diff, "argmax": agree, "first_bad": first_bad}),
                           "prefill_k": str(k), "command": " ".join(sys.argv),
                           "torch": torch.__version__})


if __name__ == "__main__":
    main()
