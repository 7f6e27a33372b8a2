"""Lesson 06's plumbing around training: the last run set aside, ``history.csv`` read back, predictions
evaluated (accuracy, micro-F1, per-class scores, confusion matrix), ``metrics.json`` and the Kaggle submission.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

from .dataset import SeedlingsDataset
from .files import replaced_when_done, write_text_atomically
from .image_scan import scan_test_images

PREVIOUS_RUN_DIR = "previous_run"


def set_aside_previous_run(results_dir: str | Path, names: Sequence[str]) -> list[str]:
    """Move a finished run's files ``names`` (model, history, metrics, submission) into ``results_dir/previous_run/``.

    Called when a new run starts, so that no file of the last run is emptied or overwritten before the new
    run has one of its own to put there, and the folder never mixes two runs. An older ``previous_run/`` is
    replaced. Returns the names moved.
    """
    results_dir = Path(results_dir)
    there = [name for name in names if (results_dir / name).exists()]
    if there:
        previous = results_dir / PREVIOUS_RUN_DIR
        shutil.rmtree(previous, ignore_errors=True)
        previous.mkdir()
        for name in there:
            os.replace(results_dir / name, previous / name)
        print(f"A new run starts: the last run's {', '.join(there)} moved to {previous}.")
    return there


def load_history(path: str | Path) -> dict[str, list[float]]:
    """``history.csv`` as ``{metric: [value per epoch]}``; an epoch logged twice (resumed run) counts once."""
    rows: dict[int, dict[str, str]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            rows[int(row["epoch"])] = row
    epochs = sorted(rows)
    keys = [k for k in (rows[epochs[0]] if epochs else {}) if k != "epoch"]
    history = {k: [float(rows[e][k]) for e in epochs] for k in keys}
    history["epoch"] = epochs
    return history


def predict_classes(model: keras.Model, dataset: SeedlingsDataset) -> np.ndarray:
    """Predicted class ids for every sample of ``dataset``, in the dataset's own (unshuffled) order."""
    if dataset.shuffle:
        raise ValueError("predict on a dataset built with shuffle=False, or the order is lost")
    probabilities = model.predict(dataset, verbose=0)
    return np.argmax(probabilities, axis=1)


def evaluate_predictions(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict:
    """Accuracy, micro-F1 (the competition's metric), per-class precision/recall/F1 and the confusion matrix."""
    labels = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    return {
        "val_accuracy": float(np.mean(y_true == y_pred)),
        "val_micro_f1": float(f1_score(y_true, y_pred, labels=labels, average="micro")),
        "val_macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "val_samples": int(len(y_true)),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(classes, precision, recall, f1, support, strict=True)
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def save_metrics(metrics: dict, path: str | Path) -> Path:
    """Write ``metrics`` as indented JSON."""
    return write_text_atomically(path, json.dumps(metrics, indent=2))


def list_test_images(test_dir: str | Path) -> list[str]:
    """Names of the usable images in Kaggle's ``test/`` folder, sorted (the rest are in ``skipped.csv``)."""
    return scan_test_images(test_dir, progress=False)[0]


def write_submission(
    model: keras.Model, test_dir: str | Path, classes: list[str], path: str | Path,
    image_size: int, batch_size: int = 32,
) -> int:
    """Predict every image in ``test_dir`` and write Kaggle's ``file,species`` CSV; returns the row count."""
    names = list_test_images(test_dir)
    rows = []
    if names:
        dataset = SeedlingsDataset(test_dir, np.array(names), batch_size=batch_size, image_size=image_size)
        rows = [(name, classes[i]) for name, i in zip(names, predict_classes(model, dataset), strict=True)]
    with replaced_when_done(path) as partial, open(partial, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "species"])
        writer.writerows(rows)
    return len(rows)
