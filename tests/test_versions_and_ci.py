"""The version ranges are facts (floors tested, every Colab runtime checked inside them) and the GitHub workflow
that runs `make test` is well-formed."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from tools.versions import COLAB_RUNTIMES, floors

REPO = Path(__file__).resolve().parents[1]


def requirement_lines(name: str = "requirements.txt") -> list[str]:
    lines = [line.split(" #")[0].strip() for line in (REPO / name).read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def runtime_requirements() -> list[Requirement]:
    """The learner's package's requirements (pyproject.toml reads them from requirements.txt)."""
    return [Requirement(line) for line in requirement_lines()]


@pytest.mark.parametrize("runtime", sorted(COLAB_RUNTIMES))
def test_every_colab_runtime_checked_is_inside_the_ranges(runtime):
    """Installing the course on Colab must not reinstall TensorFlow or anything else Colab ships."""
    shipped = COLAB_RUNTIMES[runtime]
    for req in runtime_requirements():
        assert req.name in shipped, f"say which {req.name} Colab ships (tools/versions.py)"
        assert req.specifier.contains(shipped[req.name]), f"Colab {runtime} has {req.name} {shipped[req.name]}"


def test_the_floors_are_the_oldest_colab_runtime_or_below():
    oldest = min(COLAB_RUNTIMES.values(), key=lambda r: Version(r["tensorflow"]))
    for req in runtime_requirements():
        floor = next(Version(s.version) for s in req.specifier if s.operator == ">=")
        assert floor <= Version(oldest[req.name]), req


def test_floors_pins_every_range_at_its_lowest_version():
    text = "tensorflow>=2.18,<3\nkeras>=3.8,<4  # why\n# a comment >=1\nx>=1.7.4; platform_system != 'Darwin'\nplain\n"
    want = "tensorflow==2.18\nkeras==3.8  # why\n# a comment >=1\nx==1.7.4; platform_system != 'Darwin'\nplain\n"
    assert floors(text) == want
    both = (REPO / "requirements.txt").read_text() + (REPO / "requirements-dev.txt").read_text()
    pinned = [Requirement(line.split(" #")[0]) for line in floors(both).splitlines()
              if line.strip() and not line.startswith("#")]
    assert len(pinned) == len(requirement_lines()) + len(requirement_lines("requirements-dev.txt"))
    assert all(len(r.specifier) == 1 and next(iter(r.specifier)).operator == "==" for r in pinned), pinned


def test_pins_are_inside_the_ranges():
    """`make` installs the pins of .ci/constraints.txt: each must be a version the ranges allow."""
    pins = {}
    for line in (REPO / ".ci" / "constraints.txt").read_text().splitlines():
        if "==" in line:
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
    for line in requirement_lines() + requirement_lines("requirements-dev.txt"):
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate():
            assert req.specifier.contains(pins[re.sub(r"[-_.]+", "-", req.name).lower()]), req


def test_github_workflow_runs_make_test_and_passes_actionlint():
    workflows = sorted((REPO / ".github" / "workflows").glob("*.yml"))
    assert any(re.search(r"run: make test\s*$", w.read_text(), re.M) for w in workflows)
    actionlint = shutil.which("actionlint", path=str(Path(sys.executable).parent)) or shutil.which("actionlint")
    if actionlint is None:
        pytest.skip("actionlint is not installed (requirements-dev.txt has no wheel of it for this platform)")
    result = subprocess.run([actionlint, "-no-color", *map(str, workflows)], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_what_a_lesson_installs_on_colab_is_what_the_requirement_files_say():
    """A lesson's setup cell that installs more than the course's package on Colab names the same ranges as the
    requirement files (s3fs is pinned there to the fsspec Colab ships, so only its name must be listed)."""
    import json

    listed = {Requirement(line).name: Requirement(line)
              for line in requirement_lines() + requirement_lines("requirements-dev.txt")}
    seen = 0
    for notebook in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        setup = "".join(json.loads(notebook.read_text())["cells"][2]["source"])
        for line in setup.splitlines():
            if "%pip install" not in line or "seedlings-utils @" in line:
                continue
            for text in re.findall(r'"([^"]+)"', line.split("#")[0]):
                if "{" in text:  # a version computed on Colab (s3fs[boto3]=={fsspec.__version__})
                    named = Requirement(text.split("==")[0])
                    assert named.name in listed and named.extras == listed[named.name].extras, (notebook.name, text)
                    continue
                req = Requirement(text)
                assert req.name in listed and req.specifier == listed[req.name].specifier, (notebook.name, text)
                seen += 1
    assert seen, "no lesson installs anything beyond the course's package: this test checks nothing"


@pytest.mark.parametrize("runtime", sorted(COLAB_RUNTIMES))
def test_lesson_12s_floors_are_what_it_gets_on_colab(runtime):
    """Lesson 12's setup cell installs s3fs at the version of Colab's fsspec and relies on Colab's Flask (moto's server
    needs it): the floors that `make test-oldest` tests are at or below those, so what a learner gets is tested."""
    shipped = COLAB_RUNTIMES[runtime]
    dev = {Requirement(line).name.lower(): Requirement(line) for line in requirement_lines("requirements-dev.txt")}
    for name, colab_name in (("s3fs", "fsspec"), ("flask", "flask")):
        floor = next(Version(s.version) for s in dev[name].specifier if s.operator == ">=")
        assert floor <= Version(shipped[colab_name]), f"{name} {floor}: Colab {runtime} gets {shipped[colab_name]}"
        assert dev[name].specifier.contains(shipped[colab_name]), (name, shipped[colab_name])
