import re
import tomllib
from pathlib import Path

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


def test_requirements_txt_matches_pyproject():
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    lines = [line.split(" #")[0].strip() for line in (REPO / "requirements.txt").read_text().splitlines()]
    listed = [line for line in lines if line and not line.startswith("#")]  # pip's rules for comments
    listed_names = {Requirement(line).name for line in listed}
    assert {Requirement(d).name for d in declared} <= listed_names
    pinned = {line.split("==")[0].lower() for line in (REPO / ".ci" / "constraints.txt").read_text().splitlines()
              if "==" in line}
    assert {n.lower() for n in listed_names} <= pinned, "every requirement must be pinned in .ci/constraints.txt"


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


#: Lessons 01-04 never use TensorFlow: they start without importing it (5 to 8 s each on a 2-core CPU).
NO_TENSORFLOW_LESSONS = ("01", "02", "03", "04")


def test_lessons_01_to_04_start_and_run_their_imports_without_loading_tensorflow(tmp_path):
    """In a fresh process, as in a fresh kernel: the four lessons' setup, start and every import of their code cells
    leave TensorFlow, Keras and JAX unloaded, and the seeds drawn match what keras.utils.set_random_seed gives."""
    import json
    import subprocess
    import sys

    imports = set()
    for notebook in sorted((REPO / "notebooks").glob("0[1-4]_*.ipynb")):
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
    ignored = (REPO / ".gitignore").read_text().split()
    assert {"data/", "build/", ".venv/"} <= set(ignored)


def test_ci_runs_make_test():
    assert "make test" in (REPO / ".ci" / "run").read_text()
