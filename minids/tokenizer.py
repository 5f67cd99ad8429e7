"""Byte-level BPE (trained with Hugging Face `tokenizers`) and the chat template.

Text is split into pieces (words with their leading space, punctuation runs, each digit
alone), each piece is turned into its UTF-8 bytes, and BPE merges the most frequent pairs
of symbols until the vocabulary is full. Starting from all 256 bytes means every string
has an encoding, and with no normalizer `decode(encode(s)) == s` for any Unicode `s`.

Digits are split one by one before BPE (DeepSeek-V3 splits numbers into pieces too): the
model then sees "85" as "8", "5" and can learn arithmetic digit by digit.

The vocabulary (4096 by default) starts with six special tokens at fixed ids:

    0 <|bos|>   1 <|eos|>   2 <|pad|>   3 <|user|>   4 <|assistant|>   5 <|system|>

then the 256 bytes, then the merges, then (if the training text runs out of merges
first) reserved special tokens up to the requested size.

`encode` never produces them from text (a literal "<|eos|>" in a story is encoded as
ordinary bytes), so they can only come from the code that builds a sequence.

Chat template (SFT, GRPO and the chat command use exactly this):

    <|bos|><|user|>What is 3 + 4?<|assistant|>7<|eos|>

`chat_prompt(question)` gives the ids up to and including <|assistant|>, where the model
starts to write; `chat_example(question, answer)` gives the whole sequence and a loss mask
that is 1 only on the answer and the closing <|eos|>:

    tokens  <|bos|> <|user|> What  is   3   +   4  ?  <|assistant|> 7  <|eos|>
    mask       0       0      0    0    0   0   0  0        0       1     1
"""

import json
from pathlib import Path

import tokenizers
from tokenizers import decoders, models, pre_tokenizers, trainers

SPECIAL_TOKENS = ("<|bos|>", "<|eos|>", "<|pad|>", "<|user|>", "<|assistant|>", "<|system|>")
ROLES = ("system", "user", "assistant")


def _pre_tokenizer():
    """Each digit alone, then GPT-2's byte-level split (words keep their leading space)."""
    return pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])


class Tokenizer:
    """A `tokenizers.Tokenizer` with our special tokens, plain-list API and chat template."""

    def __init__(self, backend: tokenizers.Tokenizer):
        for expected_id, token in enumerate(SPECIAL_TOKENS):
            if backend.token_to_id(token) != expected_id:
                raise ValueError(f"tokenizer: special token {token} must have id {expected_id}, "
                                 f"got {backend.token_to_id(token)}")
        backend.encode_special_tokens = True  # text that looks like "<|eos|>" stays text
        self.backend = backend
        (self.bos_id, self.eos_id, self.pad_id,
         self.user_id, self.assistant_id, self.system_id) = range(len(SPECIAL_TOKENS))

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        """Token ids of `text`; special tokens only if asked for (bos, eos)."""
        ids = self.backend.encode(text, add_special_tokens=False).ids
        return [self.bos_id] * bos + ids + [self.eos_id] * eos

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """`encode` for many texts at once (in parallel, in Rust)."""
        return [e.ids for e in self.backend.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return self.backend.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def id_to_token(self, token_id: int) -> str:
        return self.backend.id_to_token(token_id)

    def to_json(self) -> str:
        return self.backend.to_str(pretty=True) + "\n"

    def save(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path="data/tokenizer.json") -> "Tokenizer":
        """Read a saved tokenizer. A missing file raises FileNotFoundError; a file that is
        not a tokenizer (or lacks our special tokens) raises ValueError."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no tokenizer at {path} (run `python -m minids data`)")
        text = path.read_text(encoding="utf-8")
        try:
            json.loads(text)
            backend = tokenizers.Tokenizer.from_str(text)
        except Exception as error:  # json.JSONDecodeError or the Rust side's parse error
            raise ValueError(f"{path} is not a valid tokenizer file: {error}") from None
        return cls(backend)

    # The chat template.
    def chat_prompt(self, messages_or_question) -> list[int]:
        """Ids that ask the model for the assistant's next turn.

        A string is one user question: <|bos|><|user|>{question}<|assistant|>.
        A list of {"role", "content"} messages (roles system, user, assistant) is a whole
        conversation; each assistant turn ends with <|eos|>."""
        messages = messages_or_question
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        ids = [self.bos_id]
        for message in messages:
            role = message["role"]
            if role not in ROLES:
                raise ValueError(f"unknown chat role {role!r}; use one of {ROLES}")
            ids += [getattr(self, f"{role}_id")] + self.encode(message["content"])
            if role == "assistant":
                ids.append(self.eos_id)
        return ids + [self.assistant_id]

    def chat_example(self, question: str, answer: str) -> tuple[list[int], list[int]]:
        """(ids, loss_mask) of one SFT example; the mask is 1 on the answer and its <|eos|>.
        Training targets are ids[1:], kept where loss_mask[1:] is 1."""
        prompt = self.chat_prompt(question)
        reply = self.encode(answer, eos=True)
        return prompt + reply, [0] * len(prompt) + [1] * len(reply)


def train_tokenizer(texts, vocab_size: int = 4096) -> Tokenizer:
    """Train byte-level BPE on an iterable of strings. The same texts give the same merges
    on every run (ties between equally frequent pairs break by token id, not by chance).

    BPE stops early when every word of the texts is already one token (our generated
    corpus has a few thousand distinct words); the ids left over are filled with special
    tokens <|reserved_0|>, <|reserved_1|>, ... that text never produces, so the vocabulary
    always has exactly `vocab_size` ids, as the model's embedding expects."""
    if vocab_size < len(SPECIAL_TOKENS) + 256:
        raise ValueError(f"vocab_size must be at least {len(SPECIAL_TOKENS) + 256} "
                         f"(special tokens + 256 bytes), got {vocab_size}")
    backend = tokenizers.Tokenizer(models.BPE())
    backend.pre_tokenizer = _pre_tokenizer()
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    missing = vocab_size - backend.get_vocab_size(with_added_tokens=True)
    backend.add_special_tokens([f"<|reserved_{i}|>" for i in range(missing)])
    return Tokenizer(backend)
