"""Seed sweeps that a chapter reads from data/experiments/ instead of training them live.

    python -m minids.experiments attention         # chapter 03; ~3 minutes, one thread
    python -m minids.experiments moe_granularity   # chapter 04; ~15 minutes, one thread
    python -m minids.experiments load_balancing    # chapter 05; ~3 minutes, one thread
    python -m minids.experiments mtp               # chapter 06; ~2 minutes, one thread
    python -m minids.experiments sizes             # chapter 07; ~6 minutes, one thread
    python -m minids.experiments precision         # chapter 08; FP32, BF16, emulated FP8

A sweep trains every contender with every seed, on the CPU at one thread (so the losses
repeat to the last digit on the same machine), and writes one JSON file: the exact model
and training configs, the seeds, and per run what the chapter reads (the losses; for
load_balancing, the loads and MaxVio too). The chapter trains seed 0 of each
contender live and checks that it gives the stored numbers.
"""

import argparse
import dataclasses
import json
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from minids import seed as minids_seed
from minids.config import ModelConfig
from minids.data import Batches, load_tokens
from minids.model import MiniDeepSeek
from minids.moe import batch_balance_loss, max_violation
from minids.train import TrainConfig, make_optimizer, optimizer_step, read_log, set_lr, train

# Chapter 02's yardstick and its training run, field for field.
YARDSTICK = ModelConfig.preset(
    "book", hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
    intermediate_size=384, attention="gqa", q_lora_rank=None,
    n_routed_experts=0, num_mtp_layers=0)
TRAINING = TrainConfig(steps=120, batch_size=8, warmup_steps=20, eval_every=20,
                       progress=False)
SEQ_LEN = 128

# Chapter 03: the yardstick's attention swapped, nothing else.
ATTENTION = {
    "MHA": dict(),
    "GQA": dict(num_key_value_heads=2),
    "MLA": dict(attention="mla", kv_lora_rank=32, qk_nope_head_dim=32, qk_rope_head_dim=16,
                v_head_dim=32),
}

# Chapter 04: the yardstick's FFN, in both blocks, swapped for MoE layers of the same
# active width (384) and the same total width (4 x 384 = 1536). Each step down the list
# changes one thing: coarse -> fine cuts every expert into 4 (and picks 4 times as many);
# fine -> DeepSeekMoE makes one of the 8 active slots a shared expert.
_MOE = dict(first_k_dense_replace=0, n_group=1, topk_group=1)  # MoE in both blocks
MOE_GRANULARITY = {
    "dense": dict(),
    "coarse": dict(n_routed_experts=8, moe_intermediate_size=192, n_shared_experts=0,
                   num_experts_per_tok=2, **_MOE),
    "fine": dict(n_routed_experts=32, moe_intermediate_size=48, n_shared_experts=0,
                 num_experts_per_tok=8, **_MOE),
    "DeepSeekMoE": dict(n_routed_experts=31, moe_intermediate_size=48, n_shared_experts=1,
                        num_experts_per_tok=7, **_MOE),
}
# Chapter 06: the yardstick trained with and without one MTP module (lambda = 0.3).
MTP = {
    "without MTP": dict(),
    "with MTP": dict(num_mtp_layers=1, mtp_loss_weight=0.3),
}

# Chapter 07: the yardstick at four widths (two blocks; 4 heads; FFN 3 x width), trained
# on the same tokens: validation loss against parameters and against training compute.
# The widest also with a third of the learning rate (a wider model wants a smaller one).
SIZES = {f"width {h}": dict(hidden_size=h, intermediate_size=3 * h) for h in (32, 64, 128, 256)}
SIZES["width 256, lr 1e-3"] = SIZES["width 256"]

# Chapter 08: the yardstick trained in three precisions; here the training config
# changes, not the model.
PRECISION = {"FP32": dict(), "BF16": dict(), "FP8": dict()}
TRAINING_CHANGES = {"sizes": {"width 256, lr 1e-3": dict(max_lr=1e-3)},
                    "precision": {"FP32": dict(), "BF16": dict(precision="bf16"),
                                  "FP8": dict(fp8=True)}}

# Chapter 05: one MoE layer of 16 experts (top 4) balanced three ways. Each contender:
# (bias update speed gamma, sequence-wise loss alpha, batch-wise auxiliary loss alpha).
BALANCING = {
    "no balancing": (0.0, 0.0, 0.0),
    "auxiliary loss": (0.0, 0.0, 0.01),
    "bias + seq. loss": (0.01, 1e-4, 0.0),
}
BALANCE_STEPS, BALANCE_BATCH, BALANCE_VAL_ROWS = 150, 8, 256
SEEDS = (0, 1, 2)
FILES = {"attention": Path("experiments") / "03_attention.json",  # under data/
         "moe_granularity": Path("experiments") / "04_moe_granularity.json",
         "load_balancing": Path("experiments") / "05_load_balancing.json",
         "mtp": Path("experiments") / "06_mtp.json",
         "sizes": Path("experiments") / "07_sizes.json",
         "precision": Path("experiments") / "08_precision.json"}
CONTENDERS = {"attention": ATTENTION, "moe_granularity": MOE_GRANULARITY, "mtp": MTP,
              "sizes": SIZES, "precision": PRECISION}
# Chapter 04's experts need longer than the yardstick's 120 steps to pay off: the sweep
# trains 480 steps (same warmup, cosine over the whole run) and validates every 60.
TRAININGS = {"attention": TRAINING, "mtp": TRAINING, "sizes": TRAINING,
             "precision": TRAINING, "moe_granularity": dataclasses.replace(TRAINING, steps=480, eval_every=60)}


@contextmanager
def one_thread():
    """Run the block on one CPU thread (so a sweep repeats to the last digit), then
    restore the thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def train_run(model_config: ModelConfig, train_config: TrainConfig, train_tokens,
              val_tokens) -> dict:
    """One training run on the CPU at one thread. Returns its parameter counts, the
    training loss of every step, [step, loss] of every evaluation, and its seconds."""
    start = time.perf_counter()
    with one_thread(), tempfile.TemporaryDirectory() as run_dir:
        model = train(model_config, train_config, train_tokens, val_tokens, run_dir,
                      device="cpu")
        log = read_log(run_dir)
    return {
        "total_params": model.num_params(),
        "active_params": model.num_params(active=True),
        "train_loss": [r["main_loss"] for r in log],
        "val_loss": [[r["step"], r["val_loss"]] for r in log if "val_loss" in r],
        "seconds": round(time.perf_counter() - start, 1),
    }


def balance_config(gamma: float, alpha: float) -> ModelConfig:
    """Chapter 05's model: 2 blocks, the second a MoE layer of 16 experts, top 4."""
    return ModelConfig.preset(
        "book", hidden_size=128, intermediate_size=384, num_hidden_layers=2,
        num_attention_heads=4, q_lora_rank=64, kv_lora_rank=32, qk_nope_head_dim=16,
        qk_rope_head_dim=16, v_head_dim=16, moe_intermediate_size=64,
        n_routed_experts=16, num_experts_per_tok=4, n_group=1, topk_group=1,
        first_k_dense_replace=1, num_mtp_layers=0, max_position_embeddings=SEQ_LEN,
        bias_update_speed=gamma, balance_loss_alpha=alpha)


@dataclass
class BalanceRun:
    loads: torch.Tensor  # (steps, experts): tokens per expert in each training step
    biases: torch.Tensor  # (steps, experts): the bias after each step's update
    val_loss: float  # next-token loss on held-out rows
    val_load: torch.Tensor  # (experts,): tokens per expert over the held-out rows


def balance_run(name, seed, train_rows, val_rows, progress=None) -> BalanceRun:
    """Train chapter 05's model with balancing `name` (a key of BALANCING) and `seed`
    (initial weights and batch order), recording what its router does at every step.
    progress: wraps the range of steps (e.g. a progress bar)."""
    gamma, alpha, batch_alpha = BALANCING[name]
    minids_seed(seed)
    model = MiniDeepSeek(balance_config(gamma, alpha))
    optimizer = make_optimizer(model)
    schedule = TrainConfig(steps=BALANCE_STEPS, batch_size=BALANCE_BATCH,
                           warmup_steps=20).schedule()
    batches = Batches(train_rows, BALANCE_BATCH, seed=seed)
    router = model.routers()[0]  # the one MoE layer
    scores = []  # for the batch-wise loss: the router's affinities (N, E) of the step
    if batch_alpha:
        hook = router.register_forward_hook(lambda module, args, out: scores.append(out[2]))
    loads, biases = [], []
    for step in (progress or iter)(range(BALANCE_STEPS)):
        model.train()
        set_lr(optimizer, schedule(step))
        inputs, targets = batches.next_batch()  # (BALANCE_BATCH, SEQ_LEN) each
        scores.clear()
        loss = model(inputs, targets).loss  # main loss + alpha * sequence-wise L_Bal
        if batch_alpha:
            loss = loss + batch_balance_loss(scores[0], router.top_k, batch_alpha)
        loss.backward()
        loads.append(router.load.clone())  # read before the update zeroes it
        optimizer_step(model, optimizer, grad_clip=1.0)  # AdamW, then the sign rule
        biases.append(router.bias.clone())
    if batch_alpha:
        hook.remove()
    model.eval()
    losses, val_load = [], torch.zeros_like(router.last_load)
    with torch.no_grad():
        for rows in val_rows.split(32):
            losses.append(model(rows[:, :-1], rows[:, 1:]).main_loss.item())
            val_load += router.last_load
    return BalanceRun(torch.stack(loads), torch.stack(biases), sum(losses) / len(losses),
                      val_load)


def balance_sweep(data_dir="data", seeds=SEEDS, verbose=True) -> dict:
    """Chapter 05's three runs with every seed: validation loss and load, MaxVio per step."""
    train_rows = load_tokens(data_dir, "train", seq_len=SEQ_LEN)
    val_rows = load_tokens(data_dir, "val", seq_len=SEQ_LEN)[:BALANCE_VAL_ROWS]
    runs = {}
    for name in BALANCING:
        runs[name] = {}
        for seed in seeds:
            with one_thread():
                run = balance_run(name, seed, train_rows, val_rows)
            runs[name][str(seed)] = {
                "val_loss": run.val_loss, "val_load": run.val_load.tolist(),
                "max_vio": [max_violation(load) for load in run.loads]}
            if verbose:
                print(f"{name:18s} seed {seed}: validation {run.val_loss:.4f}, MaxVio "
                      f"{max_violation(run.val_load):.2f}", flush=True)
    return {"command": "python -m minids.experiments load_balancing",
            "device": "cpu, 1 thread", "torch": torch.__version__, "seq_len": SEQ_LEN,
            "balancing": BALANCING, "steps": BALANCE_STEPS, "batch_size": BALANCE_BATCH,
            "seeds": list(seeds), "runs": runs}


def contender_config(sweep: str, name: str) -> ModelConfig:
    """The model of contender `name` in `sweep`: the yardstick with its changes."""
    return dataclasses.replace(YARDSTICK, **CONTENDERS[sweep][name])


def contender_training(sweep: str, name: str, seed: int) -> TrainConfig:
    """The training run of contender `name` in `sweep` with `seed`."""
    changes = TRAINING_CHANGES.get(sweep, {}).get(name, {})
    return dataclasses.replace(TRAININGS[sweep], seed=seed, **changes)


def run_sweep(sweep: str, data_dir="data", seeds=SEEDS, verbose=True) -> dict:
    """Every contender of `sweep` with every seed: the sweep's whole record."""
    tokens = (load_tokens(data_dir, "train", seq_len=SEQ_LEN),
              load_tokens(data_dir, "val", seq_len=SEQ_LEN))
    runs = {}
    for name in CONTENDERS[sweep]:
        runs[name] = {}
        for seed in seeds:
            training = contender_training(sweep, name, seed)
            run = train_run(contender_config(sweep, name), training, *tokens)
            runs[name][str(seed)] = run
            if verbose:
                print(f"{name:12s} seed {seed}: validation {run['val_loss'][-1][1]:.4f} "
                      f"({run['seconds']:.0f} s)", flush=True)
    return {
        "command": f"python -m minids.experiments {sweep}",
        "device": "cpu, 1 thread",
        "torch": torch.__version__,
        "seq_len": SEQ_LEN,
        "model_configs": {name: contender_config(sweep, name).to_dict()
                          for name in CONTENDERS[sweep]},
        "train_config": dataclasses.asdict(TRAININGS[sweep]),
        "train_changes": TRAINING_CHANGES.get(sweep, {}),
        "seeds": list(seeds),
        "runs": runs,
    }


def load(sweep: str, data_dir="data") -> dict:
    """A stored sweep, e.g. load("attention"); a clear error if it was never run."""
    path = Path(data_dir) / FILES[sweep]
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: make it with "
                                f"python -m minids.experiments {sweep}")
    return json.loads(path.read_text())


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m minids.experiments",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("sweep", choices=sorted(FILES))
    parser.add_argument("--data", default="data", help="data folder (default: data)")
    args = parser.parse_args(argv)
    record = (balance_sweep(args.data) if args.sweep == "load_balancing"
              else run_sweep(args.sweep, args.data))
    path = Path(args.data) / FILES[args.sweep]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
