#!/usr/bin/env python3
"""Exports trained HF weights (train.py's hf_state.pt) to DeepSeek's release
layout, the format dsv4 and the official code load.

    export.py --state hf_state.pt --template CKPT --out DIR [--tokenizer FILE]

CKPT is a dsv4-mkmodel checkpoint of the same config.json: it gives every
tensor's release name, dtype and shape, and the file's tensor order.  Each
tensor is filled from the HF weights (names mapped as transformers'
conversion maps them; routed experts unstacked) and quantized to the
template's dtype: FP8 e4m3 with E8M0 scales per 128x128 block (linears),
FP4 e2m1 with E8M0 scales per 32 inputs, two per byte, low nibble first
(routed experts), BF16, F32 (mHC, ape, sinks, gate bias) or I32 (tid2eid).
The MTP block, which HF does not train, keeps the template's values.
"""
import argparse
import json
import os
import re
import shutil
import sys

import torch
from safetensors import safe_open
from safetensors.torch import save_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
from run_hf import GLOBAL, LAYER  # noqa: E402  (release <- HF name maps)

E2M1 = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0])


def e8m0_scale(amax, fmax):
    """Power-of-two scale >= amax / fmax, as ue8m0 (the official convert.py rule)."""
    amax = amax.clamp(min=1e-30)
    return torch.exp2(torch.ceil(torch.log2(amax / fmax)))


def quant_fp8(w):
    r, c = w.shape
    br, bc = (r + 127) // 128, (c + 127) // 128
    pad = torch.zeros(br * 128, bc * 128)
    pad[:r, :c] = w
    blocks = pad.view(br, 128, bc, 128)
    scale = e8m0_scale(blocks.abs().amax(dim=(1, 3)), 448.0)
    q = (blocks / scale[:, None, :, None]).clamp(-448, 448).view(br * 128, bc * 128)[:r, :c]
    return q.to(torch.float8_e4m3fn), scale.to(torch.float8_e8m0fnu)


def quant_fp4(w):
    r, c = w.shape
    g = w.view(r, c // 32, 32)
    scale = e8m0_scale(g.abs().amax(-1), 6.0)
    v = (g / scale[..., None]).clamp(-6, 6)
    mag = v.abs()
    d = (mag[..., None] - E2M1).abs()
    # nearest, ties to the even code
    d = d + (torch.arange(8) % 2).float() * 1e-6
    code = d.argmin(-1)
    code = code | ((v < 0) & (code > 0)).to(torch.long) << 3
    code = code.view(r, c)
    packed = (code[:, 0::2] | (code[:, 1::2] << 4)).to(torch.uint8).view(torch.int8)
    return packed, scale.view(r, c // 32).to(torch.float8_e8m0fnu)


def hf_source(name, hf, n_experts):
    """The HF tensor behind a release tensor name, or None (MTP, scales)."""
    m = re.match(r"layers\.(\d+)\.ffn\.experts\.(\d+)\.(w[123])\.weight$", name)
    if m:
        L, e, w = m.group(1), int(m.group(2)), m.group(3)
        if w == "w2":
            return hf[f"model.layers.{L}.mlp.experts.down_proj"][e]
        gu = hf[f"model.layers.{L}.mlp.experts.gate_up_proj"][e]
        half = gu.shape[0] // 2
        return gu[:half] if w == "w1" else gu[half:]
    m = re.match(r"layers\.(\d+)\.(.*)$", name)
    if m:
        for hf_name, rel in LAYER.items():
            if rel == m.group(2) and f"model.layers.{m.group(1)}.{hf_name}" in hf:
                return hf[f"model.layers.{m.group(1)}.{hf_name}"]
        return None
    for hf_name, rel in GLOBAL.items():
        if rel == name:
            return hf[hf_name]
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--state", required=True)
    ap.add_argument("--template", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tokenizer")
    a = ap.parse_args()
    hf = {k: v.float() if v.is_floating_point() else v for k, v in
          torch.load(a.state, map_location="cpu").items()}
    cfg = json.load(open(os.path.join(a.template, "config.json")))
    out, kept, used = {}, [], set()
    with safe_open(os.path.join(a.template, "model.safetensors"), "pt") as f:
        names = list(f.keys())
        for name in names:
            if name.endswith(".scale") and name[: -len("scale")] + "weight" in names:
                continue  # written with its weight
            tmpl = f.get_tensor(name)
            src = hf_source(name, hf, cfg["n_routed_experts"])
            if src is None:
                if not name.startswith("mtp."):
                    raise SystemExit(f"no trained value for {name}")
                out[name] = tmpl
                sname = name[: -len("weight")] + "scale"
                if sname in names:
                    out[sname] = f.get_tensor(sname)
                kept.append(name)
                continue
            used.add(name)
            if tuple(src.shape) != tuple(tmpl.shape) and tmpl.dtype != torch.int8:
                raise SystemExit(f"{name}: trained {tuple(src.shape)} vs release {tuple(tmpl.shape)}")
            sname = name[: -len("weight")] + "scale"
            if tmpl.dtype == torch.float8_e4m3fn:
                out[name], out[sname] = quant_fp8(src.float())
            elif tmpl.dtype == torch.int8 and sname in names:
                out[name], out[sname] = quant_fp4(src.float())
            elif tmpl.dtype.is_floating_point:
                out[name] = src.to(tmpl.dtype)
            else:
                out[name] = src.to(tmpl.dtype)
            for k in (name, sname):
                if k in out and k in names:
                    want = f.get_slice(k)
                    assert list(out[k].shape) == list(want.get_shape()), (k, out[k].shape)
    os.makedirs(a.out, exist_ok=True)
    save_file({k: out[k].contiguous() for k in names}, os.path.join(a.out, "model.safetensors"),
              metadata={"format": "pt"})
    shutil.copy(os.path.join(a.template, "config.json"), os.path.join(a.out, "config.json"))
    if a.tokenizer:
        shutil.copy(a.tokenizer, os.path.join(a.out, "tokenizer.json"))
    size = os.path.getsize(os.path.join(a.out, "model.safetensors"))
    print(f"{a.out}: {len(names)} tensors, {len(used)} trained, {len(kept)} MTP tensors from the "
          f"template, {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
