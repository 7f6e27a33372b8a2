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
    prepare_for_nbval,
)

from .helpers import nbval_parameters

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


def test_lesson_11s_core_is_done_in_the_learners_process_and_short():
    """Lesson 11's core path trains in the notebook's own process (no process, no Grain worker, no launcher) and
    says its idea in at most 600 words."""
    import re

    path = next(p for p in NOTEBOOKS if p.name.startswith("11_"))
    cells = json.loads(path.read_text())["cells"]
    core = "\n".join("".join(c["source"]) for c, deeper in zip(cells, going_deeper_cells(cells), strict=True)
                     if c["cell_type"] == "code" and not deeper)
    assert lesson_words(path)["core_words"] <= 600
    started = re.findall(r"subprocess|Popen|multiprocessing|run_training\(|mp_prefetch|worker_count=[1-9]|jobs\.", core)
    assert not started, f"lesson 11's core starts processes: {started}"


def test_nbval_runs_every_lesson_alone_on_its_core_path(tmp_path):
    """`make test`'s nbval copies (tests/conftest.py): each lesson, its "Going deeper" sections removed, with its
    own empty DATA_DIR. nbval executing them is the check that a learner who skips every "Going deeper" section,
    in a fresh runtime, gets through each lesson, its check (which prints OK:) and its exercises."""
    written = prepare_for_nbval(tmp_path / "nbval", nbval_parameters, core=True)
    assert [p.name for p in written] == [p.name for p in NOTEBOOKS]
    assert sorted(p.name for p in (tmp_path / "nbval").glob("*.ipynb")) == [p.name for p in NOTEBOOKS], \
        "nothing but the lessons in the folder nbval collects"
    data_dirs = set()
    for path in written:
        cells = json.loads(path.read_text())["cells"]
        assert not any(going_deeper_cells(cells)), f"{path.name}: a 'Going deeper' section is still there"
        sources = ["".join(c["source"]) for c in cells]
        assert any("print(\"OK:" in s or "print(f\"OK:" in s for s in sources), f"{path.name}: its check is gone"
        injected = next(s for c, s in zip(cells, sources, strict=True)
                        if "injected-parameters" in c["metadata"].get("tags", []))
        data_dirs.add(next(line for line in injected.splitlines() if line.startswith("DATA_DIR")))
    assert len(data_dirs) == len(written), "every lesson has a DATA_DIR of its own"
