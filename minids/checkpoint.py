"""Checkpoints: a folder with `model.safetensors` (the weights and routing biases) and
`config.json` (the ModelConfig). safetensors stores raw tensors only, so loading a
checkpoint never runs pickled code."""

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from minids.config import ModelConfig
from minids.model import MiniDeepSeek

WEIGHTS_FILE, CONFIG_FILE = "model.safetensors", "config.json"


def save(model: MiniDeepSeek, path, dtype: torch.dtype | None = None) -> Path:
    """Write the model to the folder `path` (created if needed). Returns the folder.
    dtype (e.g. torch.bfloat16) stores the floating-point tensors at lower precision, as a
    release would; integer buffers and the fp32 routing biases keep their type."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name, tensor in unique_state(model).items():
        if dtype is not None and tensor.is_floating_point() and not name.endswith("gate.bias"):
            tensor = tensor.to(dtype)
        tensors[name] = tensor.detach().cpu().contiguous()
    save_file(tensors, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
    (folder / CONFIG_FILE).write_text(model.config.to_json())
    return folder


def load_config(path) -> ModelConfig:
    file = Path(path) / CONFIG_FILE
    if not file.is_file():
        raise FileNotFoundError(f"no checkpoint config at {file}")
    try:
        values = json.loads(file.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{file} is not valid JSON: {error}") from None
    return ModelConfig.from_dict(values)


def load(path, device="cpu") -> MiniDeepSeek:
    """Rebuild the model saved in the folder `path`, in fp32 whatever precision it was
    stored in. A missing, truncated or mismatched file raises FileNotFoundError or
    ValueError saying which file and what is wrong."""
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"no checkpoint folder at {folder}")
    config = load_config(folder)
    file = folder / WEIGHTS_FILE
    if not file.is_file():
        raise FileNotFoundError(f"no weights at {file}")
    try:
        tensors = load_file(str(file), device=str(device))
    except (SafetensorError, OSError) as error:
        raise ValueError(f"{file} is truncated or corrupt: {error}") from None

    model = MiniDeepSeek(config).to(device)
    expected = unique_state(model)
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong_shape = sorted(n for n in set(expected) & set(tensors)
                         if expected[n].shape != tensors[n].shape)
    if missing or unexpected or wrong_shape:
        raise ValueError(
            f"{file} does not match {CONFIG_FILE}: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}, wrong shape {wrong_shape[:5]}"
        )
    model.load_state_dict(tensors, strict=False)  # copies (and upcasts); twins are shared
    return model


def unique_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict with each tensor once, under its first name: the MTP modules'
    embed and head are the main model's, so they are stored as embed.* and head.*."""
    state, seen = {}, set()
    for name, tensor in model.state_dict().items():
        if tensor.data_ptr() not in seen:
            seen.add(tensor.data_ptr())
            state[name] = tensor
    return state
