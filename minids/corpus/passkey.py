"""Passkey retrieval (for YaRN): a haystack of story sentences with one needle.

A long document hides a "The pass key is 48213." line at a random depth among filler
sentences of the story grammar, then asks for the key and gives it: cut the text after
PASSKEY_QUESTION to test a model. `copy_document` writes a list of keys twice: copying
the second from the first is the skill that retrieving a key needs (chapter 09).
"""

import random

from minids.corpus.stories import filler_sentence

PASSKEY_INTRO = ("There is a pass key hidden in this long text. Find it and remember it. "
                 "I will ask you about it at the end.")
PASSKEY_QUESTION = "What is the pass key? The pass key is"


def passkey_document(rng: random.Random, n_filler_sentences: int,
                     depth: float | None = None) -> tuple[str, str]:
    """(text, key): the intro, n filler sentences with "The pass key is KEY. Remember it."
    at a random depth (or at `depth`, a fraction of the sentences: 0 first, 1 last), then
    "What is the pass key? The pass key is KEY." To test a model, cut the text after
    PASSKEY_QUESTION and compare what it writes next with the key."""
    key = str(rng.randint(10000, 99999))
    sentences = [filler_sentence(rng) for _ in range(n_filler_sentences)]
    where = rng.randint(0, n_filler_sentences) if depth is None else round(
        depth * n_filler_sentences)
    return passkey_text(key, sentences, where), key


def passkey_text(key: str, sentences: list[str], where: int) -> str:
    """The document around given filler sentences, the key's line inserted before
    sentences[where], six sentences a paragraph."""
    sentences = [*sentences[:where], f"The pass key is {key}. Remember it.",
                 *sentences[where:]]
    paragraphs = [" ".join(sentences[i:i + 6]) for i in range(0, len(sentences), 6)]
    return "\n\n".join([PASSKEY_INTRO, *paragraphs, f"{PASSKEY_QUESTION} {key}."])


def copy_document(rng: random.Random, n_keys: int) -> str:
    """n_keys random five-digit keys, then the same keys again in the same order: every
    digit of the second list can be read off the first (six tokens a key)."""
    keys = " ".join(str(rng.randint(10000, 99999)) for _ in range(n_keys))
    return f" {keys}\n{keys}"
