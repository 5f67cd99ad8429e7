"""Rotary position embedding (RoPE) and three ways to stretch it (REFERENCE §6).

RoPE turns each pair of channels (x_{2i}, x_{2i+1}) by the angle  position * inv_freq_i.
DeepSeek rotates *interleaved* pairs, as a complex multiplication would; so do we.
To run a model `factor` times past its trained context:
- position interpolation ("linear"): every frequency divided by factor;
- NTK-aware scaling ("ntk"): a larger base, so the highest frequency stays and the
  lowest is divided by factor;
- YaRN ("yarn", DeepSeek-V3's): keeps the high-frequency pairs, interpolates the
  low-frequency ones, ramps linearly in between, and sharpens the softmax by mscale^2 to
  make up for the flatter attention.
"""

import math

import torch


def rope_inv_freq(dim: int, base: float) -> torch.Tensor:
    """inv_freq_i = base^(-2i/dim) for i < dim/2. Shape (dim//2,)."""
    return 1.0 / base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim)


def yarn_correction_dim(n_rotations: float, dim: int, base: float, original_max_position: int):
    """The (fractional) pair index whose wave turns n_rotations times over the original context."""
    return dim * math.log(original_max_position / (n_rotations * 2 * math.pi)) / (2 * math.log(base))


def yarn_correction_range(dim, base, original_max_position, beta_fast=32.0, beta_slow=1.0):
    """Pairs below `low` spin fast enough to keep; pairs above `high` are interpolated."""
    low = math.floor(yarn_correction_dim(beta_fast, dim, base, original_max_position))
    high = math.ceil(yarn_correction_dim(beta_slow, dim, base, original_max_position))
    return max(low, 0), min(high, dim - 1)


def yarn_inv_freq(dim, base, factor, original_max_position, beta_fast=32.0, beta_slow=1.0):
    """YaRN inverse frequencies, shape (dim//2,). factor = 1 gives plain RoPE."""
    inv_freq = rope_inv_freq(dim, base)
    low, high = yarn_correction_range(dim, base, original_max_position, beta_fast, beta_slow)
    if low == high:
        high += 0.001  # avoid a zero-width ramp
    ramp = ((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
    # ramp = 0: keep the frequency (extrapolate); ramp = 1: divide it by factor (interpolate).
    return inv_freq / factor * ramp + inv_freq * (1 - ramp)


def linear_inv_freq(dim: int, base: float, factor: float) -> torch.Tensor:
    """Position interpolation: positions squeezed by factor, i.e. every frequency / factor."""
    return rope_inv_freq(dim, base) / factor


def ntk_inv_freq(dim: int, base: float, factor: float) -> torch.Tensor:
    """NTK-aware scaling: base * factor^(dim / (dim - 2)), which keeps inv_freq_0 = 1 and
    divides the lowest frequency, inv_freq_(dim/2 - 1), by exactly factor."""
    return rope_inv_freq(dim, base * factor ** (dim / (dim - 2)))


def yarn_mscale(factor: float, mscale: float = 1.0) -> float:
    """The attention temperature factor 0.1 ln(s) + 1 (1 when the context is not stretched)."""
    return 1.0 if factor <= 1 else 0.1 * mscale * math.log(factor) + 1.0


def inv_freq_for(dim: int, base: float, rope_scaling: dict | None) -> torch.Tensor:
    """Plain RoPE, or the scaling that rope_scaling names (the dict of ModelConfig)."""
    if rope_scaling is None:
        return rope_inv_freq(dim, base)
    if rope_scaling["type"] == "linear":
        return linear_inv_freq(dim, base, rope_scaling["factor"])
    if rope_scaling["type"] == "ntk":
        return ntk_inv_freq(dim, base, rope_scaling["factor"])
    return yarn_inv_freq(
        dim, base, rope_scaling["factor"], rope_scaling["original_max_position_embeddings"],
        rope_scaling.get("beta_fast", 32.0), rope_scaling.get("beta_slow", 1.0),
    )


def rope_cos_sin(max_positions: int, inv_freq: torch.Tensor):
    """Tables of cos and sin of position * inv_freq, each (max_positions, dim//2), fp32."""
    angles = torch.outer(torch.arange(max_positions, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved pairs of the last dim of x (..., dim) by angles whose cos and sin
    broadcast against (..., dim//2). Computed in at least fp32, returned in x's dtype."""
    dtype = torch.promote_types(x.dtype, torch.float32)
    pairs = x.to(dtype).unflatten(-1, (-1, 2))  # (..., dim//2, 2)
    even, odd = pairs[..., 0], pairs[..., 1]
    cos, sin = cos.to(dtype), sin.to(dtype)
    rotated = torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1)
    return rotated.flatten(-2).type_as(x)
