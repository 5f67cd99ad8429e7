"""Code: tiny Python programs and what they print.

A sample is a program, then "# output:" and each printed line behind "# ". The output is
never written by hand: `run_program` executes the program (no imports, a few safe
builtins, print captured), so the same program gives the same output everywhere.
"""

import builtins
import functools
import io
import random

from minids.corpus.stories import BOY_NAMES, GIRL_NAMES, _words, fill

SAFE_BUILTINS = ("abs", "bool", "dict", "enumerate", "int", "len", "list", "max", "min",
                 "range", "reversed", "round", "sorted", "str", "sum", "zip")
VARIABLES = _words("x y n a b total count score num value result steps points coins size")
CODE_WORDS = _words("""apple banana cherry garden rabbit python window yellow pencil rocket
    dragon castle forest planet pirate orange cookie summer winter button puzzle tiger
    rainbow bubble candle monkey island""")


def run_program(source: str) -> str:
    """Run `source` and return what it prints. Only SAFE_BUILTINS exist (so no import),
    and print writes to a buffer: the same program gives the same output everywhere."""
    out = io.StringIO()
    names = {name: getattr(builtins, name) for name in SAFE_BUILTINS}
    names["print"] = functools.partial(print, file=out)
    exec(compile(source, "<program>", "exec"), {"__builtins__": names})
    return out.getvalue()


def _two_names(rng: random.Random) -> tuple[str, str]:
    first = rng.choice(VARIABLES)
    second = rng.choice([v for v in VARIABLES if v != first])
    return first, second


def _program_arithmetic(rng):
    a, b = _two_names(rng)
    op = rng.choice(["+", "-", "*"])
    return (f"{a} = {rng.randint(2, 20)}\n{b} = {rng.randint(2, 20)}\n"
            f"{a} = {a} {op} {b}\nprint({a})\nprint({a} + {b})\n")


def _program_loop_sum(rng):
    total = rng.choice(["total", "s", "result", "acc"])
    body = rng.choice(["i", "i * i", "i * 2", "i + 1"])
    start, stop = rng.randint(0, 3), rng.randint(4, 9)
    return (f"{total} = 0\nfor i in range({start}, {stop}):\n    {total} = {total} + {body}\n"
            f"print({total})\n")


def _program_countdown(rng):
    n = rng.choice(["n", "count", "timer"])
    word = rng.choice(["Go!", "Lift off!", "Done!", "Ready!"])
    return (f"{n} = {rng.randint(3, 6)}\nwhile {n} > 0:\n    print({n})\n    {n} = {n} - 1\n"
            f'print("{word}")\n')


def _program_if(rng):
    x = rng.choice(["x", "age", "score", "temperature", "speed"])
    high, low = rng.randint(10, 20), rng.randint(3, 9)
    words = rng.choice([("big", "medium", "small"), ("hot", "warm", "cold"),
                        ("fast", "okay", "slow"), ("high", "middle", "low")])
    return (f"{x} = {rng.randint(0, 25)}\nif {x} > {high}:\n    print(\"{words[0]}\")\n"
            f"elif {x} > {low}:\n    print(\"{words[1]}\")\nelse:\n    print(\"{words[2]}\")\n")


def _program_function(rng):
    name, body = rng.choice([("add", "a + b"), ("multiply", "a * b"), ("bigger", "max(a, b)"),
                             ("difference", "abs(a - b)"), ("area", "a * b"),
                             ("average", "(a + b) // 2")])
    calls = "".join(f"print({name}({rng.randint(1, 20)}, {rng.randint(1, 20)}))\n"
                    for _ in range(rng.randint(1, 3)))
    return f"def {name}(a, b):\n    return {body}\n\n{calls}"


def _program_greet(rng):
    names = rng.sample(GIRL_NAMES[:40] + BOY_NAMES[:40], rng.randint(2, 4))
    greeting = rng.choice(["Hello", "Hi", "Good morning", "Welcome"])
    return (f"def greet(name):\n    return \"{greeting}, \" + name + \"!\"\n\n"
            f"for friend in {names!r}:\n    print(greet(friend))\n")


def _program_list(rng):
    xs = [rng.randint(1, 50) for _ in range(rng.randint(3, 6))]
    lines = rng.sample(["print(len(numbers))", "print(sum(numbers))", "print(max(numbers))",
                        "print(min(numbers))", "print(sorted(numbers))", "print(numbers[0])",
                        "print(numbers[-1])"], 3)
    return (f"numbers = {xs!r}\nnumbers.append({rng.randint(1, 50)})\n" + "\n".join(lines)
            + "\n")


def _program_string(rng):
    word = rng.choice(CODE_WORDS)
    lines = rng.sample(["print(word.upper())", "print(len(word))", "print(word[::-1])",
                        "print(word[0])", "print(word[-1])", "print(word[1:4])",
                        "print(word.count(\"a\"))", "print(word + \"s\")",
                        "print(word.capitalize())", "print(word.replace(\"e\", \"3\"))"], 3)
    return f'word = "{word}"\n' + "\n".join(lines) + "\n"


def _program_letter_count(rng):
    word = rng.choice(CODE_WORDS)
    return (f'word = "{word}"\ncounts = {{}}\nfor letter in word:\n'
            f"    counts[letter] = counts.get(letter, 0) + 1\nprint(counts)\n")


def _program_table(rng):
    k, n = rng.randint(2, 9), rng.randint(3, 5)
    return f'for i in range(1, {n + 1}):\n    print(i, "x", {k}, "=", i * {k})\n'


def _program_fizzbuzz(rng):
    a, b = rng.choice([(3, 5), (2, 3), (3, 4), (2, 5)])
    start = rng.randint(1, 10)
    return (f"for n in range({start}, {start + rng.randint(5, 8)}):\n"
            f"    if n % {a * b} == 0:\n        print(\"FizzBuzz\")\n"
            f"    elif n % {a} == 0:\n        print(\"Fizz\")\n"
            f"    elif n % {b} == 0:\n        print(\"Buzz\")\n    else:\n        print(n)\n")


def _program_factorial(rng):
    return ("def factorial(n):\n    result = 1\n    for i in range(2, n + 1):\n"
            "        result = result * i\n    return result\n\n"
            f"print(factorial({rng.randint(3, 7)}))\n")


def _program_fibonacci(rng):
    return (f"numbers = [0, 1]\nwhile len(numbers) < {rng.randint(5, 10)}:\n"
            "    numbers.append(numbers[-1] + numbers[-2])\nprint(numbers)\n")


def _program_comprehension(rng):
    n = rng.randint(8, 16)
    cond, label = rng.choice([("n % 2 == 0", "evens"), ("n % 2 == 1", "odds"),
                              ("n % 3 == 0", "threes"), ("n > 5", "big")])
    expr = rng.choice(["n", "n * n", "n * 10"])
    return f"{label} = [{expr} for n in range({n}) if {cond}]\nprint({label})\nprint(len({label}))\n"


def _program_stars(rng):
    char = rng.choice(["*", "#", "+", "o"])
    return f'for i in range(1, {rng.randint(3, 5) + 1}):\n    print("{char}" * i)\n'


def _program_enumerate(rng):
    items = rng.sample(_words("apple pear plum grape lemon melon peach kiwi fig lime"), 3)
    return f"fruits = {items!r}\nfor i, fruit in enumerate(fruits):\n    print(i + 1, fruit)\n"


def _program_find_max(rng):
    xs = [rng.randint(1, 99) for _ in range(rng.randint(4, 6))]
    return (f"numbers = {xs!r}\nbest = numbers[0]\nfor n in numbers:\n    if n > best:\n"
            f"        best = n\nprint(\"The biggest is\", best)\n")


def _program_even_odd(rng):
    xs = [rng.randint(1, 30) for _ in range(3)]
    return ("def even_or_odd(n):\n    if n % 2 == 0:\n        return \"even\"\n"
            "    return \"odd\"\n\n" + "".join(f"print({x}, even_or_odd({x}))\n" for x in xs))


def _program_prices(rng):
    foods = rng.sample(_words("apple bread milk egg cheese jam rice tea"), 3)
    prices = {food: rng.randint(1, 9) for food in foods}
    qty = rng.choice(foods)
    return (f"prices = {prices!r}\ntotal = 0\nfor item in prices:\n"
            f"    total = total + prices[item]\nprint(\"Total:\", total)\n"
            f"print(\"{qty} costs\", prices[\"{qty}\"] * {rng.randint(2, 5)}, \"for a few\")\n")


def _program_words(rng):
    sentence = fill("the [little|big|happy] [cat|dog|fox|bird] [ran|sat|slept] [on the mat|"
                    "by the door|under the tree]", {}, rng)
    lines = rng.sample(["print(len(words))", "print(words[-1])", "print(\" \".join(reversed(words)))",
                        "print(\"-\".join(words))", "print(sorted(words)[0])",
                        "print(sentence.title())"], 2)
    return f'sentence = "{sentence}"\nwords = sentence.split()\n' + "\n".join(lines) + "\n"


def _program_doubling(rng):
    limit = rng.choice([50, 100, 200, 500])
    factor = rng.choice([2, 3])
    return (f"n = 1\nsteps = 0\nwhile n < {limit}:\n    n = n * {factor}\n    steps = steps + 1\n"
            f"print(n, steps)\n")


PROGRAMS = [_program_arithmetic, _program_loop_sum, _program_countdown, _program_if,
            _program_function, _program_greet, _program_list, _program_string,
            _program_letter_count, _program_table, _program_fizzbuzz, _program_factorial,
            _program_fibonacci, _program_comprehension, _program_stars, _program_enumerate,
            _program_find_max, _program_even_odd, _program_prices, _program_words,
            _program_doubling]
OUTPUT_MARK = "# output:\n"


def program(rng: random.Random) -> str:
    """The source of one tiny program."""
    return rng.choice(PROGRAMS)(rng)


def code_sample(rng: random.Random) -> str:
    """A program, then '# output:' and what it printed, each line behind '# '."""
    source = program(rng)
    printed = run_program(source).rstrip("\n").split("\n")
    return source + OUTPUT_MARK + "\n".join(f"# {line}" if line else "#" for line in printed)
