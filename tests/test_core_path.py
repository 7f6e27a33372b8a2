"""The core path: each lesson's first complete version comes first, its depth can be skipped, and the core is short."""

from __future__ import annotations

import json

import pytest

from tools.lessons import (
    FIRST_VERSION_TAG,
    core_only,
    going_deeper_cells,
    lesson_notebooks,
    lesson_words,
    run_lessons,
)

from .helpers import NBVAL_PARAMETERS

pytestmark = pytest.mark.long_file(2)  # tests/conftest.py: long files start first

NOTEBOOKS = lesson_notebooks()
#: Prose words on the core path of all lessons together, exercises included (issue 23: it held 17,000).
CORE_WORDS_LIMIT = 10_000


def markdown(text: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": [text]}


def code(text: str, *tags: str) -> dict:
    return {"cell_type": "code", "metadata": {"tags": list(tags)}, "source": [text], "outputs": [],
            "execution_count": None}


def test_going_deeper_sections_end_at_the_next_section_that_is_not_one():
    cells = [markdown("# 05 · Title"), code("core = 1", FIRST_VERSION_TAG), markdown("## Going deeper: speed"),
             code("deep = 1"), markdown("### A sub-section stays inside"), code("deeper = 2"),
             markdown("## Going deeper: more"), code("more = 3"), markdown("## Check"), code("print('OK:')"),
             markdown("Prose in the check section, after it")]
    assert going_deeper_cells(cells) == [False, False, True, True, True, True, True, True, False, False, False]
    kept = core_only({"cells": cells, "metadata": {}})["cells"]
    assert ["".join(c["source"]) for c in kept] == ["# 05 · Title", "core = 1", "## Check", "print('OK:')",
                                                     "Prose in the check section, after it"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name[:2])
def test_the_first_complete_version_comes_before_any_going_deeper_section(path):
    cells = json.loads(path.read_text())["cells"]
    tagged = [i for i, c in enumerate(cells) if FIRST_VERSION_TAG in c["metadata"].get("tags", [])]
    assert len(tagged) == 1 and cells[tagged[0]]["cell_type"] == "code", \
        f"one code cell tagged {FIRST_VERSION_TAG!r}: the shortest complete version of the lesson's technique"
    deeper = going_deeper_cells(cells)
    assert not any(deeper[: tagged[0]]), "a 'Going deeper' section comes before the first complete version"


def test_the_core_path_of_the_course_is_short():
    words = {path.name[:2]: lesson_words(path)["core_words"] for path in NOTEBOOKS}
    assert sum(words.values()) <= CORE_WORDS_LIMIT, f"{sum(words.values())} words on the core path: {words}"


@pytest.mark.slow
def test_every_lesson_runs_on_its_core_path(tmp_path):
    """A learner who skips every "Going deeper" section gets through each lesson, its check and its exercises.

    The lessons run in order in one DATA_DIR, each without its "Going deeper" sections: a core cell that needs
    a name or a file that only a skipped section (of its own lesson or an earlier one) makes fails here. That each
    lesson also runs alone in a fresh runtime (an empty DATA_DIR) is nbval's part: it runs every lesson that way.
    """
    written = run_lessons({**NBVAL_PARAMETERS, "DATA_DIR": str(tmp_path / "data")}, tmp_path / "out", core=True)
    assert [p.name for p in written] == [p.name for p in NOTEBOOKS]
    for path in written:
        executed = json.loads(path.read_text())["cells"]
        assert not any(going_deeper_cells(executed)), f"{path.name}: the core run still held a 'Going deeper' section"
        assert any("OK:" in "".join(o.get("text", "")) for c in executed for o in c.get("outputs", [])), \
            f"{path.name}: the lesson's check never printed OK:"
