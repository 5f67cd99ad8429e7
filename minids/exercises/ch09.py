"""Chapter 09's exercises: YaRN's frequencies (the model runs the learner's), its
attention temperature, and the passkey scorer's reading of an answer."""

import math
import re

import torch

from minids.exercises.checker import Exercise
from minids.passkey import read_key
from minids.rope import rope_inv_freq, yarn_inv_freq, yarn_mscale

# 09.1 YaRN's frequencies: keep the fast pairs, interpolate the slow, a ramp between.

def yarn_frequencies(dim, base, factor, original_max_position, beta_fast, beta_slow):
    """The inverse frequencies (dim // 2,) float32 of YaRN. Pair i turns
    n_i = original_max_position * inv_freq_i / (2 pi) times over the original context;
    the fractional pair index that turns n times is
    dim * ln(original_max_position / (2 pi n)) / (2 ln base). low = floor of it at
    n = beta_fast, high = ceil of it at n = beta_slow, clamped to [0, dim - 1];
    ramp_i = clamp((i - low) / (high - low), 0, 1); inv_freq_i is divided by factor
    where ramp_i = 1, kept where 0, and mixed linearly between:
    inv_freq_i * (ramp_i / factor + 1 - ramp_i)."""
    return yarn_inv_freq(dim, base, factor, original_max_position, beta_fast, beta_slow)


def yarn_frequencies_cases():
    return [
        (16, 10000.0, 4.0, 256, 32.0, 1.0),  # the book's long model
        (64, 10000.0, 40.0, 4096, 32.0, 1.0),  # DeepSeek-V3's (low 10, high 23)
        (32, 10000.0, 8.0, 512, 32.0, 1.0),
        (16, 10000.0, 1.0, 256, 32.0, 1.0),  # factor 1: plain RoPE
        (64, 50000.0, 16.0, 2048, 16.0, 2.0),
    ]


def _yarn(dim, base, factor, original, fast, slow, reverse=False, rounded=True,
          two_pi=True, clamp=True):
    """YaRN with one thing changed, for the mistakes."""
    def index(n):
        turns = n * (2 * math.pi if two_pi else 1)
        return dim * math.log(original / turns) / (2 * math.log(base))
    low, high = index(fast), index(slow)
    if rounded:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001
    inv_freq = rope_inv_freq(dim, base)
    ramp = (torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low)
    ramp = ramp.clamp(0, 1) if clamp else ramp
    if reverse:
        ramp = 1 - ramp
    return inv_freq * (ramp / factor + 1 - ramp)


YARN_MISTAKES = {
    "keep the FAST pairs (small i: they turn many times in the context) and interpolate "
    "the SLOW ones; the ramp is 0 for small i": lambda *a: _yarn(*a, reverse=True),
    "low is the floor and high the ceiling of the fractional indices (DeepSeek's and "
    "transformers' code round them)": lambda *a: _yarn(*a, rounded=False),
    "a pair turns n times when original_max_position * inv_freq = 2 pi n: divide by 2 pi "
    "n, not n": lambda *a: _yarn(*a, two_pi=False),
    "clamp the ramp to [0, 1]: past high every pair is divided by factor, no more":
        lambda *a: _yarn(*a, clamp=False),
    "that is position interpolation: YaRN divides only the slow pairs by factor":
        lambda dim, base, factor, *_: rope_inv_freq(dim, base) / factor,
}


# 09.2 YaRN's attention temperature, folded into the softmax scale.

def yarn_softmax_scale(qk_head_dim, factor, mscale):
    """The factor the attention logits q . k are multiplied by, a float:
    qk_head_dim ** -0.5 times m ** 2, where m = 0.1 * mscale * ln(factor) + 1 when
    factor > 1 and m = 1 otherwise (DeepSeek folds m into the scale, once for q and
    once for k)."""
    return qk_head_dim**-0.5 * yarn_mscale(factor, mscale) ** 2


def yarn_softmax_scale_cases():
    return [(192, 40.0, 1.0), (48, 4.0, 1.0), (48, 1.0, 1.0), (128, 8.0, 0.707),
            (64, 16.0, 1.0)]


YARN_SOFTMAX_SCALE_MISTAKES = {
    "m multiplies both q and k, so the logits take m ** 2, not m":
        lambda d, s, m: d**-0.5 * yarn_mscale(s, m),
    "the scale keeps its 1 / sqrt(qk_head_dim): multiply it by m ** 2":
        lambda d, s, m: yarn_mscale(s, m) ** 2,
    "m = 0.1 * mscale * ln(factor) + 1: the natural log, times 0.1":
        lambda d, s, m: d**-0.5 * (_mscale_log10(s, m)) ** 2,
}


def _mscale_log10(factor, mscale):
    return 1.0 if factor <= 1 else 0.1 * mscale * math.log10(factor) + 1.0


# 09.3 Reading the key from the model's answer.

def read_answer(text):
    """The first run of exactly five digits in text (a run of six or more is not a key),
    as a str, or None when there is none."""
    return read_key(text)


def read_answer_cases():
    return [(" 48213.",), (" 482130 and then 77777.",), ("no digits at all",),
            (" 4821 then 48213",), ("48213",), (" 0048213, 12345, 54321",),
            (" The pass key is 90210. Remember it.",), ("",)]


READ_ANSWER_MISTAKES = {
    "a run of six digits is a longer number, not a key: match five digits with no digit "
    "before or after ((?<!\\d)\\d{5}(?!\\d))":
        lambda text: (re.search(r"\d{5}", text) or [None])[0],
    "return the key as a str (a key may start with 0), not an int":
        lambda text: None if read_key(text) is None else int(read_key(text)),
    "return None when there is no key, not an empty string":
        lambda text: read_key(text) or "",
}


EXERCISES = [
    Exercise("09.1", "YaRN's frequencies", yarn_frequencies_cases, yarn_frequencies,
             YARN_MISTAKES, rtol=1e-5, atol=1e-7),
    Exercise("09.2", "YaRN's attention temperature", yarn_softmax_scale_cases,
             yarn_softmax_scale, YARN_SOFTMAX_SCALE_MISTAKES, rtol=1e-9, atol=0.0),
    Exercise("09.3", "reading the key", read_answer_cases, read_answer, READ_ANSWER_MISTAKES),
]
