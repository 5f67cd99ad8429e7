"""Pretraining (REFERENCE §3, §4, §8): AdamW, the V3 learning-rate shape, gradient clipping,
MTP and balance losses, the routing-bias update after every optimizer step, evaluation,
a JSONL log, checkpoints and exact resume. Runs on one device, or on several processes
under `torchrun` with DistributedDataParallel.

A run folder holds the model checkpoint (`model.safetensors`, `config.json`), the training
state needed to resume (`train_state.safetensors`, `train_state.json`) and `log.jsonl`,
written as one unit (minids.runs). Nothing in it is pickled. Ctrl-C or SIGTERM finish the
step, save it and stop.
"""

import dataclasses
import json
import math
import os
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from minids import checkpoint, default_device, runs
from minids.checkpoint import WEIGHTS_FILE
from minids.config import ModelConfig
from minids.data import Batches
from minids.fp8 import convert_to_fp8
from minids.model import MiniDeepSeek
from minids.moe import max_violation
from minids.runs import LOG_FILE, GracefulStop, RunInterrupted
from minids.schedule import BatchRamp, LRSchedule, StepSchedule

RESUME_COMMAND = "python -m minids train --resume"


@dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 16  # sequences per optimizer step, over all processes (after a ramp)
    grad_accum: int = 1  # micro-batches per optimizer step (per process)
    max_lr: float = 3e-3
    warmup_steps: int = 50
    decay_fraction: float = 0.3  # the last 30 % of the steps decay the LR by cosine
    final_lr_ratio: float = 0.1
    # V3's recipe (report §4.2), all off by default: the warmup starts at 0; constant LR
    # tails after the cosine, ((steps, ratio of max_lr), ...); the batch size grown from
    # batch_ramp[0] to batch_size over the first batch_ramp[1] tokens; the MTP weight λ and
    # the bias update speed γ changed at given steps, ((step, value), ...), where None
    # keeps the model config's.
    warmup_from_zero: bool = False
    lr_tails: tuple = ()
    batch_ramp: tuple | None = None
    mtp_loss_weights: tuple | None = None
    bias_update_speeds: tuple | None = None
    precision: str = "fp32"  # "bf16": autocast the forward passes; weights stay fp32
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    eval_every: int = 100
    eval_batches: int = 8
    checkpoint_every: int = 250
    seed: int = 0
    fp8: bool = False
    progress: bool = True  # the tqdm bar

    def __post_init__(self):
        # tuples, also when the config comes back from JSON (as lists)
        self.betas = tuple(self.betas)
        self.lr_tails = tuple(tuple(t) for t in self.lr_tails)
        for name in ("batch_ramp", "mtp_loss_weights", "bias_update_speeds"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, tuple(tuple(v) if isinstance(v, list) else v for v in value))
        positive = ("steps", "batch_size", "grad_accum", "eval_every", "eval_batches",
                    "checkpoint_every")
        for name in positive:
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"TrainConfig: {name} must be an int >= 1, got {getattr(self, name)!r}")
        if self.batch_size % self.grad_accum:
            raise ValueError(f"TrainConfig: grad_accum ({self.grad_accum}) must divide "
                             f"batch_size ({self.batch_size})")
        if not 0 <= self.decay_fraction <= 1:
            raise ValueError(f"TrainConfig: decay_fraction must be in [0, 1], got {self.decay_fraction}")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"TrainConfig: precision must be 'fp32' or 'bf16', got {self.precision!r}")
        if self.fp8 and self.precision != "fp32":
            raise ValueError("TrainConfig: fp8 runs its GEMMs in emulated FP8 around FP32; "
                             "it cannot be combined with precision='bf16'")
        if self.batch_ramp is not None and (len(self.batch_ramp) != 2
                                            or not 0 < self.batch_ramp[0] <= self.batch_size):
            raise ValueError(f"TrainConfig: batch_ramp must be (start batch in [1, batch_size], "
                             f"ramp tokens), got {self.batch_ramp!r}")
        self.schedule()  # raises if the LR tails leave no room
        for name in ("mtp_loss_weights", "bias_update_speeds"):
            if getattr(self, name) is not None:
                StepSchedule(getattr(self, name))  # raises on a bad list

    def schedule(self) -> LRSchedule:
        tail_steps = sum(steps for steps, _ in self.lr_tails)
        main = self.steps - tail_steps
        if main < 0:
            raise ValueError(f"TrainConfig: lr_tails take {tail_steps} steps, more than the "
                             f"{self.steps} steps")
        decay = round(main * self.decay_fraction)
        warmup = min(self.warmup_steps, main - decay)
        return LRSchedule(self.max_lr, warmup, main - decay - warmup, decay, self.final_lr_ratio,
                          self.lr_tails, self.warmup_from_zero)


# The run each model preset is trained with by `python -m minids train --preset NAME`.
TRAIN_PRESETS = {
    "tiny": dict(steps=200, batch_size=8, max_lr=3e-3, warmup_steps=20, eval_every=50,
                 checkpoint_every=100),
    "book": dict(steps=350, batch_size=16, max_lr=3e-3, warmup_steps=30, eval_every=50,
                 checkpoint_every=50),
    "small": dict(steps=5000, batch_size=64, max_lr=2e-3, warmup_steps=200, eval_every=250,
                  checkpoint_every=500),
}


def progress_bar(iterable=None, show: bool = True, **kwargs) -> tqdm:
    """tqdm.auto's bar, hidden when show is False or the environment sets TQDM_DISABLE=1
    (which tqdm's notebook bar ignores by itself: an executed chapter would store a bar
    stuck at 0 %). The chapters' loops use it too."""
    hidden = not show or os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true")
    return tqdm(iterable, disable=hidden, **kwargs)


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks cuda, then mps, then cpu; 'cpu', 'cuda', 'cuda:N' and 'mps' are
    checked against what this machine has (ValueError otherwise)."""
    if name == "auto":
        return default_device()
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda or mps") from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device {name!r} cannot run a model here; use auto, cpu, cuda or mps")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but torch sees no CUDA device")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"device {name!r} asked for, but torch sees "
                         f"{torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} asked for, but this machine has no MPS device")
    return device


def make_optimizer(model: MiniDeepSeek, weight_decay=0.1, betas=(0.9, 0.95)) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not on norm weights)."""
    matrices = [p for p in model.parameters() if p.dim() >= 2]
    vectors = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": matrices, "weight_decay": weight_decay},
              {"params": vectors, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=0.0, betas=betas)


def set_lr(optimizer: torch.optim.Optimizer, lr: float):
    for group in optimizer.param_groups:
        group["lr"] = lr


def optimizer_step(model: MiniDeepSeek, optimizer, grad_clip: float, all_reduce_loads=False,
                   bias_update_speed: float | None = None):
    """Clip, step, clear the gradients, then the sign-rule update of every routing bias
    over the step's tokens (summed over processes first if all_reduce_loads), at the
    model's own speed gamma unless bias_update_speed says otherwise (0 freezes the biases).
    Returns (gradient norm before clipping, mean MaxVio of the step's routers)."""
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if all_reduce_loads:
        for router in model.routers():
            dist.all_reduce(router.load)
    loads = model.update_router_biases(bias_update_speed)
    return float(grad_norm), _mean([max_violation(load) for load in loads])


class Trainer:
    """Holds a run's state. `Trainer(...).run()` trains to config.steps, resuming from
    out_dir if it already holds a training state and resume=True. `init_from`, a
    checkpoint folder, starts the run from its weights instead of a fresh init (a context
    extension: the same shapes, a new rope_scaling)."""

    def __init__(self, model_config: ModelConfig, config: TrainConfig, train_tokens, val_tokens,
                 out_dir, device="auto", resume=False, init_from=None):
        self.config, self.out_dir = config, Path(out_dir)
        self.rank, self.world_size = _distributed_rank_and_size()
        if config.batch_size % (config.grad_accum * self.world_size):
            raise ValueError(f"batch_size {config.batch_size} must split evenly over "
                             f"{self.world_size} processes x {config.grad_accum} micro-batches")
        if train_tokens.shape[1] - 1 > model_config.max_position_embeddings:
            raise ValueError(f"training rows of {train_tokens.shape[1] - 1} tokens exceed the "
                             f"context of {model_config.max_position_embeddings}")
        self.device = resolve_device(device)
        if self.world_size > 1 and self.device.type == "cuda":
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        _seed_everything(config.seed)
        self.model = MiniDeepSeek(model_config).to(self.device)
        if init_from is not None:
            self.model = checkpoint.load_weights(self.model, Path(init_from) / WEIGHTS_FILE)
        if config.fp8:
            convert_to_fp8(self.model)
        self.optimizer = make_optimizer(self.model, config.weight_decay, config.betas)
        self.schedule = config.schedule()
        self.batch_ramp = None if config.batch_ramp is None else BatchRamp(
            config.batch_ramp[0], config.batch_size, config.batch_ramp[1],
            multiple=config.grad_accum * self.world_size)
        self.mtp_loss_weights = _step_schedule(config.mtp_loss_weights)
        self.bias_update_speeds = _step_schedule(config.bias_update_speeds)
        self.batches = Batches(train_tokens, config.batch_size, seed=config.seed,
                               rank=self.rank, world_size=self.world_size)
        self.val_tokens = val_tokens
        self.step, self.tokens_seen = 0, 0  # tokens: over all processes
        if self.world_size > 1:  # rank 0 finishes a stopped save before anyone reads
            if self.is_main:
                runs.recover(self.out_dir)
            dist.barrier()
        held = runs.saved_step(self.out_dir)
        if resume and held is not None:
            self.load_state()
        elif not resume and (held is not None or (self.out_dir / LOG_FILE).exists()):
            raise ValueError(f"{self.out_dir} holds a run: resume it (resume=True) or "
                             "train into another folder")
        self.ddp = (torch.nn.parallel.DistributedDataParallel(self.model)
                    if self.world_size > 1 else None)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def run(self, until_step: int | None = None) -> MiniDeepSeek:
        """Train to config.steps, or stop (and save) after until_step steps. Ctrl-C or
        SIGTERM: the step in progress finishes and is saved, then RunInterrupted."""
        c = self.config
        stop = c.steps if until_step is None else min(until_step, c.steps)
        bar = progress_bar(show=c.progress and self.is_main, total=c.steps,
                           initial=self.step, desc="train")
        with GracefulStop() as interrupt:
            while self.step < stop:
                record = self.train_step()
                self.step += 1
                if self.step % c.eval_every == 0 or self.step == c.steps:
                    record.update(self.evaluate())
                if self.is_main:
                    self.log(record)
                stopping = interrupt.requested  # read once: a signal after this waits a step
                if self.step % c.checkpoint_every == 0 or self.step == stop or stopping:
                    self.save_state()
                bar.update(1)
                bar.set_postfix(loss=f"{record['main_loss']:.3f}", lr=f"{record['lr']:.1e}")
                if stopping and self.step < stop:
                    bar.close()
                    raise RunInterrupted(self.step, self.out_dir, RESUME_COMMAND)
        bar.close()
        return self.model

    def train_step(self) -> dict:
        c, model = self.config, self.ddp or self.model
        model.train()
        lr = self.schedule(self.step)
        set_lr(self.optimizer, lr)
        size = c.batch_size if self.batch_ramp is None else self.batch_ramp(self.tokens_seen)
        mtp_weight = _at(self.mtp_loss_weights, self.step)
        bias_speed = _at(self.bias_update_speeds, self.step)
        start = time.perf_counter()
        inputs, targets = self.batches.next_batch(size)  # this process's share of the step
        parts = {"loss": 0.0, "main_loss": 0.0, "mtp_loss": 0.0, "balance_loss": 0.0}
        for micro, (x, y) in enumerate(zip(inputs.chunk(c.grad_accum), targets.chunk(c.grad_accum))):
            last = micro == c.grad_accum - 1
            sync = nullcontext() if last or self.ddp is None else self.ddp.no_sync()
            with sync:  # backward outside autocast, inside no_sync
                with self.autocast():
                    out = model(x.to(self.device), y.to(self.device), mtp_loss_weight=mtp_weight)
                (out.loss / c.grad_accum).backward()
            for name in parts:
                parts[name] += getattr(out, name).item() / c.grad_accum
        grad_norm, maxvio = optimizer_step(self.model, self.optimizer, c.grad_clip,
                                           all_reduce_loads=self.world_size > 1,
                                           bias_update_speed=bias_speed)
        elapsed = time.perf_counter() - start
        tokens = inputs.numel() * self.world_size
        self.tokens_seen += tokens
        record = {"step": self.step + 1, **_mean_over_processes(parts), "lr": lr,
                  "grad_norm": grad_norm, "maxvio": maxvio, "tokens_per_s": tokens / elapsed}
        if self.batch_ramp is not None:
            record["batch_size"] = size
        if mtp_weight is not None:
            record["mtp_loss_weight"] = mtp_weight
        if bias_speed is not None:
            record["bias_update_speed"] = bias_speed
        return record

    def autocast(self):
        """bf16 autocast for precision='bf16' (the weights, gradients and optimizer stay
        fp32; norms, the router and the losses compute in fp32 inside); else nothing."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16,
                              enabled=self.config.precision == "bf16")

    @torch.no_grad()
    def evaluate(self) -> dict:
        """Mean main loss on the first eval_batches validation batches, and MaxVio over
        all of their tokens (MaxVio_global of the main layers)."""
        self.model.eval()
        losses, loads = [], None
        batch = self.config.batch_size // self.world_size
        shard = self.val_tokens[self.rank :: self.world_size]
        for i in range(min(self.config.eval_batches, max(1, len(shard) // batch))):
            chunk = shard[i * batch : (i + 1) * batch].to(self.device)
            with self.autocast():
                out = self.model(chunk[:, :-1], chunk[:, 1:])
            losses.append(out.main_loss.item())
            routers = self.model.routers(mtp=False)
            if routers:  # a dense model has none
                step_loads = torch.stack([r.last_load for r in routers])
                loads = step_loads if loads is None else loads + step_loads
        result = _mean_over_processes({"val_loss": _mean(losses)})
        if loads is not None:
            result["val_maxvio"] = _mean([max_violation(l) for l in loads])
        return result

    def log(self, record: dict):
        append_log(self.out_dir, record)

    # Saving and resuming: everything a resumed run needs to continue bit for bit.
    def save_state(self):
        if not self.is_main:
            return
        tensors = {"rng.torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            tensors["rng.cuda"] = torch.cuda.get_rng_state()
        meta = {"train_config": dataclasses.asdict(self.config), "tokens_seen": self.tokens_seen,
                "batches": self.batches.state_dict(), "python_random": random.getstate()}
        runs.save_checkpoint(self.out_dir, self.model, self.step, tensors, meta,
                             self.optimizer)

    def load_state(self):
        meta, tensors = runs.restore(self.out_dir, self.model, self.optimizer,
                                     truncate=self.is_main)
        torch.set_rng_state(tensors["rng.torch"])
        if "rng.cuda" in tensors and torch.cuda.is_available():
            torch.cuda.set_rng_state(tensors["rng.cuda"])
        version, internal, gauss = meta["python_random"]  # JSON turned the tuples into lists
        random.setstate((version, tuple(internal), gauss))
        self.batches.load_state_dict(meta["batches"])
        self.step = meta["step"]
        seq_len = self.batches.tokens.shape[1] - 1  # states saved before ramps lack the count
        self.tokens_seen = meta.get("tokens_seen", self.step * self.config.batch_size * seq_len)


def train(model_config, train_config, train_tokens, val_tokens, out_dir, device="auto",
          resume=False) -> MiniDeepSeek:
    return Trainer(model_config, train_config, train_tokens, val_tokens, out_dir, device,
                   resume).run()


def append_log(out_dir, record: dict):
    """Add one JSON line to out_dir/log.jsonl (floats rounded to 6 digits)."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    with open(Path(out_dir) / LOG_FILE, "a") as f:
        f.write(json.dumps({k: _rounded(v) for k, v in record.items()}) + "\n")


def read_log(out_dir) -> list[dict]:
    path = Path(out_dir) / LOG_FILE
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _step_schedule(points) -> StepSchedule | None:
    return None if points is None else StepSchedule(points)


def _at(schedule: StepSchedule | None, step: int) -> float | None:
    return None if schedule is None else schedule(step)


def _distributed_rank_and_size():
    if "RANK" not in os.environ:
        return 0, 1
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    return dist.get_rank(), dist.get_world_size()


def _mean_over_processes(values: dict) -> dict:
    if not (dist.is_available() and dist.is_initialized()):
        return values
    tensor = torch.tensor(list(values.values()), dtype=torch.float64)
    dist.all_reduce(tensor)
    return dict(zip(values, (tensor / dist.get_world_size()).tolist()))


def _seed_everything(seed: int):
    random.seed(seed)
    torch.manual_seed(seed)


def _mean(values):
    return sum(values) / len(values) if values else float("nan")


def _rounded(value):
    return round(value, 6) if isinstance(value, float) and math.isfinite(value) else value
