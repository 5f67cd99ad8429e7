import random
from pathlib import Path

import pytest
import torch

from minids import data
from minids.corpus.stories import story
from minids.model import IGNORE_INDEX
from minids.tokenizer import SPECIAL_TOKENS, Tokenizer, train_tokenizer

TOKENIZER_FILE = Path(__file__).resolve().parents[1] / "data" / "tokenizer.json"


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.load(TOKENIZER_FILE)


def random_unicode(rng: random.Random) -> str:
    """A mix of ASCII, accents, combining marks, CJK, emoji (with joiners), RTL scripts,
    odd whitespace and any other non-surrogate code point."""
    pieces = ["héllo", "naïve café", "e\u0301", "日本語のテキスト", "中文", "한국어", "😀", "👩‍👩‍👧",
              "🇫🇷", "مرحبا", "שלום", "  ", "\n\n", "\t", "\r\n", " \u00a0 ", "\u200b", "<|eos|>",
              "<|bos|>x", "12345", "  indented\n    code", "ß", "Ω≈ç√", "\x00", "\U0010ffff"]
    out = []
    for _ in range(rng.randint(1, 12)):
        if rng.random() < 0.5:
            out.append(rng.choice(pieces))
        else:
            code = rng.randint(0, 0x10FFFF)
            out.append(chr(code) if not 0xD800 <= code <= 0xDFFF else "?")
    return "".join(out)


def test_round_trip_is_exact_for_any_unicode_string(tok):
    rng = random.Random(0)
    for _ in range(500):
        text = random_unicode(rng)
        assert tok.decode(tok.encode(text)) == text, repr(text)


def test_text_never_encodes_to_special_tokens(tok):
    ids = tok.encode("<|bos|><|user|>hi<|assistant|><|eos|><|pad|><|reserved_3|>")
    assert min(ids) >= len(SPECIAL_TOKENS)


def test_special_tokens_have_fixed_ids_and_the_vocabulary_is_4096(tok):
    assert [tok.bos_id, tok.eos_id, tok.pad_id, tok.user_id, tok.assistant_id, tok.system_id] \
        == list(range(6))
    assert [tok.id_to_token(i) for i in range(6)] == list(SPECIAL_TOKENS)
    assert tok.vocab_size == 4096
    assert tok.encode("hi", bos=True, eos=True)[::len(tok.encode("hi")) + 1] == [0, 1]
    assert tok.decode([0, *tok.encode("hi"), 1], skip_special_tokens=True) == "hi"


def test_digits_are_single_tokens(tok):
    tokens = [tok.id_to_token(i) for i in tok.encode("What is 37 + 480?")]
    assert {"3", "7", "4", "8", "0"} <= set(tokens)
    assert not any(len(t) > 1 and t.isdigit() for t in tokens)


def test_the_words_of_the_math_working_are_single_tokens(tok):
    working = "28 × 6: 8 × 6 = 48, write 8 carry 4. 14 - 8 = 6, write 6 borrow 1. Answer: 168"
    tokens = [tok.id_to_token(i) for i in tok.encode(working)]
    assert {"Ġwrite", "Ġcarry", "Ġborrow", "ĠAnswer", "Ġ=", "Ġ-"} <= set(tokens)
    assert len(tokens) == 46  # digits one by one, and a space token before each number


def test_chat_prompt_layout(tok):
    question = "What is 3 + 4?"
    assert tok.chat_prompt(question) == [tok.bos_id, tok.user_id, *tok.encode(question),
                                         tok.assistant_id]
    conversation = [{"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                    {"role": "user", "content": question}]
    assert tok.decode(tok.chat_prompt(conversation)) == (
        "<|bos|><|system|>Be brief.<|user|>Hi<|assistant|>Hello<|eos|>"
        "<|user|>What is 3 + 4?<|assistant|>")
    with pytest.raises(ValueError, match="role"):
        tok.chat_prompt([{"role": "robot", "content": "beep"}])


def test_chat_example_masks_everything_but_the_answer_and_eos(tok):
    ids, mask = tok.chat_example("What is 3 + 4?", "3 + 4 = 7")
    assert tok.decode(ids) == "<|bos|><|user|>What is 3 + 4?<|assistant|>3 + 4 = 7<|eos|>"
    assert len(ids) == len(mask)
    answer = [t for t, m in zip(ids, mask) if m]
    assert answer == tok.encode("3 + 4 = 7") + [tok.eos_id]
    assert mask == sorted(mask)  # zeros (prompt), then ones (answer + eos)


def test_sft_batch_trains_only_on_answers(tok):
    pairs = [("What is 3 + 4?", "7"), ("Write a long answer, please.", "Here it is: 1 2 3 4")]
    inputs, targets = data.sft_batch(pairs, tok)
    assert inputs.shape == targets.shape and inputs.dtype == torch.long
    for row, (question, answer) in enumerate(pairs):
        kept = targets[row][targets[row] != IGNORE_INDEX].tolist()
        assert kept == tok.encode(answer) + [tok.eos_id]
        ids, _ = tok.chat_example(question, answer)
        assert inputs[row, :len(ids) - 1].tolist() == ids[:-1]
    assert inputs[0, -1] == tok.pad_id and targets[0, -1] == IGNORE_INDEX


def test_training_twice_gives_identical_files():
    texts = [story(random.Random(i)) for i in range(300)]
    first, second = train_tokenizer(texts, 1000), train_tokenizer(reversed(texts), 1000)
    assert first.to_json() == second.to_json()
    assert first.vocab_size == 1000


def test_committed_tokenizer_is_reproduced_by_training(tok):
    corpus = data.generate_corpus(seed=0)
    trained = train_tokenizer(data.tokenizer_texts(corpus))
    assert trained.to_json() == TOKENIZER_FILE.read_text(encoding="utf-8")
    assert TOKENIZER_FILE.stat().st_size < 1_000_000
    stories = corpus["stories"]["val"]
    bytes_per_token = sum(len(s.encode()) for s in stories) / sum(map(len, tok.encode_batch(stories)))
    assert bytes_per_token > 3.5  # whole words are single tokens


def test_loading_a_missing_or_corrupt_file_says_what_is_wrong(tmp_path, tok):
    with pytest.raises(FileNotFoundError, match="no tokenizer"):
        Tokenizer.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"version": "1.0", "model": ')
    with pytest.raises(ValueError, match="not a valid tokenizer"):
        Tokenizer.load(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text('{"hello": "world"}')
    with pytest.raises(ValueError, match="not a valid tokenizer"):
        Tokenizer.load(tmp_path / "other.json")
    tok.save(tmp_path / "copy.json")
    assert Tokenizer.load(tmp_path / "copy.json").to_json() == tok.to_json()


def test_vocab_size_below_bytes_plus_specials_is_rejected():
    with pytest.raises(ValueError, match="vocab_size"):
        train_tokenizer(["abc"], vocab_size=100)
