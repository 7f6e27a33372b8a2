"""Every lesson follows the template (CONTRIBUTING.md) and its Colab links match its path."""

import json
import re

import pytest

from seedlings_utils.config import COLAB_INSTALL, GITHUB_REF, GITHUB_REPO
from seedlings_utils.parameters import KNOBS
from tools.lessons import HEADLINE_TAG, going_deeper_cells, lesson_notebooks
from tools.pages import declared_outputs

NOTEBOOKS = lesson_notebooks()
CONTRACT_PARAMETERS = {"DATA_DIR", "COURSE_DIR", "SYNTHETIC_PER_CLASS", "SEED"}
#: Set in lesson 01 only, which records them in COURSE_DIR for every later lesson (seedlings_utils.sources).
DATA_SOURCE_PARAMETERS = {"DATA_SOURCE", "SOURCE_PATH", "SOURCE_SHA256"}


def cells(path):
    return json.loads(path.read_text())["cells"]


def source(cell):
    return "".join(cell["source"])


def test_numbered_lessons_in_order():
    assert NOTEBOOKS, "no lesson found in notebooks/"
    assert [p.name[:3] for p in NOTEBOOKS] == [f"{i:02d}_" for i in range(1, len(NOTEBOOKS) + 1)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_template_and_links(path):
    nb = cells(path)
    title = source(nb[0])
    assert title.startswith(f"# {path.name[:2]} · ")
    assert f"https://colab.research.google.com/github/{GITHUB_REPO}/blob/{GITHUB_REF}/notebooks/{path.name}" in title
    assert f"https://github.com/{GITHUB_REPO}/blob/{GITHUB_REF}/notebooks/{path.name}" in title
    assert "**Time:**" in title
    assert source(nb[1]).startswith("## Setup")
    setup = source(nb[2])
    assert '"google.colab" in sys.modules' in setup and COLAB_INSTALL in setup
    tagged = [c for c in nb if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1
    names = set(re.findall(r"^([A-Z][A-Z0-9_]*) = ", source(tagged[0]), flags=re.M))
    assert CONTRACT_PARAMETERS <= names
    if path.name[:2] == "01":
        assert DATA_SOURCE_PARAMETERS <= names
    else:
        assert not DATA_SOURCE_PARAMETERS & names, "only lesson 01 sets the data source (later ones read its record)"
    assert names <= set(KNOBS), f"knobs not in seedlings_utils.parameters.KNOBS: {sorted(names - set(KNOBS))}"
    headings = [i for i, c in enumerate(nb) if c["cell_type"] == "markdown" and source(c).startswith("## ")]
    check = [i for i in headings if source(nb[i]).startswith("## Check")]
    assert len(check) == 1 and "OK:" in source(nb[check[0] + 1]), "one '## Check' section, its cell prints OK:"
    # every lesson ends with its exercises, right after the check
    assert source(nb[headings[-1]]).startswith("## Exercises") and headings[-2] == check[0]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_one_core_cell_gives_the_lessons_result_and_its_outputs_are_declared(path):
    """``make lessons`` prints what the cell tagged ``headline`` printed, under the lesson's title; docs/parameters.md's
    outputs table and the papermill test read what the notebook's metadata declares it leaves."""
    nb = cells(path)
    deeper = going_deeper_cells(nb)
    tagged = [i for i, c in enumerate(nb) if HEADLINE_TAG in c["metadata"].get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged {HEADLINE_TAG!r}, not one"
    cell = nb[tagged[0]]
    assert cell["cell_type"] == "code" and "print(" in source(cell), "the headline cell prints the lesson's result"
    assert not deeper[tagged[0]], "the headline cell is on the core path (not in a Going deeper section)"
    outputs = declared_outputs(path)  # raises, naming the notebook, when missing or malformed
    assert len({o.path for o in outputs}) == len(outputs), f"{path.name}: an output declared twice"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_clean_and_modern(path):
    nb = cells(path)
    code = "\n".join(source(c) for c in nb if c["cell_type"] == "code")
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb if c["cell_type"] == "code")
    ids = [c.get("id") for c in nb]  # nbformat 4.5 wants them (papermill warns otherwise)
    assert all(ids) and len(set(ids)) == len(ids), f"{path.name}: every cell needs its own id"
    for removed in ("fit_generator(", "np.int)", "np.int(", "keras.utils.Sequence)", "import tensorflow.keras"):
        assert removed not in code, f"{path.name} runs removed API {removed}"
