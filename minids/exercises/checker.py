"""The checker: run a learner's function on hidden cases and explain the first difference.

An `Exercise` holds the cases (made from fixed seeds), the reference (minids' own code),
and the mistakes learners often make, each a function with the hint it earns when the
learner's answers equal its answers in every case. `run` compares answer and reference
case by case and stops at the first case that differs, naming what is wrong in one line:
the exception (no traceback), the type, the shape (a transpose is spotted), the dtype,
NaN or inf, a flipped sign, or else the largest error; then the hint of a known mistake.
"""

import copy
import inspect
import math
import numbers
from dataclasses import dataclass, field
from typing import Callable

import torch


@dataclass(frozen=True)
class Exercise:
    id: str  # "02.1": chapter 02, first exercise
    title: str
    cases: Callable[[], list[tuple]]  # each case: the arguments of one call
    reference: Callable  # minids' own code: what the learner's function must return
    mistakes: dict[str, Callable] = field(default_factory=dict)  # hint -> a wrong answer
    rtol: float = 1e-4
    atol: float = 1e-5
    unordered: bool = False  # compare the last dim as a set (e.g. top-k indices)


@dataclass(frozen=True)
class Result:
    """What `check` found. Truthy when the function passed every case."""

    exercise_id: str
    passed: bool
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def _ipython_display_(self):
        """`check(...)` on a cell's last line shows its printed message once, not twice."""


def run(exercise: Exercise, fn: Callable) -> Result:
    """Check fn against the exercise. The global random state is left as it was, so a
    notebook gives the same numbers whether or not its checker cells ran."""
    if not callable(fn):
        name = f"{exercise.id} {exercise.title}"
        return Result(exercise.id, False, f"{name}: wrong: expected a function, got {_kind(fn)}")
    with torch.random.fork_rng(devices=[]):
        return _run_cases(exercise, fn)


def _run_cases(exercise: Exercise, fn: Callable) -> Result:
    name = f"{exercise.id} {exercise.title}"
    cases = exercise.cases()
    for number, args in enumerate(cases, start=1):
        where = f"case {number} of {len(cases)} ({_describe(exercise.reference, args)})"
        try:
            got = fn(*_copy(args))
        except NotImplementedError:
            return Result(exercise.id, False, f"{name}: not yet: {_fn_name(fn)} still raises "
                          "NotImplementedError; write your solution there and run this again")
        except Exception as error:  # the learner's bug: name it, no traceback
            return Result(exercise.id, False,
                          f"{name}: wrong in {where}: {_fn_name(fn)} raised {_one_line(error)}")
        expected = exercise.reference(*_copy(args))
        problem = _difference(got, expected, exercise)
        if problem is not None:
            hint = _mistake(fn, cases, exercise)
            text = f"{name}: wrong in {where}: {problem}"
            return Result(exercise.id, False, text + (f". Hint: {hint}" if hint else ""))
    return Result(exercise.id, True, f"{name}: passed ({len(cases)} hidden cases)")


def _difference(got, expected, exercise: Exercise) -> str | None:
    """None if got matches expected, else what differs, most telling first."""
    if isinstance(expected, torch.Tensor):
        return _tensor_difference(got, expected, exercise)
    if isinstance(got, bool) or not isinstance(got, numbers.Real):
        return f"expected a number, got {_kind(got)}"
    if isinstance(expected, numbers.Integral) and not float(got).is_integer():
        return f"expected a whole number, got {got!r}"
    if math.isnan(got) or math.isinf(got):
        return f"got {got}, expected {expected!r}"
    if math.isclose(got, expected, rel_tol=exercise.rtol, abs_tol=exercise.atol):
        return None
    if expected and math.isclose(got, -expected, rel_tol=exercise.rtol):
        return f"off by a sign: got {got!r}, expected {expected!r}"
    ratio = got / expected if expected else math.inf
    for factor in (2, 4, 8, 0.5, 0.25, 0.125):
        if math.isclose(ratio, factor, rel_tol=1e-9):
            return f"off by a factor of {factor}: got {got!r}, expected {expected!r}"
    return f"got {got!r}, expected {expected!r}"


def _tensor_difference(got, expected: torch.Tensor, exercise: Exercise) -> str | None:
    if not isinstance(got, torch.Tensor):
        return f"expected a tensor of shape {_shape(expected)}, got {_kind(got)}"
    if got.shape != expected.shape:
        if expected.dim() >= 2 and got.shape == expected.transpose(-1, -2).shape:
            if _close(got.transpose(-1, -2), expected, exercise):
                return (f"off by a transpose: expected shape {_shape(expected)}, "
                        f"got {_shape(got)} with the last two dims swapped")
        if got.numel() == expected.numel():
            return (f"wrong shape: expected {_shape(expected)}, got {_shape(got)} "
                    "(same number of elements: a missing reshape or a transpose?)")
        return f"wrong shape: expected {_shape(expected)}, got {_shape(got)}"
    if got.dtype != expected.dtype:
        return f"wrong dtype: expected {expected.dtype}, got {got.dtype}"
    if got.is_floating_point():
        bad = (got.isnan() & ~expected.isnan()) | (got.isinf() & ~expected.isinf())
        if bad.any():
            index = tuple(bad.nonzero()[0].tolist())
            kind = "NaN" if got[index].isnan() else "inf"
            return (f"{int(bad.sum())} of {got.numel()} values are NaN or inf (the first, "
                    f"at index {index}, is {kind}): a division by zero or a log of 0?")
    if _close(got, expected, exercise):
        return None
    if got.is_floating_point() and expected.abs().max() > 0 and _close(got, -expected, exercise):
        return "off by a sign: got minus the expected values"
    if expected.dim() >= 2 and expected.shape[-1] == expected.shape[-2] and expected.shape[-1] > 1:
        if _close(got, expected.transpose(-1, -2), exercise):
            return "off by a transpose: the last two dims are swapped"
    return _value_difference(got, expected, exercise)


def _value_difference(got, expected, exercise: Exercise) -> str:
    if exercise.unordered:
        got, expected = got.sort(dim=-1).values, expected.sort(dim=-1).values
    if not got.is_floating_point():
        wrong = got != expected
        index = tuple(wrong.nonzero()[0].tolist())
        return (f"{int(wrong.sum())} of {got.numel()} entries differ; the first at index "
                f"{index}: expected {expected[index].item()}, got {got[index].item()}")
    error = (got.double() - expected.double()).abs().nan_to_num(nan=math.inf)
    index = tuple(torch.unravel_index(error.argmax(), error.shape))
    index = tuple(int(i) for i in index)
    allowed = exercise.atol + exercise.rtol * expected.abs()[index].item()
    where = (f"max error {error[index].item():.3g} at index {index} "
             f"(expected {expected[index].item():.6g}, got {got[index].item():.6g})")
    if error[index] <= 100 * allowed:
        return f"close, but not within tolerance: {where}, allowed {allowed:.2g}"
    return f"wrong values: {where}"


def _close(got: torch.Tensor, expected: torch.Tensor, exercise: Exercise) -> bool:
    if got.shape != expected.shape or got.dtype != expected.dtype:
        return False
    if exercise.unordered:
        got, expected = got.sort(dim=-1).values, expected.sort(dim=-1).values
    if not got.is_floating_point():
        return torch.equal(got, expected)
    return torch.allclose(got, expected, rtol=exercise.rtol, atol=exercise.atol, equal_nan=True)


def _mistake(fn: Callable, cases: list[tuple], exercise: Exercise) -> str | None:
    """The hint of the first known mistake that fn makes in every case."""
    for hint, wrong in exercise.mistakes.items():
        try:
            if all(_difference(fn(*_copy(args)), wrong(*_copy(args)), exercise) is None
                   for args in cases):
                return hint
        except Exception:  # fn fails on another case: not this mistake
            continue
    return None


def _copy(args: tuple) -> tuple:
    """Fresh arguments for every call: a function that edits its inputs harms no one."""
    return copy.deepcopy(args)


def _describe(reference: Callable, args: tuple) -> str:
    names = list(inspect.signature(reference).parameters)
    return ", ".join(f"{name}={_kind(value)}" for name, value in zip(names, args))


def _kind(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor {_shape(value)} {str(value.dtype).removeprefix('torch.')}"
    if value is None:
        return "None (a missing return?)"
    if isinstance(value, (numbers.Number, str)):
        return repr(value)
    return type(value).__name__


def _shape(t: torch.Tensor) -> str:
    return str(tuple(t.shape))


def _fn_name(fn: Callable) -> str:
    return f"{getattr(fn, '__name__', 'your function')}()"


def _one_line(error: Exception, limit: int = 200) -> str:
    text = " ".join(str(error).split())
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
