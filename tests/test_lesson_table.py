"""The README's table of lessons is generated from the notebooks' own titles (tools/lesson_table.py)."""

import json
import shutil

import pytest

from tools import lesson_table
from tools.paths import NOTEBOOKS_DIR, lesson_notebooks


def test_the_readmes_table_is_what_the_notebooks_say():
    assert lesson_table.main(["--check"]) == 0, "run python -m tools.lesson_table"


def test_renaming_a_lesson_in_its_notebook_changes_the_table_and_fails_the_check(tmp_path, capsys):
    notebooks = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS_DIR, notebooks)
    first = lesson_notebooks(notebooks)[0]
    nb = json.loads(first.read_text())
    nb["cells"][0]["source"] = ["# 01 · A new name for the first lesson\n"] + nb["cells"][0]["source"][1:]
    first.write_text(json.dumps(nb))
    readme = tmp_path / "README.md"
    readme.write_text(lesson_table.README.read_text())

    renamed = lesson_table.table(notebooks)
    assert f"[A new name for the first lesson](notebooks/{first.name})" in renamed
    assert [line.split(" | ")[0] for line in renamed.splitlines() if line.startswith("| 0") or line.startswith("| 1")] \
        == [f"| {p.name[:2]}" for p in lesson_notebooks(notebooks)]  # one row per lesson, in order
    assert lesson_table.with_table(readme.read_text(), renamed) != readme.read_text()
    assert lesson_table.main(["--check", "--readme", str(readme)]) == 0  # the real notebooks: unchanged
    readme.write_text(readme.read_text().replace("[Get the data]", "[Get data]"))
    assert lesson_table.main(["--check", "--readme", str(readme)]) == 1
    assert "run python -m tools.lesson_table" in capsys.readouterr().err


def test_a_notebook_without_its_numbered_title_is_named(tmp_path):
    path = tmp_path / "03_x.ipynb"
    path.write_text(json.dumps({"cells": [{"cell_type": "markdown", "source": ["# 04 · Wrong number\n"]}]}))
    with pytest.raises(ValueError, match=r"03_x.ipynb: its first cell must start with '# 03 · Title'"):
        lesson_table.read_lesson(path)
