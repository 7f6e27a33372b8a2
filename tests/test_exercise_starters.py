"""Every exercise of every lesson, left as the notebook hands it to the learner, says "Not attempted yet".

The exercises are found in the package (every ``seedlings_utils.exercises.lessonNN`` module), so a new lesson's
are tested without being listed here; ``test_export_and_exercises.py`` checks that each one has its cell.
"""

from __future__ import annotations

import ast
import json

import pytest

from seedlings_utils.exercises import NOT_ATTEMPTED
from tools.lessons import lesson_notebooks

from .helpers import every_exercise

EXERCISES = every_exercise()


def code_cells(lesson: str) -> list[str]:
    """The code cells of lesson ``lesson`` (``"05"``), in order."""
    notebooks = lesson_notebooks(lessons=[lesson])
    assert len(notebooks) == 1, f"exercises of lesson {lesson}, but notebooks/ holds {len(notebooks)} {lesson}_*.ipynb"
    (notebook,) = notebooks
    return ["".join(c["source"]) for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code"]


def imports_before(cells: list[str]) -> str:
    """Every top-level import of ``cells`` (what a learner's "Run all" has imported by then), as one source.

    Cells that are not plain Python (``%%writefile``, ``!pip``) are skipped."""
    lines = []
    for cell in cells:
        try:
            tree = ast.parse(cell)
        except SyntaxError:
            continue
        lines += [ast.unparse(node) for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
    return "\n".join(lines)


@pytest.mark.parametrize("lesson, q", EXERCISES, ids=[f"{name}.{q.name}" for name, q in EXERCISES])
def test_the_untouched_exercise_cell_says_not_attempted(lesson, q, capsys):
    cells = code_cells(lesson.removeprefix("lesson"))
    index = next((k for k, cell in enumerate(cells) if f"ex.{q.name}.check(" in cell), None)
    assert index is not None, f"the notebook of {lesson} has no cell that runs ex.{q.name}.check(...)"
    namespace: dict = {}
    exec(compile(imports_before(cells[:index]), f"<{lesson} imports>", "exec"), namespace)
    capsys.readouterr()
    exec(compile(cells[index], f"<{lesson} {q.name} starter>", "exec"), namespace)  # as run: it must not raise
    shown = capsys.readouterr().out
    assert NOT_ATTEMPTED in shown and "Incorrect" not in shown, f"{lesson}.{q.name}'s untouched cell showed: {shown}"
    outcome = q.evaluate(namespace.get(q.answer_name))  # the untouched default where the cell defines no answer
    assert outcome.status == NOT_ATTEMPTED, f"{lesson}.{q.name}: {outcome}"
