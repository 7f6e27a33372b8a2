"""The generated parts of the pages (tools/pages.py): the README's table of lessons from the notebooks' own titles,
docs/parameters.md's knob tables from the registry and the parameters cells."""

import json
import shutil

import pytest

from seedlings_utils import parameters
from tools import pages
from tools.paths import NOTEBOOKS_DIR, lesson_notebooks


def test_the_pages_are_what_their_sources_say():
    assert pages.main(["--check"]) == 0, "run python -m tools.pages"


def test_renaming_a_lesson_in_its_notebook_changes_the_table_and_fails_the_check(tmp_path, capsys):
    notebooks = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS_DIR, notebooks)
    first = lesson_notebooks(notebooks)[0]
    nb = json.loads(first.read_text())
    nb["cells"][0]["source"] = ["# 01 · A new name for the first lesson\n"] + nb["cells"][0]["source"][1:]
    first.write_text(json.dumps(nb))

    renamed = pages.lessons_table(notebooks)
    assert f"[A new name for the first lesson](notebooks/{first.name})" in renamed
    numbers = [line.split(" | ")[0] for line in renamed.splitlines()[2:]]
    assert numbers == [f"| {p.name[:2]}" for p in lesson_notebooks(notebooks)]  # one row per lesson, in order
    readme = tmp_path / "README.md"
    readme.write_text(pages.README.read_text())
    assert pages.with_block(readme.read_text(), pages.LESSONS_BEGIN, renamed) != readme.read_text()
    readme.write_text(readme.read_text().replace(f"](notebooks/{first.name})", "](notebooks/elsewhere.ipynb)", 1))
    assert pages.main(["--check", "--readme", str(readme)]) == 1
    assert f"{readme}: not what its sources say; run python -m tools.pages" in capsys.readouterr().err


def test_a_knob_changed_in_the_registry_changes_its_row(monkeypatch):
    before = pages.knobs_tables()
    knob = parameters.KNOBS["SHUFFLE_BUFFER"]
    monkeypatch.setitem(parameters.KNOBS, "SHUFFLE_BUFFER",
                        parameters.Knob(knob.rule, knob.group, "a new meaning", 7, quick=3))
    after = pages.knobs_tables()
    row = next(line for line in after.splitlines() if line.startswith("| `SHUFFLE_BUFFER`"))
    assert row == "| `SHUFFLE_BUFFER` | 08 | `7` | `3` | a new meaning |" and after != before


def test_a_knob_in_a_parameters_cell_but_not_in_the_registry_is_named(tmp_path):
    notebooks = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS_DIR, notebooks)
    path = lesson_notebooks(notebooks)[0]
    nb = json.loads(path.read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    cell["source"] = "".join(cell["source"]) + "\nNEW_KNOB = 3\n"
    path.write_text(json.dumps(nb))
    with pytest.raises(ValueError, match=r"not in seedlings_utils.parameters.KNOBS: \['NEW_KNOB'\]"):
        pages.knobs_tables(notebooks)


def test_a_notebook_without_its_numbered_title_is_named(tmp_path):
    path = tmp_path / "03_x.ipynb"
    path.write_text(json.dumps({"cells": [{"cell_type": "markdown", "source": ["# 04 · Wrong number\n"]}]}))
    with pytest.raises(ValueError, match=r"03_x.ipynb: its first cell must start with '# 03 · Title'"):
        pages.read_lesson(path)
