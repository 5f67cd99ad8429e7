"""Passkey retrieval (chapter 09): can the model find a five-digit key hidden at a given
depth of a haystack of a given length, in tokens?

Each trial builds a passkey document (`minids.corpus.passkey`) whose prompt, up to and
including "What is the pass key? The pass key is", is as long as fits in `length`
tokens, with the key at a chosen depth; the model continues it greedily and passes the
trial when the first five-digit number it writes is the key. Trials are spread evenly over the depths,
and each trial's document comes from its own seeded generator, so a score repeats exactly.

    python -m minids passkey --checkpoint data/long/stage2 --length 1016 --trials 100
"""

import functools
import random
import re
from dataclasses import dataclass

import torch

from minids.corpus.passkey import PASSKEY_QUESTION, passkey_text
from minids.corpus.stories import filler_sentence
from minids.generate import generate
from minids.tokenizer import Tokenizer

DEPTHS = (0.0, 0.25, 0.5, 0.75, 1.0)  # where the key sits, as a fraction of the haystack
ANSWER_TOKENS = 8  # the greedy tokens read after the question: " 48213." and spare
TOKENS_PER_SENTENCE = 12  # about: the first guess of the haystack's size


def passkey_prompt(tokenizer: Tokenizer, length: int, depth: float, seed: str):
    """(ids, key): a <|bos|>-led prompt of at most `length` tokens (the most filler
    sentences that fit), ending with the question, the key at `depth`."""
    ids, key = _prompt(tokenizer, length, depth, seed)
    return list(ids), key


@functools.lru_cache(maxsize=2048)  # a table scores several models on the same prompts
def _prompt(tokenizer: Tokenizer, length: int, depth: float, seed: str):
    # passkey_document(random.Random(seed), n, depth) for every n the search tries, with
    # the filler drawn once: a document draws its key, then its sentences in order.
    rng = random.Random(seed)
    key, sentences = str(rng.randint(10000, 99999)), []

    def prompt(n):
        while len(sentences) < n:
            sentences.append(filler_sentence(rng))
        text = passkey_text(key, sentences[:n], round(depth * n))
        cut = text[: text.rindex(PASSKEY_QUESTION) + len(PASSKEY_QUESTION)]
        return tokenizer.encode(cut, bos=True), key

    n = max(1, length // TOKENS_PER_SENTENCE)
    while n > 1 and len(prompt(n)[0]) > length:
        n -= 1
    if len(prompt(n)[0]) > length:
        raise ValueError(f"passkey: {length} tokens cannot hold a passkey prompt (the "
                         f"shortest takes {len(prompt(1)[0])})")
    while len(prompt(n + 1)[0]) <= length:  # a sentence adds tokens: stop at the last fit
        n += 1
    ids, key = prompt(n)
    return tuple(ids), key


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
    shortest: int  # the shortest and the longest prompt of the trials, in tokens
    longest: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.trials


@torch.no_grad()
def passkey_accuracy(model, tokenizer: Tokenizer, length: int, trials: int = 100,
                     seed: int = 0, depths=DEPTHS, greedy: bool = True) -> PasskeyResult:
    """Score `trials` passkey prompts of `length` tokens, spread evenly over `depths`.

    greedy=True decodes each answer. greedy=False scores all trials in batched forward
    passes instead (teacher forcing): a trial passes when the model's most likely token
    at each position of " KEY" is that token and the next is not a digit, which is
    exactly when greedy decoding writes " KEY" and then something else. It can only miss
    a key that greedy decoding writes in another form (say, without the space)."""
    if length < 1 or trials < 1:
        raise ValueError(f"passkey: length and trials must be >= 1, got {length} and {trials}")
    context = model.config.max_position_embeddings
    if length + ANSWER_TOKENS > context:
        raise ValueError(f"passkey: a prompt of up to {length} tokens and its answer "
                         f"({ANSWER_TOKENS} tokens) exceed the model's context of {context} "
                         "tokens: extend it first (rope_scaling) or ask for a shorter --length")
    model.eval()
    prompts = [(depths[t % len(depths)], *passkey_prompt(
        tokenizer, length, depths[t % len(depths)], f"minids/passkey/{seed}/{t}"))
        for t in range(trials)]  # (depth, ids, key)
    score = _greedy_answers if greedy else _teacher_forced_answers
    passed = score(model, tokenizer, [(ids, key) for _, ids, key in prompts])
    by_depth = {depth: [0, 0] for depth in depths}
    for (depth, _, _), ok in zip(prompts, passed):
        by_depth[depth][0] += ok
        by_depth[depth][1] += 1
    lengths = [len(ids) for _, ids, _ in prompts]
    return PasskeyResult(length, trials, sum(passed),
                         {d: tuple(v) for d, v in by_depth.items()}, min(lengths), max(lengths))


def _greedy_answers(model, tokenizer, trials) -> list[bool]:
    device = next(model.parameters()).device
    passed = []
    for ids, key in trials:
        out = generate(model, torch.tensor([ids], device=device), ANSWER_TOKENS)
        answer = tokenizer.decode(out[0, len(ids):].tolist(), skip_special_tokens=True)
        passed.append(read_key(answer) == key)
    return passed


def _teacher_forced_answers(model, tokenizer, trials, batch_size=25) -> list[bool]:
    """Each prompt + " KEY" + one token, right-padded (causal attention: the padding
    changes nothing before it), a batch_size of them per forward pass."""
    device = next(model.parameters()).device
    digits = torch.tensor([tokenizer.encode(str(d))[0] for d in range(10)], device=device)
    passed = []
    for start in range(0, len(trials), batch_size):
        chunk = trials[start : start + batch_size]
        answers = [tokenizer.encode(f" {key}") for _, key in chunk]  # " ", five digits
        rows = [ids + answer for (ids, _), answer in zip(chunk, answers)]
        width = max(map(len, rows))
        batch = torch.tensor([row + [tokenizer.eos_id] * (width - len(row)) for row in rows],
                             device=device)
        keep = width - min(len(ids) for ids, _ in chunk) + 1  # the answers' positions
        best = model(batch, logits_to_keep=keep).logits.argmax(-1)  # (b, keep): greedy
        for row, (ids, _), answer in zip(best, chunk, answers):
            at = len(ids) - 1 - (width - keep)  # the prediction of the answer's first token
            written = row[at : at + len(answer)].tolist()
            after = row[at + len(answer)]
            passed.append(written == answer and not bool((digits == after).any()))
    return passed
