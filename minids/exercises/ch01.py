"""Chapter 01's exercises: BPE encoding, bytes per token, and packing documents."""

import functools
import json
import random

import torch

from minids.data import generate_part, pack
from minids.exercises.checker import Exercise
from minids.tokenizer import train_tokenizer


def byte_level_chars() -> list[str]:
    """The printable character that byte-level BPE shows for each byte 0..255 (GPT-2's
    table): printable bytes stand for themselves, the others move to 256 + n, so that a
    space is 'Ġ' and a newline 'Ċ'."""
    keep = [*range(33, 127), *range(161, 173), *range(174, 256)]
    moved = [b for b in range(256) if b not in keep]
    chars = {b: chr(b) for b in keep} | {b: chr(256 + n) for n, b in enumerate(moved)}
    return [chars[b] for b in range(256)]


@functools.cache
def small_tokenizer(vocab_size: int):
    """A tokenizer trained on the first 30,000 characters of the stories and the math."""
    texts = [text for part in ("stories", "math")
             for text in generate_part(part, chars=30_000)["train"]]
    return train_tokenizer(texts, vocab_size)


def merges_as_byte_ids(tokenizer) -> torch.Tensor:
    """The tokenizer's merges, (M, 2), in byte ids: byte b is id b, merge k makes 256 + k."""
    merges = json.loads(tokenizer.to_json())["model"]["merges"]
    ids = {char: b for b, char in enumerate(byte_level_chars())}
    for k, (a, b) in enumerate(merges):
        ids[a + b] = 256 + k
    return torch.tensor([[ids[a], ids[b]] for a, b in merges], dtype=torch.long)


def utf8(text: str) -> torch.Tensor:
    return torch.tensor(list(text.encode("utf-8")), dtype=torch.long)


# 01.1 BPE encoding: apply the learned merges, in the order they were learned.

def merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace each occurrence of pair in ids, scanning left to right, by new_id."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def bpe_encode(ids, merges):
    """ids (T,) byte values; merges (M, 2): merge k joins the pair merges[k] into the new
    id 256 + k. Returns the (T',) token ids. tests/test_exercises.py checks that this
    gives the `tokenizers` encoding of every word."""
    out = ids.tolist()
    for k, (a, b) in enumerate(merges.tolist()):
        out = merge(out, (a, b), 256 + k)
    return torch.tensor(out, dtype=torch.long)


def bpe_encode_cases():
    merges = merges_as_byte_ids(small_tokenizer(600))
    run = torch.tensor([[7, 7], [256, 7]])  # 7 7 -> 256, then 256 7 -> 257
    rng = random.Random("minids/exercises/01.1")
    letters = torch.tensor([rng.choice((0, 1, 1, 2)) for _ in range(40)])
    return [
        (utf8(" remembered"), merges),
        (utf8(" Grandma"), merges),
        (utf8(" ×"), merges),  # two bytes, one token
        (torch.tensor([7, 7, 7, 7, 7]), run),
        (letters, torch.tensor([[1, 1], [0, 1], [256, 257], [1, 2], [258, 1], [2, 0]])),
    ]


def _apply_merges(ids, merges, merge_fn, order=1):
    out, pairs = ids.tolist(), list(enumerate(merges.tolist()))
    for k, (a, b) in pairs[::order]:
        out = merge_fn(out, (a, b), 256 + k)
    return torch.tensor(out, dtype=torch.long)


def _merge_first_only(ids, pair, new_id):
    for i in range(len(ids) - 1):
        if (ids[i], ids[i + 1]) == pair:
            return ids[:i] + [new_id] + ids[i + 2:]
    return ids


def _merge_right_to_left(ids, pair, new_id):
    return merge(ids[::-1], pair[::-1], new_id)[::-1]


def _merge_drops_last(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


BPE_ENCODE_MISTAKES = {
    "apply the merges in the order they were learned, merges[0] first: a later merge "
    "may join tokens that earlier merges made":
        lambda ids, merges: _apply_merges(ids, merges, merge, order=-1),
    "a merge replaces every occurrence of its pair, not only the first":
        lambda ids, merges: _apply_merges(ids, merges, _merge_first_only),
    "scan left to right: in 7 7 7 the pair (7, 7) is the first two sevens":
        lambda ids, merges: _apply_merges(ids, merges, _merge_right_to_left),
    "a symbol that starts no pair is copied too, the last one included":
        lambda ids, merges: _apply_merges(ids, merges, _merge_drops_last),
}


# 01.2 Bytes per token of a set of texts.

def bytes_per_token(texts, tokenizer):
    """UTF-8 bytes of all the texts over the number of tokens they encode to."""
    n_bytes = sum(len(text.encode("utf-8")) for text in texts)
    return n_bytes / sum(len(ids) for ids in tokenizer.encode_batch(texts))


def bytes_per_token_cases():
    story = generate_part("stories", seed=1, chars=2_000)["train"][0]
    math = generate_part("math", seed=1, chars=2_000)["train"]
    return [
        ([story, "The end."], small_tokenizer(600)),
        (math[:6], small_tokenizer(300)),
        (["Café naïve: 68 × 4 ≈ 272 🙂", "深度求索", story], small_tokenizer(600)),
    ]


def _tokens(texts, tokenizer, **special):
    return sum(len(tokenizer.encode(text, **special)) for text in texts)


BYTES_PER_TOKEN_MISTAKES = {
    "count UTF-8 bytes, len(text.encode('utf-8')), not characters: 'é' is two bytes":
        lambda texts, tok: sum(map(len, texts)) / _tokens(texts, tok),
    "bytes per token is bytes / tokens (more than 1), not tokens / bytes":
        lambda texts, tok: _tokens(texts, tok) / sum(len(t.encode()) for t in texts),
    "divide the total bytes by the total tokens: an average of per-text ratios weighs a "
    "short text as much as a long one":
        lambda texts, tok: sum(len(t.encode()) / len(tok.encode(t)) for t in texts)
        / len(texts),
    "count the tokens of the text only, without <|bos|> and <|eos|>":
        lambda texts, tok: sum(len(t.encode()) for t in texts)
        / _tokens(texts, tok, bos=True, eos=True),
}


# 01.3 Packing documents into training rows.

def pack_rows(documents, seq_len, eos_id):
    """documents: lists of token ids. Each document followed by eos_id, all joined into
    one stream, cut into rows of seq_len + 1 that overlap by one token -> (N, seq_len+1)."""
    return pack(documents, seq_len, eos_id)


def pack_rows_cases():
    rng = random.Random("minids/exercises/01.3")
    documents = [[rng.randrange(3, 50) for _ in range(rng.randint(1, 20))] for _ in range(12)]
    return [
        ([[5, 6, 7], [8, 9], [10, 11, 12, 13]], 4, 1),
        (documents, 8, 1),
        ([[5, 6, 7], [8, 9, 10, 11]], 3, 0),  # the stream fills exactly 3 rows
        (documents[:3], 1, 2),
    ]


def _stream(documents, eos_id, eos_first=False):
    return [t for d in documents for t in ([eos_id] + d if eos_first else d + [eos_id])]


def _rows(stream, width, stride, pad=None):
    if pad is not None:
        stream = stream + [pad] * (-(len(stream) - width) % stride)
    starts = range(0, len(stream) - width + 1, stride)
    return torch.tensor([stream[s:s + width] for s in starts], dtype=torch.long)


PACK_MISTAKES = {
    "rows overlap by one token: row i is stream[i*seq_len : i*seq_len + seq_len + 1], "
    "so the last target of a row is the first input of the next":
        lambda docs, t, eos: _rows(_stream(docs, eos), t + 1, t + 1),
    "a row holds seq_len + 1 tokens: inputs row[:-1] and targets row[1:] are seq_len each":
        lambda docs, t, eos: _rows(_stream(docs, eos), t, t),
    "EOS goes after each document: it marks where a document ends":
        lambda docs, t, eos: _rows(_stream(docs, eos, eos_first=True), t + 1, t),
    "put eos_id after every document, so the model learns where a text ends":
        lambda docs, t, eos: _rows([x for d in docs for x in d], t + 1, t),
    "drop the tail that does not fill a row; padding would train on made-up tokens":
        lambda docs, t, eos: _rows(_stream(docs, eos), t + 1, t, pad=eos),
}


EXERCISES = [
    Exercise("01.1", "BPE encoding with learned merges", bpe_encode_cases, bpe_encode,
             BPE_ENCODE_MISTAKES),
    Exercise("01.2", "bytes per token", bytes_per_token_cases, bytes_per_token,
             BYTES_PER_TOKEN_MISTAKES),
    Exercise("01.3", "packing documents into rows", pack_rows_cases, pack_rows,
             PACK_MISTAKES),
]
