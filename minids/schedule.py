"""DeepSeek-V3's training schedules (REFERENCE §8; report §4.2), each a small function of
the step (or of the tokens seen):

- LRSchedule: linear warmup, a long constant stretch, a cosine decay to a fraction of the
  peak, then constant tails (V3: 2.2e-4, cosine to 2.2e-5, then 2.2e-5 and 7.3e-6);
- StepSchedule: a value that changes at given steps (V3: the MTP weight λ 0.3 → 0.1, the
  bias update speed γ 0.001 → 0 for the last stretch);
- BatchRamp: the batch size grown linearly with the tokens seen (V3: 3072 → 15360
  sequences over the first 469B tokens).
"""

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class LRSchedule:
    max_lr: float
    warmup_steps: int
    constant_steps: int
    decay_steps: int
    final_ratio: float = 0.1  # the cosine ends at final_ratio * max_lr
    # after the cosine: (steps, ratio) stretches at ratio * max_lr, in order; the last
    # ratio (or final_ratio when there are none) then holds to the end
    tails: tuple[tuple[int, float], ...] = ()
    warmup_from_zero: bool = False  # step 0 at 0 (V3); else at max_lr / warmup_steps

    def __post_init__(self):
        for name in ("warmup_steps", "constant_steps", "decay_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"LRSchedule: {name} must be >= 0, got {getattr(self, name)}")
        if self.max_lr <= 0 or not 0 <= self.final_ratio <= 1:
            raise ValueError(f"LRSchedule: need max_lr > 0 and final_ratio in [0, 1], "
                             f"got {self.max_lr} and {self.final_ratio}")
        object.__setattr__(self, "tails", tuple(tuple(t) for t in self.tails))
        for steps, ratio in self.tails:
            if steps < 0 or not 0 <= ratio <= 1:
                raise ValueError(f"LRSchedule: each tail needs steps >= 0 and a ratio in "
                                 f"[0, 1], got ({steps}, {ratio})")

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.max_lr * (step + (0 if self.warmup_from_zero else 1)) / self.warmup_steps
        step -= self.warmup_steps
        if step < self.constant_steps:
            return self.max_lr
        step -= self.constant_steps
        final = self.final_ratio * self.max_lr
        if step < self.decay_steps:
            cosine = 0.5 * (1 + math.cos(math.pi * step / self.decay_steps))
            return final + (self.max_lr - final) * cosine
        step -= self.decay_steps
        for steps, ratio in self.tails:
            if step < steps:
                return ratio * self.max_lr
            step -= steps
        return self.tails[-1][1] * self.max_lr if self.tails else final


@dataclass(frozen=True)
class StepSchedule:
    """A value that changes at given steps: points ((0, 0.3), (900, 0.1)) is 0.3 for
    steps 0..899 and 0.1 from step 900 on."""

    points: tuple[tuple[int, float], ...]

    def __post_init__(self):
        points = tuple(tuple(p) for p in self.points)
        object.__setattr__(self, "points", points)
        starts = [start for start, _ in points]
        if not points or starts[0] != 0 or starts != sorted(set(starts)):
            raise ValueError(f"StepSchedule: points must start at step 0 and increase, "
                             f"got {points}")

    def __call__(self, step: int) -> float:
        return next(value for start, value in reversed(self.points) if step >= start)


@dataclass(frozen=True)
class BatchRamp:
    """The batch size (sequences) after `tokens` tokens: linear from start to end over the
    first ramp_tokens, then end; rounded down to a multiple of `multiple` (what the
    micro-batches and processes must divide), never below it."""

    start: int
    end: int
    ramp_tokens: int
    multiple: int = 1

    def __post_init__(self):
        if not 0 < self.start <= self.end or self.ramp_tokens < 0 or self.multiple < 1:
            raise ValueError(f"BatchRamp: need 0 < start <= end, ramp_tokens >= 0 and "
                             f"multiple >= 1, got {self}")
        if self.end % self.multiple:
            raise ValueError(f"BatchRamp: end ({self.end}) must be a multiple of "
                             f"{self.multiple}")

    def __call__(self, tokens: int) -> int:
        if tokens >= self.ramp_tokens:
            return self.end
        size = self.start + (self.end - self.start) * tokens / self.ramp_tokens
        return max(self.multiple, int(size) // self.multiple * self.multiple)
