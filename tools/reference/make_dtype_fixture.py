#!/usr/bin/env python3
"""Writes tests/fixtures/dtypes.safetensors: every safetensors dtype the
loader decodes, written by PyTorch + safetensors, next to the float32 values
PyTorch itself reads back from that same file (`<name>.f32`).  The C unit
test decodes the first with libdsv4drv and compares with the second.

Run on a machine with torch >= 2.11 and safetensors:
    python3 tools/reference/make_dtype_fixture.py tests/fixtures/dtypes.safetensors
"""
import sys

import torch
from safetensors.torch import load_file, save_file

out = sys.argv[1]
g = torch.Generator().manual_seed(4)
codes = torch.arange(256, dtype=torch.int64).to(torch.uint8)

tensors = {
    # every bit pattern of the 8-bit float formats
    "e4m3.all": codes.clone().view(torch.float8_e4m3fn),
    "e8m0.all": codes.clone().view(torch.float8_e8m0fnu),
    # every 2-byte pattern of bf16/f16 would be 128 KiB each: sample them
    "bf16.sample": torch.randint(-32768, 32767, (4096,), generator=g, dtype=torch.int16).view(torch.bfloat16),
    "f16.sample": torch.randint(-32768, 32767, (4096,), generator=g, dtype=torch.int16).view(torch.float16),
    "f32.randn": torch.randn(3, 5, 7, generator=g),
    "i8.all": codes.clone().view(torch.int8),
    "u8.all": codes.clone(),
    "i64.tid2eid": torch.randint(0, 256, (17, 6), generator=g, dtype=torch.int64),
    "i32.vals": torch.randint(-2**31, 2**31 - 1, (33,), generator=g, dtype=torch.int32),
    "f64.randn": torch.randn(9, generator=g, dtype=torch.float64),
    "bool.vals": torch.rand(21, generator=g) > 0.5,
    # packed FP4 (e2m1) as the checkpoints store it: I8 bytes, 2 values each
    "fp4.all": codes.clone().view(torch.int8),
}
save_file(tensors, out)

# What torch reads back from the file, as float32.
back = load_file(out)
expected = {}
for name, t in back.items():
    if name == "fp4.all":
        # torch has no float conversion for float4_e2m1fn_x2; use the
        # official convert.py table, low nibble = even element.
        table = torch.tensor([0, .5, 1, 1.5, 2, 3, 4, 6, -0., -.5, -1, -1.5, -2, -3, -4, -6])
        b = t.view(torch.uint8).to(torch.int64)
        expected[name + ".f32"] = torch.stack([table[b & 15], table[b >> 4]], dim=-1).reshape(-1)
    else:
        expected[name + ".f32"] = t.to(torch.float32).reshape(-1)
save_file(expected, out.replace(".safetensors", "-expected.safetensors"))
print("wrote", out, "and its -expected file; torch", torch.__version__)
