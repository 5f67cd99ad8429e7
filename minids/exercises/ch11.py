"""Chapter 11's exercises: the chat template, the answer mask of the SFT loss, the document
mask that keeps packed examples apart, and the exact-match scorer."""

import functools

import torch

from minids.data import extract_answer
from minids.exercises.checker import Exercise
from minids.exercises.common import seeded
from minids.mla import causal_mask, document_mask as _document_mask
from minids.model import IGNORE_INDEX
from minids.tokenizer import Tokenizer

# 11.3 The document mask: causal, and only within a query's own example.

def document_mask(document_ids, n_queries):
    """(B, 1, T, S) bool from document_ids (B, S) for the last T = n_queries positions:
    query i sees key j when j is not after it and both belong to the same document."""
    return _document_mask(document_ids, n_queries)


def document_mask_cases():
    with seeded(3):
        rows = torch.tensor([[0, 0, 0, 1, 1, 2, 2, 2], [-1, -1, 0, 0, 0, 0, 0, 0]])
        random_rows = torch.randint(0, 3, (3, 12)).sort(dim=1).values
    return [(rows, 8), (rows, 1), (rows, 3), (random_rows, 12), (random_rows[:1, :5], 5)]


def _same_document_only(document_ids, n_queries):
    same = document_ids[:, -n_queries:, None] == document_ids[:, None, :]
    return same[:, None]


def _causal_only(document_ids, n_queries):
    B, S = document_ids.shape
    return causal_mask(n_queries, S).expand(B, 1, n_queries, S)


def _first_queries(document_ids, n_queries):  # the first T positions, not the last
    S = document_ids.shape[1]
    rows = torch.arange(n_queries)[:, None]
    same = document_ids[:, :n_queries, None] == document_ids[:, None, :]
    return (same & (torch.arange(S)[None, :] <= rows))[:, None]


DOCUMENT_MASK_MISTAKES = {
    "also causal: a token may not see the tokens after it in its own example":
        _same_document_only,
    "also within one document: a packed example may not see the one before it":
        _causal_only,
    "the queries are the LAST n_queries positions (the new tokens after a cache)":
        _first_queries,
    "the mask has a heads dimension of 1: (B, 1, T, S)":
        lambda d, t: _document_mask(d, t)[:, 0],
}


# 11.2 The answer mask: the loss counts only the answer and its <|eos|>.

def answer_targets(ids, loss_mask):
    """The training targets (T - 1,) of one example: ids (T,) shifted by one, kept where
    loss_mask (T,) is 1 at the target's position, IGNORE_INDEX (-100) elsewhere."""
    return torch.where(loss_mask[1:].bool(), ids[1:], torch.full_like(ids[1:], IGNORE_INDEX))


@functools.cache
def _tokenizer() -> Tokenizer:
    return Tokenizer.load("data/tokenizer.json")


def answer_targets_cases():
    tok = _tokenizer()
    pairs = [("What is 3 + 4?", "3 + 4 = 7. Answer: 7"),
             ("Write a short story about a cat named Tom.", "Tom sat in the sun."),
             ("Hi", "Hello!")]
    cases = []
    for question, reply in pairs:
        ids, mask = tok.chat_example(question, reply)
        cases.append((torch.tensor(ids), torch.tensor(mask)))
    return cases


def _unshifted_mask(ids, loss_mask):
    return torch.where(loss_mask[:-1].bool(), ids[1:], torch.full_like(ids[1:], IGNORE_INDEX))


ANSWER_TARGETS_MISTAKES = {
    "the target of position t is token t + 1: shift the mask with the ids (loss_mask[1:])":
        _unshifted_mask,
    "targets are the NEXT tokens: ids[1:], not ids[:-1]":
        lambda ids, m: torch.where(m[1:].bool(), ids[:-1], torch.full_like(ids[1:], IGNORE_INDEX)),
    "masked targets are IGNORE_INDEX (-100), which the loss skips; 0 is a real token":
        lambda ids, m: torch.where(m[1:].bool(), ids[1:], torch.zeros_like(ids[1:])),
    "keep the answer, mask the prompt (not the other way round)":
        lambda ids, m: torch.where(m[1:].bool(), torch.full_like(ids[1:], IGNORE_INDEX), ids[1:]),
}


# 11.1 The chat template.

def chat_prompt(tokenizer, messages):
    """The ids (a list of ints) that ask for the assistant's next turn after messages, a
    list of {"role", "content"}: <|bos|>, then per message its role token and its
    content's ids (an assistant turn ends with <|eos|>), then <|assistant|>."""
    return tuple(tokenizer.chat_prompt(messages))


def chat_prompt_cases():
    tok = _tokenizer()
    return [
        (tok, [{"role": "user", "content": "What is 12 + 30?"}]),
        (tok, [{"role": "system", "content": "Answer briefly."},
               {"role": "user", "content": "What is 5 - 2?"}]),
        (tok, [{"role": "user", "content": "What is 2 + 2?"},
               {"role": "assistant", "content": "Answer: 4"},
               {"role": "user", "content": "And 3 + 3?"}]),
    ]


def _template(tok, messages, bos=True, eos=True, ask=True):
    ids = [tok.bos_id] if bos else []
    for m in messages:
        ids += [getattr(tok, f"{m['role']}_id")] + tok.encode(m["content"])
        if m["role"] == "assistant" and eos:
            ids.append(tok.eos_id)
    return tuple(ids + ([tok.assistant_id] if ask else []))


CHAT_PROMPT_MISTAKES = {
    "start with <|bos|>, as every training row did": lambda t, m: _template(t, m, bos=False),
    "end with <|assistant|>: it asks the model for the assistant's turn":
        lambda t, m: _template(t, m, ask=False),
    "an earlier assistant turn ends with <|eos|>, as the model learned to end its answers":
        lambda t, m: _template(t, m, eos=False),
}


# 11.4 The exact-match scorer.

def exact_match(reply, answer):
    """True when the reply's final integer is answer: the number after the last
    "Answer:" (commas allowed: "1,234"), else after "answer is", else the last number."""
    return extract_answer(reply) == str(answer)


def exact_match_cases():
    return [
        ("65 + 88: 5 + 8 = 13, write 3 carry 1. 6 + 8 + 1 = 15, write 153. Answer: 153", 153),
        ("65 + 88: 5 + 8 = 13, write 3. 6 + 8 = 14, write 143. Answer: 143", 153),
        ("Answer: 12. Then 12 + 5 = 17. Answer: 17", 17),
        ("Answer: 12. Then 12 + 5 = 17. Answer: 17", 12),
        ("Answer: 1,234", 1234),
        ("The answer is 42.", 42),
        ("12 + 7 = 19", 19),
        ("I do not know", 0),
        ("Answer: -5", -5),
        ("Answer: 153", 15),
    ]


def _first_answer(reply, answer):
    import re

    found = re.findall(r"Answer:\s*(-?[\d,]+)", reply)
    if found:
        return int(found[0].replace(",", "")) == answer
    return extract_answer(reply) == str(answer)


EXACT_MATCH_MISTAKES = {
    "take the LAST \"Answer:\": a reply can state an answer and go on to correct it":
        _first_answer,
    "compare whole numbers, not substrings: \"153\" contains \"15\"":
        lambda reply, answer: str(answer) in reply,
    "drop the thousands commas: \"1,234\" is 1234":
        lambda reply, answer: (extract_answer(reply.replace(",", " ")) == str(answer)),
}


EXERCISES = [
    Exercise("11.1", "the chat template", chat_prompt_cases, chat_prompt,
             CHAT_PROMPT_MISTAKES),
    Exercise("11.2", "the answer mask", answer_targets_cases, answer_targets,
             ANSWER_TARGETS_MISTAKES),
    Exercise("11.3", "the document mask", document_mask_cases, document_mask,
             DOCUMENT_MASK_MISTAKES),
    Exercise("11.4", "exact match", exact_match_cases, exact_match, EXACT_MATCH_MISTAKES),
]
