#!/usr/bin/env python3
"""Writes tests/fixtures/quant.safetensors: activation quantizer inputs and
outputs in the official numerics (torch_kernel.py "reference" mode, which
follows the official kernel.py: amax floored, times float32(1/max), scale
rounded up to a power of two, e4m3 cast by PyTorch, e2m1 nearest-even), so
the C quantizers can be checked bit for bit on the same inputs.

    python3 tools/reference/make_quant_fixture.py tests/fixtures/quant.safetensors
"""
import os
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_kernel as tk  # noqa: E402

g = torch.Generator().manual_seed(11)
rows = []
for scale in (1e-6, 1e-3, 0.1, 1.0, 30.0, 1e4):
    rows.append(torch.randn(8, 512, generator=g) * scale)
x = torch.cat(rows)
x[0, :128] = 0.0                                    # an all-zero block (amax floor)
x[1, :8] = torch.tensor([448, -448, 449, 1e9, 0.5, 1.0625, 1.1875, -0.0])
x[2, :32] = torch.tensor([6, 0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5] * 4)  # FP4 ties
tk.set_mode("reference")
q, s = tk.act_quant(x.clone(), 128, "ue8m0", torch.float32)
y4 = tk.fp4_act_quant(x.clone(), 32, inplace=True)
# e4m3 casts of edge values straight through PyTorch
edges = torch.tensor([0.0, 2 ** -10, 1.5 * 2 ** -9, 1.0625, 1.1875, 1.1, 464.0, 460.0,
                      -1e9, 0.99 * 2 ** -6, 2 ** -6, 15.5, 240.0, 232.0])
save_file({
    "x": x.contiguous(),
    "fp8.q": q.contiguous().view(torch.uint8),
    "fp8.scale": s.float().contiguous(),
    "fp4.dequant": y4.contiguous(),
    "e4m3.in": edges,
    "e4m3.out": edges.clamp(-448, 448).to(torch.float8_e4m3fn).view(torch.uint8),
}, sys.argv[1], metadata={"torch": torch.__version__})
print("wrote", sys.argv[1], torch.__version__)
