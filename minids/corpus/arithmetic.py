"""Math: arithmetic and word problems, solved in writing, column by column.

    Question: What is 65 + 88?
    65 + 88: 5 + 8 = 13, write 3 carry 1. 6 + 8 + 1 = 15, write 153. Answer: 153

A solution restates each operation ("65 + 88:"), then works through its columns from
right to left: one single-digit fact per column ("6 + 8 + 1 = 15"), with an explicit
carry (or borrow), and the digits written so far ("write 3", then "write 153": the new
digit goes in front of the old ones). The last "write" is the result, and "Answer: N"
copies it. So every step is a copy or a single-digit fact that training shows thousands
of times, and an unseen problem is only a new composition of familiar steps:

    74 - 38: 14 - 8 = 6, write 6 borrow 1. 7 - 1 - 3 = 3, write 36. Answer: 36
    28 × 6: 8 × 6 = 48, write 8 carry 4. 2 × 6 + 4 = 16, write 168. Answer: 168

A missing digit is a 0 ("7 + 45: 7 + 5 = 12, write 2 carry 1. 0 + 4 + 1 = 5, write 52."),
and the last "write" drops leading zeros ("74 - 68: ... 7 - 1 - 6 = 0, write 6."). Word
and two-step problems restate and work each operation in turn, the second on the result
of the first.

The problems: 60 % plain one-step arithmetic (+ and - 3/8 each, mostly 2-digit ± 2- or
1-digit, some 3-digit; × 1/4, a 1- or 2-digit number times a single digit), 6 % two-step
arithmetic, 4 % "legs", 24 % one-step and 6 % two-step word problems. About 1 in 10
computations are held out for evaluation; never one whose numbers are all single digits,
so every single-digit fact stays in training.
"""

import hashlib
import random
import re
from dataclasses import dataclass

from minids.corpus.stories import _character, _phrases, fill

OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "×": lambda a, b: a * b}
ITEMS = _phrases("""apples, pencils, marbles, stickers, cookies, books, toy cars, shells,
    stamps, balloons, flowers, cards, coins, eggs, buttons, crayons, blocks, candies,
    oranges, bananas, cupcakes, rocks, feathers, beads, carrots, muffins, plums, kites""")
FOOD_ITEMS = _phrases("""apples, cookies, oranges, bananas, cupcakes, candies, carrots,
    muffins, plums, pears, grapes, strawberries, cherries, pancakes""")
HERDS = [("ducks", "pond"), ("birds", "tree"), ("cows", "field"), ("sheep", "field"),
         ("frogs", "pond"), ("fish", "pond"), ("rabbits", "garden"), ("horses", "barn"),
         ("cats", "yard"), ("dogs", "park"), ("chickens", "yard"), ("goats", "farm")]
FOUR_LEGGED = _phrases("cows, dogs, cats, horses, sheep, goats, pigs, rabbits, lions, bears")

ARITHMETIC = {
    "+": ("What is {a} + {b}? || What is {a} plus {b}? || Compute {a} + {b}. || "
          "How much is {a} + {b}? || Add {a} and {b}. || What is the sum of {a} and {b}?"),
    "-": ("What is {a} - {b}? || What is {a} minus {b}? || Compute {a} - {b}. || "
          "How much is {a} - {b}? || Subtract {b} from {a}. || Take {b} away from {a}."),
    "×": ("What is {a} × {b}? || What is {a} times {b}? || Compute {a} × {b}. || "
          "How much is {a} × {b}? || Multiply {a} by {b}. || What is the product of {a} and {b}?"),
}
TWO_STEP_ARITHMETIC = "What is {a} {op1} {b} {op2} {c}? || Compute {a} {op1} {b} {op2} {c}."
WORD_PROBLEMS = {  # operations: templates; the steps use the numbers in the order a, b, c
    ("+",): [
        "{name} has {a} {items}. {He} [buys|finds|gets] {b} more. How many {items} does {name} have now?",
        "There are {a} {herd} in the {home}. {b} more {herd} come. How many {herd} are in the {home} now?",
        "{name} read {a} pages on Monday and {b} pages on Tuesday. How many pages did {name} read in all?",
        "A box has {a} red {items} and {b} blue {items}. How many {items} are in the box?",
        "{name} has {a} {items} and {friend} has {b} {items}. How many {items} do they have together?",
    ],
    ("-",): [
        "{name} has {a} {items}. {He} gives {b} to {friend}. How many {items} does {name} have left?",
        "There are {a} {herd} in the {home}. {b} of them go away. How many {herd} are still in the {home}?",
        "{name} had {a} {foods}. {He} ate {b} of them. How many {foods} are left?",
        "A shop had {a} {items}. It sold {b} of them. How many {items} does the shop have now?",
        "{name} has {a} {items}. {friend} has {b} {items}. How many more {items} does {name} have than {friend}?",
    ],
    ("×",): [
        "{name} has {a} boxes. Each box has {b} {items}. How many {items} does {name} have in all?",
        "There are {a} rows of chairs. Each row has {b} chairs. How many chairs are there?",
        "{name} buys {a} bags of {foods}. Each bag has {b} {foods}. How many {foods} does {name} buy?",
        "{name} gives {b} {items} to each of {a} friends. How many {items} does {name} give away?",
    ],
    ("+", "-"): [
        "{name} has {a} {items}. {He} buys {b} more and then gives {c} to {friend}. How many {items} does {name} have now?",
        "There are {a} {herd} in the {home}. {b} more come, and then {c} go away. How many {herd} are in the {home} now?",
    ],
    ("-", "-"): [
        "{name} had {a} {foods}. {He} ate {b} and gave {c} to {friend}. How many {foods} are left?",
        "A shop had {a} {items}. It sold {b} in the morning and {c} in the afternoon. How many {items} are left?",
    ],
    ("×", "+"): [
        "{name} has {a} bags with {b} {items} in each bag. {He} also has {c} more {items}. How many {items} does {name} have in all?",
        "There are {a} rows of chairs with {b} chairs in each row, and {c} more chairs by the door. How many chairs are there?",
    ],
    ("×", "-"): [
        "{name} buys {a} packs of {items}. Each pack has {b} {items}. {He} gives {c} to {friend}. How many {items} does {name} have left?",
    ],
}
_LEGS_PROBLEM = "A {animal} has 4 legs. How many legs do {a} {animals} have?"
KINDS = ("+", "-", "×", "two-step", "word", "word two-step")


@dataclass(frozen=True)
class MathItem:
    question: str
    solution: str  # the worked solution; it ends with "Answer: <answer>"
    answer: int
    expression: str  # e.g. "12+7-5" or "6*4+3": evaluates (left to right) to the answer
    kind: str = ""  # one of KINDS: plain "+", "-", "×", "two-step", "word", "word two-step"


# --------------------------------------------------------------------------------------
# The working: column arithmetic, right to left.
# --------------------------------------------------------------------------------------

def _digit(n: int, column: int) -> int:
    return n // 10**column % 10


def column_working(a: int, op: str, b: int, slip: float = 0.0,
                   rng: random.Random | None = None) -> tuple[str, int]:
    """The written working of one operation and its result, e.g. (for 65 + 88)
    ("65 + 88: 5 + 8 = 13, write 3 carry 1. 6 + 8 + 1 = 15, write 153.", 153).
    "+" and "-" (a >= b) go over the columns of the longer number; "×" over the digits
    of a, with b a single digit.

    A careless writer (slip > 0, drawn from rng) forgets each carry or borrow with
    probability slip: the column says "write 3." and the next column goes on without it,
    so the working stays self-consistent and its result is wrong
    ("65 + 88: 5 + 8 = 13, write 3. 6 + 8 = 14, write 143.", 143)."""
    if op == "-" and a < b:
        raise ValueError(f"{a} - {b}: the working never goes below zero")
    if op == "×" and not 0 <= b <= 9:
        raise ValueError(f"{a} × {b}: the second factor must be a single digit")
    columns = len(str(max(a, b))) if op != "×" else len(str(a))
    steps, written, carry = [], "", 0
    for i in range(columns):
        last = i == columns - 1
        x, y = _digit(a, i), _digit(b, i)
        if op == "+":
            value = x + y + carry
            left = f"{x} + {y}" + (f" + {carry}" if carry else "")
        elif op == "×":
            value = x * b + carry
            left = f"{x} × {b}" + (f" + {carry}" if carry else "")
        else:  # "-": borrow 1 from the next column when this one would go below zero
            borrow = x - carry < y
            value = 10 * borrow + x - carry - y
            left = f"{'1' if borrow else ''}{x}" + (" - 1" if carry else "") + f" - {y}"
        if last:
            written = str(int(str(value) + written))  # the whole result, no leading zeros
            steps.append(f"{left} = {value}, write {written}.")
        elif op == "-":
            written = str(value) + written
            carry = int(borrow) if not (borrow and _slips(slip, rng)) else 0
            steps.append(f"{left} = {value}, write {written}" + (" borrow 1." if carry else "."))
        else:
            written = str(value % 10) + written
            carry = value // 10 if not (value >= 10 and _slips(slip, rng)) else 0
            steps.append(f"{left} = {value}, write {written}" + (f" carry {carry}." if carry else "."))
    result = int(written)
    assert slip > 0 or result == OPS[op](a, b), (a, op, b, written)
    return f"{a} {op} {b}: " + " ".join(steps), result


def _slips(slip: float, rng: random.Random | None) -> bool:
    """Does a careless writer forget this carry? Draws from rng only when slip > 0, so
    careful working (slip = 0) consumes no random numbers."""
    return slip > 0 and rng.random() < slip


def _solve(numbers, ops, slip: float = 0.0, rng=None) -> tuple[str, int]:
    """The working of every operation, left to right, then "Answer: N"."""
    value, parts = numbers[0], []
    for op, n in zip(ops, numbers[1:]):
        text, value = column_working(value, op, n, slip, rng)
        parts.append(text)
    return " ".join(parts) + f" Answer: {value}", value


def careless_teacher(slip: float, rng: random.Random):
    """A solver for data.chat_examples: item -> the working a careless teacher writes."""
    return lambda item: careless_solution(item, slip, rng)[0]


def careless_solution(item: "MathItem", slip: float, rng: random.Random) -> tuple[str, int]:
    """The worked solution of item as a careless teacher writes it: each carry or borrow
    forgotten with probability slip (see column_working). Returns (solution, its answer),
    which is item.answer only when no carry was forgotten. When a slip would take a later
    subtraction below zero (e.g. 45 + 28 - 70 worked as 63 - 70), the teacher writes
    the correct working instead."""
    numbers = [int(n) for n in re.findall(r"\d+", item.expression)]
    ops = [{"*": "×"}.get(op, op) for op in re.findall(r"[-+*]", item.expression)]
    try:
        return _solve(numbers, ops, slip, rng)
    except ValueError:  # a subtraction below zero: the working no careless teacher writes
        return item.solution, item.answer


def _expression(numbers, ops) -> str:
    text = str(numbers[0])
    for op, n in zip(ops, numbers[1:]):
        text += {"×": "*"}.get(op, op) + str(n)
    return text


# --------------------------------------------------------------------------------------
# The problems: mostly 2-digit ± 2- or 1-digit, some 3-digit, × by a single digit.
# --------------------------------------------------------------------------------------

def _number(rng: random.Random, digits: int) -> int:
    return rng.randint(2, 9) if digits == 1 else rng.randint(10 ** (digits - 1), 10**digits - 1)


def _operands(rng: random.Random, op: str, three_digits: bool = True) -> tuple[int, int]:
    """Two numbers for op (a single digit is 2..9). "×": a 1- or 2-digit number times a
    single digit. "+" and "-": digit lengths (1, 1) 15 %, (2, 1) 30 %, (2, 2) 40 %,
    (3, 2) 10 %, (3, 3) 5 % (only the first three without three_digits); "+" puts the
    shorter number first 30 % of the time, "-" never goes below zero."""
    if op == "×":
        return _number(rng, rng.choice((1, 2))), rng.randint(2, 9)
    r = rng.random() * (1.0 if three_digits else 0.85)
    sizes = ((1, 1) if r < 0.15 else (2, 1) if r < 0.45 else (2, 2) if r < 0.85 else
             (3, 2) if r < 0.95 else (3, 3))
    a, b = _number(rng, sizes[0]), _number(rng, sizes[1])
    if op == "-":
        return max(a, b), min(a, b)
    return (b, a) if rng.random() < 0.3 else (a, b)


def _two_step_numbers(rng: random.Random, ops) -> list[int]:
    """Three numbers for two steps (2 digits at most, so the working stays short),
    keeping every intermediate result >= 0."""
    while True:
        a, b = _operands(rng, ops[0], three_digits=False)
        first = OPS[ops[0]](a, b)
        c = _number(rng, rng.choice((1, 2)))
        if ops[1] != "-" or c <= first:
            return [a, b, c]


def _new_math_item(rng: random.Random) -> MathItem:
    kind = rng.random()
    hero = _character(rng, kinds=["girl", "boy"])
    friend = _character(rng, avoid=(hero.name,), kinds=["girl", "boy"])
    herd, home = rng.choice(HERDS)
    values = {"name": hero.name, "He": hero.He, "friend": friend.name, "herd": herd,
              "home": home, "items": rng.choice(ITEMS), "foods": rng.choice(FOOD_ITEMS)}
    if kind < 0.60:  # one-step arithmetic: + and - 3/8 each, × 1/4
        op = rng.choice(("+", "+", "+", "-", "-", "-", "×", "×"))
        numbers, ops = list(_operands(rng, op)), (op,)
        question = fill(rng.choice(ARITHMETIC[op].split(" || ")), dict(zip("ab", numbers)), rng)
        label = op
    elif kind < 0.66:  # two-step arithmetic
        ops = rng.choice([("+", "-"), ("+", "+"), ("-", "+"), ("-", "-"), ("×", "+"), ("×", "-")])
        numbers = _two_step_numbers(rng, ops)
        template = rng.choice(TWO_STEP_ARITHMETIC.split(" || "))
        question = fill(template, dict(zip("abc", numbers), op1=ops[0], op2=ops[1]), rng)
        label = "two-step"
    elif kind < 0.70:  # legs: a times 4
        numbers, ops = [rng.randint(2, 12), 4], ("×",)
        animals = rng.choice(FOUR_LEGGED)
        animal = "sheep" if animals == "sheep" else animals[:-1]
        question = _LEGS_PROBLEM.format(a=numbers[0], animal=animal, animals=animals)
        label = "word"
    else:  # word problems: 80 % one step, 20 % two
        steps = 1 if rng.random() < 0.8 else 2
        ops = rng.choice([ops for ops in WORD_PROBLEMS if len(ops) == steps])
        numbers = _two_step_numbers(rng, ops) if len(ops) == 2 else list(_operands(rng, ops[0]))
        values.update(zip("abc", numbers))
        question = fill(rng.choice(WORD_PROBLEMS[ops]), values, rng)
        label = "word" if len(ops) == 1 else "word two-step"
    solution, answer = _solve(numbers, ops)
    return MathItem(question, solution, answer, _expression(numbers, ops), label)


def is_held_out(item: MathItem) -> bool:
    """About 1 in 10 computations (by a hash of the expression, e.g. "12+7") are kept for
    evaluation only: training never shows them, in any wording. Never one whose numbers
    are all single digits: every single-digit fact stays in training."""
    if all(len(n) == 1 for n in re.findall(r"\d+", item.expression)):
        return False
    return hashlib.sha256(item.expression.encode()).digest()[0] < 26


def math_item(rng: random.Random, held_out: bool = False) -> MathItem:
    """A training problem (or, with held_out=True, an evaluation-only problem)."""
    while True:
        item = _new_math_item(rng)
        if is_held_out(item) == held_out:
            return item


def math_problem(rng: random.Random) -> tuple[str, str]:
    """(question, answer) of a training problem, e.g. ("What is 37 + 48?", "85")."""
    item = math_item(rng)
    return item.question, str(item.answer)


def math_document(item: MathItem) -> str:
    """A pretraining document: "Question: <question>\\n<worked solution ending Answer: N>"."""
    return f"Question: {item.question}\n{item.solution}"
