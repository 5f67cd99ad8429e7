"""Exercises with instant feedback.

    from minids.exercises import check
    check("02.1", rmsnorm)

runs your function on hidden cases made from fixed seeds, compares it with minids' own
implementation, and prints one line: passed, not yet (the function still raises
NotImplementedError), or what is wrong with a hint (the exception, the shape, a
transpose, the dtype, NaN, a sign, a known mistake, the largest error). It never raises
for a wrong answer, and returns a Result that is truthy when the function passed.
`python -m minids.exercises --help` lists the commands for instructors.
"""

from minids.exercises.catalog import EXERCISES
from minids.exercises.checker import Exercise, Result, run

__all__ = ["check", "EXERCISES", "Exercise", "Result"]


def check(exercise_id: str, fn) -> Result:
    """Check fn against exercise `exercise_id` (e.g. "02.1"), print the verdict, return it."""
    if exercise_id not in EXERCISES:
        raise KeyError(f"no exercise {exercise_id!r}; there are {', '.join(EXERCISES)}")
    result = run(EXERCISES[exercise_id], fn)
    print(result.message)
    return result
