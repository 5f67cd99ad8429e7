"""The run folder of a training stage (pretraining, SFT, GRPO), written so that nothing a
user does loses work or leaves a torn checkpoint.

    model.safetensors, config.json      the model, as minids.load reads it
    train_state.safetensors, .json      what a resume needs: optimizer, random states, step
    tokenizer.json, log.jsonl           the tokenizer, and one JSON line per step

A checkpoint is one unit. Its files are written into `.checkpoint.staging/`, which is
renamed `.checkpoint.ready/` once every file is complete (a rename is atomic), and the
files are then moved into the run folder one by one (`os.replace`, atomic too). A run
that finds `.checkpoint.ready/` was stopped while moving: `recover` finishes the move.
One that finds `.checkpoint.staging/` was stopped while writing: `recover` deletes it,
and the previous checkpoint stands. Each file also carries the step it belongs to, and
`read_state` refuses files of different steps.

`GracefulStop` turns Ctrl-C and SIGTERM into "finish this step, save, then stop".
"""

import json
import os
import shutil
import signal
import threading
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from minids import checkpoint
from minids.checkpoint import respect_umask
from minids.model import MiniDeepSeek

STATE_TENSORS, STATE_JSON, LOG_FILE = "train_state.safetensors", "train_state.json", "log.jsonl"
STAGING, READY = ".checkpoint.staging", ".checkpoint.ready"
REFERENCE_FILE = "reference.safetensors"  # GRPO's frozen reference policy
RUN_FILES = (checkpoint.WEIGHTS_FILE, checkpoint.CONFIG_FILE, STATE_TENSORS, STATE_JSON,
             LOG_FILE, "tokenizer.json", REFERENCE_FILE)


def recover(folder) -> None:
    """Finish or undo a checkpoint that an interruption left half written."""
    folder = Path(folder)
    if (folder / READY).is_dir():
        _move_into(folder / READY, folder)
    if (folder / STAGING).exists():
        shutil.rmtree(folder / STAGING)


def save_checkpoint(folder, model: MiniDeepSeek, step: int, tensors: dict, meta: dict,
                    optimizer: torch.optim.Optimizer | None = None) -> None:
    """Write the model, the state tensors (with the optimizer's, if given) and the state
    JSON of `step` as one unit."""
    folder = Path(folder)
    recover(folder)
    staging = folder / STAGING
    staging.mkdir(parents=True)
    checkpoint.save(model, staging, step=step)
    if optimizer is not None:
        tensors = {**tensors, **optimizer_tensors(optimizer)}
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()},
              str(staging / STATE_TENSORS), metadata={"step": str(step)})
    (staging / STATE_JSON).write_text(json.dumps({**meta, "step": step}, indent=1))
    for file in staging.iterdir():
        _fsync(file)
        respect_umask(file)
    staging.rename(folder / READY)  # from here on, the checkpoint counts
    _move_into(folder / READY, folder)


def read_state(folder) -> tuple[dict, dict]:
    """(state JSON, state tensors) of the run in folder, after checking that the model and
    both state files belong to the same step."""
    folder = Path(folder)
    recover(folder)
    json_file, tensor_file = folder / STATE_JSON, folder / STATE_TENSORS
    if not json_file.is_file() or not tensor_file.is_file():
        raise FileNotFoundError(f"nothing to resume in {folder} (no {STATE_JSON} and "
                                f"{STATE_TENSORS})")
    try:
        meta = json.loads(json_file.read_text())
        step = meta["step"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise ValueError(f"{json_file} is not a training state") from None
    try:
        tensors = load_file(str(tensor_file))
        stamps = {STATE_TENSORS: _step_stamp(tensor_file),
                  checkpoint.WEIGHTS_FILE: _step_stamp(folder / checkpoint.WEIGHTS_FILE)}
    except (SafetensorError, OSError) as error:
        raise ValueError(f"{tensor_file} or its weights are truncated or corrupt: "
                         f"{error}") from None
    torn = {name: stamp for name, stamp in stamps.items() if stamp != step}
    if torn:
        raise ValueError(f"{folder} holds a torn checkpoint: {STATE_JSON} is at step {step}, "
                         + ", ".join(f"{n} at step {s}" for n, s in torn.items()))
    return meta, tensors


def restore(folder, model: MiniDeepSeek, optimizer: torch.optim.Optimizer,
            truncate: bool = True) -> tuple[dict, dict]:
    """Load the checkpoint in folder into model and optimizer, drop the log records past
    it (unless truncate=False: the other processes of a distributed run leave the log to
    rank 0), and return (state JSON, state tensors) for the rest (random states, data
    order)."""
    meta, tensors = read_state(folder)
    saved = checkpoint.load(folder, device=model.embed.weight.device)
    if saved.config != model.config:
        raise ValueError(f"{folder} was trained with a different model config")
    model.load_state_dict(saved.state_dict())
    load_optimizer_tensors(optimizer, tensors)
    if truncate:
        truncate_log(folder, meta["step"])
    return meta, tensors


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """The optimizer's per-parameter state as flat named tensors (for safetensors)."""
    return {f"optim.{index}.{key}": value.detach().cpu().contiguous()
            for index, state in optimizer.state_dict()["state"].items()
            for key, value in state.items()}


def load_optimizer_tensors(optimizer: torch.optim.Optimizer, tensors: dict):
    """Put back what optimizer_tensors saved (the other entries of tensors are ignored),
    on the device of the optimizer's parameters."""
    device = optimizer.param_groups[0]["params"][0].device
    optim_state = optimizer.state_dict()
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, index, key = name.split(".", 2)
            optim_state["state"].setdefault(int(index), {})[key] = value.to(device)
    for state in optim_state["state"].values():
        state["step"] = state["step"].cpu()  # AdamW keeps its step counter on the CPU
    optimizer.load_state_dict(optim_state)


def saved_step(folder) -> int | None:
    """The step of the checkpoint in folder, or None when it holds no training state."""
    folder = Path(folder)
    recover(folder)
    try:
        return int(json.loads((folder / STATE_JSON).read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def prepare_new_run(folder, overwrite: bool, resume_command: str | None = None) -> Path:
    """The folder of a new run (or release): refuse one that holds a run unless overwrite,
    in which case the run's files go. resume_command, e.g. "python -m minids train
    --resume", is named in the refusal."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--out {folder} is a file, not a folder")
    held = [name for name in RUN_FILES if (folder / name).exists()]
    if held and not overwrite:
        step = saved_step(folder)
        at = f" at step {step}" if step is not None else ""
        way = (f"`{resume_command} {folder}` to continue it" if resume_command
               else "another --out")
        raise ValueError(f"{folder} holds a run{at}: use {way}, or --overwrite to replace it")
    for name in held:
        (folder / name).unlink()
    for name in (STAGING, READY):
        if (folder / name).exists():
            shutil.rmtree(folder / name)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def truncate_log(folder, step: int) -> None:
    """Drop the log records of steps after `step` (written after the last checkpoint by
    a run that was then stopped), so that a resumed run logs each step once."""
    path = Path(folder) / LOG_FILE
    if not path.is_file():
        return
    lines = path.read_text().splitlines()
    kept = [line for line in lines if json.loads(line).get("step", 0) <= step]
    if len(kept) < len(lines):
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text("".join(line + "\n" for line in kept))
        respect_umask(temporary)
        os.replace(temporary, path)


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C or SIGTERM after saving its last step."""

    def __init__(self, step: int, folder, resume_command: str):
        self.step, self.folder = step, Path(folder)
        super().__init__(f"saved step {step} in {folder}; resume with "
                         f"`{resume_command} {folder}`")


class GracefulStop:
    """Within `with GracefulStop() as stop:`, a first Ctrl-C or SIGTERM only sets
    stop.requested (the loop finishes its step, saves and stops); a second one stops at
    once. Disabled (a run with nowhere to save), or outside the main thread, where signals
    cannot be caught, nothing changes."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, enabled: bool = True):
        self.enabled, self.requested = enabled, False
        self._previous = {}

    def __enter__(self):
        if self.enabled and threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True


def _move_into(source: Path, folder: Path):
    for file in sorted(source.iterdir()):
        os.replace(file, folder / file.name)
    source.rmdir()


def _step_stamp(path: Path) -> int | None:
    with safe_open(str(path), "pt") as f:
        step = (f.metadata() or {}).get("step")
    return int(step) if step is not None else None


def _fsync(path: Path):
    with open(path, "rb") as f:
        os.fsync(f.fileno())
