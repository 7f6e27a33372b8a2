import re
from pathlib import Path

import tomllib
from packaging.requirements import Requirement

from seedlings_utils import env
from seedlings_utils.lessons import parse_value

REPO = Path(__file__).resolve().parents[1]


def test_check_environment_compares_versions_not_strings(monkeypatch):
    monkeypatch.setattr(env.metadata, "version", lambda name: "1.9.1")
    rows = env.check_environment(["pkg>=1.10", "pkg>=1.8"])
    assert [ok for *_, ok in rows] == [False, True]  # as text, "1.9.1" >= "1.10" would pass


def test_check_environment_here():
    rows = env.check_environment(["numpy>=1.0", "surely-not-installed-pkg>=1"])
    assert rows[0][3] is True and rows[1][2] == "missing" and rows[1][3] is False
    names = {name for name, *_ in env.check_environment()}
    assert {"tensorflow", "keras", "numpy", "pillow"} <= names
    assert all(ok for *_, ok in env.check_environment())


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
    assert env.resolve_data_dir(tmp_path / "x") == tmp_path / "x" and (tmp_path / "x").is_dir()
    monkeypatch.chdir(tmp_path)
    assert env.resolve_data_dir("rel") == tmp_path / "rel"
    assert env.default_data_dir() == REPO / "data"  # an editable checkout keeps data in the repo
    monkeypatch.setenv("COLAB_RELEASE_TAG", "test")
    assert env.is_colab() and env.default_data_dir() == Path("/content/seedlings-data")


def test_describe_platform_mentions_versions():
    text = env.describe_platform()
    assert re.search(r"TensorFlow \d+\.\d+", text) and "Keras 3." in text


def test_parse_value():
    assert parse_value("8") == 8 and parse_value("0.2") == 0.2 and parse_value("False") is False
    assert parse_value("runs/real") == "runs/real" and parse_value("/p/with space.zip") == "/p/with space.zip"


def test_data_and_build_outputs_are_ignored_by_git():
    ignored = (REPO / ".gitignore").read_text().split()
    assert {"data/", "build/", ".venv/"} <= set(ignored)


def test_ci_runs_make_test():
    assert "make test" in (REPO / ".ci" / "run").read_text()
