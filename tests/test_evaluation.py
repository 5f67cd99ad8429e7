"""The held-out evaluation: pass@k, standard errors, per-kind scores and the eval CLI."""

import math

import pytest
import torch

from minids.__main__ import main
from minids.evaluation import MathScores, evaluate_math, mean_and_se, pass_at_k, report
from tests.test_cli import one_line_error, run_folder  # noqa: F401 (a fixture)
from tests.test_sft_grpo import TOKENIZER, tiny_chat_model


def test_pass_at_k_equals_counting_every_draw():
    # 4 samples, 1 right: of the C(4, 2) = 6 pairs, the 3 that hold the right one pass
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)
    assert pass_at_k(8, 3, 1) == pytest.approx(3 / 8)  # pass@1 is the fraction right
    assert pass_at_k(8, 0, 8) == 0.0 and pass_at_k(8, 1, 8) == 1.0 and pass_at_k(5, 4, 2) == 1.0
    with pytest.raises(ValueError, match="k <= samples"):
        pass_at_k(4, 1, 5)


def test_standard_error_is_the_binomial_one_for_right_or_wrong():
    scores = [1] * 30 + [0] * 70
    mean, se = mean_and_se(scores)
    assert mean == pytest.approx(0.3)
    assert se == pytest.approx(math.sqrt(0.3 * 0.7 / 99), rel=1e-9)  # Bessel's n - 1


def test_scores_by_kind_and_pass_at():
    sampled = torch.tensor([[1, 0, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]], dtype=torch.bool)
    scores = MathScores(0, ["word", "+", "word"], torch.tensor([True, True, False]), sampled, 1.0)
    assert scores.accuracy()[0] == pytest.approx(2 / 3)
    assert scores.pass_at(1)[0] == pytest.approx((0.25 + 1 + 0) / 3)
    assert scores.pass_at(4)[0] == pytest.approx(2 / 3)
    kinds = scores.by_kind()
    assert list(kinds) == ["+", "word"]  # the order of KINDS
    assert kinds["word"].n == 2 and kinds["word"].pass_at(2)[0] == pytest.approx(0.25)
    lines = report(scores)
    assert lines[0] == "math, 3 held-out problems (seed 0); 4 samples each at temperature 1"
    assert "pass@1" in lines[1] and "pass@4" in lines[1] and len(lines) == 4
    with pytest.raises(ValueError, match="sampled replies"):
        MathScores(0, ["+"], torch.tensor([True])).pass_at(1)


def test_evaluate_math_is_deterministic_and_samples_each_problem():
    model = tiny_chat_model().eval()
    first = evaluate_math(model, TOKENIZER, n=3, seed=5, samples=2, max_new_tokens=4)
    again = evaluate_math(model, TOKENIZER, n=3, seed=5, samples=2, max_new_tokens=4)
    assert first.greedy.shape == (3,) and first.sampled.shape == (3, 2)
    assert torch.equal(first.sampled, again.sampled) and first.kinds == again.kinds
    with pytest.raises(ValueError, match="temperature > 0"):
        evaluate_math(model, TOKENIZER, n=3, samples=2, temperature=0.0)


def test_eval_cli_prints_accuracy_and_pass_at_k(run_folder, tmp_path, capsys):  # noqa: F811
    assert main(["eval", "--checkpoint", str(run_folder), "--n", "4", "--seed", "2",
                 "--samples", "2", "--temperature", "0.7", "--out", str(tmp_path / "e.json")]) == 0
    saved = MathScores.load(tmp_path / "e.json")
    assert saved.n == 4 and saved.sampled.shape == (4, 2) and saved.temperature == 0.7
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "math, 4 held-out problems (seed 2); 2 samples each at temperature 0.7"
    assert out[1].startswith("all") and "greedy" in out[1] and "pass@2" in out[1]
    assert main(["eval", "--checkpoint", str(run_folder), "--samples", "2",
                 "--temperature", "0"]) == 1
    assert "--temperature above 0" in one_line_error(capsys)
