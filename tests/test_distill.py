"""Rejection sampling and the distillation run, with a scripted teacher."""

import random

import pytest

from minids import distill as d
from minids.data import chat_examples, extract_answer
from minids.sft import SFTConfig, examples_seed
from minids.train import read_log
from tests.test_sft_grpo import TOKENIZER, tiny_chat_model


def scripted_teacher(monkeypatch, right_on_round):
    """Replace sampling: problem i's reply is right from round right_on_round(i) on."""
    rounds = {}

    def fake_answer(model, tokenizer, questions, **sampling):
        replies = []
        for q in questions:
            rounds[q] = rounds.get(q, -1) + 1
            item = ITEMS[q]
            solved = rounds[q] >= right_on_round(item)
            replies.append(item.solution if solved else "Answer: -1")
        return replies

    ITEMS = {}
    monkeypatch.setattr(d, "answer", fake_answer)
    return ITEMS


def test_rejection_sampling_keeps_the_first_right_reply_and_counts_samples(monkeypatch):
    items = scripted_teacher(monkeypatch, lambda item: item.answer % 3)  # rounds 0, 1, 2
    problems = d.math_items(random.Random(0), 60)
    items.update({p.question: p for p in problems})
    traces = d.rejection_sample(None, TOKENIZER, problems, samples=2, temperature=1.0,
                                generator=None)
    solvable = [p for p in problems if p.answer % 3 < 2]
    assert set(traces.accepted) == {p.question for p in solvable}
    assert all(extract_answer(traces.accepted[p.question]) == str(p.answer) for p in solvable)
    first_round = sum(p.answer % 3 == 0 for p in problems)
    assert traces.samples == len(problems) + (len(problems) - first_round)  # round 2: the rest
    assert traces.acceptance_rate == pytest.approx(len(solvable) / len(problems))


def test_distilled_examples_swap_math_answers_for_traces_and_drop_unsolved(tmp_path):
    seed = "minids/sft/0"
    problems = d.math_items(random.Random(seed), 40)
    kept = {p.question: f"TRACE {p.answer}" for p in problems[::2]}
    traces = d.Traces(kept, len(problems), 80)
    traces.save(tmp_path / "t.jsonl")
    assert d.Traces.load(tmp_path / "t.jsonl") == traces
    examples = d.distilled_examples(seed, 40, traces)
    original = chat_examples(random.Random(seed), 40)
    dropped = {p.question for p in problems[1::2]}
    assert [q for q, _ in original if q not in dropped] == [q for q, _ in examples]
    assert all(a == kept[q] for q, a in examples if q in kept)


def test_distill_run_saves_traces_and_refuses_a_teacher_that_solves_too_little(
        tmp_path, monkeypatch):
    items = scripted_teacher(monkeypatch, lambda item: 0)  # always right
    config = SFTConfig(steps=2, batch_size=4, eval_problems=2, progress=False)
    items.update({p.question: p for p in d.math_items(random.Random(examples_seed(config)), 20)})
    d.distill(tiny_chat_model(), TOKENIZER, config, tmp_path, teacher=tiny_chat_model())
    traces = d.Traces.load(tmp_path / d.TRACES_FILE)
    assert traces.acceptance_rate == 1.0 and traces.samples == traces.problems
    assert "math_accuracy" in read_log(tmp_path)[-1]
    scripted_teacher(monkeypatch, lambda item: 99).update(items)  # never right
    with pytest.raises(ValueError, match="solved too few"):
        d.distill(tiny_chat_model(), TOKENIZER, config, None, teacher=tiny_chat_model())


def test_token_distillation_loss_is_the_teachers_kl_on_masked_positions():
    import torch

    teacher = torch.tensor([[[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]]])
    student = torch.tensor([[[0.0, 1.0, 0.0], [5.0, 5.0, 5.0]]])
    mask = torch.tensor([[1.0, 0.0]])  # only the first position counts
    p = teacher[0, 0].softmax(-1)
    expected = (p * (p.log() - student[0, 0].log_softmax(-1))).sum()
    assert d.token_distillation_loss(student, teacher, mask).item() == pytest.approx(expected.item())
    assert d.token_distillation_loss(teacher, teacher, torch.ones(1, 2)).item() == pytest.approx(0.0, abs=1e-7)
    # the second position: the same distribution (uniform) up to a shift of the logits
    assert d.token_distillation_loss(student[:, 1:], teacher[:, 1:], torch.ones(1, 1)).item() \
        == pytest.approx(0.0, abs=1e-7)
