"""Long context (chapter 09): a model trained at 256 tokens, extended four times with
YaRN in two stages, as DeepSeek-V3 extends 4K to 32K and then 128K.

V3 (report §4.3) runs two stages of 1,000 steps, both with YaRN at scale s = 40: one on
32K-token sequences, one on 128K. The book keeps the ratios at 1/16 of the lengths: a
base model at 256 tokens, then YaRN with s = 4 (1,024 / 256), a stage on 512-token rows
and a stage on 1,024-token rows.

A passkey test needs a model that can look back and copy, and the book's model cannot
(its 350 steps grew no induction heads). So the base model trains on the corpus plus two
kinds of rows that teach it to: passkey documents, and lists of five-digit keys written
twice (`minids.corpus.passkey`). Each such row starts with one document sized to fill
most of the row; stories fill the rest. The stages train on the same mixture, longer.

    python -m minids.long        # data/long/{base,stage1,stage2}, about an hour on 2 cores

A stage whose folder holds its finished run is skipped; an interrupted one resumes.
Every 100 steps a stage also scores retrieval (`retrieval`) into retrieval.jsonl.
"""

import argparse
import dataclasses
import json
import random
from dataclasses import dataclass
from pathlib import Path

import torch

from minids import checkpoint, runs
from minids.checkpoint import CONFIG_FILE, WEIGHTS_FILE
from minids.config import ModelConfig
from minids.corpus.passkey import copy_document, passkey_document
from minids.corpus.stories import story
from minids.data import load_tokens
from minids.model import MiniDeepSeek
from minids.tokenizer import Tokenizer
from minids.train import TrainConfig, Trainer, read_log

ORIGINAL_CONTEXT = 256  # the base model's training length
RETRIEVAL_FILE = "retrieval.jsonl"
FACTOR = 4  # YaRN's scale s: 1,024 / 256 (V3: 40, for 128K / 4K with room to spare)
YARN = {"type": "yarn", "factor": float(FACTOR),
        "original_max_position_embeddings": ORIGINAL_CONTEXT,
        "beta_fast": 32.0, "beta_slow": 1.0}  # V3's alpha = 1 and beta = 32
# The book model's depth at half its width, smaller experts, no MTP module: 2.7M
# parameters, 5.4 MB a stage in bf16. Depth matters: an induction head needs a
# previous-token head in an earlier layer, and layer 0 grows none here (measured on the
# book model and on a 2-layer version of this one).
LONG_MODEL = dict(hidden_size=128, intermediate_size=384, num_hidden_layers=4,
                  q_lora_rank=64, moe_intermediate_size=64, num_mtp_layers=0,
                  max_position_embeddings=ORIGINAL_CONTEXT)


@dataclass(frozen=True)
class Stage:
    name: str
    seq_len: int  # the rows' length, and the model's context
    steps: int
    batch_size: int  # rows a step
    max_lr: float
    rope_scaling: dict | None
    special_rows: int  # passkey rows, and as many copy rows, beside the corpus' rows


# The base model learns to retrieve between steps 2,500 and 2,600 (measured: passkey at
# 256 tokens 0 % at step 2,500, 86 % at 2,600, 100 % from 2,800, when an induction head
# forms); 5,000 steps let it settle before the learning rate decays over the last 1,500.
STAGES = (
    Stage("base", ORIGINAL_CONTEXT, 5000, 16, 3e-3, None, 20000),
    Stage("stage1", 2 * ORIGINAL_CONTEXT, 200, 16, 3e-4, YARN, 1600),
    Stage("stage2", 4 * ORIGINAL_CONTEXT, 200, 8, 3e-4, YARN, 800),
)


def model_config(stage: Stage, vocab_size: int) -> ModelConfig:
    return ModelConfig.preset("book", **{**LONG_MODEL, "vocab_size": vocab_size,
                                         "max_position_embeddings": stage.seq_len,
                                         "rope_scaling": stage.rope_scaling})


def train_config(stage: Stage) -> TrainConfig:
    """The base run warms up and decays like the book's; a stage starts from trained
    weights, so it warms up briefly to a tenth of the rate."""
    return TrainConfig(steps=stage.steps, batch_size=stage.batch_size, max_lr=stage.max_lr,
                       warmup_steps=50 if stage.rope_scaling is None else 10,
                       eval_every=100, checkpoint_every=100, progress=False)


def stretched(model: MiniDeepSeek, kind: str | None, context: int = FACTOR * ORIGINAL_CONTEXT,
              factor: float = FACTOR) -> MiniDeepSeek:
    """A copy of model (trained at ORIGINAL_CONTEXT) that takes `context` positions, its
    RoPE stretched `factor` times by `kind`: "linear" (position interpolation), "ntk",
    "yarn", or None (plain RoPE, run past the length it was trained on)."""
    scaling = None if kind is None else {"type": kind, "factor": float(factor),
                                         "original_max_position_embeddings": ORIGINAL_CONTEXT}
    config = dataclasses.replace(model.config, max_position_embeddings=context,
                                 rope_scaling=scaling)
    copy = MiniDeepSeek(config).to(model.embed.weight.device)
    copy.load_state_dict(model.state_dict())  # the RoPE tables are not in it: rebuilt
    return copy.eval()


def document_row(tokenizer: Tokenizer, seq_len: int, rng: random.Random, kind: str) -> list[int]:
    """seq_len + 1 token ids: <|bos|>, one document of `kind`, <|eos|>, then stories.
    "passkey": a haystack of random size that fits the row, so the key lies anywhere from
    a few to seq_len tokens back; "copy": 2 to (seq_len - 4) // 12 keys, written twice
    (a fixed count would let the model copy from a fixed distance back, which fails on
    a passkey; a varied one makes it look for the matching digits)."""
    if kind == "copy":
        ids = tokenizer.encode(copy_document(rng, rng.randint(2, (seq_len - 4) // 12)),
                               bos=True)
    elif kind == "passkey":
        ids = _passkey_ids(tokenizer, seq_len, rng)
    else:
        raise ValueError(f"document_row: kind must be 'copy' or 'passkey', got {kind!r}")
    ids.append(tokenizer.eos_id)
    while len(ids) < seq_len + 1:
        ids += [*tokenizer.encode(story(rng), bos=True), tokenizer.eos_id]
    return ids[: seq_len + 1]


def _passkey_ids(tokenizer: Tokenizer, seq_len: int, rng: random.Random) -> list[int]:
    """A <|bos|>-led passkey document of at most seq_len tokens, with a haystack of random
    size: the key lies anywhere from a few to seq_len tokens before its question."""
    sentences = rng.randint(3, seq_len // 13 - 4)
    while True:
        ids = tokenizer.encode(passkey_document(rng, sentences)[0], bos=True)
        if len(ids) <= seq_len:
            return ids
        sentences = max(1, sentences - 2)


def stage_rows(stage: Stage, tokenizer: Tokenizer, data_dir="data", seed: int = 0):
    """(train, val) rows of the stage: the corpus re-cut to seq_len, plus special_rows
    passkey and special_rows copy rows (training only)."""
    rng = random.Random(f"minids/long/{stage.name}/{seed}")
    special = [document_row(tokenizer, stage.seq_len, rng, kind)
               for kind in ("passkey", "copy") for _ in range(stage.special_rows)]
    train = torch.cat([load_tokens(data_dir, "train", stage.seq_len), torch.tensor(special)])
    return train, load_tokens(data_dir, "val", stage.seq_len)


@torch.no_grad()
def retrieval(model: MiniDeepSeek, tokenizer: Tokenizer, seq_len: int) -> dict:
    """Two fixed probes of looking back, at the stage's length: the share of tokens
    predicted right on 32 copy rows (the second copy of a key list can only be predicted
    by finding the first), and the share of 50 passkey documents (the key 3 to seq_len
    tokens back) whose five key digits the model predicts in full (teacher forcing)."""
    was_training = model.training
    model.eval()
    device = model.embed.weight.device
    rng = random.Random(7)
    rows = torch.tensor([document_row(tokenizer, seq_len, rng, "copy") for _ in range(32)],
                        device=device)  # (32, seq_len + 1)
    copied = (model(rows[:, :-1]).logits.argmax(-1) == rows[:, 1:]).float().mean().item()
    rng, found = random.Random(123), 0
    for _ in range(50):
        ids = torch.tensor([_passkey_ids(tokenizer, seq_len, rng)],
                           device=device)  # (1, n): "... The pass key is KEY."
        predicted = model(ids[:, :-1]).logits.argmax(-1)  # (1, n - 1)
        key = slice(ids.shape[1] - 7, ids.shape[1] - 2)  # the digits, as next tokens
        found += bool((predicted[:, key] == ids[:, 1:][:, key]).all())
    model.train(was_training)
    return {"copy_accuracy": round(copied, 3), "passkey": found / 50}


def finished(folder: Path, steps: int) -> bool:
    """Whether folder holds a run that reached `steps` (its weights and its log)."""
    if not (folder / WEIGHTS_FILE).is_file() or not (folder / CONFIG_FILE).is_file():
        return False
    log = read_log(folder) if (folder / "log.jsonl").is_file() else []
    return bool(log) and log[-1]["step"] >= steps


def run_stage(stage: Stage, out: Path, tokenizer: Tokenizer, data_dir="data",
              init_from: Path | None = None, device="cpu"):
    """Train one stage into out/stage.name (resuming it if it was interrupted), then drop
    its optimizer state: the folder keeps the weights, config, tokenizer and log."""
    folder = out / stage.name
    if finished(folder, stage.steps):
        print(f"{stage.name}: done already ({folder})")
        _tidy(folder, tokenizer)
        return
    train, val = stage_rows(stage, tokenizer, data_dir)
    trainer = Trainer(model_config(stage, tokenizer.vocab_size), train_config(stage), train,
                      val, folder, device, resume=runs.saved_step(folder) is not None,
                      init_from=init_from)
    start = (f"resuming at step {trainer.step}" if trainer.step
             else f"from {init_from or 'scratch'}")
    print(f"{stage.name}: {stage.steps} steps of {stage.batch_size} rows x {stage.seq_len} "
          f"tokens, {start}")
    for step in range(100, stage.steps + 1, 100):  # a retrieval record every 100 steps
        if step > trainer.step:
            trainer.run(until_step=step)
            record = {"step": step, **retrieval(trainer.model, tokenizer, stage.seq_len)}
            with open(folder / RETRIEVAL_FILE, "a") as file:
                file.write(json.dumps(record) + "\n")
    trainer.run()
    _tidy(folder, tokenizer)
    print(f"{stage.name}: saved {folder}")


def _tidy(folder: Path, tokenizer: Tokenizer):
    """A finished stage keeps its weights (in bf16, as `export` writes them: the next
    stage starts from these), config, log and tokenizer; the optimizer state goes."""
    checkpoint.save(checkpoint.load(folder), folder, dtype=torch.bfloat16)
    tokenizer.save(folder / "tokenizer.json")
    for name in (runs.STATE_TENSORS, runs.STATE_JSON):
        (folder / name).unlink(missing_ok=True)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m minids.long", description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data", help="data folder (default: data)")
    parser.add_argument("--out", default="data/long", help="where the stages go")
    parser.add_argument("--device", default="cpu", help="cpu (default) | cuda | mps | auto")
    args = parser.parse_args(argv)
    out, tokenizer = Path(args.out), Tokenizer.load(Path(args.data) / "tokenizer.json")
    previous = None
    for stage in STAGES:
        run_stage(stage, out, tokenizer, args.data, previous, args.device)
        previous = out / stage.name


if __name__ == "__main__":
    main()
