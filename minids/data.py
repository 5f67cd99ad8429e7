"""The data: a miniature of DeepSeek's pretraining mixture, made here, never downloaded.

The four generators are in `minids.corpus`: stories, math, code and passkey documents
(67, 19, 9.5 and 4.8 % of the characters of the corpus; math, whose documents show their
working column by column, is about a third of the tokens).

Then the pipeline: `write_corpus` writes JSONL files and a MANIFEST.json of checksums,
`load_corpus` reads them back with `datasets` (offline), `pack` cuts the token stream into
fixed-length training rows, and `Batches` serves them in a seeded order that resumes
exactly. `chat_examples`, `math_eval_set` and `extract_answer` serve SFT and GRPO.
`prepare()` (`python -m minids data`) does all of it.
"""

import hashlib
import json
import os
import random
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from minids.corpus.arithmetic import MathItem, math_document, math_item
from minids.corpus.passkey import PASSKEY_QUESTION, passkey_document
from minids.corpus.programs import code_sample, program, run_program
from minids.corpus.stories import _story, story
from minids.model import IGNORE_INDEX

# --------------------------------------------------------------------------------------
# The corpus on disk: data/corpus/{part}.{train,val}.jsonl and MANIFEST.json.
# --------------------------------------------------------------------------------------

GENERATORS = {
    "stories": story,
    "math": lambda rng: math_document(math_item(rng)),
    "code": code_sample,
    "passkey": lambda rng: passkey_document(rng, rng.randint(30, 300))[0],
}
CORPUS_CHARS = {"stories": 7_000_000, "math": 2_000_000, "code": 1_000_000, "passkey": 500_000}
VAL_EVERY = 50  # every 50th document goes to validation: a 2 % held-out split
SPLITS = ("train", "val")


def generate_part(name: str, seed: int = 0, chars: int | None = None) -> dict[str, list[str]]:
    """Documents of one part until `chars` characters (default CORPUS_CHARS[name]), split
    into {"train": [...], "val": [...]}. Exact repeats are dropped, so no validation text
    is also a training text. A smaller `chars` gives a prefix of the same documents."""
    make = GENERATORS[name]
    rng = random.Random(f"minids/{name}/{seed}")
    budget = CORPUS_CHARS[name] if chars is None else chars
    parts, seen, total = {"train": [], "val": []}, set(), 0
    while total < budget:
        text = make(rng)
        if text in seen:
            continue
        seen.add(text)
        split = "val" if len(seen) % VAL_EVERY == 0 else "train"
        parts[split].append(text)
        total += len(text)
    return parts


def generate_corpus(seed: int = 0, chars: dict | None = None) -> dict[str, dict[str, list[str]]]:
    """{part: {split: [documents]}} for every part of the mixture."""
    chars = {**CORPUS_CHARS, **(chars or {})}
    return {name: generate_part(name, seed, chars[name]) for name in GENERATORS}


def _jsonl(texts: list[str]) -> bytes:
    return "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts).encode()


def _corpus_files(corpus: dict) -> dict[str, bytes]:
    return {f"{name}.{split}.jsonl": _jsonl(corpus[name][split])
            for name in corpus for split in SPLITS}


def _manifest(corpus: dict, files: dict[str, bytes], seed: int) -> dict:
    entries = {}
    for filename, content in files.items():
        name, split, _ = filename.split(".")
        texts = corpus[name][split]
        entries[filename] = {"sha256": hashlib.sha256(content).hexdigest(), "bytes": len(content),
                             "documents": len(texts), "chars": sum(map(len, texts))}
    return {"seed": seed, "files": entries}


def corpus_manifest(seed: int = 0, chars: dict | None = None) -> dict:
    """The manifest `write_corpus` would write, computed in memory (tests compare it
    with the committed data/corpus/MANIFEST.json)."""
    corpus = generate_corpus(seed, chars)
    return _manifest(corpus, _corpus_files(corpus), seed)


def write_corpus(out_dir="data", seed: int = 0, chars: dict | None = None, corpus=None) -> dict:
    """Write out_dir/corpus/{part}.{split}.jsonl (one {"text": ...} per line) and
    out_dir/corpus/MANIFEST.json (sha256 and size of every file); returns the manifest."""
    corpus = corpus or generate_corpus(seed, chars)
    folder = Path(out_dir) / "corpus"
    folder.mkdir(parents=True, exist_ok=True)
    files = _corpus_files(corpus)
    for filename, content in files.items():
        (folder / filename).write_bytes(content)
    manifest = _manifest(corpus, files, seed)
    (folder / "MANIFEST.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def load_corpus(data_dir="data", split: str = "train", parts=tuple(GENERATORS), cache_dir=None):
    """The corpus files of one split as a `datasets.Dataset` with a "text" column.

    Everything is local, but `load_dataset` still tries to report a download count over
    the network unless HF_HUB_OFFLINE is set; without a network that costs a timeout. So
    we set HF_HUB_OFFLINE=1 unless the caller chose a value, and keep the Arrow cache in
    `cache_dir` (default data_dir/.hf_cache) rather than in the home folder."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import datasets  # imported here: the rest of minids does not need it

    if os.environ["HF_HUB_OFFLINE"].upper() in ("1", "ON", "YES", "TRUE"):
        datasets.config.HF_HUB_OFFLINE = True  # it reads the variable once, at import
    files = [Path(data_dir) / "corpus" / f"{name}.{split}.jsonl" for name in parts]
    for file in files:
        if not file.is_file():
            raise FileNotFoundError(f"no corpus file {file} (run `python -m minids data`)")
    return datasets.load_dataset("json", data_files={split: [str(f) for f in files]},
                                 split=split, cache_dir=str(cache_dir or Path(data_dir) / ".hf_cache"))


# --------------------------------------------------------------------------------------
# Tokens: documents -> one stream -> rows of seq_len + 1 tokens.
# --------------------------------------------------------------------------------------

def pack(token_ids_list, seq_len: int, eos_id: int, bos_id: int | None = None) -> torch.Tensor:
    """Concatenate documents, each followed by EOS (and preceded by BOS if given), and cut
    the stream into rows of seq_len + 1 tokens: inputs row[:-1], targets row[1:].

    Row i is stream[i*seq_len : i*seq_len + seq_len + 1], so consecutive rows share one
    token and every token of the stream is a target exactly once; only the tail that
    does not fill a row is dropped. Documents run across row boundaries and attention
    is not masked between them (DeepSeek-V3 packs the same way). Returns (N, seq_len+1)."""
    pieces = []
    for ids in token_ids_list:
        pieces += [[bos_id]] if bos_id is not None else []
        pieces += [ids, [eos_id]]
    stream = np.fromiter((t for piece in pieces for t in piece), dtype=np.int64)
    return rows_from_stream(torch.from_numpy(stream), seq_len)


def rows_from_stream(stream: torch.Tensor, seq_len: int) -> torch.Tensor:
    """(T,) -> (N, seq_len+1) with N = (T - 1) // seq_len, rows overlapping by one token."""
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    n = (len(stream) - 1) // seq_len
    return stream.unfold(0, seq_len + 1, seq_len)[:n].contiguous()  # (N, seq_len+1)


def stream_from_rows(rows: torch.Tensor) -> torch.Tensor:
    """The inverse of rows_from_stream (without the dropped tail)."""
    return torch.cat([rows[0], rows[1:, 1:].reshape(-1)]) if len(rows) else rows.reshape(-1)


def save_tokens(rows: torch.Tensor, path) -> None:
    """Packed rows as a .npy of uint16 (a vocabulary < 65536 fits), never a pickle."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, rows.numpy().astype(np.uint16), allow_pickle=False)


def load_tokens(data_dir="data", split: str = "train", seq_len: int | None = None) -> torch.Tensor:
    """The packed (N, seq_len+1) LongTensor that `prepare` saved. A different seq_len
    re-cuts the same token stream (e.g. longer rows for the YaRN chapter)."""
    path = Path(data_dir) / "tokens" / f"{split}.npy"
    if not path.is_file():
        raise FileNotFoundError(f"no packed tokens at {path} (run `python -m minids data`)")
    rows = torch.from_numpy(np.load(path, allow_pickle=False).astype(np.int64))
    if seq_len is not None and seq_len != rows.shape[1] - 1:
        rows = rows_from_stream(stream_from_rows(rows), seq_len)
    return rows


class Batches:
    """Batches of packed rows in a seeded random order, one new order per epoch, that
    resume exactly: `state_dict()` is (epoch, rows used in it) and a fresh `Batches` given
    it with `load_state_dict` yields the very batches the interrupted one would have.

    `batch_size` is the GLOBAL batch size; `next_batch(n)` takes a batch of n rows instead
    (a batch-size ramp changes n from step to step). An epoch ends when the next batch
    would not fit in its remaining rows. With world_size > 1 (DistributedDataParallel)
    rank r takes rows [r*b, (r+1)*b) of every global batch, b = size // world_size: the
    ranks see disjoint data, and together exactly the batches of a single process.
    Iteration never ends (the epoch counter just grows); len() is batches per epoch.
    Yields (inputs, targets), each (b, seq_len)."""

    def __init__(self, tokens: torch.Tensor, batch_size: int, seed: int = 0, rank: int = 0,
                 world_size: int = 1, shuffle: bool = True, device=None):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        self.tokens, self.seed = tokens, seed
        self.rank, self.world_size, self.shuffle, self.device = rank, world_size, shuffle, device
        self.batch_size = self._checked(batch_size)
        self.epoch, self.row = 0, 0  # row: rows of this epoch's order already used
        self._order_epoch, self._order = None, None

    def _checked(self, batch_size: int) -> int:
        if batch_size % self.world_size:
            raise ValueError(f"batch_size ({batch_size}) must be divisible by world_size "
                             f"({self.world_size})")
        if len(self.tokens) < batch_size:
            raise ValueError(f"{len(self.tokens)} rows cannot fill one batch of {batch_size}")
        return batch_size

    def __len__(self) -> int:
        return len(self.tokens) // self.batch_size

    def order(self, epoch: int) -> list[int]:
        """The row order of one epoch (Python's Random: the same on every machine)."""
        if self._order_epoch != epoch:
            order = list(range(len(self.tokens)))
            if self.shuffle:
                random.Random(f"minids/batches/{self.seed}/{epoch}").shuffle(order)
            self._order_epoch, self._order = epoch, order
        return self._order

    def __iter__(self):
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.next_batch()

    def next_batch(self, batch_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's (inputs, targets) of the next global batch, of batch_size rows
        (default: the batch_size given at construction)."""
        size = self.batch_size if batch_size is None else self._checked(batch_size)
        if self.row + size > len(self.tokens):
            self.epoch, self.row = self.epoch + 1, 0
        local = size // self.world_size
        start = self.row + self.rank * local
        index = self.order(self.epoch)[start:start + local]
        self.row += size
        rows = self.tokens[torch.tensor(index)]  # (b, seq_len+1)
        if self.device is not None:
            rows = rows.to(self.device)
        return rows[:, :-1], rows[:, 1:]

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "row": self.row, "seed": self.seed,
                "num_rows": len(self.tokens)}

    def load_state_dict(self, state: dict) -> None:
        for key, value in (("seed", self.seed), ("num_rows", len(self.tokens))):
            if state[key] != value:
                raise ValueError(f"Batches state has {key}={state[key]}, this one {value}")
        self.epoch = state["epoch"]
        # states saved before batch-size ramps counted whole batches ("position")
        self.row = state["row"] if "row" in state else state["position"] * state["batch_size"]


# --------------------------------------------------------------------------------------
# Instruction data for SFT and GRPO, and the held-out math evaluation.
# --------------------------------------------------------------------------------------

def chat_examples(rng: random.Random, n: int, solve=None) -> list[tuple[str, str]]:
    """n (prompt, answer) pairs: 65 % math (training problems; the answer is the worked
    solution, column by column, ending "Answer: N"), 10 % "What does this program
    print?", 10 % "Continue the story", 10 % "Write a short story about ...", 5 % short
    passkey retrieval. solve(item) gives the answer of each math problem (MathItem); the
    default is item.solution. Whatever solve does, the same rng gives the same questions."""
    examples = []
    while len(examples) < n:
        r = rng.random()
        if r < 0.65:
            item = math_item(rng)
            examples.append((item.question, solve(item) if solve else item.solution))
        elif r < 0.75:
            source = program(rng)
            examples.append((f"What does this program print?\n\n{source}",
                             run_program(source).rstrip("\n")))
        elif r < 0.85:
            paragraphs = story(rng).split("\n\n")
            examples.append((f"Continue the story: {paragraphs[0]}", paragraphs[1]))
        elif r < 0.95:
            text, context = _story(rng, None, 80, 200)
            hero = context["hero"]
            examples.append((f"Write a short story about {hero.a_desc} named {hero}.", text))
        else:
            text, key = passkey_document(rng, rng.randint(3, 12))
            prompt = text[:text.rindex(PASSKEY_QUESTION)].strip()
            examples.append((f"{prompt}\n\nWhat is the pass key?", f"The pass key is {key}."))
    return examples


def math_eval_set(seed: int = 0, n: int = 200) -> list[MathItem]:
    """n distinct problems for exact-match accuracy: a reply is right when
    extract_answer(reply) == str(item.answer). Their computations are held out (see
    is_held_out): no training text contains them, whatever the seed. item.kind says
    which sort each is ("+", "-", "×", "two-step", "word", "word two-step")."""
    rng = random.Random(f"minids/math-eval/{seed}")
    problems, seen = [], set()
    while len(problems) < n:
        item = math_item(rng, held_out=True)
        if item.question not in seen:
            seen.add(item.question)
            problems.append(item)
    return problems


_NUMBER = r"-?\d+(?:,\d{3})*"


def extract_answer(text: str) -> str | None:
    """The final integer answer in a model's output, as a string, or None.

    The reply is the text after the last <|assistant|> of a decoded chat, up to the next
    special token; in a pretraining-style text ("Question: ...\\n<working> Answer: N") it
    is what follows the question, up to any next "Question:" (a new problem the model went
    on to write). In the reply: the number after the LAST "Answer:"; without one, the
    number after "answer is", else the last number. For example
    "65 + 88: 5 + 8 = 13, write 3 carry 1. 6 + 8 + 1 = 15, write 153. Answer: 153" -> "153",
    "12 + 7 = 19" -> "19", " 85\\nQuestion: What is 5 + 6?" -> "85", "Answer: 1,234" -> "1234"."""
    if "<|assistant|>" in text:
        text = text.rsplit("<|assistant|>", 1)[1]
    text = text.split("<|", 1)[0].strip()
    if text.startswith("Question:"):  # skip the question: up to its line end or "Answer:"
        body = text[len("Question:"):]
        ends = [i for i in (body.find("\n"), body.find("Answer:")) if i >= 0]
        text = body[min(ends):] if ends else ""
    text = text.split("Question:", 1)[0]
    numbers = (re.findall(rf"Answer:\s*({_NUMBER})", text)
               or re.findall(rf"answer is:?\s*({_NUMBER})", text, re.IGNORECASE)
               or re.findall(_NUMBER, text))
    return str(int(numbers[-1].replace(",", ""))) if numbers else None


def sft_batch(examples, tokenizer, max_len: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets), each (B, T), from (prompt, answer) pairs in the chat template,
    one example a row: targets are IGNORE_INDEX except on the answer and its <|eos|>;
    rows are padded with <|pad|> (inputs) / IGNORE_INDEX (targets) and cut to max_len."""
    return _rows([[pair] for pair in _sft_pairs(examples, tokenizer, max_len)], tokenizer)[:2]


def packed_sft_batch(examples, tokenizer, row_len: int):
    """(inputs, targets, document_ids), each (R, row_len): the same examples as sft_batch,
    several to a row. Each goes, in order, into the first row with room for it (first fit);
    document_ids number the examples within a row, and padding is document -1. With the
    model's document mask no example sees another, so the loss is sft_batch's (V3 §5.1:
    "a sample masking strategy ... ensure these examples remain isolated")."""
    rows, room = [], []
    for pair in _sft_pairs(examples, tokenizer, row_len):
        fits = next((i for i, free in enumerate(room) if free >= len(pair[0])), None)
        if fits is None:
            rows.append([]), room.append(row_len)
            fits = len(rows) - 1
        rows[fits].append(pair)
        room[fits] -= len(pair[0])
    return _rows(rows, tokenizer, row_len)


def _sft_pairs(examples, tokenizer, max_len):
    """(inputs, targets) token lists of each example, cut to max_len."""
    pairs = []
    for prompt, answer in examples:
        ids, mask = tokenizer.chat_example(prompt, answer)
        targets = [t if m else IGNORE_INDEX for t, m in zip(ids[1:], mask[1:])]
        pairs.append((ids[:-1][:max_len], targets[:max_len]))
    return pairs


def _rows(rows, tokenizer, width=None):
    """Rows of (inputs, targets) pairs, laid end to end and padded: (inputs, targets,
    document_ids), each (len(rows), width or the longest row)."""
    width = width or max(sum(len(x) for x, _ in row) for row in rows)
    inputs = torch.full((len(rows), width), tokenizer.pad_id, dtype=torch.long)
    targets = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    document_ids = torch.full((len(rows), width), -1, dtype=torch.long)
    for r, row in enumerate(rows):
        start = 0
        for d, (x, y) in enumerate(row):
            end = start + len(x)
            inputs[r, start:end], targets[r, start:end] = torch.tensor(x), torch.tensor(y)
            document_ids[r, start:end] = d
            start = end
    return inputs, targets, document_ids


# --------------------------------------------------------------------------------------
# prepare(): `python -m minids data`.
# --------------------------------------------------------------------------------------

def prepare(data_dir="data", seed: int = 0, seq_len: int = 256, vocab_size: int = 4096,
            verbose: bool = True) -> dict:
    """Make everything the book trains on, in about half a minute on 2 cores:

    1. the corpus, data/corpus/*.jsonl + MANIFEST.json (committed; a test checks it);
    2. the tokenizer, trained on the training split, data/tokenizer.json (committed; it
       is retrained every time, and a deterministic training reproduces it byte for byte);
    3. every document tokenised (loaded through `datasets`), wrapped as <|bos|> doc <|eos|>
       (BOS marks a document start, as the chat template's <|bos|> does), shuffled,
       packed into rows of seq_len + 1, saved as data/tokens/{train,val}.npy.
    Returns (and prints) a summary: characters, tokens and bytes per token per part."""
    from minids.tokenizer import train_tokenizer

    start = time.perf_counter()
    data_dir = Path(data_dir)
    corpus = generate_corpus(seed)
    manifest = write_corpus(data_dir, seed, corpus=corpus)
    seconds = {"corpus": time.perf_counter() - start}

    tokenizer = train_tokenizer(tokenizer_texts(corpus), vocab_size)
    tokenizer_file = data_dir / "tokenizer.json"
    before = tokenizer_file.read_text(encoding="utf-8") if tokenizer_file.is_file() else None
    tokenizer.save(tokenizer_file)
    tokenizer_status = ("unchanged" if before == tokenizer.to_json() else
                        "written" if before is None else "CHANGED (old checkpoints no longer match)")
    seconds["tokenizer"] = time.perf_counter() - start - sum(seconds.values())

    parts, rows = {}, {}
    for split in SPLITS:
        documents = []
        for name in GENERATORS:
            texts = _load_texts(data_dir, split, name)
            ids = tokenizer.encode_batch(texts)
            documents += ids
            stats = parts.setdefault(name, {})
            stats[f"{split}_chars"] = sum(map(len, texts))
            stats[f"{split}_bytes"] = sum(len(t.encode()) for t in texts)
            stats[f"{split}_tokens"] = sum(map(len, ids)) + 2 * len(ids)  # + BOS, EOS
        random.Random(f"minids/shuffle/{seed}/{split}").shuffle(documents)
        rows[split] = pack(documents, seq_len, tokenizer.eos_id, tokenizer.bos_id)
        save_tokens(rows[split], data_dir / "tokens" / f"{split}.npy")
    for stats in parts.values():
        stats["val_bytes_per_token"] = round(stats["val_bytes"] / (stats["val_tokens"]), 3)
    seconds["tokens"] = time.perf_counter() - start - sum(seconds.values())
    summary = {
        "seed": seed, "seq_len": seq_len, "vocab_size": tokenizer.vocab_size,
        "tokenizer": tokenizer_status, "parts": parts,
        "rows": {split: tuple(r.shape) for split, r in rows.items()},
        "corpus_bytes": sum(f["bytes"] for f in manifest["files"].values()),
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
    }
    (data_dir / "tokens" / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if verbose:
        _print_summary(summary, data_dir)
    return summary


def _load_texts(data_dir: Path, split: str, name: str) -> list[str]:
    """One corpus file through `datasets`, quietly, with a throwaway Arrow cache (the
    files were just rewritten, so a kept cache would only grow)."""
    import datasets

    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        with tempfile.TemporaryDirectory() as cache:
            return load_corpus(data_dir, split, parts=(name,), cache_dir=cache)["text"]
    finally:
        if bars:
            datasets.enable_progress_bars()


def tokenizer_texts(corpus: dict) -> list[str]:
    """What the tokenizer is trained on: the training split of every part, in order."""
    return [text for name in GENERATORS for text in corpus[name]["train"]]


def _print_summary(summary: dict, data_dir: Path) -> None:
    print(f"corpus      {summary['corpus_bytes'] / 1e6:.1f} MB in {data_dir / 'corpus'}")
    print(f"tokenizer   {summary['vocab_size']} tokens, {data_dir / 'tokenizer.json'} "
          f"{summary['tokenizer']}")
    print(f"{'part':<10}{'train chars':>13}{'train tokens':>14}{'val tokens':>12}{'bytes/token':>13}")
    for name, s in summary["parts"].items():
        print(f"{name:<10}{s['train_chars']:>13,}{s['train_tokens']:>14,}{s['val_tokens']:>12,}"
              f"{s['val_bytes_per_token']:>13.2f}")
    rows = ", ".join(f"{split} {shape[0]:,} x {shape[1]}" for split, shape in summary["rows"].items())
    print(f"packed      {rows} in {data_dir / 'tokens'}")
    print(f"time        {summary['seconds']} s")
