"""The checker: run a learner's function on hidden cases and explain the first difference.

An `Exercise` holds the cases (made from fixed seeds), the reference (minids' own code),
and the mistakes learners often make, each a function with the hint it earns when the
learner's answers equal its answers in every case. `run` calls the learner's function
once per case, under a time limit, and stops at the first case whose answer differs,
naming what is wrong in one line: the exception (and the line that raised it, no
traceback), a time-out, the type, the input returned unchanged, the shape (a transpose is
spotted), the dtype, NaN or inf, a flipped sign, a constant factor, or else the largest
error (for a function that returns several values, of the first value that differs);
then the hint of a known mistake.
"""

import copy
import functools
import inspect
import linecache
import math
import numbers
import signal
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable

import torch

CLOSE = 1e-2  # a wrong answer within this relative error of the expected one is "close"
FACTOR_FIT = 1e-3  # got is "c × expected" when each value is within this relative error


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
    time_limit: float = 10.0  # seconds one call of the learner's function may take


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


class _OutOfTime(BaseException):
    """Raised inside the learner's function when its time is up. Not an Exception, so that
    the function's own `except Exception:` cannot swallow it."""


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
    expected = [exercise.reference(*_copy(args)) for args in cases]
    # fn's answer to case i, computed once however often the diagnosis asks for it
    answer = functools.cache(lambda i: _call(fn, cases[i], exercise.time_limit))
    for index, args in enumerate(cases):
        where = f"case {index + 1} of {len(cases)} ({_describe(exercise.reference, args)})"
        try:
            got = answer(index)
        except NotImplementedError:
            return Result(exercise.id, False, f"{name}: not yet: {_fn_name(fn)} still raises "
                          "NotImplementedError; write your solution there and run this again")
        except _OutOfTime:
            return Result(exercise.id, False, f"{name}: wrong in {where}: {_fn_name(fn)} took "
                          f"more than {exercise.time_limit:g} s: an infinite loop?")
        except Exception as error:  # the learner's bug: name it and its line, no traceback
            return Result(exercise.id, False, f"{name}: wrong in {where}: {_fn_name(fn)} "
                          f"raised {_one_line(error)}{_raised_at(error, fn)}")
        if _matches(got, expected[index], exercise):
            continue
        answers = _every_answer(answer, len(cases))  # None if fn fails on a later case
        problem = _explain(got, expected[index], exercise, _named(exercise.reference, args),
                           _factor_over_cases(answers, expected))
        hint = _mistake(answers, cases, exercise)
        text = f"{name}: wrong in {where}: {problem}"
        return Result(exercise.id, False, text + (f". Hint: {hint}" if hint else ""))
    return Result(exercise.id, True, f"{name}: passed ({len(cases)} hidden cases)")


def _call(fn: Callable, args: tuple, seconds: float):
    with _time_limit(seconds):
        return fn(*_copy(args))


@contextmanager
def _time_limit(seconds: float):
    """Raise _OutOfTime in the block after `seconds`, where a timer signal can reach it (the
    main thread on Linux, macOS and Colab, as in a Jupyter kernel); elsewhere no limit."""
    if not hasattr(signal, "SIGALRM") or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous_handler = signal.signal(signal.SIGALRM, _out_of_time)
    previous_timer = signal.setitimer(signal.ITIMER_REAL, seconds)
    started = time.monotonic()
    try:
        yield
    finally:
        try:
            signal.setitimer(signal.ITIMER_REAL, 0)
        finally:  # restored even if the alarm went off just before it was stopped
            signal.signal(signal.SIGALRM, signal.SIG_DFL if previous_handler is None
                          else previous_handler)
            _restart(previous_timer, time.monotonic() - started)


def _out_of_time(signum, frame):
    raise _OutOfTime


def _restart(timer: tuple[float, float], elapsed: float):
    """Set again a timer that was running before ours, less the time since."""
    delay, interval = timer
    if delay:
        signal.setitimer(signal.ITIMER_REAL, max(delay - elapsed, 1e-3), interval)


def _every_answer(answer: Callable, count: int) -> list | None:
    try:
        return [answer(i) for i in range(count)]
    except (Exception, _OutOfTime):
        return None


def _matches(got, expected, exercise: Exercise) -> bool:
    if isinstance(expected, tuple):
        return (isinstance(got, (tuple, list)) and len(got) == len(expected)
                and all(_matches(g, e, exercise) for g, e in zip(got, expected)))
    if isinstance(expected, torch.Tensor):
        return isinstance(got, torch.Tensor) and _close(got, expected, exercise)
    if expected is None or isinstance(expected, (str, bool)):  # text, yes/no: exactly
        return type(got) is type(expected) and got == expected
    if isinstance(got, bool) or not isinstance(got, numbers.Real):
        return False
    if isinstance(expected, numbers.Integral) and not float(got).is_integer():
        return False
    return math.isclose(got, expected, rel_tol=exercise.rtol, abs_tol=exercise.atol)


def _explain(got, expected, exercise: Exercise, inputs: dict, factor: float | None) -> str:
    """What differs between got and expected (known to differ), most telling first.
    inputs: the case's arguments by name; factor: c when every case's single-number
    answer is c times the expected one."""
    if isinstance(expected, tuple):
        return _tuple_difference(got, expected, exercise, inputs)
    if isinstance(expected, torch.Tensor):
        return _tensor_difference(got, expected, exercise, inputs, factor)
    if expected is None or isinstance(expected, (str, bool)):
        return f"got {_kind(got)}, expected {_kind(expected)}"
    return _number_difference(got, expected, exercise, factor)


def _tuple_difference(got, expected: tuple, exercise: Exercise, inputs: dict) -> str:
    """For a function that returns several values: the first value that differs."""
    if not isinstance(got, (tuple, list)):
        return f"expected {len(expected)} values (a tuple), got {_kind(got)}"
    if len(got) != len(expected):
        return f"expected {len(expected)} values, got {len(got)}"
    index = next(i for i, (g, e) in enumerate(zip(got, expected))
                 if not _matches(g, e, exercise))
    problem = _explain(got[index], expected[index], exercise, inputs, None)
    return f"value {index + 1} of {len(expected)}: {problem}"


def _number_difference(got, expected, exercise: Exercise, factor: float | None) -> str:
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        return (f"expected a number, got {_kind(got)}: return a Python "
                f"{type(expected).__name__}: use .item()")
    if isinstance(got, bool) or not isinstance(got, numbers.Real):
        return f"expected a number, got {_kind(got)}"
    if isinstance(expected, numbers.Integral) and not float(got).is_integer():
        return f"expected a whole number, got {got!r}"
    if math.isnan(got) or math.isinf(got):
        return f"got {got}, expected {expected!r}"
    if expected and math.isclose(got, -expected, rel_tol=exercise.rtol):
        return f"off by a sign: got {got!r}, expected {expected!r}"
    if factor is not None:
        return (f"off by a factor of {factor:.3g}: got {got!r}, expected {expected!r} "
                "(the same factor in every case)")
    return f"got {got!r}, expected {expected!r}"


def _tensor_difference(got, expected: torch.Tensor, exercise: Exercise, inputs: dict,
                       factor: float | None) -> str:
    if not isinstance(got, torch.Tensor):
        advice = ": return the tensor itself, not .item()" if expected.dim() == 0 else ""
        return f"expected a tensor of shape {_shape(expected)}, got {_kind(got)}{advice}"
    returned = _input_returned(got, inputs)
    if returned is not None:
        return f"returned the input {returned} unchanged"
    if got.shape != expected.shape:
        return _shape_difference(got, expected, exercise)
    if got.dtype != expected.dtype:
        return f"wrong dtype: expected {expected.dtype}, got {got.dtype}"
    got, expected = _computable(got), _computable(expected)
    if got.is_floating_point():
        bad = (got.isnan() & ~expected.isnan()) | (got.isinf() & ~expected.isinf())
        if bad.any():
            index = tuple(bad.nonzero()[0].tolist())
            kind = "NaN" if got[index].isnan() else "inf"
            return (f"{int(bad.sum())} of {got.numel()} values are NaN or inf (the first, "
                    f"at index {index}, is {kind}): a division by zero or a log of 0?")
    if got.is_floating_point() and expected.abs().max() > 0 and _close(got, -expected, exercise):
        return "off by a sign: got minus the expected values"
    if expected.dim() >= 2 and expected.shape[-1] == expected.shape[-2] and expected.shape[-1] > 1:
        if _close(got, expected.transpose(-1, -2), exercise):
            return "off by a transpose: the last two dims are swapped"
    return _value_difference(got, expected, exercise, factor)


def _input_returned(got: torch.Tensor, inputs: dict) -> str | None:
    """The name of the tensor argument that got equals, if any."""
    return next((name for name, value in inputs.items() if isinstance(value, torch.Tensor)
                 and value.shape == got.shape and value.dtype == got.dtype
                 and torch.equal(_computable(value), _computable(got))), None)


def _shape_difference(got: torch.Tensor, expected: torch.Tensor, exercise: Exercise) -> str:
    if expected.dim() >= 2 and got.shape == expected.transpose(-1, -2).shape:
        if _close(got.transpose(-1, -2), expected, exercise):
            return (f"off by a transpose: expected shape {_shape(expected)}, "
                    f"got {_shape(got)} with the last two dims swapped")
    if got.numel() == expected.numel():
        return (f"wrong shape: expected {_shape(expected)}, got {_shape(got)} "
                "(same number of elements: a missing reshape or a transpose?)")
    return f"wrong shape: expected {_shape(expected)}, got {_shape(got)}"


def _value_difference(got, expected, exercise: Exercise, factor: float | None) -> str:
    if exercise.unordered:
        got, expected = got.sort(dim=-1).values, expected.sort(dim=-1).values
    if not got.is_floating_point():
        wrong = got != expected
        index = tuple(wrong.nonzero()[0].tolist())
        return (f"{int(wrong.sum())} of {got.numel()} entries differ; the first at index "
                f"{index}: expected {expected[index].item()}, got {got[index].item()}")
    if expected.numel() == 1:
        values = f"got {got.item():.6g}, expected {expected.item():.6g}"
        if _relative_error(got, expected) <= CLOSE:
            return f"close, but not within tolerance: {values}"
        if factor is not None:
            return f"off by a factor of {factor:.3g}: {values} (the same factor in every case)"
        return f"wrong value: {values}"
    return _largest_error(got, expected, exercise)


def _largest_error(got, expected, exercise: Exercise) -> str:
    error = (got.double() - expected.double()).abs().nan_to_num(nan=math.inf)
    index = tuple(int(i) for i in torch.unravel_index(error.argmax(), error.shape))
    allowed = exercise.atol + exercise.rtol * expected.abs()[index].item()
    where = (f"max error {error[index].item():.3g} at index {index} "
             f"(expected {expected[index].item():.6g}, got {got[index].item():.6g})")
    if _relative_error(got, expected) <= CLOSE:
        return f"close, but not within tolerance: {where}, allowed {allowed:.2g}"
    factor = _constant_factor(got, expected)
    if factor is not None:
        return f"off by a factor of {factor:.3g}: every value is {factor:.3g} × the expected one"
    return f"wrong values: {where}"


def _relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    """|got - expected| / |expected| over all the values (inf where expected is all 0)."""
    size = expected.double().norm().item()
    return (got.double() - expected.double()).norm().item() / size if size else math.inf


def _constant_factor(got: torch.Tensor, expected: torch.Tensor) -> float | None:
    """c if every value of got is c × its expected value, for a c other than 0 and 1,
    judged on two or more nonzero expected values (one number is c times any other)."""
    got, expected = got.double().flatten(), expected.double().flatten()
    nonzero = expected != 0
    if int(nonzero.sum()) < 2:
        return None
    factor = (got[nonzero] / expected[nonzero]).median().item()
    if factor == 0 or abs(factor - 1) <= CLOSE:
        return None
    scaled = factor * expected
    rounding = 1e-6 * scaled.abs().max()  # what float32 leaves of values near 0
    fits = bool(((got - scaled).abs() <= FACTOR_FIT * scaled.abs() + rounding).all())
    return factor if fits else None


def _factor_over_cases(answers: list | None, expected: list) -> float | None:
    """For single-number answers: c if each case's answer is c × its expected value."""
    values = [*(answers or []), *expected]
    if answers is None or not all(map(_single_number, values)):
        return None
    return _constant_factor(_vector(answers), _vector(expected))


def _vector(values: list) -> torch.Tensor:
    return torch.tensor([float(value) for value in values], dtype=torch.float64)


def _single_number(value) -> bool:
    if isinstance(value, torch.Tensor):
        return value.numel() == 1 and value.is_floating_point()
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _close(got: torch.Tensor, expected: torch.Tensor, exercise: Exercise) -> bool:
    if got.shape != expected.shape or got.dtype != expected.dtype:
        return False
    got, expected = _computable(got), _computable(expected)
    if exercise.unordered:
        got, expected = got.sort(dim=-1).values, expected.sort(dim=-1).values
    if not got.is_floating_point():
        return torch.equal(got, expected)
    return torch.allclose(got, expected, rtol=exercise.rtol, atol=exercise.atol, equal_nan=True)


def _computable(t: torch.Tensor) -> torch.Tensor:
    """t as float32 if it is float8, which torch stores but cannot subtract or compare on
    the CPU (its values are all exact in float32); else t itself."""
    return t.float() if t.is_floating_point() and t.element_size() == 1 else t


def _mistake(answers: list | None, cases: list[tuple], exercise: Exercise) -> str | None:
    """The hint of the first known mistake whose answers equal fn's in every case."""
    if answers is None:  # fn fails on some case: no mistake explains that
        return None
    for hint, wrong in exercise.mistakes.items():
        if all(_matches(got, wrong(*_copy(args)), exercise)
               for got, args in zip(answers, cases)):
            return hint
    return None


def _copy(args: tuple) -> tuple:
    """Fresh arguments for every call: a function that edits its inputs harms no one."""
    return copy.deepcopy(args)


def _named(reference: Callable, args: tuple) -> dict:
    return dict(zip(inspect.signature(reference).parameters, args))


def _describe(reference: Callable, args: tuple) -> str:
    return ", ".join(f"{name}={_kind(value)}" for name, value in _named(reference, args).items())


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


def _one_line(error: BaseException, limit: int = 200) -> str:
    text = " ".join(str(error).split())
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _raised_at(error: Exception, fn: Callable) -> str:
    """' at line N of f(): <code>' for the last frame of the traceback in the file that
    defines fn (its notebook cell), or '' when no frame is there."""
    filename = getattr(getattr(fn, "__code__", None), "co_filename", None)
    frames = [(frame.f_code, line) for frame, line in traceback.walk_tb(error.__traceback__)
              if frame.f_code.co_filename == filename]
    if not frames:
        return ""
    code, line = frames[-1]
    text = linecache.getline(code.co_filename, line).strip()
    text = text if len(text) <= 80 else text[:79] + "…"
    place = f" at line {line - code.co_firstlineno + 1} of {code.co_name}()"
    return place + (f": {text}" if text else "")
