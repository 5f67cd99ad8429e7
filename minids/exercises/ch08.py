"""Chapter 08's exercises: the 1x128 tile quantiser, power-of-two scales, the tensor core's
limited accumulator, and the FP8 linear layer."""

import torch
import torch.nn.functional as F

from minids.exercises.checker import Exercise
from minids.exercises.common import randn, seeded
from minids.fp8 import (AMAX_FLOOR, FORMATS, FP8Linear, dequantize, limited_accumulate,
                        quantize, scale_of, truncate_mantissa)

# 08.1 The 1 x block_size tile quantiser of the activations.

def quantize_tiles(x, block_size):
    """x (..., cols) float32 -> (q, scale): q float8_e4m3fn of x's shape, scale float32
    (..., ceil(cols / block_size)), one per 1 x block_size tile along the last dim (the
    last tile may be partial): scale = max(amax of the tile, 1e-4) / 448 and
    q = x / scale, so that x ≈ q * scale and each tile's largest |q| is 448."""
    return quantize(x, "e4m3", "tile", block_size)


def quantize_tiles_cases():
    with seeded(8):
        outlier = randn(4, 384)
        outlier[1, 200] = 500.0  # one tile of row 1 takes a large scale, the others do not
        zeros = randn(2, 256)
        zeros[0, 128:] = 0.0  # an all-zero tile: the amax floor keeps its scale finite
        return [
            (randn(4, 256), 128),
            (randn(3, 200), 128),  # a partial last tile of 72 columns
            (randn(2, 3, 96, scale=0.01), 32),
            (outlier, 128),
            (zeros, 128),
            (randn(2, 2, 70, scale=30.0), 32),  # three tiles, the last of 6 columns
        ]


def _tiles(x, block_size, fmt="e4m3", fmt_max=None, per_row=False, floor=True, crop=True):
    """The tile quantiser with one thing changed, for the mistakes."""
    dtype, largest = FORMATS[fmt]
    cols = x.shape[-1]
    tiles = F.pad(x, (0, -cols % block_size)).unflatten(-1, (-1, block_size))  # (..., n, bs)
    amax = tiles.abs().amax(-1)  # (..., n)
    if per_row:
        amax = amax.amax(-1, keepdim=True)  # (..., 1): one scale for the whole row
    scale = (amax.clamp(min=AMAX_FLOOR) if floor else amax) / (fmt_max or largest)
    q = (tiles / scale[..., None]).clamp(-largest, largest).to(dtype).flatten(-2)
    return (q[..., :cols] if crop else q), scale  # q (..., cols), or (..., n * bs) uncropped


QUANTIZE_TILES_MISTAKES = {
    "scale = amax / 448 (x ≈ q * scale); 448 / amax is its inverse, what q = x / scale "
    "multiplies by": lambda x, bs: (_tiles(x, bs)[0], 1 / _tiles(x, bs)[1]),
    "one scale per 1 x block_size tile, not per row: an outlier then shrinks only its own "
    "tile": lambda x, bs: _tiles(x, bs, per_row=True),
    "floor the amax at 1e-4 (minids.fp8.AMAX_FLOOR): an all-zero tile gets scale 0 and "
    "q = 0 / 0": lambda x, bs: _tiles(x, bs, floor=False),
    "activations use E4M3 (torch.float8_e4m3fn, largest 448), not E5M2":
        lambda x, bs: quantize(x, "e5m2", "tile", bs),
    "E4M3's largest value is 448 (torch.finfo(torch.float8_e4m3fn).max), not int8's 127":
        lambda x, bs: _tiles(x, bs, fmt_max=127.0),
    "crop q back to x's columns: the padding of the last tile is not part of x":
        lambda x, bs: _tiles(x, bs, crop=False),
}


# 08.2 Power-of-two scales: multiplying by one moves only the exponent.

def pow2_scale(amax, fmt_max):
    """amax (...) float32, the largest |value| of each tile -> the scales (...): the scale
    max(amax, 1e-4) / fmt_max rounded UP to a power of two, so that no |q| passes fmt_max."""
    return scale_of(amax, fmt_max, pow2_scales=True)


def pow2_scale_cases():
    with seeded(9):
        spread = randn(16).abs() * torch.logspace(-3, 4, 16)  # seven decades
        edges = torch.tensor([0.0, 1e-6, 448.0 * 2, 448.0 / 8, 1.0])  # 0 and 1e-6: the floor
        return [(spread, 448.0), (edges, 448.0), (randn(3, 5).abs() * 100, 57344.0),
                (edges, 57344.0)]


def _pow2(amax, fmt_max, rounding=torch.ceil, floor=True):
    scale = (amax.clamp(min=AMAX_FLOOR) if floor else amax) / fmt_max
    return torch.exp2(rounding(torch.log2(scale)))


POW2_SCALE_MISTAKES = {
    "round the exponent UP (ceil): a smaller scale pushes the tile's largest |x| / scale "
    "past fmt_max, where it saturates": lambda a, m: _pow2(a, m, rounding=torch.floor),
    "round UP, not to the nearest power of two: rounding down, half the time, lets values "
    "pass fmt_max": lambda a, m: _pow2(a, m, rounding=torch.round),
    "floor amax at 1e-4 first (minids.fp8.AMAX_FLOOR): an all-zero tile would get scale 0":
        lambda a, m: _pow2(a, m, floor=False),
    "round the scale to a power of two: 2 ** ceil(log2(scale))":
        lambda a, m: scale_of(a, m),
}


# 08.3 The tensor core's limited accumulator.

def limited_sum(products, bits, group):
    """products (M, N, K) float64, the exact products of an FP8 GEMM -> (M, N) float64:
    their sum over K, in order, `group` products at a time, in an accumulator of `bits`
    mantissa bits: running = truncate_mantissa(running + sum of the next group, bits)."""
    return limited_accumulate(_group_sums(products, group), bits)


def _group_sums(products, group):
    return (chunk.sum(-1) for chunk in products.split(group, dim=-1))  # (M, N) each, exact


def fp8_operands(M, N, K, seed):
    """Two random E4M3 matrices, (M, K) and (N, K), as float64."""
    with seeded(seed):
        return tuple(quantize(randn(rows, K), "e4m3", "tile")[0].double() for rows in (M, N))


def fp8_products(M, N, K, seed):
    """(M, N, K): the products of fp8_operands, exact in float64, so that the sum of a
    group is exact in any order."""
    qa, qb = fp8_operands(M, N, K, seed)
    return qa[:, None, :] * qb[None, :, :]


def limited_sum_cases():
    return [
        (fp8_products(8, 8, 128, 0), 14, 4),
        (fp8_products(4, 6, 4096, 1), 14, 4),  # V3's K: the error the report measures
        (fp8_products(4, 4, 4096, 2), 8, 1),
        (fp8_products(8, 8, 128, 3), 8, 32),
        (fp8_products(6, 6, 4096, 4), 14, 32),
    ]


def _rounded_sum(products, bits, group):
    """The accumulator rounding to the nearest of `bits` mantissa bits, not toward zero."""
    total = 0.0
    for partial in _group_sums(products, group):
        mantissa, exponent = torch.frexp(total + partial)
        total = torch.ldexp(torch.round(mantissa * 2.0**bits) / 2.0**bits, exponent)
    return total


LIMITED_SUM_MISTAKES = {
    "truncate the running sum after each addition, not each group's sum before it: the "
    "accumulator is what keeps few bits": lambda p, bits, g: sum(
        truncate_mantissa(s, bits) for s in _group_sums(p, g)),
    "truncate after EVERY group, not once at the end: each addition to the short "
    "accumulator loses bits": lambda p, bits, g: truncate_mantissa(p.sum(-1), bits),
    "the accumulator drops the low bits, rounding toward zero (torch.trunc), not to the "
    "nearest": _rounded_sum,
    "truncate the running sum to `bits` mantissa bits after each group: the tensor core "
    "does not sum exactly": lambda p, bits, g: p.sum(-1),
    "the tensor core keeps `bits` mantissa bits, far fewer than float32's 24: truncate "
    "the running sum to them": lambda p, bits, g: p.float().sum(-1),
}


# 08.4 The FP8 linear layer: Fprop as V3 runs it.

def fp8_linear_forward(layer, x):
    """layer, an FP8Linear (its weight (out, in), bias or None, fmt and block_size);
    x (..., in) -> y (..., out) float32: x quantised in 1 x block_size tiles along `in`,
    the weight in block_size x block_size blocks, each block_size-chunk of K = `in`
    multiplied in FP8 and scaled by its two scales, added up in FP32; then the bias, in
    FP32 (FP8Linear.forward)."""
    with torch.no_grad():
        return layer(x)


def fp8_linear_forward_cases():
    """Sizes that are and are not multiples of 128, with and without bias, 2-D and 3-D
    inputs, E4M3 and E5M2; output channels spread over two decades, and one outlier."""
    cases = []
    shapes = (((64, 96), True, (5, 64), "e4m3"), ((300, 200), False, (2, 7, 300), "e4m3"),
              ((256, 130), True, (3, 4, 256), "e4m3"), ((130, 64), True, (9, 130), "e5m2"))
    for seed, ((n_in, n_out), bias, x_shape, fmt) in enumerate(shapes):
        with seeded(seed):
            layer = FP8Linear(n_in, n_out, bias, fmt=fmt).requires_grad_(False)
            layer.weight.mul_(torch.logspace(-1, 1, n_out)[:, None])  # (out, in)
            x = randn(*x_shape)
        x.view(-1, n_in)[0, 3] = 40.0  # an outlier channel in the first token
        cases.append((layer, x))
    return cases


def _dequantized(t, layer, granularity, scales=True):
    """t through FP8 and back in float32 (just q, with scales=False)."""
    q, scale = quantize(t, layer.fmt, granularity, layer.block_size)
    return dequantize(q, scale, granularity, layer.block_size) if scales else q.float()


def _fp8_linear(layer, x, x_scaling="tile", w_scaling="block", bias="added", scales=True):
    """FP8Linear's forward, dequantised then multiplied in float32 (equal to the chunked
    FP8 GEMM but for float32 rounding), with one thing changed for the mistakes: x's and
    the weight's scaling ("columns": 1 x bs tiles along `out`), the bias ("added",
    "none", "in GEMM": quantised as one more input channel) or the scales left out."""
    weight, b = layer.weight, layer.bias
    if bias == "in GEMM" and b is not None:
        x = torch.cat([x, torch.ones_like(x[..., :1])], dim=-1)  # (..., in + 1)
        weight = torch.cat([weight, b[:, None]], dim=-1)  # (out, in + 1)
    x_hat = _dequantized(x, layer, x_scaling, scales)  # (..., in)
    if w_scaling == "columns":
        w_hat = _dequantized(weight.T, layer, "tile", scales).T  # (out, in)
    else:
        w_hat = _dequantized(weight, layer, w_scaling, scales)  # (out, in)
    y = x_hat @ w_hat.T  # (..., out)
    return y + b if bias == "added" and b is not None else y


FP8_LINEAR_FORWARD_MISTAKES = {
    "quantise x in 1 x block_size tiles along `in` (one scale per token and chunk), not "
    "with one scale for the whole tensor": lambda l, x: _fp8_linear(l, x, x_scaling="tensor"),
    "quantise the weight in block_size x block_size blocks, not with one scale for the "
    "whole tensor": lambda l, x: _fp8_linear(l, x, w_scaling="tensor"),
    "a scale must stay constant along K = `in` within a chunk, to multiply the chunk's "
    "sum: the weight takes block_size x block_size blocks, not tiles along `out`":
        lambda l, x: _fp8_linear(l, x, w_scaling="columns"),
    "V3 quantises weights in block_size x block_size blocks, not in 1 x block_size tiles "
    "like the activations": lambda l, x: _fp8_linear(l, x, w_scaling="tile"),
    "add layer.bias (when the layer has one) to the GEMM's output":
        lambda l, x: _fp8_linear(l, x, bias="none"),
    "add the bias in FP32 after the GEMM: inside it, it is quantised to FP8":
        lambda l, x: _fp8_linear(l, x, bias="in GEMM"),
    "multiply each chunk's FP8 product by its two scales: q holds x / scale":
        lambda l, x: _fp8_linear(l, x, scales=False),
}


EXERCISES = [
    # q is exact in float8 and the scales are one division: only their last bit may differ
    Exercise("08.1", "the 1x128 tile quantiser", quantize_tiles_cases, quantize_tiles,
             QUANTIZE_TILES_MISTAKES, rtol=1e-6, atol=0.0),
    Exercise("08.2", "power-of-two scales", pow2_scale_cases, pow2_scale, POW2_SCALE_MISTAKES,
             rtol=1e-6, atol=0.0),
    Exercise("08.3", "the tensor core's limited accumulator", limited_sum_cases, limited_sum,
             LIMITED_SUM_MISTAKES, rtol=1e-12, atol=0.0),
    # dequantising, then one float32 matmul, errs at most 1.6 % of these tolerances on the
    # cases; the closest mistake (the bias quantised in the GEMM) 127 times them
    Exercise("08.4", "the FP8 linear layer", fp8_linear_forward_cases, fp8_linear_forward,
             FP8_LINEAR_FORWARD_MISTAKES, rtol=1e-4, atol=1e-4),
]
