"""python -m minids.exercises {student,sync,list,grade}: tools for instructors and authors.

An error (no notebooks where some are expected, a solution with unbalanced markers, a bad
flag) prints one line starting "minids.exercises: error:" and exits with status 2. The
student command exits with status 1 when it kept a student's edited copy.
"""

import argparse
import sys

from minids.exercises.catalog import EXERCISES
from minids.exercises.grade import grade, student_notebooks
from minids.exercises.notebooks import sync_notebooks, write_student_copies


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        fail(f"{message} (see {self.prog} --help)")


def fail(message: str):
    print(f"minids.exercises: error: {message}", file=sys.stderr)
    sys.exit(2)


def seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, got {text}")
    return value


def build_parser() -> Parser:
    parser = Parser(prog="python -m minids.exercises", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    student = commands.add_parser(
        "student", help="write student copies: solutions replaced by raise NotImplementedError")
    student.add_argument("--notebooks", default="notebooks", help="default: notebooks")
    student.add_argument("--out", default="student", help="default: student")
    student.add_argument("--force", action="store_true",
                         help="overwrite copies that differ from a fresh one (a student's work)")
    sync = commands.add_parser(
        "sync", help="put book/setup_cell.py first in every notebook; tag solutions hide-input")
    sync.add_argument("--notebooks", default="notebooks", help="default: notebooks")
    sync.add_argument("--setup-cell", default="book/setup_cell.py", help="default: %(default)s")
    commands.add_parser("list", help="the exercises that have a checker")
    grading = commands.add_parser(
        "grade", help="run every student notebook in DIR and collect the checkers' verdicts")
    grading.add_argument("dir", metavar="DIR", help="the class folder (subfolders included)")
    grading.add_argument("--timeout", type=seconds, default=600.0,
                         help="seconds for each notebook to run (default: 600)")
    grading.add_argument("--out", default="grades.csv",
                         help="the CSV to write (default: %(default)s)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (OSError, ValueError) as error:
        fail(str(error))


def run_student(args) -> int:
    written, kept = write_student_copies(args.notebooks, args.out, force=args.force)
    for path in written:
        print(f"wrote {path}")
    for path in kept:
        print(f"minids.exercises: skipped {path}: it differs from a fresh student copy "
              "(a student's work?); --force overwrites it", file=sys.stderr)
    return 1 if kept else 0


def run_sync(args) -> int:
    changed = sync_notebooks(args.notebooks, args.setup_cell)
    print("\n".join(f"updated {path}" for path in changed) or "every notebook was in sync")
    return 0


def run_list(args) -> int:
    for exercise in EXERCISES.values():
        print(f"{exercise.id}  {exercise.title}")
    return 0


def run_grade(args) -> int:
    if not student_notebooks(args.dir):
        raise ValueError(f"no notebooks (*.ipynb) in {args.dir}")
    grade(args.dir, args.timeout, args.out, echo=lambda line: print(line, flush=True))
    print(f"wrote {args.out}")
    return 0


COMMANDS = {"student": run_student, "sync": run_sync, "list": run_list, "grade": run_grade}


if __name__ == "__main__":
    sys.exit(main())
