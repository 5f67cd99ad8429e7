"""Chapter 07's exercises: V3's learning-rate schedule, the batch-size ramp, where the data
resumes under the ramp, and the GPU hours a pretraining run costs."""

import math

from minids.exercises.checker import Exercise
from minids.schedule import BatchRamp, LRSchedule

# 07.1 The learning-rate schedule: warmup from 0, constant, cosine, constant tails.

def lr_at(step, max_lr, warmup_steps, constant_steps, decay_steps, final_ratio, tails):
    """The learning rate of optimizer step `step` (from 0), a float: linear warmup from 0
    (step 0 gives 0) to max_lr over warmup_steps, max_lr for constant_steps, a cosine from
    max_lr to final_ratio * max_lr over decay_steps, then the tails ((steps, ratio), ...)
    at ratio * max_lr in order, the last ratio (final_ratio without tails) holding after."""
    return LRSchedule(max_lr, warmup_steps, constant_steps, decay_steps, final_ratio, tails,
                      warmup_from_zero=True)(step)


# V3's shape scaled down: 2.2e-4, cosine to 2.2e-5, then 2.2e-5 and 7.3e-6 (report §4.2)
V3_LIKE = (2.2e-4, 20, 100, 43, 0.1, ((4, 0.1), (2, 7.3e-6 / 2.2e-4)))  # ends at step 169
NO_TAILS = (1e-3, 10, 0, 30, 0.2, ())  # the cosine starts right after the warmup


def lr_at_cases():
    """Every phase of each schedule, its boundaries and past its end."""
    v3_steps = (0, 7, 20, 60, 120, 141, 162, 163, 167, 500)  # 20, 120, 163: a phase starts
    return ([(step, *V3_LIKE) for step in v3_steps]
            + [(step, *NO_TAILS) for step in (5, 10, 24, 40, 99)])  # 40: the cosine ended


def _lr(step, max_lr, warmup_steps, constant_steps, decay_steps, final_ratio, tails,
        warmup=0, to_zero=False, linear=False, use_tails=True, cosine_shift=0):
    """The schedule with one thing changed, for the mistakes."""
    if step < warmup_steps:
        return max_lr * (step + warmup) / warmup_steps
    step -= warmup_steps + constant_steps
    if step < 0:
        return max_lr
    final = 0.0 if to_zero else final_ratio * max_lr
    if step < decay_steps:
        progress = (step + cosine_shift) / decay_steps  # 0 to 1 over the decay
        fall = progress if linear else 0.5 * (1 - math.cos(math.pi * progress))
        return max_lr - (max_lr - final) * fall
    tails = tails if use_tails else ()
    return LRSchedule(max_lr, 0, 0, decay_steps, final_ratio, tails)(step)  # past the cosine


LR_AT_MISTAKES = {
    "V3's warmup starts from 0: step s of the warmup gives max_lr * s / warmup_steps, so "
    "step 0 gives 0": lambda *args: _lr(*args, warmup=1),
    "the cosine ends at final_ratio * max_lr, not at 0": lambda *args: _lr(*args, to_zero=True),
    "the decay follows a cosine, 0.5 (1 + cos(pi t / decay_steps)), not a straight line":
        lambda *args: _lr(*args, linear=True),
    "after the cosine come the tails: each holds its ratio * max_lr for its steps, and the "
    "last ratio holds after them": lambda *args: _lr(*args, use_tails=False),
    "the cosine's first step is max_lr: t counts from 0 at the start of the decay":
        lambda *args: _lr(*args, cosine_shift=1),
}


# 07.2 The batch-size ramp: grown with the tokens seen, in whole multiples.

def batch_size_at(tokens, start, end, ramp_tokens, multiple):
    """The batch size (sequences) after `tokens` tokens, an int: linear from start to end
    over the first ramp_tokens, then end; rounded down to a multiple of `multiple`, never
    below `multiple`."""
    return BatchRamp(start, end, ramp_tokens, multiple)(tokens)


V3_RAMP = (3072, 15360, 469 * 10**9, 64)  # V3: 3072 -> 15360 over 469B tokens (report §4.2)


def batch_size_at_cases():
    return ([(tokens, *V3_RAMP) for tokens in (0, 10**9, 100 * 10**9, 469 * 10**9 - 1,
                                               469 * 10**9, 10**13)]
            + [(tokens, 4, 32, 10_000, 4) for tokens in (1_000, 3_333, 9_999, 50_000)]
            + [(tokens, 1, 64, 6_400, 8) for tokens in (0, 700, 1_300)])


def _ramp(tokens, start, end, ramp_tokens, multiple, nearest=False, floor=True, clamp=True):
    """The ramp with one thing changed, for the mistakes."""
    if clamp and tokens >= ramp_tokens:
        return end
    size = start + (end - start) * tokens / ramp_tokens
    size = round(size / multiple) * multiple if nearest else int(size) // multiple * multiple
    return max(multiple, size) if floor else size


BATCH_SIZE_AT_MISTAKES = {
    "round DOWN to a multiple of `multiple` (int(size) // multiple * multiple), not to the "
    "nearest": lambda *args: _ramp(*args, nearest=True),
    "never below `multiple`: a batch of 0 sequences would train on nothing":
        lambda *args: _ramp(*args, floor=False),
    "the ramp stops at `end`: after ramp_tokens tokens the batch size is end":
        lambda *args: _ramp(*args, clamp=False),
}


# 07.3 Where the data resumes: the rows read by `steps` steps under the ramp.

def rows_consumed(steps, start, end, ramp_tokens, multiple, seq_len):
    """The training rows (sequences) that `steps` optimizer steps read, an int: each step
    takes batch_size_at(tokens seen before it) rows of seq_len tokens."""
    # As minids.train.Trainer.train_step: size = ramp(tokens_seen) before the step, then
    # next_batch(size) moves Batches on by size rows and tokens_seen grows by size * seq_len.
    ramp, rows, tokens = BatchRamp(start, end, ramp_tokens, multiple), 0, 0
    for _ in range(steps):
        size = ramp(tokens)
        rows, tokens = rows + size, tokens + size * seq_len
    return rows


def rows_consumed_cases():
    return [
        (10, 4, 32, 5_000, 4, 64),  # inside the ramp
        (40, 4, 32, 20_000, 4, 128),  # through the ramp and past it
        (7, 8, 8, 1_000, 8, 32),  # start == end: no ramp
        (15_000, *V3_RAMP, 4096),  # V3's ramp, then 2_600 steps at 15360
    ]


ROWS_CONSUMED_MISTAKES = {
    "the ramp grows the batch: step k takes batch_size_at(tokens seen so far) rows, not "
    "`end`": lambda steps, start, end, *_: steps * end,
    "the batch grows with the tokens seen: add each step's size * seq_len to them":
        lambda steps, start, end, *_: steps * start,
    "a step's batch size comes from the tokens seen BEFORE it (none for the first step), "
    "not after it": lambda steps, *args: rows_consumed(steps + 1, *args) - BatchRamp(*args[:4])(0),
}


# 07.4 The GPU hours of a pretraining run.

def gpu_hours(flops_per_token, tokens, peak_flops, mfu):
    """The GPU hours to train on `tokens` tokens at flops_per_token (forward and backward)
    on GPUs of peak_flops FLOP/s that reach the model FLOPs utilisation mfu, a float."""
    seconds = tokens * flops_per_token / (peak_flops * mfu)  # on one GPU
    return seconds / 3600


def gpu_hours_cases():
    return [
        (3.0e11, 14.8e12, 989e12, 0.4),  # about V3's pretraining: BF16 peak of an H800
        (2.5e11, 14.8e12, 1979e12, 0.2),  # counted at the FP8 peak
        (3.5e11, 14.8e12, 989e12, 0.5),
        (6.0e7, 2.0e8, 50e12, 0.3),  # the book's model on a laptop-sized GPU
        (1.2e9, 1.0e10, 312e12, 0.45),
    ]


GPU_HOURS_MISTAKES = {
    "divide the seconds by 3600: the answer is in hours":
        lambda f, t, peak, mfu: t * f / (peak * mfu),
    "the GPUs reach only mfu of their peak: divide by peak_flops * mfu, it takes longer":
        lambda f, t, peak, mfu: t * f * mfu / peak / 3600,
    "GPU hours, not GPU days: do not divide by 24":
        lambda f, t, peak, mfu: t * f / (peak * mfu) / 3600 / 24,
}


EXERCISES = [
    Exercise("07.1", "the learning-rate schedule", lr_at_cases, lr_at, LR_AT_MISTAKES,
             rtol=1e-9, atol=0.0),
    Exercise("07.2", "the batch-size ramp", batch_size_at_cases, batch_size_at,
             BATCH_SIZE_AT_MISTAKES),
    Exercise("07.3", "where the data resumes", rows_consumed_cases, rows_consumed,
             ROWS_CONSUMED_MISTAKES),
    Exercise("07.4", "GPU hours from FLOPs", gpu_hours_cases, gpu_hours, GPU_HOURS_MISTAKES,
             rtol=1e-9, atol=0.0),
]
