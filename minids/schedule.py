"""DeepSeek-V3's learning-rate shape (REFERENCE §8): linear warmup, a long constant
stretch, a cosine decay to a fraction of the peak, then a constant tail."""

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class LRSchedule:
    max_lr: float
    warmup_steps: int
    constant_steps: int
    decay_steps: int
    final_ratio: float = 0.1  # the tail runs at final_ratio * max_lr

    def __post_init__(self):
        for name in ("warmup_steps", "constant_steps", "decay_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"LRSchedule: {name} must be >= 0, got {getattr(self, name)}")
        if self.max_lr <= 0 or not 0 <= self.final_ratio <= 1:
            raise ValueError(f"LRSchedule: need max_lr > 0 and final_ratio in [0, 1], "
                             f"got {self.max_lr} and {self.final_ratio}")

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.max_lr * (step + 1) / self.warmup_steps
        step -= self.warmup_steps
        if step < self.constant_steps:
            return self.max_lr
        step -= self.constant_steps
        final = self.final_ratio * self.max_lr
        if step < self.decay_steps:
            cosine = 0.5 * (1 + math.cos(math.pi * step / self.decay_steps))
            return final + (self.max_lr - final) * cosine
        return final
