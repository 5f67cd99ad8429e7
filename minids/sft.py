"""Supervised fine-tuning (REFERENCE §8): teach a pretrained model the chat template.

Each example is <|bos|><|user|>prompt<|assistant|>answer<|eos|>; the loss counts only the
answer and its <|eos|> (every other target is IGNORE_INDEX), so the model learns to answer,
not to write questions. A batch's examples are packed several to a row, each attending
only to itself (or, packing=False, one to a row, padded). The learning rate
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
from minids.corpus.arithmetic import careless_teacher
from minids.data import (chat_examples, extract_answer, math_eval_set, packed_sft_batch,
                         sft_batch)
from minids.generate import generate, left_padded
from minids.model import MiniDeepSeek
from minids.runs import GracefulStop, RunInterrupted
from minids.schedule import LRSchedule
from minids.tokenizer import Tokenizer
from minids.train import append_log, make_optimizer, optimizer_step, progress_bar, set_lr

RESUME_COMMAND = "python -m minids sft --resume"


@dataclass
class SFTConfig:
    # On the careless demonstrations, 600 steps reach 32.2 % held-out accuracy (500
    # problems, seed 0) and 1,200 reach 41.2 %; GRPO from the 600-step model gained 6.4
    # points in 240 steps, from the 1,200-step model 28.6.
    steps: int = 1200
    batch_size: int = 16
    max_lr: float = 1e-3
    warmup_steps: int = 20
    final_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    # The math demonstrations come from a careless teacher who forgets each carry or
    # borrow with this probability (0: the correct working). SFT imitates the slips;
    # GRPO's answer-checking reward can then take the student beyond its teacher.
    teacher_slip: float = 0.6
    # Several examples to a row, each seeing only itself (data.packed_sft_batch): the same
    # loss as one example a row, without computing the padding.
    packing: bool = True
    eval_problems: int = 200
    checkpoint_every: int = 100
    seed: int = 0
    progress: bool = True

    def __post_init__(self):
        for name in ("steps", "batch_size", "checkpoint_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"SFTConfig: {name} must be an int >= 1, "
                                 f"got {getattr(self, name)!r}")
        if not 0 <= self.teacher_slip < 1:
            raise ValueError(f"SFTConfig: teacher_slip must be in [0, 1), "
                             f"got {self.teacher_slip!r}")

    def schedule(self) -> LRSchedule:
        warmup = min(self.warmup_steps, self.steps)
        return LRSchedule(self.max_lr, warmup, 0, self.steps - warmup, self.final_lr_ratio)


def sft(model: MiniDeepSeek, tokenizer: Tokenizer, config: SFTConfig, out_dir=None,
        resume: bool = False, examples=None, resume_command: str = RESUME_COMMAND
        ) -> MiniDeepSeek:
    """Fine-tune model in place on config.steps batches of chat examples: `examples`
    ((prompt, answer) pairs, at least steps * batch_size), by default the generated ones
    with the careless teacher's math (sft_examples). With out_dir: log every step,
    checkpoint every config.checkpoint_every steps and on Ctrl-C (then RunInterrupted),
    and at the end save the model, tokenizer and held-out accuracy. resume=True continues
    the run saved in out_dir (its weights replace model's)."""
    device = model.embed.weight.device
    examples = sft_examples(config) if examples is None else examples
    if len(examples) < config.steps * config.batch_size:
        raise ValueError(f"sft: {config.steps} steps of {config.batch_size} need "
                         f"{config.steps * config.batch_size} examples, got {len(examples)}")
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
            if config.packing:
                inputs, targets, document_ids = packed_sft_batch(batch, tokenizer, context)
                document_ids = document_ids.to(device)
            else:
                (inputs, targets), document_ids = sft_batch(batch, tokenizer, context), None
            out = model(inputs.to(device), targets.to(device), document_ids=document_ids)
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
                raise RunInterrupted(step + 1, out_dir, resume_command)
    model.eval()
    if out_dir is not None and start < config.steps:
        save_run(model, tokenizer, out_dir, config.steps, config.eval_problems, save)
    return model


def sft_examples(config: SFTConfig, n: int | None = None) -> list[tuple[str, str]]:
    """The run's chat examples (n, default steps * batch_size), math by the careless
    teacher (config.teacher_slip)."""
    teacher = careless_teacher(config.teacher_slip,
                               random.Random(f"minids/sft-teacher/{config.seed}"))
    return chat_examples(random.Random(examples_seed(config)),
                         n or config.steps * config.batch_size, teacher)


def examples_seed(config: SFTConfig) -> str:
    """The seed of the random generator that draws the run's questions."""
    return f"minids/sft/{config.seed}"


def save_run(model, tokenizer, out_dir, step: int, eval_problems: int, save) -> float:
    """Save the final checkpoint (with save(step)) and the tokenizer to out_dir, then log
    the held-out math accuracy."""
    save(step)
    tokenizer.save(Path(out_dir) / "tokenizer.json")
    accuracy, _ = math_accuracy(model, tokenizer, math_eval_set(n=eval_problems))
    append_log(out_dir, {"step": step, "math_accuracy": accuracy})
    return accuracy


@torch.no_grad()
def answer(model, tokenizer, questions: list[str], max_new_tokens=128, batch_size=256,
           **sampling) -> list[str]:
    """The model's replies to questions in the chat template (greedy unless sampling says
    otherwise), decoded batch_size at a time, left-padded (generate.left_padded)."""
    device = model.embed.weight.device
    prompts = [tokenizer.chat_prompt(q) for q in questions]
    replies = []
    for start in range(0, len(prompts), batch_size):
        ids, document_ids = left_padded(prompts[start : start + batch_size], tokenizer.pad_id,
                                        device)
        width = ids.shape[1]
        new = min(max_new_tokens, model.config.max_position_embeddings - width)
        out = generate(model, ids, new, eos_token_id=tokenizer.eos_id,
                       document_ids=document_ids, **sampling)
        replies += [tokenizer.decode(_until_eos(row[width:].tolist(), tokenizer.eos_id),
                                     skip_special_tokens=True) for row in out]
    return replies


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
