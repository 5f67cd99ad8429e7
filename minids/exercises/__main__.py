"""python -m minids.exercises {student,sync,list}: tools for instructors and authors."""

import argparse

from minids.exercises.catalog import EXERCISES
from minids.exercises.notebooks import sync_notebooks, write_student_copies


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m minids.exercises", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    student = commands.add_parser(
        "student", help="write student copies: solutions replaced by raise NotImplementedError")
    student.add_argument("--notebooks", default="notebooks", help="default: notebooks")
    student.add_argument("--out", default="student", help="default: student")
    sync = commands.add_parser(
        "sync", help="put book/setup_cell.py first in every notebook; tag solutions hide-input")
    sync.add_argument("--notebooks", default="notebooks", help="default: notebooks")
    sync.add_argument("--setup-cell", default="book/setup_cell.py", help="default: %(default)s")
    commands.add_parser("list", help="the exercises that have a checker")
    args = parser.parse_args(argv)

    if args.command == "student":
        for path in write_student_copies(args.notebooks, args.out):
            print(f"wrote {path}")
    elif args.command == "sync":
        changed = sync_notebooks(args.notebooks, args.setup_cell)
        print("\n".join(f"updated {path}" for path in changed) or "every notebook was in sync")
    else:
        for exercise in EXERCISES.values():
            print(f"{exercise.id}  {exercise.title}")


if __name__ == "__main__":
    main()
