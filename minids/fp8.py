"""FP8 training as DeepSeek-V3 does it (report §3.3), emulated on CPU.

V3 runs the three GEMMs of each Linear layer (Fprop, Dgrad, Wgrad) on E4M3 inputs. FP8 has
so little range that one scale per tensor would let a single outlier push every other value
into the subnormals, so V3 scales finely and online (current max-abs, no history):
activations per 1×128 tile (one token, 128 channels), weights per 128×128 block, always
along the GEMM's inner dimension K. The GEMM promotes to FP32 every 128 elements of K: each
chunk's dot product is multiplied by its two scales and added to an FP32 accumulator.
Here the FP8 values are real torch float8 tensors and the GEMM is emulated chunk by chunk.
Master weights, gradients and everything outside the GEMMs stay FP32.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

# name -> (dtype, largest finite value); a cast saturates in e4m3fn, overflows to inf in e5m2
FORMATS = {
    "e4m3": (torch.float8_e4m3fn, torch.finfo(torch.float8_e4m3fn).max),  # 448
    "e5m2": (torch.float8_e5m2, torch.finfo(torch.float8_e5m2).max),  # 57344
}
GRANULARITIES = ("tensor", "tile", "block")
AMAX_FLOOR = 1e-4  # as kernel.py: an all-zero tile still gets a finite, nonzero scale


def _format(fmt):
    if fmt not in FORMATS:
        raise ValueError(f"unknown fp8 format {fmt!r}; expected one of {list(FORMATS)}")
    return FORMATS[fmt]


def _check_granularity(granularity, x):
    if granularity not in GRANULARITIES:
        raise ValueError(f"unknown granularity {granularity!r}; expected one of {GRANULARITIES}")
    if granularity == "block" and x.dim() < 2:
        raise ValueError(f"granularity 'block' needs a tensor of >= 2 dims, got {x.dim()}")


def _pad(x, n_dims, block_size):
    """Zero-pad the last n_dims dims up to multiples of block_size (zeros never raise an amax)."""
    pad = []
    for size in reversed(x.shape[-n_dims:]):  # F.pad lists the last dim first
        pad += [0, -size % block_size]
    return F.pad(x, pad)


def _cast(x, dtype, fmt_max):
    return x.clamp(-fmt_max, fmt_max).to(dtype)  # clamp first: e5m2 would overflow to inf


def _expand(scale, size, block_size, dim):
    """Repeat each scale over the block_size elements it covers along dim, cropped to size."""
    return scale.repeat_interleave(block_size, dim).narrow(dim, 0, size)


def scale_of(amax, fmt_max, pow2_scales=False):
    """The scale of each tile whose largest |value| is amax (a tensor): max(amax, 1e-4) /
    fmt_max, so that the tile's largest |q| is fmt_max; pow2_scales rounds it up to a
    power of two (up: the largest |q| must not pass fmt_max)."""
    scale = amax.clamp(min=AMAX_FLOOR) / fmt_max
    return torch.exp2(torch.ceil(torch.log2(scale))) if pow2_scales else scale


def quantize(x, fmt="e4m3", granularity="tile", block_size=128, pow2_scales=False):
    """Quantise x to FP8; returns (q, scale) with q float8 of x's shape, x ≈ q * scale.

    granularity and scale shape (float32):
      "tensor": one scale, shape ()
      "tile":   1×block_size tiles along the last dim, shape (..., ceil(cols / bs))
      "block":  bs×bs blocks over the last two dims, shape (..., ceil(rows / bs), ceil(cols / bs))
    Dims that are not multiples of block_size are zero-padded internally, so the last tile or
    block is partial. scale = max(amax, 1e-4) / fmt_max, so each tile's largest |q| is fmt_max.
    pow2_scales=True rounds each scale up to a power of two (DeepSeek's kernels offer this,
    `ue8m0`): multiplying by the scale then only moves the exponent, exactly, and the
    largest |q| of a tile lies in (fmt_max / 2, fmt_max].
    Raises ValueError on inf or NaN input rather than spreading NaN over a whole tile.
    """
    dtype, fmt_max = _format(fmt)
    _check_granularity(granularity, x)
    x = x.float()
    if not torch.isfinite(x).all():
        raise ValueError("quantize: x contains inf or NaN")

    if granularity == "tensor":
        scale = scale_of(x.abs().amax(), fmt_max, pow2_scales)  # ()
        return _cast(x / scale, dtype, fmt_max), scale
    if granularity == "tile":
        cols = x.shape[-1]
        xt = _pad(x, 1, block_size).unflatten(-1, (-1, block_size))  # (..., n_tiles, bs)
        scale = scale_of(xt.abs().amax(-1), fmt_max, pow2_scales)  # (..., n_tiles)
        q = _cast(xt / scale[..., None], dtype, fmt_max).flatten(-2)  # (..., n_tiles * bs)
        return q[..., :cols].contiguous(), scale
    rows, cols = x.shape[-2:]
    xb = _pad(x, 2, block_size).unflatten(-1, (-1, block_size))  # (..., R, n_c, bs)
    xb = xb.unflatten(-3, (-1, block_size))  # (..., n_r, bs, n_c, bs)
    scale = scale_of(xb.abs().amax((-3, -1)), fmt_max, pow2_scales)  # (..., n_r, n_c)
    q = _cast(xb / scale[..., :, None, :, None], dtype, fmt_max)  # (..., n_r, bs, n_c, bs)
    q = q.flatten(-2).flatten(-3, -2)  # (..., n_r * bs, n_c * bs)
    return q[..., :rows, :cols].contiguous(), scale


def dequantize(q, scale, granularity="tile", block_size=128):
    """Inverse of quantize: q * scale as float32, each scale spread over its tile or block."""
    _check_granularity(granularity, q)
    if granularity in ("tile", "block"):
        scale = _expand(scale, q.shape[-1], block_size, -1)  # (..., cols)
    if granularity == "block":
        scale = _expand(scale, q.shape[-2], block_size, -2)  # (..., rows, cols)
    return q.float() * scale


def fp8_matmul(a, b, fmt="e4m3", b_granularity="block", block_size=128, accum_bits=None,
               promote_every=128, accum_group=4, pow2_scales=False):
    """y = a @ b.T as an FP8 GEMM: a (M, K), b (N, K) -> y (M, N) float32.

    a is quantised in 1×bs tiles along K; b in bs×bs blocks (a weight) or, with
    b_granularity="tile", in 1×bs tiles along K (Wgrad, where both inputs are activations).
    Per K chunk the FP8 values are multiplied and summed (the tensor core's work), then the
    partial sum is promoted: multiplied by both chunk scales and added to an FP32
    accumulator, in chunk order.

    accum_bits=None sums each chunk exactly: for E4M3 the products are multiples of 2^-18
    below 2^18, so FP64 holds their sum, rounded once to FP32 (for E5M2, FP64-accurate).
    An int models a tensor core whose accumulator keeps only that many mantissa bits (the
    report, §3.3.2: about 14 on H800): products are summed accum_group at a time and each
    group's sum is added to the running sum, which is truncated to accum_bits bits. A model,
    not the circuit: at K = 4096, 14 bits and groups of 4 it gives about 2 % error without
    promotion, the report's figure; groups of 1 give more, larger groups less.
    promote_every=128 (V3's N_C, one tile) promotes every chunk; None keeps the whole K in
    the limited accumulator and promotes once, which allows one scale per row only: a and b
    are then quantised per tensor. pow2_scales: see quantize.
    """
    if b_granularity not in ("block", "tile"):
        raise ValueError(f"unknown b_granularity {b_granularity!r}; expected 'block' or 'tile'")
    if promote_every not in (block_size, None):
        raise ValueError(f"promote_every must be block_size ({block_size}) or None, "
                         f"got {promote_every!r}")
    if accum_bits is not None and not (isinstance(accum_bits, int) and 1 <= accum_bits <= 52):
        raise ValueError(f"accum_bits must be None or an int in [1, 52], got {accum_bits!r}")
    per_tensor = promote_every is None
    qa, sa = quantize(a, fmt, "tensor" if per_tensor else "tile", block_size, pow2_scales)
    qb, sb = quantize(b, fmt, "tensor" if per_tensor else b_granularity, block_size,
                      pow2_scales)  # (M, K), (M, n_k) | (); (N, K), (N or n_n, n_k) | ()
    if not per_tensor and b_granularity == "block":
        sb = _expand(sb, b.shape[0], block_size, 0)  # (N, n_k): each row takes its block's scale
    segment = a.shape[1] if per_tensor else block_size
    y = torch.zeros(a.shape[0], b.shape[0])  # (M, N) FP32 accumulator
    for k, start in enumerate(range(0, a.shape[1], segment)):
        chunk = slice(start, start + segment)
        partial = _chunk_sum(qa[:, chunk], qb[:, chunk], accum_bits, accum_group)  # (M, N)
        if per_tensor:
            y += partial * sa * sb
        else:
            y += partial * sa[:, k, None] * sb[None, :, k]  # promotion: scale, add in FP32
    return y


def _chunk_sum(qa, qb, accum_bits, group):
    """The tensor core's part: qa (M, k) @ qb (N, k).T summed exactly, or in a running sum
    truncated to accum_bits mantissa bits after each group of products. -> (M, N) float32."""
    qa, qb = qa.double(), qb.double()
    if accum_bits is None:
        return (qa @ qb.T).float()
    group_sums = (qa[:, start : start + group] @ qb[:, start : start + group].T  # (M, N), exact
                  for start in range(0, qa.shape[1], group))
    return limited_accumulate(group_sums, accum_bits).float()


def limited_accumulate(group_sums, bits):
    """A tensor core's short accumulator: add the partial sums (float64 tensors, in order)
    to a running sum that keeps only `bits` mantissa bits, truncated after each addition."""
    total = 0.0
    for partial in group_sums:
        total = truncate_mantissa(total + partial, bits)
    return total


def truncate_mantissa(x, bits):
    """x with its mantissa cut to `bits` bits (rounded toward zero), as an accumulator that
    keeps only its highest bits does."""
    mantissa, exponent = torch.frexp(x)  # x = mantissa * 2^exponent, |mantissa| in [0.5, 1)
    return torch.ldexp(torch.trunc(mantissa * 2.0**bits) / 2.0**bits, exponent)


class _FP8LinearFunction(torch.autograd.Function):
    """The three GEMMs of a Linear, each quantised along its own inner dimension K."""

    @staticmethod
    def forward(ctx, x, weight, fmt, block_size, cache_fp8):  # x (M, in), weight (out, in)
        # Kept for the backward: x in FP32, or (cache_fp8, as V3 does) in FP8, 1 x bs tiles
        # along `in`: a quarter of the memory, re-quantised along tokens for Wgrad.
        saved = quantize(x, fmt, "tile", block_size) if cache_fp8 else (x,)
        ctx.save_for_backward(*saved, weight)
        ctx.fmt, ctx.block_size = fmt, block_size
        return fp8_matmul(x, weight, fmt, "block", block_size,  # Fprop, K = in: (M, out)
                          promote_every=block_size)

    @staticmethod
    def backward(ctx, dy):  # dy (M, out)
        *saved, weight = ctx.saved_tensors
        dx = dw = None
        if ctx.needs_input_grad[0]:  # Dgrad dY @ W, K = out; W^T's blocks are W's transposed
            dx = fp8_matmul(dy, weight.T, ctx.fmt, "block", ctx.block_size,
                            promote_every=ctx.block_size)  # (M, in)
        if ctx.needs_input_grad[1]:  # Wgrad dY^T @ X, K = tokens: both tiled along tokens
            x = saved[0] if len(saved) == 1 else dequantize(*saved, "tile", ctx.block_size)
            dw = fp8_matmul(dy.T, x.T, ctx.fmt, "tile", ctx.block_size,
                            promote_every=ctx.block_size)  # (out, in)
        return dx, dw, None, None, None


def fp8_linear(x, weight, fmt="e4m3", block_size=128, cache_fp8=False):
    """F.linear(x, weight) with no bias, run as the three emulated FP8 GEMMs; cache_fp8
    keeps x for the backward in FP8 instead of FP32."""
    x2d = x.reshape(-1, weight.shape[1])  # (M, in), M = all leading dims
    y = _FP8LinearFunction.apply(x2d, weight, fmt, block_size, cache_fp8)  # (M, out)
    return y.reshape(*x.shape[:-1], weight.shape[0])  # (..., out)


class FP8Linear(nn.Linear):
    """nn.Linear (same parameters and state_dict keys) whose Fprop, Dgrad and Wgrad run as
    emulated FP8 GEMMs; the bias is added in FP32, outside the GEMM. cache_fp8: keep the
    input for the backward in FP8 (1 x 128 tiles) rather than FP32."""

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None,
                 fmt="e4m3", block_size=128, cache_fp8=False):
        _format(fmt)
        super().__init__(in_features, out_features, bias, device, dtype)
        self.fmt, self.block_size, self.cache_fp8 = fmt, block_size, cache_fp8

    def forward(self, x):  # (..., in)
        y = fp8_linear(x, self.weight, self.fmt, self.block_size, self.cache_fp8)  # (..., out)
        return y if self.bias is None else y + self.bias

    def extra_repr(self):
        return f"{super().extra_repr()}, fmt={self.fmt}, cache_fp8={self.cache_fp8}"


def convert_to_fp8(model, fmt="e4m3", skip=("embed", "head", "gate", "norm"), cache_fp8=False):
    """Replace each nn.Linear in model by an FP8Linear sharing its Parameters; returns model.
    cache_fp8: every converted GEMM keeps its input for the backward in FP8.

    A Linear stays high precision when any dotted component of its qualified name is in skip
    ("layers.0.ffn.gate" stays, "layers.0.attn.wq_a" is converted). Modules that hold their
    weights as raw Parameters (the MoE experts' 3-D weights) opt in with an `fp8_format`
    attribute, which is set to fmt.
    """
    for module in model.modules():
        if hasattr(module, "fp8_format"):
            module.fp8_format, module.fp8_cache = fmt, cache_fp8
    for parent_name, parent in list(model.named_modules()):
        for name, child in list(parent.named_children()):
            path = f"{parent_name}.{name}" if parent_name else name
            if type(child) is nn.Linear and not set(path.split(".")) & set(skip):
                fp8 = FP8Linear(child.in_features, child.out_features, child.bias is not None,
                                device="meta", fmt=fmt, cache_fp8=cache_fp8)
                fp8.weight, fp8.bias = child.weight, child.bias
                setattr(parent, name, fp8.train(child.training))
    return model
