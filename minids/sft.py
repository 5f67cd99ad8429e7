"""Supervised fine-tuning (REFERENCE §8): teach a pretrained model the chat template.

Each example is <|bos|><|user|>prompt<|assistant|>answer<|eos|>; the loss counts only the
answer and its <|eos|> (every other target is IGNORE_INDEX), so the model learns to answer,
not to write questions. Examples are padded per batch, not packed. The learning rate
warms up, then decays by cosine to a tenth, as V3's SFT does (5e-6 -> 1e-6 there).
Accuracy is exact match of the final integer on held-out math problems, decoded greedily.
With a run folder, a checkpoint every `checkpoint_every` steps (and on Ctrl-C) lets an
interrupted run resume exactly (minids.runs).
"""

import dataclasses
import random
from dataclasses import dataclass
from pathlib import Path

import torch

from minids import runs
from minids.data import chat_examples, extract_answer, math_eval_set, sft_batch
from minids.generate import generate
from minids.model import MiniDeepSeek
from minids.runs import GracefulStop, RunInterrupted
from minids.schedule import LRSchedule
from minids.tokenizer import Tokenizer
from minids.train import append_log, make_optimizer, optimizer_step, progress_bar, set_lr

RESUME_COMMAND = "python -m minids sft --resume"


@dataclass
class SFTConfig:
    # 300 steps left the book model's one-digit facts half learned (13.5 % held-out
    # accuracy, loss still falling); 600 reach 42.5 %.
    steps: int = 600
    batch_size: int = 16
    max_lr: float = 1e-3
    warmup_steps: int = 20
    final_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_problems: int = 200
    checkpoint_every: int = 100
    seed: int = 0
    progress: bool = True

    def __post_init__(self):
        for name in ("steps", "batch_size", "checkpoint_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"SFTConfig: {name} must be an int >= 1, "
                                 f"got {getattr(self, name)!r}")

    def schedule(self) -> LRSchedule:
        warmup = min(self.warmup_steps, self.steps)
        return LRSchedule(self.max_lr, warmup, 0, self.steps - warmup, self.final_lr_ratio)


def sft(model: MiniDeepSeek, tokenizer: Tokenizer, config: SFTConfig, out_dir=None,
        resume: bool = False) -> MiniDeepSeek:
    """Fine-tune model in place on config.steps batches of generated chat examples. With
    out_dir: log every step, checkpoint every config.checkpoint_every steps and on Ctrl-C
    (then RunInterrupted), and at the end save the model, tokenizer and held-out accuracy.
    resume=True continues the run saved in out_dir (its weights replace model's)."""
    device = model.embed.weight.device
    examples = chat_examples(random.Random(f"minids/sft/{config.seed}"),
                             config.steps * config.batch_size)
    optimizer = make_optimizer(model, config.weight_decay)
    schedule = config.schedule()
    context = model.config.max_position_embeddings
    start = runs.restore(out_dir, model, optimizer)[0]["step"] if resume else 0

    def save(step):
        runs.save_checkpoint(out_dir, model, step, {}, {"sft_config": dataclasses.asdict(config)},
                             optimizer)

    steps = progress_bar(range(start, config.steps), config.progress, desc="sft",
                         total=config.steps, initial=start)
    with GracefulStop(enabled=out_dir is not None) as interrupt:
        for step in steps:
            model.train()
            set_lr(optimizer, schedule(step))
            batch = examples[step * config.batch_size : (step + 1) * config.batch_size]
            inputs, targets = sft_batch(batch, tokenizer, max_len=context)
            out = model(inputs.to(device), targets.to(device))
            out.loss.backward()
            grad_norm, maxvio = optimizer_step(model, optimizer, config.grad_clip)
            if out_dir is None:
                continue
            append_log(out_dir, {"step": step + 1, "loss": out.loss.item(),
                                 "main_loss": out.main_loss.item(), "lr": schedule(step),
                                 "grad_norm": grad_norm, "maxvio": maxvio})
            stopping = interrupt.requested  # read once: a signal after this waits a step
            if step + 1 < config.steps and ((step + 1) % config.checkpoint_every == 0
                                            or stopping):
                save(step + 1)
            if stopping and step + 1 < config.steps:
                raise RunInterrupted(step + 1, out_dir, RESUME_COMMAND)
    model.eval()
    if out_dir is not None and start < config.steps:
        save_run(model, tokenizer, out_dir, config.steps, config.eval_problems, save)
    return model


def save_run(model, tokenizer, out_dir, step: int, eval_problems: int, save) -> float:
    """Save the final checkpoint (with save(step)) and the tokenizer to out_dir, then log
    the held-out math accuracy."""
    save(step)
    tokenizer.save(Path(out_dir) / "tokenizer.json")
    accuracy, _ = math_accuracy(model, tokenizer, math_eval_set(n=eval_problems))
    append_log(out_dir, {"step": step, "math_accuracy": accuracy})
    return accuracy


@torch.no_grad()
def answer(model, tokenizer, questions: list[str], max_new_tokens=128, **sampling) -> list[str]:
    """The model's replies to questions in the chat template (greedy unless sampling says
    otherwise). Questions of the same token length are decoded as one batch."""
    device = model.embed.weight.device
    prompts = [tokenizer.chat_prompt(q) for q in questions]
    replies = [""] * len(questions)
    for length, indices in indices_by_length(prompts).items():
        ids = torch.tensor([prompts[i] for i in indices], device=device)
        new = min(max_new_tokens, model.config.max_position_embeddings - length)
        out = generate(model, ids, new, eos_token_id=tokenizer.eos_id, **sampling)
        for row, i in enumerate(indices):
            replies[i] = tokenizer.decode(_until_eos(out[row, length:].tolist(), tokenizer.eos_id),
                                          skip_special_tokens=True)
    return replies


def indices_by_length(prompts: list[list[int]]) -> dict[int, list[int]]:
    """{token length: indices of the prompts that long}: prompts of one length decode as
    one batch, without padding."""
    groups: dict[int, list[int]] = {}
    for i, prompt in enumerate(prompts):
        groups.setdefault(len(prompt), []).append(i)
    return groups


def _until_eos(ids: list[int], eos_id: int) -> list[int]:
    return ids[: ids.index(eos_id)] if eos_id in ids else ids


def math_accuracy(model, tokenizer, problems, max_new_tokens=128, **sampling):
    """Exact-match accuracy of the final integer over math problems (MathItem list),
    greedy unless sampling (temperature, top_k, top_p, generator) says otherwise;
    returns (accuracy, [(question, reply, correct)])."""
    replies = answer(model, tokenizer, [p.question for p in problems], max_new_tokens, **sampling)
    results = [(p.question, reply, extract_answer(reply) == str(p.answer))
               for p, reply in zip(problems, replies)]
    return sum(ok for _, _, ok in results) / len(results), results
