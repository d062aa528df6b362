"""Pure-PyTorch stand-ins for the tilelang kernels that DeepSeek's official
inference/model.py imports from `kernel` (act_quant, fp4_act_quant,
fp8_gemm, fp4_gemm, sparse_attn, hc_split_sinkhorn), written from the
numerics in the architecture spec (§3, §4, §11a) so that every rounding is
explicit.  run_official.py puts this file on the import path as `kernel`.

Two numerics modes, chosen by set_mode():
  "reference": as shipped: FP8/FP4 activation fake-quantization with
               power-of-two scales, softmax probabilities rounded to BF16
               before P.V (as the tilelang attention kernel does).
  "exact":     the same code with activation/KV/indexer roundings off;
               weights keep their stored FP8/FP4 values.
"""
import torch

MODE = "reference"

FP8_MAX = 448.0
FP4_MAX = 6.0
_E2M1 = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0])


def set_mode(mode):
    global MODE
    assert mode in ("reference", "exact")
    MODE = mode


def _pow2_ceil(s):
    """2**ceil(log2(s)) for positive float32 s, through the exponent bits."""
    bits = s.float().contiguous().view(torch.int32)
    exp = (bits >> 23) & 0xFF
    exp = exp + ((bits & 0x7FFFFF) != 0).to(torch.int32)
    return (exp << 23).view(torch.float32)


def _fp8_scale(amax, round_pow2):
    # amax floored at 1e-4, times the float32 value of 1/448, then (ue8m0)
    # rounded up to a power of two
    s = amax.clamp_min(1e-4) * torch.tensor(1.0 / FP8_MAX, dtype=torch.float32)
    return _pow2_ceil(s) if round_pow2 else s


def act_quant(x, block_size=128, scale_fmt=None, scale_dtype=torch.float32, inplace=False):
    n = x.size(-1)
    assert n % block_size == 0
    xb = x.float().unflatten(-1, (n // block_size, block_size))
    if MODE == "exact":
        if inplace:
            return x
        return xb.flatten(-2), torch.ones(xb.shape[:-1], device=x.device)
    s = _fp8_scale(xb.abs().amax(-1), scale_fmt is not None)
    q = (xb / s.unsqueeze(-1)).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
    if inplace:
        x.copy_((q.float() * s.unsqueeze(-1)).flatten(-2).to(x.dtype))
        return x
    return q.flatten(-2), s


def _e2m1_round(a):
    """Magnitudes in [0, 6] to the e2m1 grid: nearest, ties to the even code
    (0.25->0, 0.75->1, 1.25->1, 1.75->2, 2.5->2, 3.5->4, 5->4)."""
    out = torch.zeros_like(a)
    out = torch.where(a > 0.25, 0.5, out)
    out = torch.where(a >= 0.75, 1.0, out)
    out = torch.where(a > 1.25, 1.5, out)
    out = torch.where(a >= 1.75, 2.0, out)
    out = torch.where(a > 2.5, 3.0, out)
    out = torch.where(a >= 3.5, 4.0, out)
    out = torch.where(a > 5.0, 6.0, out)
    return out


def fp4_act_quant(x, block_size=32, inplace=False):
    assert inplace, "model.py only uses the in-place (quant-dequant) form"
    if MODE == "exact":
        return x
    n = x.size(-1)
    xb = x.float().unflatten(-1, (n // block_size, block_size))
    amax = xb.abs().amax(-1).clamp_min(FP4_MAX * 2.0 ** -126)
    s = _pow2_ceil(amax * torch.tensor(1.0 / FP4_MAX, dtype=torch.float32))
    v = (xb / s.unsqueeze(-1)).clamp(-FP4_MAX, FP4_MAX)
    q = torch.sign(v) * _e2m1_round(v.abs())
    x.copy_((q * s.unsqueeze(-1)).flatten(-2).to(x.dtype))
    return x


def _expand_blocks(s, rows, cols, br, bc):
    return s.float().repeat_interleave(br, 0)[:rows].repeat_interleave(bc, 1)[:, :cols]


def fp8_gemm(a, a_s, b, b_s, scale_dtype=torch.float32):
    """C = A @ B^T; A per-128 act scales along K, B per-128x128 block scales."""
    k = a.size(-1)
    a32 = a.float() * a_s.float().repeat_interleave(128, -1)[..., :k]
    b32 = b.float() * _expand_blocks(b_s, b.size(0), b.size(1), 128, 128)
    return (a32 @ b32.t()).to(torch.get_default_dtype())


def _fp4_weight(b, b_s):
    u = b.view(torch.uint8).to(torch.int64)
    table = torch.cat([_E2M1, -_E2M1]).to(b.device)
    w = torch.stack([table[u & 15], table[u >> 4]], -1).flatten(-2)  # low nibble first
    return w * b_s.float().repeat_interleave(32, 1)


def fp4_gemm(a, a_s, b, b_s, scale_dtype=torch.float32):
    k = a.size(-1)
    a32 = a.float() * a_s.float().repeat_interleave(128, -1)[..., :k]
    return (a32 @ _fp4_weight(b, b_s).t()).to(torch.get_default_dtype())


def sparse_attn(q, kv, attn_sink, topk_idxs, softmax_scale):
    """o[b,m,h] = sum_j p_j kv[idx_j] with p = exp(s_j - M) / (sum exp(s - M) + exp(sink - M)),
    s_j = softmax_scale * q.kv[idx_j]; idx -1 is masked.  K = V (one shared head)."""
    b, m, h, d = q.shape
    idx = topk_idxs.long()
    valid = idx >= 0
    g = torch.gather(kv.float().unsqueeze(1).expand(b, m, -1, d), 2,
                     idx.clamp_min(0).unsqueeze(-1).expand(-1, -1, -1, d))  # [b,m,k,d]
    scores = torch.einsum("bmhd,bmkd->bmhk", q.float(), g) * softmax_scale
    scores = scores.masked_fill(~valid.unsqueeze(2), float("-inf"))
    mx = scores.amax(-1, keepdim=True).clamp_min(-1e30)
    sink = attn_sink.float().view(1, 1, h, 1)
    mx = torch.maximum(mx, torch.full_like(mx, -1e30))
    p = torch.exp(scores - mx)
    denom = p.sum(-1, keepdim=True) + torch.exp(sink - mx)
    if MODE == "reference":
        p = p.to(torch.bfloat16).float()  # the kernel casts P to BF16 before P.V
    o = torch.einsum("bmhk,bmkd->bmhd", p, g) / denom
    return o.to(q.dtype)


def hc_split_sinkhorn(mixes, hc_scale, hc_base, hc_mult=4, sinkhorn_iters=20, eps=1e-6):
    hc = hc_mult
    m = mixes.float()
    pre = torch.sigmoid(m[..., :hc] * hc_scale[0] + hc_base[:hc]) + eps
    post = 2 * torch.sigmoid(m[..., hc:2 * hc] * hc_scale[1] + hc_base[hc:2 * hc])
    comb = (m[..., 2 * hc:] * hc_scale[2] + hc_base[2 * hc:]).unflatten(-1, (hc, hc))
    comb = torch.softmax(comb, -1) + eps
    comb = comb / (comb.sum(-2, keepdim=True) + eps)
    for _ in range(sinkhorn_iters - 1):
        comb = comb / (comb.sum(-1, keepdim=True) + eps)
        comb = comb / (comb.sum(-2, keepdim=True) + eps)
    return pre, post, comb


def hadamard(x):
    """Orthonormal Sylvester Walsh-Hadamard transform over the last dim."""
    n = x.size(-1)
    y = x.float().reshape(-1, n)
    h = 1
    while h < n:
        y = y.view(-1, n // (2 * h), 2, h)
        a, b = y[:, :, 0, :], y[:, :, 1, :]
        y = torch.stack([a + b, a - b], 2)
        h *= 2
    return (y.reshape(x.shape) * n ** -0.5).to(x.dtype)
