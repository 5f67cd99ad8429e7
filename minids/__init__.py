"""minids: DeepSeek-V3 from scratch, small enough to train on a laptop CPU."""

import random

import numpy as np
import torch

from minids.checkpoint import load, save
from minids.config import ModelConfig
from minids.fp8 import dequantize, quantize
from minids.generate import generate, speculative_generate
from minids.model import MiniDeepSeek
from minids.rope import yarn_inv_freq, yarn_mscale

__version__ = "0.1.0"
__all__ = [
    "ModelConfig", "MiniDeepSeek", "generate", "speculative_generate", "save", "load",
    "quantize", "dequantize", "yarn_inv_freq", "yarn_mscale", "seed", "default_device",
]


def seed(value: int = 0) -> None:
    """Seed Python, NumPy and torch (all devices) so that a run repeats exactly."""
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)


def default_device() -> torch.device:
    """CUDA if present, then Apple's MPS, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
