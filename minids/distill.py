"""Distilling reasoning (V3 §5.1): a teacher writes worked solutions, a verifier keeps the
right ones, and a student is fine-tuned on what was kept.

DeepSeek-V3 made the reasoning part of its SFT data with DeepSeek-R1: for each problem the
R1 model sampled responses, and rejection sampling kept the good ones. In miniature: the
teacher is a minids model (the GRPO model), the verifier is the exact-answer rule, and
the student starts from the pretrained model with the SFT recipe; only the math answers
change, from the careless demonstrations to the teacher's accepted traces.
"""

import json
import random
from dataclasses import dataclass
from pathlib import Path

import torch

from minids.corpus.arithmetic import MathItem
from minids.data import chat_examples, extract_answer
from minids.sft import SFTConfig, answer, examples_seed, sft

TRACES_FILE = "traces.jsonl"
RESUME_COMMAND = "python -m minids distill --resume"


@dataclass
class Traces:
    """What rejection sampling kept: one accepted reply per solved problem."""
    accepted: dict[str, str]  # question -> the first right reply the teacher sampled
    problems: int  # problems the teacher was asked
    samples: int  # replies drawn in all

    @property
    def acceptance_rate(self) -> float:
        """The share of problems with at least one accepted reply."""
        return len(self.accepted) / self.problems

    def save(self, path) -> None:
        with open(path, "w") as f:
            f.write(json.dumps({"problems": self.problems, "samples": self.samples}) + "\n")
            for question, reply in self.accepted.items():
                f.write(json.dumps({"question": question, "reply": reply}) + "\n")

    @classmethod
    def load(cls, path) -> "Traces":
        lines = [json.loads(line) for line in Path(path).read_text().splitlines()]
        head, rows = lines[0], lines[1:]
        return cls({r["question"]: r["reply"] for r in rows}, head["problems"], head["samples"])


def rejection_sample(teacher, tokenizer, problems: list[MathItem], samples: int,
                     temperature: float, generator, batch_size: int = 256) -> Traces:
    """Up to `samples` sampled replies of the teacher to each problem; the first whose
    final answer is right is kept. Each round asks again only the problems not yet
    solved, so an easy problem costs one sample and a hard one up to `samples`."""
    accepted, drawn = {}, 0
    for _ in range(samples):
        open_problems = [p for p in problems if p.question not in accepted]
        if not open_problems:
            break
        replies = answer(teacher, tokenizer, [p.question for p in open_problems],
                         batch_size=batch_size, temperature=temperature, generator=generator)
        drawn += len(open_problems)
        for problem, reply in zip(open_problems, replies):
            if extract_answer(reply) == str(problem.answer):
                accepted[problem.question] = reply
    return Traces(accepted, len(set(p.question for p in problems)), drawn)


def math_items(rng: random.Random, n: int) -> list[MathItem]:
    """The math problems among chat_examples(rng, n), in order."""
    items = []
    chat_examples(rng, n, solve=lambda item: items.append(item) or item.solution)
    return items


def distilled_examples(rng_seed: str, n: int, traces: Traces) -> list[tuple[str, str]]:
    """chat_examples with each math answer replaced by the teacher's accepted trace;
    a math problem without one is left out. Returns up to n examples."""
    drop = object()
    examples = chat_examples(random.Random(rng_seed), n,
                             solve=lambda item: traces.accepted.get(item.question, drop))
    return [(q, a) for q, a in examples if a is not drop]


@torch.no_grad()
def teacher_traces(teacher, tokenizer, rng_seed: str, n: int, samples: int,
                   temperature: float, seed: int) -> Traces:
    """Rejection-sample the teacher on the math problems of chat_examples(rng_seed, n)."""
    problems = math_items(random.Random(rng_seed), n)
    generator = torch.Generator(device=teacher.embed.weight.device).manual_seed(seed)
    return rejection_sample(teacher.eval(), tokenizer, problems, samples, temperature, generator)


# Over-draw the examples by this factor: the problems the teacher never solved are left
# out, and the student still gets steps * batch_size examples.
SPARE = 1.3


def distill(student, tokenizer, config: SFTConfig, out_dir=None, resume: bool = False,
            teacher=None, samples: int = 4, temperature: float = 0.7):
    """Fine-tune student with the SFT recipe (config) on the teacher's accepted traces.
    The traces are sampled first (seeded by config.seed) and saved in out_dir as
    traces.jsonl; resume=True reads them back and continues the fine-tuning."""
    n = config.steps * config.batch_size
    drawn = int(n * SPARE)
    path = None if out_dir is None else Path(out_dir) / TRACES_FILE
    if resume:
        traces = Traces.load(path)
    else:
        if teacher is None:
            raise ValueError("distill needs a teacher model to sample traces from")
        traces = teacher_traces(teacher, tokenizer, examples_seed(config), drawn, samples,
                                temperature, config.seed)
        if path is not None:
            traces.save(path)
    examples = distilled_examples(examples_seed(config), drawn, traces)
    if len(examples) < n:
        raise ValueError(f"the teacher solved too few problems: {len(examples)} examples "
                         f"for {n} (acceptance {traces.acceptance_rate:.0%})")
    return sft(student, tokenizer, config, out_dir, resume, examples=examples[:n],
               resume_command=RESUME_COMMAND)


def token_distillation_loss(student_logits, teacher_logits, mask):
    """Token-level distillation: KL(teacher || student) at each position, summed over the
    vocabulary, averaged over the positions where mask (N, T) is 1. Logits (N, T, V).
    Sequence-level distillation (what `distill` does, and V3 did with R1's samples) trains
    on the teacher's sampled tokens instead: cross-entropy against one token a position."""
    log_student = student_logits.float().log_softmax(dim=-1)
    log_teacher = teacher_logits.float().log_softmax(dim=-1)
    per_token = (log_teacher.exp() * (log_teacher - log_student)).sum(dim=-1)  # (N, T)
    mask = mask.to(per_token.dtype)
    return (per_token * mask).sum() / mask.sum().clamp(min=1)
