"""Every lesson at its knobs' smallest accepted values, Going deeper included. nbval runs each lesson's core path
there (tests/conftest.py, tests/helpers.py's nbval_settings). The papermill run of every lesson, Going deeper
included (test_lessons_papermill.py), keeps the tests' values where its checks ask for real learning, and has the
smallest values elsewhere (TEST_PARAMETERS). What neither reaches is run here, with GOING_DEEPER = True: each lesson
whose Going deeper sections read a knob the core does not, or need more of a knob than the core (a rule of their
own), at a value the papermill run does not give it. The list comes from the notebooks, the rules and
TEST_PARAMETERS, not from a list typed here. (Knobs the core reads too are run at their smallest by nbval only.)"""

from __future__ import annotations

import json
import re

import pytest

from seedlings_utils.parameters import KNOBS, smallest_settings
from tools.lessons import going_deeper_cells, lesson_notebooks, run_lessons

from .helpers import NBVAL_DATA, TEST_PARAMETERS, lesson_knobs, nbval_parameters

pytestmark = pytest.mark.long_file(5)  # a lesson run: started before the short files (tests/conftest.py)


def knobs_read(cells: list, deeper: bool) -> set[str]:
    """The knobs the code cells of the Going deeper sections (or of the rest) name, the parameters cell aside."""
    source = "\n".join("".join(c["source"]) for c, deep in zip(cells, going_deeper_cells(cells), strict=True)
                       if deep == deeper and c["cell_type"] == "code"
                       and "parameters" not in c["metadata"].get("tags", []))
    return {name for name in KNOBS if re.search(rf"\b{name}\b", source)}


def deeper_settings(lesson: str) -> tuple[dict, dict[str, str]]:
    """Lesson ``"NN"``'s knobs at their smallest values with GOING_DEEPER = True, over nbval's, on nbval's data."""
    values, raised = smallest_settings(lesson_knobs(lesson), going_deeper=True, counts=NBVAL_DATA)
    return {**nbval_parameters(lesson), **values}, raised


def why_going_deeper(lesson: str) -> list[str]:
    """Why lesson ``"NN"``'s Going deeper must run here: each knob only it reads, or that it needs more of, at a value
    the papermill run does not give it (empty: nbval and the papermill run reach them all)."""
    cells = json.loads(lesson_notebooks(lessons=[lesson])[0].read_text(encoding="utf-8"))["cells"]
    values, raised = deeper_settings(lesson)
    core, papermill = nbval_parameters(lesson), {**lesson_knobs(lesson), **TEST_PARAMETERS}
    only = {name for name in knobs_read(cells, True) - knobs_read(cells, False)
            if KNOBS[name].numeric and not KNOBS[name].not_at_smallest}
    more = {name: why for name, why in raised.items() if values[name] != core[name]}
    return [f"{name} = {values[name]!r}, "
            + (f"where its rule asks more with GOING_DEEPER ({more[name]})" if name in more
               else "read only by Going deeper")
            + f"; the papermill run has {papermill[name]!r}"
            for name in sorted(only | set(more)) if papermill[name] != values[name]]


DEEPER = [path.name[:2] for path in lesson_notebooks() if why_going_deeper(path.name[:2])]


def test_the_going_deeper_runs_here_are_the_ones_nothing_else_reaches(monkeypatch):
    """The list is computed; this pins what it holds today (the papermill run keeps WORKERS at 2 for the headline's
    "2 threads", and SPEED_BATCHES at 4 for lesson 09's profiler, which analyses the steps between the first and the
    last), and shows that a papermill run above a Going deeper knob's smallest value adds its lesson here."""
    assert DEEPER == ["05", "08"], {lesson: why_going_deeper(lesson) for lesson in DEEPER}
    assert why_going_deeper("08") == ["SPEED_BATCHES = 1, read only by Going deeper; the papermill run has 4",
                                      "WORKERS = 1, read only by Going deeper; the papermill run has 2"]
    assert why_going_deeper("11") == [] == why_going_deeper("10")
    monkeypatch.setitem(TEST_PARAMETERS, "GRAIN_WORKERS", 1)
    monkeypatch.setitem(TEST_PARAMETERS, "DISTRIBUTED_EPOCHS", 3)
    assert why_going_deeper("11") == ["GRAIN_WORKERS = 0, read only by Going deeper; the papermill run has 1"]
    assert why_going_deeper("10")[0].startswith("DISTRIBUTED_EPOCHS = 2, where its rule asks more with GOING_DEEPER "
                                                "(DISTRIBUTED_EPOCHS = 1 with GOING_DEEPER = True: lesson 10's")


@pytest.mark.slow
@pytest.mark.parametrize("lesson", DEEPER)
def test_going_deeper_runs_at_the_smallest_values(lesson, tmp_path):
    values, _ = deeper_settings(lesson)
    out = tmp_path / "executed"
    run_lessons({**values, "DATA_DIR": str(tmp_path / "data")}, out, lessons=[lesson])
    outputs = [o for c in json.loads(next(out.glob("*.ipynb")).read_text())["cells"] for o in c.get("outputs", [])]
    assert any("OK:" in "".join(o.get("text", "")) for o in outputs), f"lesson {lesson} did not reach its check"
    assert not any("Skipped:" in "".join(o.get("text", "")) for o in outputs), "a Going deeper cell skipped its run"
