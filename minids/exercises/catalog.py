"""The exercises of the chapters: for each, its hidden cases, minids' reference, and the
mistakes worth a hint. Each chapter's exercises live in their own module (ch02.py holds
02.1 to 02.4). A reference calls minids' own code, so a checker is right as long as the
package is, and the package's tests keep it so.

An exercise's function signature is its reference's: `check("02.1", rmsnorm)` calls
`rmsnorm(x, weight, eps)` with the arguments of each case.
"""

from minids.exercises import (ch00, ch01, ch02, ch03, ch04, ch05, ch06, ch07, ch08, ch09,
                              ch10, ch11, ch12, ch13)

CHAPTERS = (ch00, ch01, ch02, ch03, ch04, ch05, ch06, ch07, ch08, ch09, ch10, ch11, ch12,
            ch13)
EXERCISES = {exercise.id: exercise for chapter in CHAPTERS for exercise in chapter.EXERCISES}
