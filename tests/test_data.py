import contextlib
import io
import json
import random
import re
from collections import Counter
from pathlib import Path

import pytest
import torch

from minids import data
from minids.corpus.arithmetic import (KINDS, OPS, MathItem, careless_solution, careless_teacher,
                                      column_working, is_held_out, math_document, math_item,
                                      math_problem)
from minids.corpus.passkey import PASSKEY_QUESTION, passkey_document
from minids.corpus.programs import OUTPUT_MARK, PROGRAMS, run_program
from minids.corpus.stories import _story
from minids.data import Batches

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def corpus():
    return data.generate_corpus(seed=0)  # the full 10 MB corpus, about 2 s


# Generators.

@pytest.mark.parametrize("name", list(data.GENERATORS))
def test_generators_repeat_with_a_seed_and_change_with_another(name):
    make = data.GENERATORS[name]
    first = [make(random.Random(1)) for _ in range(3)]
    assert first == [make(random.Random(1)) for _ in range(3)]
    assert make(random.Random(1)) != make(random.Random(2))


def test_regenerated_corpus_matches_the_committed_manifest(corpus):
    committed = json.loads((DATA / "corpus" / "MANIFEST.json").read_text())
    files = data._corpus_files(corpus)
    assert data._manifest(corpus, files, seed=0) == committed


def test_mixture_is_67_19_10_5_percent_of_characters_with_2_percent_validation(corpus):
    chars = {name: sum(len(t) for split in parts.values() for t in split)
             for name, parts in corpus.items()}
    total = sum(chars.values())
    assert 8e6 <= total <= 12e6
    for name, share in {"stories": 0.667, "math": 0.19, "code": 0.095, "passkey": 0.048}.items():
        assert chars[name] / total == pytest.approx(share, abs=0.01), name
        val, train = len(corpus[name]["val"]), len(corpus[name]["train"])
        assert val == pytest.approx((val + train) / data.VAL_EVERY, abs=1)
        assert not set(corpus[name]["val"]) & set(corpus[name]["train"])


def test_smaller_budget_gives_a_prefix_of_the_same_documents(corpus):
    small = data.generate_part("stories", seed=0, chars=50_000)
    assert small["train"] == corpus["stories"]["train"][:len(small["train"])]


# Stories.

def test_stories_are_80_to_250_words_of_clean_text(corpus):
    stories = corpus["stories"]["train"]
    words = [len(s.split()) for s in stories]
    assert min(words) >= 80 and max(words) <= 250
    text = "\n".join(stories)
    for leftover in "{}[]|^?\t":  # template syntax must never leak into a story
        if leftover == "?":
            assert not re.search(r"(^|[.!] )\?", text, re.MULTILINE)
        else:
            assert leftover not in text, leftover
    assert not re.search(r"\. [a-z]", text)  # a sentence never starts in lower case
    assert not re.search(r"\ba [aeiou]", text.replace("a uni", "")), "a/an agreement"
    assert "  " not in text and " ," not in text and " ." not in text


def test_stories_have_dialogue_and_variety(corpus):
    stories = corpus["stories"]["train"][:2000]
    assert sum('"' in s for s in stories) / len(stories) > 0.9
    for s in stories:
        for paragraph in s.split("\n\n"):
            assert paragraph.count('"') % 2 == 0, paragraph  # quotation marks close
    heroes = Counter(re.search(r"(?:named|called) ([A-Z][a-z]+)", s).group(1)
                     for s in stories if re.search(r"(?:named|called) ([A-Z][a-z]+)", s))
    assert len(heroes) > 200
    openings = Counter(s.split("\n\n")[0][:60] for s in stories)
    assert openings.most_common(1)[0][1] < 5


def test_pronouns_agree_with_the_character():
    rng = random.Random(3)
    for _ in range(200):
        text, context = _story(rng, None, 80, 250)
        hero, friend = context["hero"], context["friend"]
        if hero.gender == friend.gender == context["adult"].gender:
            other = {"f": (" he ", " him ", " his "), "m": (" she ", " her ")}[hero.gender]
            padded = " " + re.sub(r"[^\w ]", " ", text) + " "
            assert not any(p in padded.replace(" He ", " he ").replace(" She ", " she ")
                           for p in other), text


# Math.

WORDS = {"plus": "+", "minus": "-", "times": "×", "sum": "+", "product": "×", "Add": "+",
         "Multiply": "×", "Subtract": "-", "Take": "-"}
OPERATION = re.compile(r"(\d+) ([+×-]) (\d+): ")  # the restatement that starts a working
COLUMN = re.compile(r"(\d+(?: [+×-] \d+){1,2}) = (\d+), write (\d+)(?: (carry|borrow) (\d))?")


def digit(n, i):
    return n // 10**i % 10


def check_working(solution: str) -> tuple[str, int]:
    """Check a worked solution from its text alone and return (expression, answer): each
    operation starts from the previous result; each column uses the right digits, adds
    the carry (or takes the borrow) of the column before and states a correct fact; the
    digits written so far grow to the left; the last "write" of an operation is its
    result, and "Answer: N" is the last result."""
    body, answer = solution.rsplit(" Answer: ", 1)
    pieces = OPERATION.split(body)
    assert pieces[0] == "", solution
    value, expression = None, ""
    for a, op, b, working in zip(*[iter(pieces[1:])] * 4):
        a, b = int(a), int(b)
        assert value is None or a == value, solution
        expression += (str(a) if value is None else "") + {"×": "*"}.get(op, op) + str(b)
        columns = working.strip().removesuffix(".").split(". ")
        assert len(columns) == len(str(a if op == "×" else max(a, b))), solution
        carry, written = 0, ""
        for i, column in enumerate(columns):
            last = i == len(columns) - 1
            left, result, now, mark, amount = COLUMN.fullmatch(column).groups()
            numbers, result = [int(n) for n in re.findall(r"\d+", left)], int(result)
            assert eval(left.replace("×", "*")) == result >= 0, column
            if op == "-":
                borrow = numbers[0] >= 10
                assert numbers[0] == digit(a, i) + 10 * borrow and numbers[-1] == digit(b, i)
                assert numbers[1:-1] == [1] * carry and set(re.findall(r"[+×-]", left)) == {"-"}
                assert (mark == "borrow") == borrow and not (borrow and last) and result <= 9, column
                carry, new = int(borrow), str(result)
            else:
                assert numbers == [digit(a, i), digit(b, i) if op == "+" else b] + [carry] * (carry > 0)
                assert re.findall(r"[+×-]", left) == [op] + ["+"] * (carry > 0), column
                carry, new = result // 10, str(result if last else result % 10)
                assert mark == ("carry" if carry and not last else None) and amount in (None, str(carry))
            written = new + written
            assert now == (str(int(written)) if last else written), column
        value = int(now)
        assert value == OPS[op](a, b), column
    assert answer == str(value), solution
    return expression, value


def expression_of_question(question: str) -> str:
    """The expression of a plain arithmetic question ("Subtract 5 from 12" is 12-5)."""
    numbers = re.findall(r"\d+", question)
    ops = re.findall(r"[+×-]", question) or [WORDS[w] for w in re.findall(r"\w+", question) if w in WORDS]
    if question.startswith(("Subtract", "Take")):
        numbers = numbers[::-1]
    return numbers[0] + "".join({"×": "*"}.get(op, op) + n for op, n in zip(ops, numbers[1:]))


def math_documents(corpus, split="train"):
    for document in corpus["math"][split]:
        question, solution = document.split("\n")
        assert question.startswith("Question: ") and solution.endswith(f"Answer: {extract_int(solution)}")
        yield question[len("Question: "):], solution


def test_math_answers_recompute_from_the_question_and_working(corpus):
    for question, solution in math_documents(corpus):
        expression, value = check_working(solution)
        assert extract_int(solution) == value == eval(expression) >= 0
        assert Counter(re.findall(r"\d+", expression)) <= Counter(re.findall(r"\d+", question)) \
            or "legs" in question, question  # the legs problem states "4 legs" itself
        if question.startswith(("What is", "Compute", "How much", "Add", "Subtract", "Take",
                                "Multiply")) and "legs" not in question:
            assert expression_of_question(question) == expression, question


def test_column_working_examples():
    assert column_working(65, "+", 88) == (
        "65 + 88: 5 + 8 = 13, write 3 carry 1. 6 + 8 + 1 = 15, write 153.", 153)
    assert column_working(74, "-", 38) == (
        "74 - 38: 14 - 8 = 6, write 6 borrow 1. 7 - 1 - 3 = 3, write 36.", 36)
    assert column_working(28, "×", 6) == (
        "28 × 6: 8 × 6 = 48, write 8 carry 4. 2 × 6 + 4 = 16, write 168.", 168)
    assert column_working(7, "+", 45)[0] == \
        "7 + 45: 7 + 5 = 12, write 2 carry 1. 0 + 4 + 1 = 5, write 52."
    assert column_working(105, "-", 98)[0].endswith("1 - 1 - 0 = 0, write 7.")  # no leading 0
    for a in range(0, 1000, 7):
        for b in range(0, 1000, 11):
            for op in "+-×":
                if (op != "-" or a >= b) and (op != "×" or b < 10):
                    text, result = column_working(a, op, b)
                    assert check_working(f"{text} Answer: {result}") == (
                        f"{a}{ {'×': '*'}.get(op, op) }{b}", OPS[op](a, b))
    with pytest.raises(ValueError):
        column_working(3, "-", 5)


def test_a_careless_teacher_forgets_carries_and_stays_consistent():
    always = random.Random(0)
    assert column_working(65, "+", 88, slip=1.0, rng=always) == (
        "65 + 88: 5 + 8 = 13, write 3. 6 + 8 = 14, write 143.", 143)
    assert column_working(74, "-", 38, slip=1.0, rng=always) == (
        "74 - 38: 14 - 8 = 6, write 6. 7 - 3 = 4, write 46.", 46)
    assert column_working(28, "×", 6, slip=1.0, rng=always) == (
        "28 × 6: 8 × 6 = 48, write 8. 2 × 6 = 12, write 128.", 128)
    rng, teacher = random.Random(1), random.Random(2)
    wrong = 0
    for _ in range(300):
        item = math_item(rng)
        solution, result = careless_solution(item, 0.6, teacher)
        assert careless_solution(item, 0.0, None) == (item.solution, item.answer)
        assert solution.endswith(f"Answer: {result}") and data.extract_answer(solution) == str(result)
        if "carry" not in item.solution and "borrow" not in item.solution:
            assert solution == item.solution  # nothing to forget
        wrong += result != item.answer
    assert 0.15 < wrong / 300 < 0.45, wrong  # measured 27 % of training problems at 0.6


def test_careless_chat_examples_ask_the_same_questions():
    careful = data.chat_examples(random.Random(0), 200)
    careless = data.chat_examples(random.Random(0), 200, careless_teacher(0.6, random.Random(1)))
    assert [q for q, _ in careful] == [q for q, _ in careless]
    assert sum(a != b for (_, a), (_, b) in zip(careful, careless)) > 10


def extract_int(text):
    return int(data.extract_answer(text))


def test_math_item_fields_agree():
    rng = random.Random(0)
    items = [math_item(rng) for _ in range(3000)]
    for item in items:
        expression, value = check_working(item.solution)
        assert expression == item.expression and value == item.answer == eval(item.expression)
        assert data.extract_answer(item.solution) == str(item.answer)
        assert data.extract_answer(math_document(item)) == str(item.answer)
        assert math_document(item) == f"Question: {item.question}\n{item.solution}"
    kinds = Counter(item.kind for item in items)
    assert set(kinds) == set(KINDS) and kinds["+"] + kinds["-"] + kinds["×"] > 1200
    sizes = Counter(tuple(len(n) for n in re.findall(r"\d+", item.expression))
                    for item in items if item.kind in "+-")
    assert sizes[(2, 2)] > sizes[(2, 1)] > sizes[(3, 2)] > sizes[(3, 3)] > 0  # mostly 2 digits
    assert max(item.answer for item in items if item.kind == "×") <= 99 * 9
    assert math_problem(random.Random(5)) == math_problem(random.Random(5))


@pytest.mark.parametrize("output, expected", [
    ("85", "85"), (" 12 + 7 = 19", "19"), ("12 + 7 = 19, 19 - 5 = 14<|eos|>", "14"),
    (" 85\nQuestion: What is 5 + 6?\nAnswer: 11", "85"), ("Answer: 1,234", "1234"),
    ("Question: What is 2 + 2?\nAnswer: 4\nQuestion: 9", "4"), ("The answer is 42.", "42"),
    ("3 - 5 = -2", "-2"), ("<|bos|><|user|>What is 3 + 4?<|assistant|>7<|eos|>", "7"),
    ("I do not know", None), ("", None), ("007", "7"),
    ("65 + 88: 5 + 8 = 13, write 3 carry 1. 6 + 8 + 1 = 15, write 153. Answer: 153", "153"),
    ("12 + 7: 2 + 7 = 9, write 9. 1 + 0 = 1, write 19. Answer: 19. 19 - 5: Answer: 14", "14"),
    ("Question: What is 12 + 7?\n12 + 7: 2 + 7 = 9, write 9. 1 + 0 = 1, write 19. Answer: 19\n"
     "Question: What is 5 + 6?\n5 + 6: 5 + 6 = 11, write 11. Answer: 11", "19"),
    ("Question: What is 2 + 2? Answer: 4", "4"), ("Question: What is 12 + 7?\n", None),
    ("<|user|>What is 3 + 4?<|assistant|>3 + 4: 3 + 4 = 7, write 7. Answer:7<|eos|>", "7"),
])
def test_extract_answer_reads_typical_outputs(output, expected):
    assert data.extract_answer(output) == expected


def test_math_eval_set_is_disjoint_from_all_training_math(corpus):
    problems = data.math_eval_set(seed=0, n=300)
    assert len({p.question for p in problems}) == 300
    assert all(isinstance(p, MathItem) and is_held_out(p) for p in problems)
    assert data.math_eval_set(seed=0, n=300) == problems
    held_out = {p.expression for p in problems}
    training = {check_working(s)[0] for split in data.SPLITS for _, s in math_documents(corpus, split)}
    assert not held_out & training
    chat = {q for q, _ in data.chat_examples(random.Random(0), 2000)}
    assert not {p.question for p in problems} & chat
    # never held out: a problem of single digits only; training shows every one of them
    assert all(max(map(len, re.findall(r"\d+", p.expression))) > 1 for p in problems)
    singles = {f"{a}{op}{b}" for a in range(2, 10) for b in range(2, 10) for op in "+-*"
               if op != "-" or a >= b}
    assert singles <= training
    assert Counter(p.kind for p in problems)["+"] > 20


# Code.

def test_code_outputs_equal_running_the_programs(corpus):
    samples = corpus["code"]["train"] + corpus["code"]["val"]
    assert len(samples) > 5000
    for sample in samples:
        source, stated = sample.split(OUTPUT_MARK)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(source, {})  # plain Python, not the generator's restricted runner
        printed = out.getvalue().rstrip("\n").split("\n")
        assert stated == "\n".join(f"# {line}" if line else "#" for line in printed), sample


def test_programs_cover_every_template_and_cannot_import():
    rng = random.Random(0)
    for make in PROGRAMS:
        assert run_program(make(rng))
    with pytest.raises(ImportError):
        run_program("import os")


# Passkey.

def test_passkey_document_hides_one_key_at_a_random_depth():
    depths = []
    for seed in range(20):
        text, key = passkey_document(random.Random(seed), 50)
        assert re.fullmatch(r"\d{5}", key)
        assert text.count(key) == 2 and text.endswith(f"{PASSKEY_QUESTION} {key}.")
        assert f"The pass key is {key}. Remember it." in text
        depths.append(text.index(key) / len(text))
    assert min(depths) < 0.25 and max(depths) > 0.75


# Packing.

def test_pack_rows_are_seq_len_plus_one_and_lose_only_the_tail():
    rng = random.Random(0)
    docs = [[rng.randint(10, 99) for _ in range(rng.randint(1, 40))] for _ in range(50)]
    seq_len, eos, bos = 16, 1, 0
    rows = data.pack(docs, seq_len, eos_id=eos, bos_id=bos)
    stream = [t for d in docs for t in [bos, *d, eos]]
    assert rows.dtype == torch.long and rows.shape == ((len(stream) - 1) // seq_len, seq_len + 1)
    assert torch.equal(rows[:-1, -1], rows[1:, 0])  # consecutive rows share one token
    kept = data.stream_from_rows(rows)
    assert kept.tolist() == stream[:len(kept)] and len(stream) - len(kept) < seq_len
    assert (kept == eos).sum() >= len(docs) - 1 and (kept == bos).sum() >= len(docs) - 1
    without_bos = data.pack(docs, seq_len, eos_id=eos)
    assert (without_bos == bos).sum() == 0


def test_saved_tokens_load_back_and_recut_to_another_length(tmp_path):
    rows = data.rows_from_stream(torch.arange(1000) % 4096, 16)
    data.save_tokens(rows, tmp_path / "tokens" / "train.npy")
    assert torch.equal(data.load_tokens(tmp_path, "train"), rows)
    longer = data.load_tokens(tmp_path, "train", seq_len=64)
    assert longer.shape == (999 // 64, 65)
    assert torch.equal(longer.reshape(-1)[:65], torch.arange(65))
    with pytest.raises(FileNotFoundError, match="python -m minids data"):
        data.load_tokens(tmp_path, "val")


# Batches.

def rows(n=40, length=9):
    return torch.arange(n * length).reshape(n, length)


def test_batches_targets_are_inputs_shifted_by_one():
    x, y = next(Batches(rows(), batch_size=4))
    assert x.shape == y.shape == (4, 8) and torch.equal(x[:, 1:], y[:, :-1])


def test_batches_same_seed_same_order_other_seed_other_order():
    take = lambda b: [b.next_batch()[0] for _ in range(5)]  # noqa: E731
    first = take(Batches(rows(), 4, seed=1))
    assert all(torch.equal(a, b) for a, b in zip(first, take(Batches(rows(), 4, seed=1))))
    assert not all(torch.equal(a, b) for a, b in zip(first, take(Batches(rows(), 4, seed=2))))


def test_batches_cover_every_row_once_per_epoch_then_reshuffle():
    batches = Batches(rows(), 4, seed=0)
    epochs = [[next(batches)[0][:, 0].tolist() for _ in range(len(batches))] for _ in range(2)]
    firsts = [sorted(sum(epoch, [])) for epoch in epochs]
    assert firsts[0] == firsts[1] == [9 * i for i in range(40)]
    assert epochs[0] != epochs[1]


def test_resume_from_state_dict_gives_exactly_the_remaining_batches():
    uninterrupted = Batches(rows(), 4, seed=3)
    expected = [next(uninterrupted) for _ in range(25)]  # 10 batches per epoch: crosses two
    interrupted = Batches(rows(), 4, seed=3)
    for _ in range(13):
        next(interrupted)
    state = json.loads(json.dumps(interrupted.state_dict()))  # survives a JSON checkpoint
    resumed = Batches(rows(), 4, seed=3)
    resumed.load_state_dict(state)
    for (x, y), (ex, ey) in zip([next(resumed) for _ in range(12)], expected[13:]):
        assert torch.equal(x, ex) and torch.equal(y, ey)
    with pytest.raises(ValueError, match="seed"):
        Batches(rows(), 4, seed=4).load_state_dict(state)


def test_two_ranks_get_disjoint_halves_of_the_global_batch():
    single = Batches(rows(), 8, seed=0)
    ranks = [Batches(rows(), 8, seed=0, rank=r, world_size=2) for r in range(2)]
    for _ in range(7):
        whole = next(single)[0]
        halves = [next(b)[0] for b in ranks]
        assert all(h.shape == (4, 8) for h in halves)
        assert torch.equal(torch.cat(halves), whole)
        assert not set(halves[0][:, 0].tolist()) & set(halves[1][:, 0].tolist())
    with pytest.raises(ValueError, match="divisible"):
        Batches(rows(), 7, world_size=2)


# datasets.

def test_load_corpus_reads_the_files_offline(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.load, "get_session", lambda: pytest.fail("went online"))
    chars = {"stories": 20_000, "math": 4_000, "code": 3_000, "passkey": 10_000}
    manifest = data.write_corpus(tmp_path, seed=0, chars=chars)
    assert manifest == data.corpus_manifest(seed=0, chars=chars)
    dataset = data.load_corpus(tmp_path, "train")
    expected = data.generate_corpus(seed=0, chars=chars)
    assert dataset["text"] == [t for name in data.GENERATORS for t in expected[name]["train"]]
    assert datasets.config.HF_HUB_OFFLINE and (tmp_path / ".hf_cache").is_dir()
    with pytest.raises(FileNotFoundError, match="python -m minids data"):
        data.load_corpus(tmp_path / "nowhere", "val")


# Instruction data.

def test_chat_examples_mix_math_code_and_stories():
    examples = data.chat_examples(random.Random(0), 400)
    assert examples == data.chat_examples(random.Random(0), 400) and len(examples) == 400
    kinds = Counter("code" if q.startswith("What does this program print?") else
                    "continue" if q.startswith("Continue the story") else
                    "write" if q.startswith("Write a short story") else
                    "passkey" if q.endswith("What is the pass key?") else "math"
                    for q, _ in examples)
    assert kinds["math"] > 200 and min(kinds.values()) >= 5
    for prompt, answer in examples:
        if prompt.startswith("What does this program print?"):
            assert run_program(prompt.split("\n\n", 1)[1]).rstrip("\n") == answer
        elif prompt.endswith("What is the pass key?"):
            assert answer.split()[-1].rstrip(".") in prompt
        elif not prompt.startswith(("Continue", "Write")):
            assert data.extract_answer(answer) is not None


def test_the_sentiment_stories_are_balanced_seeded_and_end_their_way(tmp_path):
    from minids.corpus.sentiment import sentiment_examples, write_sentiment

    examples = sentiment_examples(40)
    assert sum(e["label"] for e in examples) == 20
    assert examples == sentiment_examples(40) != sentiment_examples(40, seed=1)
    for example in examples:  # the last paragraph says which way the story ends
        ending = example["text"].split("\n\n")[-1]
        sad_words = any(w in ending for w in ("cried", "sad", "lonely", "spoiled", "broke",
                                              "lost", "crying", "heavy", "far away"))
        assert sad_words == (example["label"] == 0), ending
    paths = write_sentiment(tmp_path, n_train=10, n_test=6)
    assert [len(paths[s].read_text().splitlines()) for s in ("train", "test")] == [10, 6]
    assert paths["train"].read_text() != paths["test"].read_text()
