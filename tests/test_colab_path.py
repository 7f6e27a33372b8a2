"""The Colab path: every lesson in a runtime of its own, the data source set once, the real images fetched once.

Lessons 01, 05 and 06 each run in a fresh, empty DATA_DIR (a Colab runtime's own disk), sharing only COURSE_DIR
(a local folder standing in for Google Drive). Only lesson 01 is told ``DATA_SOURCE = "url"``: a zip served from
127.0.0.1. The server must be asked for it once, and lessons 05 and 06 must train on its images.
"""

import csv
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from seedlings_utils.sources import COURSE_RECORD
from tools.lessons import run_lessons

from .helpers import TEST_PARAMETERS

pytestmark = [pytest.mark.slow, pytest.mark.long_file(4)]


def served_zip(folder: Path, scratch: Path) -> set[str]:
    """A synthetic set whose every file name starts with ``zip`` (so no fallback set can pass for it), zipped
    into ``folder/seedlings.zip`` under a wrapper folder; returns its ``train/<species>/<name>`` entries."""
    from seedlings_utils.synthetic import make_synthetic_seedlings

    make_synthetic_seedlings(scratch, per_class=TEST_PARAMETERS["SYNTHETIC_PER_CLASS"], seed=123, progress=False)
    train = set()
    with zipfile.ZipFile(folder / "seedlings.zip", "w") as archive:
        for path in sorted(p for p in scratch.rglob("*") if p.is_file()):
            entry = path.relative_to(scratch).with_name(f"zip{path.name}").as_posix()
            archive.write(path, f"plant-seedlings/{entry}")
            if entry.startswith("train/"):
                train.add(entry)
    return train


def test_lessons_01_05_06_each_in_its_own_runtime_fetch_the_zip_once_and_train_on_it(tmp_path, http_folder):
    folder, base, seen = http_folder
    zip_train = served_zip(folder, tmp_path / "scratch")
    drive = tmp_path / "drive"
    runtime = {lesson: tmp_path / f"runtime-{lesson}" for lesson in ("01", "05", "06")}
    quick = {**TEST_PARAMETERS, "COURSE_DIR": str(drive)}
    run_lessons({**quick, "DATA_DIR": str(runtime["01"]), "DATA_SOURCE": "url",
                 "SOURCE_PATH": f"{base}/seedlings.zip"}, tmp_path / "executed-01", lessons=["01"], core=True)
    record = json.loads((drive / COURSE_RECORD).read_text())
    assert record["source"]["source"] == "url" and (drive / record["archive"]).is_file()
    for lesson in ("05", "06"):  # no DATA_SOURCE: they read lesson 01's record
        run_lessons({**quick, "DATA_DIR": str(runtime[lesson])}, tmp_path / f"executed-{lesson}", lessons=[lesson],
                    core=True)
    assert [path for path in seen if "seedlings.zip" in path] == ["/seedlings.zip"], "one request for the zip"
    for lesson in ("05", "06"):
        data_dir = runtime[lesson]
        with open(data_dir / "all_images.csv", newline="", encoding="utf-8") as f:
            source_of = {row["file"]: row["source"] for row in csv.DictReader(f)}
        assert set(source_of.values()) == zip_train, f"lesson {lesson} indexed other images than the zip's"
        split = np.concatenate([np.load(data_dir / "X_train_filenames.npy"), np.load(data_dir / "X_val_filenames.npy")])
        assert sorted(source_of[name] for name in split.tolist()) == sorted(zip_train)
        assert not (data_dir / "downloads").exists(), f"lesson {lesson} downloaded something"
    metrics = json.loads((runtime["06"] / "metrics.json").read_text())
    assert metrics["val_samples"] == len(np.load(runtime["06"] / "y_val.npy"))
