"""One home for each piece of code (notebook cells = package), and exercises whose checks mean something."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from seedlings_utils import exercises
from seedlings_utils.exercises import CORRECT, INCORRECT, NOT_ATTEMPTED, Exercise, Incorrect
from tools import export
from tools.lessons import lesson_notebooks

from .helpers import every_exercise

ALL_EXERCISES = every_exercise()
LESSON_MODULES = sorted({name for name, _ in ALL_EXERCISES})


def test_the_package_is_what_the_notebooks_export():
    diff = export.differences()
    assert diff == "", "notebook cells and package differ; run `make export`:\n" + diff


def test_every_lesson_exports_its_technique():
    exporting = {Path(c.notebook).name[:2] for c in export.exported_cells()}
    assert {"02", "03", "04", "05", "06", "07", "08"} <= exporting


def _tiny_project(tmp_path: Path, body: str) -> tuple[Path, Path]:
    notebooks, package = tmp_path / "notebooks", tmp_path / "pkg"
    notebooks.mkdir()
    package.mkdir()
    cell = {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
            "source": ["#| export mod\n", body]}
    notebook = {"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (notebooks / "01_a.ipynb").write_text(json.dumps(notebook))
    (package / "mod.py").write_text('"""doc"""\n\n' + export.begin_marker("notebooks/01_a.ipynb") + "\n"
                                    + export.end_marker("notebooks/01_a.ipynb") + "\n\n\ndef kept():\n    return 2\n")
    return notebooks, package


def test_export_writes_cells_between_markers_and_check_catches_drift(tmp_path):
    notebooks, package = _tiny_project(tmp_path, "def f(x):\n    return x + 1\n")
    assert "+def f(x):" in export.differences(notebooks, package)
    assert export.export(notebooks, package) == [package / "mod.py"]
    text = (package / "mod.py").read_text()
    assert "def f(x):\n    return x + 1\n# ---- END" in text and text.endswith("def kept():\n    return 2\n")
    assert export.differences(notebooks, package) == ""
    # an edit on the package side only is drift too
    (package / "mod.py").write_text(text.replace("x + 1", "x + 2"))
    assert "-    return x + 2" in export.differences(notebooks, package)


def test_export_refuses_a_module_without_markers(tmp_path):
    notebooks, package = _tiny_project(tmp_path, "X = 1\n")
    (package / "mod.py").write_text('"""no markers"""\n')
    with pytest.raises(ValueError, match="marker lines"):
        export.differences(notebooks, package)


def test_check_cli_fails_on_drift(tmp_path, monkeypatch, capsys):
    notebooks, package = _tiny_project(tmp_path, "X = 1\n")
    monkeypatch.setattr(export, "NOTEBOOKS_DIR", notebooks)
    monkeypatch.setattr(export, "PACKAGE_DIR", package)
    assert export.main(["--check"]) == 1
    assert "make export" in capsys.readouterr().out
    export.export(notebooks, package)
    assert export.main(["--check"]) == 0


def test_every_lesson_ends_with_two_to_four_exercises():
    by_lesson = {name[-2:]: [q for n, q in ALL_EXERCISES if n == name] for name in LESSON_MODULES}
    for notebook in lesson_notebooks():
        number = notebook.name[:2]
        assert 2 <= len(by_lesson.get(number, [])) <= 4, f"lesson {number} needs 2-4 exercises"
        text = "".join("".join(c["source"]) for c in json.loads(notebook.read_text())["cells"])
        assert f"exercises import lesson{number} as ex" in text
        for q in by_lesson[number]:
            assert f"ex.{q.name}.check(" in text, f"{notebook.name} never checks {q.name}"


#: The exercises whose check trains a model (slow: make test-fast leaves them out).
TRAINS_A_MODEL = {("lesson06", "q3")}


@pytest.mark.parametrize("lesson, q", [
    pytest.param(n, q, id=f"{n}.{q.name}", marks=[pytest.mark.slow] if (n, q.name) in TRAINS_A_MODEL else [])
    for n, q in ALL_EXERCISES])
def test_reference_solution_passes_its_check(lesson, q, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    answer = q.solution_namespace()[q.answer_name]
    outcome = q.evaluate(answer)
    assert outcome.status == CORRECT, f"{lesson}.{q.name}: the reference solution fails its own check: {outcome}"
    assert q.evaluate(None).status == NOT_ATTEMPTED


def test_exercise_outcomes_say_what_happened(capsys):
    def checker(answer):
        if answer() != 3:
            raise Incorrect(f"expected 3, got {answer()}")
        return "three it is"

    q = Exercise("q9", "return 3", checker, "three", "def answer():\n    return 3\n", "answer")
    assert q.evaluate(lambda: 3).status == CORRECT and str(q.evaluate(lambda: 3)) == "Correct: three it is"
    assert str(q.evaluate(lambda: 4)) == "Incorrect: expected 3, got 4"

    def crashes():
        return 1 / 0

    crashed = q.evaluate(crashes)
    assert crashed.status == INCORRECT and "ZeroDivisionError" in crashed.message and "1 / 0" in crashed.message

    def untouched():
        raise NotImplementedError

    assert q.evaluate(untouched).status == NOT_ATTEMPTED and q.evaluate(None).status == NOT_ATTEMPTED
    q.check(lambda: 4)
    q.hint()
    q.solution()
    out = capsys.readouterr().out
    assert "Incorrect: expected 3, got 4" in out and "Hint: three" in out and "return 3" in out
    assert q.solution_namespace()["answer"]() == 3


def test_tiny_image_folder_round_trips_numbers(tmp_path):
    import numpy as np
    from PIL import Image

    names = exercises.tiny_image_folder(tmp_path, count=12)
    for k, name in enumerate(names):
        pixels = np.asarray(Image.open(tmp_path / name))
        assert exercises.image_number(pixels) == k == exercises.image_number(pixels / 255.0)


def test_a_deleted_export_shows_as_drift_but_is_never_emptied_silently(tmp_path):
    notebooks, package = _tiny_project(tmp_path, "X = 1\n")
    export.export(notebooks, package)
    shutil.rmtree(notebooks)
    notebooks.mkdir()
    assert "-X = 1" in export.differences(notebooks, package)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export.export(notebooks, package)
    assert "X = 1" in (package / "mod.py").read_text()
