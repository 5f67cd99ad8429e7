"""The learner's pieces inside the model: plug and compare_in_model."""

import pytest
import torch

from minids.exercises import compare_in_model, plug
from minids.exercises.ch03 import _attention
from minids.exercises.ch04 import _layer
from minids.exercises.ch06 import _mtp
from minids.exercises.ch08 import _fp8_linear
from minids.exercises.plug import IDENTICAL_LOGITS, SOCKETS
from minids.fp8 import convert_to_fp8
from minids.mla import MLA
from tests.conftest import tiny_model


def test_a_plugged_function_runs_in_every_matching_module_and_leaves_after():
    model = tiny_model()
    calls = []

    def counting(mla, *args):
        calls.append(mla)
        return MLA.attend_naive(mla, *args)

    ids = torch.randint(0, 128, (1, 7))
    expected = model(ids).logits
    with plug(model, "03.1", counting) as plugged:
        logits = model(ids).logits
    assert plugged == 4  # three main layers and the MTP block
    assert len(calls) == 3 and torch.equal(logits, expected)  # forward runs the main layers
    model(ids)
    assert len(calls) == 3  # unplugged: minids' own method again
    assert not any("attend_naive" in vars(m) for m in model.modules())


def test_a_piece_is_unplugged_even_when_it_raises():
    model = tiny_model()
    with pytest.raises(ZeroDivisionError), plug(model, "04.4", lambda moe, x: 1 / 0):
        model(torch.randint(0, 128, (1, 5)))
    assert not any("forward" in vars(m) for m in model.modules())


def model_for(exercise_id):
    """A tiny model that holds the piece: 08.4's FP8 linear layers come with convert_to_fp8."""
    return convert_to_fp8(tiny_model()) if exercise_id == "08.4" else tiny_model()


@pytest.mark.parametrize("exercise_id", list(SOCKETS))
def test_the_references_plugged_in_give_identical_logits_and_text(exercise_id, capsys):
    model = model_for(exercise_id)
    # written out, as a learner would: the references call the module, which is plugged.
    # 08.4's dequantises, then multiplies in float32: measured 7.5e-8 from minids' own
    reference = {"03.1": _attention, "03.2": MLA.attend_absorbed, "04.4": _layer,
                 "06.1": _mtp, "08.4": _fp8_linear}[exercise_id]
    result = compare_in_model(model, exercise_id, reference, torch.randint(0, 128, (1, 9)), 12)
    assert result.identical and result.tokens.shape == (1, 21)
    assert "the same tokens" in capsys.readouterr().out


def test_a_wrong_piece_changes_the_logits_and_is_reported(capsys):
    model = tiny_model()
    unmasked = lambda *args: _attention(*args, mask=None)  # noqa: E731: sees the future
    result = compare_in_model(model, "03.1", unmasked, torch.randint(0, 128, (1, 9)), 12)
    assert not result.identical and result.max_logit_diff > IDENTICAL_LOGITS
    assert "largest difference from minids' own" in capsys.readouterr().out


def test_an_unwritten_or_failing_piece_gets_one_line_and_the_model_is_unharmed(capsys):
    model = tiny_model()
    ids = torch.randint(0, 128, (1, 6))
    before = model(ids).logits

    def not_yet(*args):
        raise NotImplementedError

    assert not compare_in_model(model, "04.4", not_yet, ids, 4).attempted
    broken = compare_in_model(model, "04.4", lambda moe, x: x @ x, ids, 4)
    assert broken.attempted and not broken.identical and broken.error.startswith("RuntimeError")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and "not yet" in lines[0] and "the model raised" in lines[1]
    assert torch.equal(model(ids).logits, before)


def test_plug_rejects_an_unknown_exercise_a_model_without_the_piece_and_a_non_function():
    with pytest.raises(ValueError, match="'02.1' does not plug into the model; these do: 03.1"):
        with plug(tiny_model(), "02.1", print):
            pass
    with pytest.raises(ValueError, match="the model has no MLA layer for exercise 03.1 to "
                       "plug into$"):
        with plug(tiny_model(attention="gqa"), "03.1", print):
            pass
    with pytest.raises(ValueError, match=r"no FP8 linear layer for exercise 08.4 to plug into: "
                       r"convert it first: minids.fp8.convert_to_fp8\(model\)"):
        with plug(tiny_model(), "08.4", print):
            pass
    with pytest.raises(ValueError, match="needs a function"):
        with plug(tiny_model(), "03.1", 3):
            pass
