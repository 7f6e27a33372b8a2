"""Run every lesson in order with papermill into one temporary DATA_DIR, on a learner's own folder of photos (not the
seedlings: two classes of JPEGs, a labelled val/, no test/), then 01-04 again, and check what they left (lesson 10's
jobs included) and the course site built from the executed notebooks."""

import csv
import hashlib
import json
import shutil
from pathlib import Path, PurePosixPath

import numpy as np
import pytest

from seedlings_utils.flatten import FLAT_SEPARATOR
from tools import site
from tools.lessons import headline, lesson_notebooks, run_lessons

from .conftest import LESSONS_FAILED_FILE, OWN_PHOTOS
from .helpers import TEST_PARAMETERS

pytestmark = [pytest.mark.slow, pytest.mark.long_file(1)]

#: What lessons 01-04 leave: a re-run must give exactly the same bytes.
REPEATABLE = ["raw", "all_images", "all_images.csv", "skipped.csv", "filenames.npy", "labels.npy", "classes.json",
              "X_train_filenames.npy", "y_train.npy", "X_val_filenames.npy", "y_val.npy"]
CLASSES = list(OWN_PHOTOS["classes"])


def snapshot(data_dir: Path) -> dict[str, str]:
    """sha256 of every file the lessons wrote whose content must not change on a re-run."""
    digests = {}
    for entry in REPEATABLE:
        paths = [data_dir / entry] if (data_dir / entry).is_file() else sorted((data_dir / entry).rglob("*"))
        for p in paths:
            if p.is_file():
                digests[p.relative_to(data_dir).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return digests


def photo_parameters(data_dir: Path) -> dict:
    """The parameters ``executed_lessons`` ran with (its photos lie beside its DATA_DIR)."""
    return {**TEST_PARAMETERS, "DATA_DIR": str(data_dir), "DATA_SOURCE": "local",
            "SOURCE_PATH": str(data_dir.parent / "photos")}


def generated(name: str) -> tuple[str, str]:
    """``(class, split)`` of a make_photo_folder image from its name in ``all_images/``
    (``dogs__val__dogs_val_0003.jpg``
    -> ``("dogs", "val")``): the generated names carry both."""
    source = PurePosixPath(name.split(FLAT_SEPARATOR)[-1]).stem  # dogs_val_0003
    species, split, _ = source.rsplit("_", 2)
    return species, split


@pytest.fixture(scope="module")
def lessons(executed_lessons):
    data_dir, first = executed_lessons  # the session's one run of every lesson (conftest.py), shared with test_site
    first_snapshot = snapshot(data_dir)
    # the data lessons again, as a learner re-running them would (training is not repeated: the resume and
    # no-duplicate behaviour of lesson 06's callbacks is tested in test_model_train.py)
    second = run_lessons(photo_parameters(data_dir), data_dir / "executed-again", lessons=["01", "02", "03", "04"])
    return data_dir, first, first_snapshot, second


def test_every_lesson_ran_without_error(lessons):
    data_dir, first, *_ = lessons
    failed = data_dir / LESSONS_FAILED_FILE
    assert [p.name for p in first] == [p.name for p in lesson_notebooks()], (
        failed.read_text() if failed.is_file() else "")
    for path in first:
        nb = json.loads(path.read_text())
        outputs = [o for c in nb["cells"] for o in c.get("outputs", [])]
        assert not [o for o in outputs if o.get("output_type") == "error"], path.name
        assert any("OK:" in "".join(o.get("text", "")) for o in outputs), f"{path.name} did not reach its check"


def test_every_image_used_once_with_its_class_and_its_given_split(lessons):
    data_dir = lessons[0]
    per_class, val_per_class = OWN_PHOTOS["per_class"], OWN_PHOTOS["val_per_class"]
    for part, count in (("train", per_class), ("val", val_per_class)):
        raw_counts = {d.name: len(list(d.iterdir())) for d in sorted((data_dir / "raw" / part).iterdir())}
        assert raw_counts == dict.fromkeys(CLASSES, count), part
    assert not (data_dir / "raw" / "test").exists()
    assert json.loads((data_dir / "classes.json").read_text()) == CLASSES
    n = len(CLASSES) * (per_class + val_per_class)
    filenames, labels = np.load(data_dir / "filenames.npy"), np.load(data_dir / "labels.npy")
    assert len(list((data_dir / "all_images").iterdir())) == len(filenames) == len(labels) == n
    x_train, y_train = np.load(data_dir / "X_train_filenames.npy"), np.load(data_dir / "y_train.npy")
    x_val, y_val = np.load(data_dir / "X_val_filenames.npy"), np.load(data_dir / "y_val.npy")
    sources = [generated(name) for name in np.concatenate([x_train, x_val]).tolist()]
    originals = [name.split(FLAT_SEPARATOR)[-1] for name in np.concatenate([x_train, x_val]).tolist()]
    assert len(set(originals)) == len(originals) == n, "every generated image once, in one of the two sets"
    # the data's own val/ folder is the validation set, whole: nothing was split off train/ instead
    assert [split for _, split in sources] == ["train"] * len(x_train) + ["val"] * len(x_val)
    assert len(x_val) == len(CLASSES) * val_per_class
    assert [species for species, _ in sources] == [CLASSES[y] for y in np.concatenate([y_train, y_val])]


def test_training_outputs_and_accuracy_well_above_chance(lessons):
    data_dir = lessons[0]
    metrics = json.loads((data_dir / "metrics.json").read_text())
    chance = 1 / len(CLASSES)
    assert metrics["val_accuracy"] >= chance + 0.45 * (1 - chance), metrics["val_accuracy"]  # 0.725 for 2 classes
    assert metrics["val_micro_f1"] == pytest.approx(metrics["val_accuracy"])
    assert metrics["val_samples"] == len(np.load(data_dir / "y_val.npy"))
    assert sorted(metrics["per_class"]) == CLASSES
    assert (data_dir / "model.keras").stat().st_size > 10_000
    with open(data_dir / "history.csv") as f:
        epochs = [int(r["epoch"]) for r in csv.DictReader(f)]  # early stopping may end the run sooner
    assert epochs == list(range(len(epochs))) and 2 <= len(epochs) <= TEST_PARAMETERS["EPOCHS"]
    assert metrics["epochs"] == len(epochs)
    speeds = json.loads((data_dir / "loader_speed.json").read_text())
    assert len(speeds) == 3 and all(v > 0 for v in speeds.values())
    for name in ("cache_speed.json", "tfdata_speed.json"):  # lessons 07 and 08
        speeds = json.loads((data_dir / name).read_text())
        assert len(speeds) >= 2 and all(v > 0 for v in speeds.values()), name


def test_no_test_folder_no_predictions_invented(lessons):
    data_dir = lessons[0]
    assert not (data_dir / "raw" / "test").exists()
    assert not (data_dir / "submission.csv").exists(), "no test/ folder, yet a submission"


def test_rerun_gives_the_same_outputs_and_duplicates_nothing(lessons):
    data_dir, first, first_snapshot, second = lessons
    assert [p.name[:2] for p in second] == ["01", "02", "03", "04"]
    assert snapshot(data_dir) == first_snapshot and len(first_snapshot) > 12
    assert not (data_dir / "raw.partial").exists() and not (data_dir / "training_backup").exists()
    with open(data_dir / "history.csv") as f:
        assert len(list(csv.DictReader(f))) == json.loads((data_dir / "metrics.json").read_text())["epochs"]


def test_headline_reports_the_numbers_of_two_classes(lessons):
    text = headline(lessons[0])
    train, val = (len(CLASSES) * OWN_PHOTOS[key] for key in ("per_class", "val_per_class"))
    assert f"Images:              {train + val} in 2 classes ({train} training, {val} validation;" in text
    assert "Validation accuracy:" in text
    assert "chance is 1/2 = 0.500" in text and "1/12" not in text and "images/s" in text
    assert "Transfer (09):       validation accuracy" in text and "RANDOM weights" in text
    assert "Waiting (09, CPU, no GPU): before: 1 worker decoding" in text and "after: the cache" in text
    assert "PyDataset, 2 threads" in text and "tf.data" in text  # Going deeper's loaders too (GOING_DEEPER = True)
    assert "Processes (10):      1 process:" in text and "2 processes:" in text and "identical weights: True" in text
    assert "Resume (11):" in text and "position True, grain True" in text


# ---- what the later lessons left, and the site made of the executed lessons -------------------------------
# (every test that reads the session's one run of the lessons lives in this module, so that `make test`'s
# two workers, which keep each module together, run the lessons once)


@pytest.mark.slow
def test_lesson_10_left_a_job_that_trained_in_step(executed_lessons):
    """What lesson 10 left in DATA_DIR (every lesson run once, in order, with the quick parameters)."""
    from seedlings_utils.jobs.launcher import Job, read_problems
    from seedlings_utils.split import load_split

    data_dir, _ = executed_lessons
    runs = data_dir / "distributed"
    summary = json.loads((runs / "summary.json").read_text())
    processes = len(summary["peak_rss_mb"]) and max(int(k.split()[0]) for k in summary["peak_rss_mb"])
    job = Job.read(runs / f"{processes}_processes", processes)
    assert processes >= 2 and job.weights_identical() and summary["weights_identical"]
    assert read_problems(job.reads, load_split(data_dir)[0]) == [] == summary["read_problems"]
    assert sorted(job.reads[0]) == list(range(summary["epochs"]))
    assert summary["losses"][f"{processes} processes"] == job.losses()[0]
    for name, losses in summary["losses"].items():  # both jobs learned: the lesson's own check, read back
        assert len(losses) == summary["epochs"] and losses[-1] < losses[0], (name, losses)
    assert set(summary["validation_accuracy"]) == {"1 process", f"{processes} processes"}
    assert all(speed > 0 for speed in summary["images_per_second"].values())
    crash = data_dir / "distributed" / "crash_demo"  # GOING_DEEPER: the crashed job resumed to the last epoch
    assert json.loads((crash / "checkpoint.json").read_text())["epochs_done"] == summary["epochs"]
    assert Job.read(crash, processes).weights_identical()


def test_lesson_12_read_every_shard_from_the_bucket_and_its_cache_saved_the_second_epoch(executed_lessons):
    """What lesson 12 left: an index whose shards hold the training set once, and a whole-data-set cache that
    downloaded nothing in epoch 2 (a smaller one downloaded again), equal steps for every process."""
    from seedlings_utils.split import load_split

    data_dir, _ = executed_lessons
    shards = data_dir / "shards"
    summary = json.loads((shards / "summary.json").read_text())
    index = json.loads((shards / "index.json").read_text())
    x_train = load_split(data_dir)[0]
    assert summary["images"] == len(x_train) == sum(shard["count"] for shard in index["shards"])
    assert summary["shards"] == len(index["shards"]) and summary["epoch_2_downloads"]["whole data set"] == 0
    assert summary["epoch_2_downloads"]["small"] > 0 or summary["shards"] <= summary["cache_shards"]
    assert summary["steps_each"] >= 1 and len(summary["naive_steps"]) == summary["processes"]


@pytest.mark.slow
def test_lesson_11_killed_runs_resumed_to_the_uninterrupted_runs_samples_and_weights(executed_lessons):
    """What lesson 11 wrote: its own cells' runs, cut in epoch 1 and resumed in the notebook's process (steps.json and
    the weights of each route and of its uninterrupted reference), and Going deeper's processes, killed with SIGKILL
    in epoch 1 and resumed."""
    from seedlings_utils.killed_runs import (
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
    batches = -(-count // TEST_PARAMETERS["BATCH_SIZE"])
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
