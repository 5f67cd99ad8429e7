"""Math: arithmetic and word problems with exact integer answers.

    Question: Tom has 12 apples. He buys 7 more. How many apples does Tom have now?
    Answer: 12 + 7 = 19

The answer line ends with the answer ("Answer: 85" for "What is 37 + 48?"); word and
two-step problems show their working first, one "a op b = c" step per operation (a tiny
chain of thought SFT can teach). About 1 in 10 computations are held out for evaluation.
"""

import hashlib
import random
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


@dataclass(frozen=True)
class MathItem:
    question: str
    solution: str  # the text after "Answer: "; it ends with the answer
    answer: int
    expression: str  # e.g. "12+7-5" or "6*4+3": evaluates (left to right) to the answer


def _operand(rng: random.Random) -> int:
    """Mostly 1-2 digits, sometimes 3."""
    r = rng.random()
    if r < 0.40:
        return rng.randint(2, 9)
    if r < 0.88:
        return rng.randint(10, 99)
    return rng.randint(100, 999)


def _operands(rng: random.Random, op: str) -> tuple[int, int]:
    if op == "×":
        if rng.random() < 0.7:
            return rng.randint(2, 12), rng.randint(2, 12)
        return rng.randint(13, 99), rng.randint(2, 9)
    a, b = _operand(rng), _operand(rng)
    return (max(a, b), min(a, b)) if op == "-" else (a, b)


def _steps(numbers, ops) -> tuple[list[str], int]:
    """'a op b = r' strings, applied left to right, and the result."""
    value, steps = numbers[0], []
    for op, n in zip(ops, numbers[1:]):
        result = OPS[op](value, n)
        steps.append(f"{value} {op} {n} = {result}")
        value = result
    return steps, value


def _expression(numbers, ops) -> str:
    text = str(numbers[0])
    for op, n in zip(ops, numbers[1:]):
        text += {"×": "*"}.get(op, op) + str(n)
    return text


def _two_step_numbers(rng: random.Random, ops) -> list[int]:
    """Three numbers for two steps, keeping every intermediate result >= 0."""
    while True:
        a, b = _operands(rng, ops[0])
        first = OPS[ops[0]](a, b)
        c = rng.randint(2, 30) if ops[1] != "×" else rng.randint(2, 5)
        if ops[1] != "-" or c <= first:
            return [a, b, c]


def _new_math_item(rng: random.Random) -> MathItem:
    kind = rng.random()
    hero = _character(rng, kinds=["girl", "boy"])
    friend = _character(rng, avoid=(hero.name,), kinds=["girl", "boy"])
    herd, home = rng.choice(HERDS)
    values = {"name": hero.name, "He": hero.He, "friend": friend.name, "herd": herd,
              "home": home, "items": rng.choice(ITEMS), "foods": rng.choice(FOOD_ITEMS)}
    if kind < 0.50:  # one-step arithmetic: the answer alone
        op = rng.choice(list(ARITHMETIC))
        a, b = _operands(rng, op)
        question = fill(rng.choice(ARITHMETIC[op].split(" || ")), {"a": a, "b": b}, rng)
        steps, answer = _steps([a, b], [op])
        return MathItem(question, str(answer), answer, _expression([a, b], [op]))
    if kind < 0.60:  # two-step arithmetic
        ops = rng.choice([("+", "-"), ("+", "+"), ("-", "+"), ("×", "+"), ("×", "-")])
        numbers = _two_step_numbers(rng, ops)
        template = rng.choice(TWO_STEP_ARITHMETIC.split(" || "))
        question = fill(template, dict(zip("abc", numbers), op1=ops[0], op2=ops[1]), rng)
    elif kind < 0.64:  # legs: a times 4
        numbers, ops = [rng.randint(2, 12), 4], ("×",)
        animals = rng.choice(FOUR_LEGGED)
        animal = "sheep" if animals == "sheep" else animals[:-1]
        question = _LEGS_PROBLEM.format(a=numbers[0], animal=animal, animals=animals)
    else:  # word problems, one or two steps
        ops = rng.choice(list(WORD_PROBLEMS))
        numbers = _two_step_numbers(rng, ops) if len(ops) == 2 else list(_operands(rng, ops[0]))
        values.update(zip("abc", numbers))
        question = fill(rng.choice(WORD_PROBLEMS[ops]), values, rng)
    steps, answer = _steps(numbers, ops)
    return MathItem(question, ", ".join(steps), answer, _expression(numbers, ops))


def is_held_out(item: MathItem) -> bool:
    """About 1 in 10 computations (by a hash of the expression, e.g. "12+7") are kept for
    evaluation only: training never shows them, in any wording."""
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
    return f"Question: {item.question}\nAnswer: {item.solution}"
