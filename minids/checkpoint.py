"""Checkpoints: a folder with `model.safetensors` (the weights and routing biases) and
`config.json` (the ModelConfig). safetensors stores raw tensors only, so loading a
checkpoint never runs pickled code."""

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from minids.config import ModelConfig
from minids.model import MiniDeepSeek

WEIGHTS_FILE, CONFIG_FILE = "model.safetensors", "config.json"


def save(model: MiniDeepSeek, path, dtype: torch.dtype | None = None,
         step: int | None = None, file: str = WEIGHTS_FILE) -> Path:
    """Write the model to the folder `path` (created if needed). Returns the folder.
    dtype (e.g. torch.bfloat16) stores the floating-point tensors at lower precision, as a
    release would; integer buffers and the fp32 routing biases keep their type. step, if
    given, is stamped in the weights' metadata (a training checkpoint's). file names the
    weights file; config.json is written with the main one only. Each file is written
    beside its final name and then renamed: an interrupted save leaves the old file whole."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name, tensor in unique_state(model).items():
        if dtype is not None and tensor.is_floating_point() and not name.endswith("gate.bias"):
            tensor = tensor.to(dtype)
        tensors[name] = tensor.detach().cpu().contiguous()
    metadata = {"format": "pt", **({"step": str(step)} if step is not None else {})}
    with _replacing(folder / file) as temporary:
        save_file(tensors, str(temporary), metadata=metadata)
    if file == WEIGHTS_FILE:
        with _replacing(folder / CONFIG_FILE) as temporary:
            temporary.write_text(model.config.to_json())
    return folder


class _replacing:
    """Write to a temporary file beside `path`, then rename it over path, readable as the
    user's umask says (safetensors writes 0600 whatever the umask). On an error the
    temporary file goes and path is untouched."""

    def __init__(self, path: Path):
        self.path, self.temporary = path, path.with_name(f".{path.name}.tmp")

    def __enter__(self) -> Path:
        return self.temporary

    def __exit__(self, kind, error, traceback):
        if kind is None:
            respect_umask(self.temporary)
            os.replace(self.temporary, self.path)
        else:
            self.temporary.unlink(missing_ok=True)
        return False


def respect_umask(path) -> None:
    """Give a file the mode a new file gets under the user's umask."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def load_config(path) -> ModelConfig:
    file = Path(path) / CONFIG_FILE
    if not file.is_file():
        raise FileNotFoundError(f"no checkpoint config at {file}")
    try:
        values = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{file} is not valid JSON: {error}") from None
    if not isinstance(values, dict):
        raise ValueError(f"{file} holds {type(values).__name__}, not a JSON object of "
                         "config fields")
    return ModelConfig.from_dict(values)


def load(path, device="cpu") -> MiniDeepSeek:
    """Rebuild the model saved in the folder `path`, in fp32 whatever precision it was
    stored in. A missing, truncated or mismatched file raises FileNotFoundError or
    ValueError saying which file and what is wrong."""
    from minids.runs import recover  # (minids.runs builds on this module)

    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"no checkpoint folder at {folder}")
    recover(folder)  # a save that was stopped halfway is finished first
    config = load_config(folder)
    return _load_weights(MiniDeepSeek(config).to(device), folder / WEIGHTS_FILE)


def load_weights(like: MiniDeepSeek, file) -> MiniDeepSeek:
    """A new model shaped like `like` (its config and device) with the weights in file,
    e.g. GRPO's reference policy, saved beside the run's own weights."""
    device = like.embed.weight.device
    return _load_weights(MiniDeepSeek(like.config).to(device), Path(file))


def _load_weights(model: MiniDeepSeek, file: Path) -> MiniDeepSeek:
    if not file.is_file():
        raise FileNotFoundError(f"no weights at {file}")
    try:
        tensors = load_file(str(file), device=str(model.embed.weight.device))
    except (SafetensorError, OSError) as error:
        raise ValueError(f"{file} is truncated or corrupt: {error}") from None
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
