"""Passkey retrieval (chapter 09): can the model find a five-digit key hidden at a given
depth of a haystack of a given length, in tokens?

Each trial builds a passkey document (`minids.corpus.passkey`) whose prompt, up to and
including "What is the pass key? The pass key is", is at least `length` tokens long, with
the key at a chosen depth; the model continues it greedily and passes the trial when the
first five-digit number it writes is the key. Trials are spread evenly over the depths,
and each trial's document comes from its own seeded generator, so a score repeats exactly.

    python -m minids passkey --checkpoint data/book --length 256 --trials 100
"""

import random
import re
from dataclasses import dataclass

import torch

from minids.corpus.passkey import PASSKEY_QUESTION, passkey_document
from minids.generate import generate
from minids.tokenizer import Tokenizer

DEPTHS = (0.0, 0.25, 0.5, 0.75, 1.0)  # where the key sits, as a fraction of the haystack
ANSWER_TOKENS = 8  # the greedy tokens read after the question: " 48213." and spare
TOKENS_PER_SENTENCE = 12  # about, for the first guess of the haystack's size


def passkey_prompt(tokenizer: Tokenizer, length: int, depth: float, seed: str):
    """(ids, key): a <|bos|>-led prompt of at least `length` tokens (the fewest filler
    sentences that reach it), ending with the question, the key at `depth`."""
    n = max(1, length // TOKENS_PER_SENTENCE - 4)
    while True:
        text, key = passkey_document(random.Random(seed), n, depth)
        prompt = text[: text.rindex(PASSKEY_QUESTION) + len(PASSKEY_QUESTION)]
        ids = tokenizer.encode(prompt, bos=True)
        if len(ids) >= length:
            return ids, key
        n += max(1, (length - len(ids)) // TOKENS_PER_SENTENCE)


def read_key(text: str) -> str | None:
    """The first five-digit number in text (not part of a longer number), or None."""
    match = re.search(r"(?<!\d)\d{5}(?!\d)", text)
    return match.group(0) if match else None


@dataclass(frozen=True)
class PasskeyResult:
    length: int  # the requested prompt length, in tokens
    trials: int
    correct: int
    by_depth: dict  # depth -> (correct, trials)
    longest: int  # the longest prompt of the trials, in tokens

    @property
    def accuracy(self) -> float:
        return self.correct / self.trials


@torch.no_grad()
def passkey_accuracy(model, tokenizer: Tokenizer, length: int, trials: int = 100,
                     seed: int = 0, depths=DEPTHS) -> PasskeyResult:
    """Score `trials` passkey prompts of `length` tokens, spread evenly over `depths`."""
    if length < 1 or trials < 1:
        raise ValueError(f"passkey: length and trials must be >= 1, got {length} and {trials}")
    context = model.config.max_position_embeddings
    device = next(model.parameters()).device
    model.eval()
    by_depth = {depth: [0, 0] for depth in depths}
    longest = 0
    for trial in range(trials):
        depth = depths[trial % len(depths)]
        ids, key = passkey_prompt(tokenizer, length, depth, f"minids/passkey/{seed}/{trial}")
        if len(ids) + ANSWER_TOKENS > context:
            raise ValueError(f"passkey: a prompt of {len(ids)} tokens and its answer exceed "
                             f"the model's context of {context} tokens: extend it first "
                             "(rope_scaling) or ask for a shorter --length")
        longest = max(longest, len(ids))
        out = generate(model, torch.tensor([ids], device=device), ANSWER_TOKENS)
        answer = tokenizer.decode(out[0, len(ids):].tolist(), skip_special_tokens=True)
        by_depth[depth][0] += read_key(answer) == key
        by_depth[depth][1] += 1
    correct = sum(c for c, _ in by_depth.values())
    return PasskeyResult(length, trials, correct,
                         {d: tuple(v) for d, v in by_depth.items()}, longest)
