"""Seed sweeps that a chapter reads from data/experiments/ instead of training them live.

    python -m minids.experiments attention         # chapter 03; ~3 minutes, one thread
    python -m minids.experiments moe_granularity   # chapter 04; ~4 minutes, one thread

A sweep trains every contender with every seed, on the CPU at one thread (so the losses
repeat to the last digit on the same machine), and writes one JSON file: the exact model
and training configs, the seeds, and per run the parameter counts, the training loss of
every step and the validation loss of every evaluation. The chapter trains seed 0 of each
contender live and checks that it gives the stored numbers.
"""

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import torch

from minids.config import ModelConfig
from minids.data import load_tokens
from minids.train import TrainConfig, read_log, train

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
SEEDS = (0, 1, 2)
FILES = {"attention": Path("experiments") / "03_attention.json",  # under data/
         "moe_granularity": Path("experiments") / "04_moe_granularity.json"}
CONTENDERS = {"attention": ATTENTION, "moe_granularity": MOE_GRANULARITY}


def train_run(model_config: ModelConfig, train_config: TrainConfig, train_tokens,
              val_tokens) -> dict:
    """One training run on the CPU at one thread. Returns its parameter counts, the
    training loss of every step, [step, loss] of every evaluation, and its seconds."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    start = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory() as run_dir:
            model = train(model_config, train_config, train_tokens, val_tokens, run_dir,
                          device="cpu")
            log = read_log(run_dir)
    finally:
        torch.set_num_threads(threads)
    return {
        "total_params": model.num_params(),
        "active_params": model.num_params(active=True),
        "train_loss": [r["main_loss"] for r in log],
        "val_loss": [[r["step"], r["val_loss"]] for r in log if "val_loss" in r],
        "seconds": round(time.perf_counter() - start, 1),
    }


def contender_config(sweep: str, name: str) -> ModelConfig:
    """The model of contender `name` in `sweep`: the yardstick with its changes."""
    return dataclasses.replace(YARDSTICK, **CONTENDERS[sweep][name])


def run_sweep(sweep: str, data_dir="data", seeds=SEEDS, verbose=True) -> dict:
    """Every contender of `sweep` with every seed: the sweep's whole record."""
    tokens = (load_tokens(data_dir, "train", seq_len=SEQ_LEN),
              load_tokens(data_dir, "val", seq_len=SEQ_LEN))
    runs = {}
    for name in CONTENDERS[sweep]:
        runs[name] = {}
        for seed in seeds:
            training = dataclasses.replace(TRAINING, seed=seed)
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
        "train_config": dataclasses.asdict(TRAINING),
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
    parser.add_argument("sweep", choices=sorted(CONTENDERS))
    parser.add_argument("--data", default="data", help="data folder (default: data)")
    args = parser.parse_args(argv)
    record = run_sweep(args.sweep, args.data)
    path = Path(args.data) / FILES[args.sweep]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
