"""Held-out math evaluation: greedy accuracy, sampled pass@1 and pass@k, standard errors.

The problems come from `math_eval_set(seed, n)`: computations that no training text
contains. A reply is right when its final integer is the answer (`extract_answer`).

- greedy accuracy: one deterministic reply per problem;
- sampled pass@1: the mean over k sampled replies per problem of "this one is right";
- pass@k: the chance that at least one of k samples is right, estimated without bias from
  n >= k samples with c right as 1 - C(n - c, k) / C(n, k) (Chen et al., 2021).

Each figure comes with its standard error over problems (the standard deviation of the
per-problem scores over sqrt(n)): two models differ by more than chance only when their gap
is several standard errors. `python -m minids eval` prints these figures.
"""

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from minids.corpus.arithmetic import KINDS
from minids.data import extract_answer, math_eval_set
from minids.sft import answer


def pass_at_k(samples: int, correct: int, k: int) -> float:
    """Unbiased pass@k from `samples` replies of which `correct` are right (k <= samples)."""
    if not 1 <= k <= samples:
        raise ValueError(f"pass@k needs 1 <= k <= samples, got k={k}, samples={samples}")
    if samples - correct < k:  # every draw of k holds a right one
        return 1.0
    return 1.0 - math.comb(samples - correct, k) / math.comb(samples, k)


def mean_and_se(scores) -> tuple[float, float]:
    """The mean of per-problem scores and its standard error."""
    scores = torch.as_tensor(scores, dtype=torch.float64)
    if scores.numel() < 2:
        return scores.mean().item(), float("nan")
    return scores.mean().item(), (scores.std() / math.sqrt(scores.numel())).item()


@dataclass
class MathScores:
    """Per-problem results of one evaluation."""
    seed: int
    kinds: list[str]  # each problem's kind ("+", "word two-step", ...)
    greedy: torch.Tensor  # (n,) bool: the greedy reply is right
    sampled: torch.Tensor | None = None  # (n, k) bool: each sampled reply is right
    temperature: float | None = None

    @property
    def n(self) -> int:
        return len(self.kinds)

    def accuracy(self) -> tuple[float, float]:
        """Greedy accuracy and its standard error."""
        return mean_and_se(self.greedy)

    def pass_at(self, k: int) -> tuple[float, float]:
        """Sampled pass@k (k = 1: the mean sampled accuracy) and its standard error."""
        if self.sampled is None:
            raise ValueError("pass@k needs sampled replies (evaluate with samples >= 1)")
        total = self.sampled.shape[1]
        return mean_and_se([pass_at_k(total, int(c), k) for c in self.sampled.sum(dim=1)])

    def save(self, path) -> None:
        """Write the per-problem results as JSON (MathScores.load reads them back)."""
        record = {"seed": self.seed, "kinds": self.kinds, "temperature": self.temperature,
                  "greedy": self.greedy.int().tolist(),
                  "sampled": None if self.sampled is None else self.sampled.int().tolist()}
        Path(path).write_text(json.dumps(record) + "\n")

    @classmethod
    def load(cls, path) -> "MathScores":
        record = json.loads(Path(path).read_text())
        sampled = record["sampled"]
        return cls(record["seed"], record["kinds"], torch.tensor(record["greedy"]).bool(),
                   None if sampled is None else torch.tensor(sampled).bool(),
                   record["temperature"])

    def by_kind(self) -> dict[str, "MathScores"]:
        """The scores of each kind of problem (in the order of KINDS)."""
        rows: dict[str, list[int]] = {kind: [] for kind in KINDS}
        for i, kind in enumerate(self.kinds):
            rows.setdefault(kind, []).append(i)
        rows = {kind: i for kind, i in rows.items() if i}
        return {kind: MathScores(self.seed, [kind] * len(i), self.greedy[i],
                                 None if self.sampled is None else self.sampled[i],
                                 self.temperature)
                for kind, i in rows.items()}


def evaluate_math(model, tokenizer, n: int = 500, seed: int = 0, samples: int = 0,
                  temperature: float = 1.0, max_new_tokens: int = 128) -> MathScores:
    """Score model on the n held-out problems of math_eval_set(seed, n): a greedy reply
    to each, and (samples >= 1) that many replies sampled at temperature, drawn from a
    generator seeded with seed, so the same call gives the same scores."""
    if n < 1 or samples < 0:
        raise ValueError(f"evaluate_math: n must be >= 1 and samples >= 0, got {n}, {samples}")
    if samples and not temperature > 0:
        raise ValueError(f"evaluate_math: sampling needs a temperature > 0, got {temperature}")
    problems = math_eval_set(seed=seed, n=n)
    questions = [p.question for p in problems]

    def right(replies, times):  # (n, times) bool; replies are in problem-major order
        ok = [extract_answer(r) == str(p.answer)
              for p, r in zip((p for p in problems for _ in range(times)), replies)]
        return torch.tensor(ok).view(n, times)

    greedy = right(answer(model, tokenizer, questions, max_new_tokens), 1)[:, 0]
    sampled = None
    if samples:
        device = model.embed.weight.device
        generator = torch.Generator(device=device).manual_seed(seed)
        repeated = [q for q in questions for _ in range(samples)]  # copies share a batch
        sampled = right(answer(model, tokenizer, repeated, max_new_tokens,
                               temperature=temperature, generator=generator), samples)
    return MathScores(seed, [p.kind for p in problems], greedy, sampled,
                      temperature if samples else None)


def report(scores: MathScores, k: int | None = None) -> list[str]:
    """Lines that `python -m minids eval` prints: overall, then by kind."""
    def figure(value, se):
        return f"{value:6.1%} ± {se:4.1%}" if se == se else f"{value:6.1%}        "  # nan: n = 1

    def line(label, s):
        text = f"{label:<16} n={s.n:<4} greedy {figure(*s.accuracy())}"
        if s.sampled is not None:
            for j in sorted({1, k or s.sampled.shape[1]}):
                text += f"   pass@{j} {figure(*s.pass_at(j))}"
        return text

    head = f"math, {scores.n} held-out problems (seed {scores.seed})"
    if scores.sampled is not None:
        head += f"; {scores.sampled.shape[1]} samples each at temperature {scores.temperature:g}"
    return [head, line("all", scores)] + [line(f"  {kind}", s)
                                          for kind, s in scores.by_kind().items()]
