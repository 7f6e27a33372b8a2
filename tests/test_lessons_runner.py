"""``make lessons`` when a lesson fails: the notebook's own message and a log path, not the runner's traceback;
the later lessons that need the failed one skipped, the others run; a summary and a non-zero exit. Tiny
notebooks in a temporary folder (a kernel start each), never the course's lessons."""

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from papermill.exceptions import PapermillExecutionError

from tools.lessons import NOTEBOOKS_DIR, headline, lesson_needs, lesson_notebooks, main, run_lessons

REPO = Path(__file__).resolve().parent.parent
PLANTED = 'raise ValueError("the planted message")'


def write_notebook(path: Path, *cells: str) -> Path:
    """A notebook with a ``parameters`` cell (papermill inspects it) followed by ``cells``."""
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "language": "python",
                                                           "display_name": "Python 3"}})
    nb.cells = [nbformat.v4.new_code_cell('DATA_DIR = ""', metadata={"tags": ["parameters"]}),
                *(nbformat.v4.new_code_cell(c) for c in cells)]
    nbformat.write(nb, path)
    return path


@pytest.fixture
def course(tmp_path) -> Path:
    """01 passes; 02 (it rebuilds 01's step) fails; 03 and 04 rebuild 02's step, 04 through 03's; 05 needs none."""
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    write_notebook(nbs / "01_source.ipynb", "print('OK: 01')")
    write_notebook(nbs / "02_flat.ipynb", "# from seedlings_utils.earlier_lessons import ensure_raw",
                   "x = 1\n" + PLANTED)
    write_notebook(nbs / "03_index.ipynb", "# ensure_all_images(DATA_DIR)", "print('OK: 03')")
    write_notebook(nbs / "04_split.ipynb", "# ensure_index(DATA_DIR)", "print('OK: 04')")
    write_notebook(nbs / "05_model.ipynb", "print('OK: 05')")
    return nbs


def test_dependencies_come_from_the_ensure_calls_transitively(course):
    assert lesson_needs(lesson_notebooks(course)) == {
        "01": set(), "02": {"01"}, "03": {"01", "02"}, "04": {"01", "02", "03"}, "05": set()}


def test_the_headline_is_each_lessons_title_and_what_its_tagged_cell_printed(tmp_path):
    """No kernel: two executed notebooks written by hand, one with its result cell tagged, one without."""
    stream = nbformat.v4.new_output
    tagged = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# 03 · Index the files\n\nText."),
        nbformat.v4.new_code_cell("print('not the result')", outputs=[stream("stream", name="stdout", text="noise\n")]),
        nbformat.v4.new_code_cell("...", metadata={"tags": ["headline"]}, outputs=[
            stream("stream", name="stdout", text="OK: 30 images, "),
            stream("stream", name="stderr", text="a warning\n"),
            stream("stream", name="stdout", text="3 classes\nchance 1/3\n")]),
    ])
    untagged = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 04 · Split"),
                                               nbformat.v4.new_code_cell("print('OK')")])
    nbformat.write(tagged, tmp_path / "03_index.ipynb")
    nbformat.write(untagged, tmp_path / "04_split.ipynb")
    assert headline([tmp_path / "03_index.ipynb", tmp_path / "04_split.ipynb"], "/data").splitlines() == [
        "Lesson outputs:      /data",
        "03 · Index the files", "    OK: 30 images, 3 classes", "    chance 1/3",
        "04 · Split", "    (no cell tagged headline)",
    ]


def test_the_course_lessons_need_what_they_rebuild():
    """From the real notebooks: 06 failing stops nothing; 04 failing stops 05-10; 01 failing stops 02-10."""
    needs = lesson_needs(lesson_notebooks(NOTEBOOKS_DIR))
    assert needs["01"] == set() and needs["02"] == {"01"} and needs["03"] == {"01", "02"}
    assert needs["04"] == {"01", "02", "03"}
    later = [lesson for lesson in needs if lesson > "04"]
    assert later == [p.name[:2] for p in lesson_notebooks(NOTEBOOKS_DIR)][4:]  # every lesson after 04, none left out
    assert all(needs[lesson] == {"01", "02", "03", "04"} for lesson in later)


@pytest.mark.slow
def test_a_failing_lesson_is_reported_and_the_course_goes_on(course, tmp_path):
    out = tmp_path / "executed"
    result = subprocess.run(
        [sys.executable, "-m", "tools.lessons", "run", "--notebooks-dir", str(course),
         "--output-dir", str(out), "-p", "DATA_DIR", str(tmp_path / "data")],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    printed = result.stdout + result.stderr
    assert result.returncode != 0, printed
    # the notebook's own error, where it was raised, and the full log on disk
    assert "ValueError: the planted message" in printed and "02_flat" in printed
    assert 'In [4], line 2 `raise ValueError("the planted message")`' in printed  # the cell and its line
    log = out / "02_flat.log"
    assert f"{log}" in printed and log.is_file()
    assert "the planted message" in log.read_text() and "Traceback" in log.read_text()
    assert "\x1b[" not in log.read_text()  # plain text, no terminal colours
    # none of the runner's traceback
    for noise in ("Traceback (most recent call last)", "runpy", "PapermillExecutionError", "execute_notebook",
                  "site-packages"):
        assert noise not in printed, noise
    # dependents skipped with the reason, the independent lesson run
    assert "Skipping 03_index.ipynb: needs lesson 02, which failed" in printed
    assert "Skipping 04_split.ipynb: needs lesson 02, which failed" in printed
    assert sorted(p.name for p in out.glob("*.ipynb")) == ["01_source.ipynb", "02_flat.ipynb", "05_model.ipynb"]
    # the headline for what ran, then the summary naming each lesson
    assert "Lesson outputs:" in printed
    summary = printed[printed.rindex("Lessons:"):]
    assert "2 passed, 1 failed, 2 skipped" in summary
    assert "passed   01_source.ipynb, 05_model.ipynb" in summary
    assert "FAILED   02_flat.ipynb" in summary and str(log) in summary
    assert "skipped  03_index.ipynb, 04_split.ipynb (needs lesson 02, which failed)" in summary


@pytest.mark.slow
def test_the_first_lesson_failing_skips_every_lesson_that_rebuilds_its_step(course, tmp_path, capsys):
    write_notebook(course / "01_source.ipynb", PLANTED)
    code = main(["run", "--notebooks-dir", str(course), "--output-dir", str(tmp_path / "out"),
                 "--lessons", "01", "02", "03", "-p", "DATA_DIR", str(tmp_path / "data")])
    printed = capsys.readouterr().out
    assert code == 1
    assert "Skipping 02_flat.ipynb: needs lesson 01, which failed" in printed
    assert "Skipping 03_index.ipynb: needs lesson 01, which failed" in printed
    assert "0 passed, 1 failed, 2 skipped" in printed and "05_model" not in printed  # --lessons still picks


@pytest.mark.slow
def test_a_file_that_is_not_a_notebook_is_a_failed_lesson_named_with_its_error(course, tmp_path, capsys):
    (course / "03_index.ipynb").write_text("{not json")
    code = main(["run", "--notebooks-dir", str(course), "--output-dir", str(tmp_path / "out"),
                 "--lessons", "03", "05", "-p", "DATA_DIR", str(tmp_path / "data")])
    printed = capsys.readouterr().out
    assert code == 1 and "Lessons: 1 passed, 1 failed, 0 skipped" in printed
    assert "FAILED   03_index.ipynb: NotJSONError: Notebook does not appear to be JSON" in printed


@pytest.mark.slow
def test_run_lessons_still_stops_at_the_first_failure_by_default(course, tmp_path):
    """What the tests and fixtures that call ``run_lessons`` rely on: papermill's error, nothing run after it."""
    out = tmp_path / "out"
    with pytest.raises(PapermillExecutionError, match="the planted message"):
        run_lessons({"DATA_DIR": str(tmp_path / "data")}, out, course)
    assert sorted(p.name for p in out.glob("*.ipynb")) == ["01_source.ipynb", "02_flat.ipynb"]


@pytest.mark.slow
def test_relative_folders_reach_every_lesson_as_absolute_paths(tmp_path, monkeypatch):
    """The kernels run in notebooks/: a relative COURSE_DIR or RESULTS_DIR would point somewhere else there."""
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    path = write_notebook(nbs / "01_a.ipynb", "x = 1")
    nb = nbformat.read(path, as_version=4)
    nb.cells[0].source = 'DATA_DIR = ""\nCOURSE_DIR = ""\nRESULTS_DIR = ""'
    nbformat.write(nb, path)
    monkeypatch.chdir(tmp_path)
    [out] = run_lessons({"DATA_DIR": "d", "COURSE_DIR": "drive", "RESULTS_DIR": "r"}, tmp_path / "out",
                        notebooks_dir=nbs, prepare_only=True)
    injected = next(c.source for c in nbformat.read(out, as_version=4).cells
                    if "injected-parameters" in c.metadata.get("tags", []))
    for name, folder in (("DATA_DIR", "d"), ("COURSE_DIR", "drive"), ("RESULTS_DIR", "r")):
        assert f'{name} = "{tmp_path / folder}"' in injected


def test_make_lessons_passes_every_knob_named_on_its_command_line_over_the_quick_settings(tmp_path):
    """`make lessons NAME=value`: any knob of the registry, its value exactly as typed; a near-miss is named."""
    from seedlings_utils.parameters import quick_parameters
    from tools.lessons import knobs_from_make

    environment = {"EPOCHS": "3", "DATA_DIR": "/tmp/a b", "WEIGHTS": "None", "TEST_WORKERS": "0"}
    assert knobs_from_make(r"EPOCHS=3 DATA_DIR=/tmp/a\ b WEIGHTS=None TEST_WORKERS=0", environment) == {
        "EPOCHS": 3, "DATA_DIR": "/tmp/a b", "WEIGHTS": None}
    with pytest.raises(ValueError, match="EPOCH is not a knob of the lessons; did you mean EPOCHS"):
        knobs_from_make("EPOCH=3", {"EPOCH": "3"})
    # make itself: the recipe names the knobs set on the command line, with the quick settings under them
    outer = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")  # when the tests run under make test itself
    environment = {name: value for name, value in os.environ.items() if name not in outer}
    dry = subprocess.run(["make", "--no-print-directory", "-n", "lessons", "EPOCHS=3", "GOING_DEEPER=True"], cwd=REPO,
                         capture_output=True, text=True, check=True, env=environment).stdout
    dry = next(line for line in dry.splitlines() if "tools.lessons run" in line)
    assert "tools.lessons run --quick --from-make" in dry and "EPOCHS=3" in dry and "GOING_DEEPER=True" in dry
    assert quick_parameters()["EPOCHS"] != 3  # so that the test above shows the command line winning
