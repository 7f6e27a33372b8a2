"""The README's table of lessons, generated from the notebooks themselves (their title cells) and config.py.

    python -m tools.lesson_table          # rewrite the table in README.md
    python -m tools.lesson_table --check  # exit 1, naming the difference, when README.md's table is not what
                                          # the notebooks say (tests/test_lesson_table.py runs it)

Each row: the lesson's number and title (the notebook's ``# NN · Title`` heading) and its Colab button (the address
built from ``seedlings_utils.config``, as in the notebook's own button). Rename a lesson in its notebook, run this,
and the README follows.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from seedlings_utils.config import GITHUB_REF, GITHUB_REPO

from .paths import NOTEBOOKS_DIR, REPO_ROOT, lesson_notebooks

README = REPO_ROOT / "README.md"
BEGIN = "<!-- lessons: generated from the notebooks by `python -m tools.lesson_table`; edit the notebooks -->"
END = "<!-- /lessons -->"
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
TITLE = re.compile(r"^#\s+(\d\d)\s+·\s+(.+?)\s*$", re.M)


@dataclass
class Lesson:
    """What a lesson's title cell says about it."""

    number: str
    title: str
    path: Path

    @property
    def colab_url(self) -> str:
        return (f"https://colab.research.google.com/github/{GITHUB_REPO}/blob/{GITHUB_REF}/"
                f"notebooks/{self.path.name}")


def read_lesson(path: Path) -> Lesson:
    """The lesson in ``path``, from its first cell; ValueError naming what is missing."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    text = "".join(cells[0]["source"]) if cells else ""
    title = TITLE.search(text)
    if title is None or title[1] != path.name[:2]:
        raise ValueError(f"{path.name}: its first cell must start with '# {path.name[:2]} · Title'")
    return Lesson(title[1], title[2], path)


def table(notebooks_dir: Path = NOTEBOOKS_DIR) -> str:
    """The README's table of lessons, between its two marker comments."""
    rows = [BEGIN, "", "| | lesson | Colab |", "|---|---|---|"]
    for lesson in map(read_lesson, lesson_notebooks(notebooks_dir)):
        link = f"notebooks/{lesson.path.name}"
        rows.append(f"| {lesson.number} | [{lesson.title}]({link}) | [![Open In Colab]({COLAB_BADGE})]"
                    f"({lesson.colab_url}) |")
    return "\n".join(rows + ["", END])


def with_table(readme: str, generated: str) -> str:
    """``readme`` with the part between the markers replaced by ``generated``; ValueError without the markers."""
    start, end = readme.find(BEGIN), readme.find(END)
    if start < 0 or end < start:
        raise ValueError(f"README.md has no {BEGIN!r} ... {END!r} block for the table of lessons")
    return readme[:start] + generated + readme[end + len(END):]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when README.md differs")
    parser.add_argument("--readme", type=Path, default=README)
    args = parser.parse_args(argv)
    current = args.readme.read_text(encoding="utf-8")
    wanted = with_table(current, table())
    if wanted == current:
        return 0
    if args.check:
        print(f"{args.readme}: its table of lessons is not what the notebooks say; run python -m tools.lesson_table",
              file=sys.stderr)
        return 1
    args.readme.write_text(wanted, encoding="utf-8")
    print(f"wrote the table of lessons into {args.readme}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
