"""Run every lesson in order with papermill into one temporary DATA_DIR, then 01-04 again, and check what they left
(lesson 10's jobs included) and the course site built from the executed notebooks."""

import csv
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from seedlings_utils.config import SPECIES
from seedlings_utils.synthetic import synthetic_class_counts
from tools import site
from tools.lessons import headline, lesson_notebooks, run_lessons

from .helpers import QUICK_PARAMETERS

pytestmark = [pytest.mark.slow, pytest.mark.long_file(1)]

#: What lessons 01-04 leave: a re-run must give exactly the same bytes.
REPEATABLE = ["raw", "all_images", "all_images.csv", "skipped.csv", "filenames.npy", "labels.npy", "classes.json",
              "X_train_filenames.npy", "y_train.npy", "X_val_filenames.npy", "y_val.npy"]


def snapshot(data_dir: Path) -> dict[str, str]:
    """sha256 of every file the lessons wrote whose content must not change on a re-run."""
    digests = {}
    for entry in REPEATABLE:
        paths = [data_dir / entry] if (data_dir / entry).is_file() else sorted((data_dir / entry).rglob("*"))
        for p in paths:
            if p.is_file():
                digests[p.relative_to(data_dir).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return digests


@pytest.fixture(scope="module")
def lessons(executed_lessons):
    data_dir, first = executed_lessons  # the session's one run of every lesson (conftest.py), shared with test_site
    params = {**QUICK_PARAMETERS, "DATA_DIR": str(data_dir)}
    first_snapshot = snapshot(data_dir)
    # the data lessons again, as a learner re-running them would (training is not repeated: the resume and
    # no-duplicate behaviour of lesson 06's callbacks is tested in test_model_train.py)
    second = run_lessons(params, data_dir / "executed-again", lessons=["01", "02", "03", "04"])
    return data_dir, first, first_snapshot, second


def test_every_lesson_ran_without_error(lessons):
    data_dir, first, *_ = lessons
    assert [p.name for p in first] == [p.name for p in lesson_notebooks()]
    assert len(first) >= 8
    for path in first:
        nb = json.loads(path.read_text())
        outputs = [o for c in nb["cells"] for o in c.get("outputs", [])]
        assert not [o for o in outputs if o.get("output_type") == "error"], path.name
        assert any("OK:" in "".join(o.get("text", "")) for o in outputs), f"{path.name} did not reach its check"


def test_counts_in_equal_counts_out(lessons):
    data_dir = lessons[0]
    expected = synthetic_class_counts(QUICK_PARAMETERS["SYNTHETIC_PER_CLASS"])
    raw_counts = {d.name: len(list(d.iterdir())) for d in sorted((data_dir / "raw" / "train").iterdir())}
    assert raw_counts == expected and sorted(raw_counts) == list(SPECIES)
    n = sum(expected.values())
    assert len(list((data_dir / "all_images").iterdir())) == n
    assert len(np.load(data_dir / "filenames.npy")) == len(np.load(data_dir / "labels.npy")) == n


def test_split_names_exist_are_disjoint_stratified_and_labelled_by_folder(lessons):
    data_dir = lessons[0]
    classes = json.loads((data_dir / "classes.json").read_text())
    assert classes == list(SPECIES)
    x_train, y_train = np.load(data_dir / "X_train_filenames.npy"), np.load(data_dir / "y_train.npy")
    x_val, y_val = np.load(data_dir / "X_val_filenames.npy"), np.load(data_dir / "y_val.npy")
    on_disk = {p.name for p in (data_dir / "all_images").iterdir()}
    assert set(x_train) | set(x_val) == on_disk and not set(x_train) & set(x_val)
    # each label is the species folder the image came from: find each file's source in raw/train by content
    source_species = {}
    for folder in (data_dir / "raw" / "train").iterdir():
        for image in folder.iterdir():
            source_species[hashlib.sha256(image.read_bytes()).hexdigest()] = folder.name
    for names, labels in ((x_train, y_train), (x_val, y_val)):
        for name, label in zip(names, labels, strict=True):
            digest = hashlib.sha256((data_dir / "all_images" / name).read_bytes()).hexdigest()
            assert source_species[digest] == classes[label], name
    total = np.bincount(np.concatenate([y_train, y_val]), minlength=12)
    share = len(x_val) / (len(x_train) + len(x_val))
    assert np.all(np.abs(np.bincount(y_val, minlength=12) - total * share) <= 1.5)


def test_training_outputs_and_accuracy_well_above_chance(lessons):
    data_dir = lessons[0]
    metrics = json.loads((data_dir / "metrics.json").read_text())
    assert metrics["val_accuracy"] >= 0.5, metrics["val_accuracy"]  # chance is 1/12 = 0.083
    assert metrics["val_micro_f1"] == pytest.approx(metrics["val_accuracy"])
    assert metrics["val_samples"] == len(np.load(data_dir / "y_val.npy"))
    assert (data_dir / "model.keras").stat().st_size > 10_000
    with open(data_dir / "history.csv") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == list(range(QUICK_PARAMETERS["EPOCHS"]))
    speeds = json.loads((data_dir / "loader_speed.json").read_text())
    assert len(speeds) == 3 and all(v > 0 for v in speeds.values())
    for name in ("cache_speed.json", "tfdata_speed.json"):  # lessons 07 and 08
        speeds = json.loads((data_dir / name).read_text())
        assert len(speeds) >= 2 and all(v > 0 for v in speeds.values()), name


def test_submission_has_one_row_per_test_image(lessons):
    data_dir = lessons[0]
    test_images = sorted(p.name for p in (data_dir / "raw" / "test").iterdir())
    with open(data_dir / "submission.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["file"] for r in rows] == test_images and len(rows) > 0
    assert {r["species"] for r in rows} <= set(SPECIES)


def test_rerun_gives_the_same_outputs_and_duplicates_nothing(lessons):
    data_dir, first, first_snapshot, second = lessons
    assert [p.name[:2] for p in second] == ["01", "02", "03", "04"]
    assert snapshot(data_dir) == first_snapshot and len(first_snapshot) > 12
    assert not (data_dir / "raw.partial").exists() and not (data_dir / "training_backup").exists()
    with open(data_dir / "history.csv") as f:
        assert len(list(csv.DictReader(f))) == QUICK_PARAMETERS["EPOCHS"]


def test_headline_reports_the_numbers(lessons):
    text = headline(lessons[0])
    assert "Training images:" in text and "Validation accuracy:" in text and "images/s" in text
    assert "Transfer (09):       validation accuracy" in text and "RANDOM weights" in text
    assert "Waiting (09, CPU, no GPU): PyDataset, 2 threads" in text and "tf.data" in text
    assert "Processes (10):      1 process:" in text and "2 processes:" in text and "identical weights: True" in text
    assert "Resume (11):" in text and "position True, grain True" in text


# ---- what the later lessons left, and the site made of the executed lessons -------------------------------
# (every test that reads the session's one run of the lessons lives in this module, so that `make test`'s
# two workers, which keep each module together, run the lessons once)


@pytest.mark.slow
def test_lesson_10_left_a_job_that_trained_in_step(executed_lessons):
    """What lesson 10 left in DATA_DIR (every lesson run once, in order, with the quick parameters)."""
    from seedlings_utils.processes import Job, read_problems
    from seedlings_utils.split import load_split

    data_dir, _ = executed_lessons
    runs = data_dir / "distributed"
    summary = json.loads((runs / "summary.json").read_text())
    processes = len(summary["peak_rss_mb"]) and max(int(k.split()[0]) for k in summary["peak_rss_mb"])
    job = Job.read(runs / f"{processes}_processes", processes)
    assert processes >= 2 and job.weights_identical() and summary["weights_identical"]
    assert read_problems(job.reads, load_split(data_dir)[0]) == [] == summary["read_problems"]
    assert sorted(job.reads[0]) == list(range(summary["epochs"]))
    accuracy = summary["validation_accuracy"]
    assert abs(accuracy[f"{processes} processes"] - accuracy["1 process"]) <= 0.15  # the lesson's stated tolerance
    assert all(speed > 0 for speed in summary["images_per_second"].values())


@pytest.mark.slow
def test_lesson_11_killed_runs_resumed_to_the_uninterrupted_runs_samples_and_weights(executed_lessons):
    """What lesson 11 wrote: its own cells' runs, cut in epoch 1 and resumed in the notebook's process (steps.json and
    the weights of each route and of its uninterrupted reference), and Going deeper's processes, killed with SIGKILL
    in epoch 1 and resumed."""
    from seedlings_utils.resume_runs import (
        REFERENCE_WEIGHTS,
        STEPS_FILE,
        final_weights,
        once_per_epoch,
        read_id_log,
        trained_steps,
    )
    from seedlings_utils.split import load_split

    data_dir, _ = executed_lessons
    runs, count = data_dir / "resume", len(load_split(data_dir)[0])
    batches = -(-count // QUICK_PARAMETERS["BATCH_SIZE"])
    for route in ("position", "grain"):  # the notebook's own process
        record = json.loads((runs / route / STEPS_FILE).read_text())
        assert record["resumed_from"][0] == 1 and 0 < record["resumed_from"][1] < batches, route
        assert [tuple(step[:2]) for step in record["reference"]] == [(e, b) for e in range(2) for b in range(batches)]
        assert record["resumed"] == record["reference"], route
        steps = [tuple(step) for step in record["resumed"]]
        assert once_per_epoch(steps, count) == {0: "", 1: ""}, route
        weights, expected = final_weights(runs / route), final_weights(runs / route, REFERENCE_WEIGHTS)
        assert all(np.array_equal(a, b) for a, b in zip(weights, expected, strict=True)), route
    deep = runs / "processes"  # Going deeper (GOING_DEEPER = True in this run)
    for route in ("position", "grain"):
        killed, resumed = read_id_log(deep / route)
        assert killed["steps"][-1][0] == 1 and resumed["start"][0] == 1 and 0 < resumed["start"][1]
        steps, reference = trained_steps(deep / route), trained_steps(deep / f"{route}_reference")
        assert steps == reference and once_per_epoch(steps, count) == {0: "", 1: ""}, route
        weights, expected = final_weights(deep / route), final_weights(deep / f"{route}_reference")
        assert all(np.array_equal(a, b) for a, b in zip(weights, expected, strict=True)), route
    backup = once_per_epoch(trained_steps(deep / "backup"), count)
    assert backup[0] == "" and "trained twice" in backup[1]  # the same check fails for BackupAndRestore alone
    summary = json.loads((runs / "summary.json").read_text())
    assert summary["exact"] == {"position": True, "grain": True, "position (killed process)": True,
                                "grain (killed process)": True}


@pytest.mark.slow
def test_site_of_the_executed_lessons_passes_the_browser_check(executed_lessons, tmp_path, chromium):
    """`make lessons && make site`, on the session's one run of every lesson (conftest.py): no lesson is run again."""
    _, executed = executed_lessons
    out = tmp_path / "site"
    index = site.build_site(executed[0].parent, out)
    assert index.is_file()
    order = json.loads((out / "site.json").read_text())["order"]
    pages = [page.removesuffix(".md") + ".html" for path, page in site.doc_sources().items() if path != "README.md"]
    assert order == ["index.html", *(f"notebooks/{p.stem}.html" for p in lesson_notebooks()), *pages]
    assert {"docs/benchmark.html", "docs/parameters.html", "contributing.html"} <= set(pages)
    problems = site.check_site(out, chromium=chromium)
    assert problems == [], "\n".join(problems)
    shutil.rmtree(out, ignore_errors=True)  # a few MB of pages in the test's temporary folder
