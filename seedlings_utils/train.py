"""Lesson 06: train with checkpoints that survive a Colab disconnect, evaluate, and write a submission.

The file names and ``training_callbacks`` are written in lesson 06's cells (between the markers below);
the evaluation helpers and the submission writer after them are plumbing the lesson calls.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import keras
import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

from .dataset import SeedlingsDataset
from .all_images import scan_test_images

# ---- BEGIN notebooks/06_train_and_evaluate_a_cnn.ipynb: edit the notebook, then `make export` ----
MODEL_FILE = "model.keras"  # the best epoch's model
HISTORY_FILE = "history.csv"  # one row of losses and metrics per epoch
METRICS_FILE = "metrics.json"
SUBMISSION_FILE = "submission.csv"
BACKUP_DIR = "training_backup"  # BackupAndRestore's folder: there only while a run is unfinished


def best_logged(history_csv: str | Path, monitor: str = "val_accuracy") -> float | None:
    """The highest ``monitor`` value in ``history.csv``, or ``None`` (no file yet, or no such column)."""
    if not Path(history_csv).is_file():
        return None
    with open(history_csv, newline="") as f:
        values = [float(row[monitor]) for row in csv.DictReader(f) if row.get(monitor)]
    return max(values, default=None)


def training_callbacks(results_dir: str | Path, patience: int = 4) -> list[keras.callbacks.Callback]:
    """Lesson 06's callbacks, all writing under ``results_dir`` (``RESULTS_DIR``: on Google Drive on Colab)."""
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)  # CSVLogger would not create it
    resuming = (results_dir / BACKUP_DIR).exists()  # a run was cut off: fit will continue it
    best = best_logged(results_dir / HISTORY_FILE) if resuming else None
    if resuming:
        kept = f"; {MODEL_FILE} is replaced only by an epoch above val_accuracy {best:.3f}" if best is not None else ""
        print(f"Found {results_dir / BACKUP_DIR}: resuming the interrupted run{kept}.")
    else:  # a new run: CSVLogger would empty history.csv at once, beside the last run's model and metrics
        set_aside_previous_run(results_dir)  # so they move to previous_run/ first, all together
    return [
        # weights, optimizer state and epoch number: saved after every epoch, restored when fit starts
        keras.callbacks.BackupAndRestore(str(results_dir / BACKUP_DIR)),
        # the best epoch so far. A new callback knows no best score (it lives in memory only): after a resume,
        # start from the best one logged before the cut, or the first resumed epoch always overwrites the file
        keras.callbacks.ModelCheckpoint(str(results_dir / MODEL_FILE), monitor="val_accuracy", save_best_only=True,
                                        initial_value_threshold=best),
        keras.callbacks.CSVLogger(str(results_dir / HISTORY_FILE), append=resuming),  # keep the rows before the cut
        # half the learning rate when val_loss has not improved for `patience` epochs
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=patience, min_lr=1e-5),
    ]
# ---- END notebooks/06_train_and_evaluate_a_cnn.ipynb ----


PREVIOUS_RUN_DIR = "previous_run"


def set_aside_previous_run(results_dir: str | Path) -> list[str]:
    """Move a finished run's files (model, history, metrics, submission) into ``results_dir/previous_run/``.

    Called when a new run starts, so that no file of the last run is emptied or overwritten before the new
    run has one of its own to put there, and the folder never mixes two runs. An older ``previous_run/`` is
    replaced. Returns the names moved.
    """
    results_dir = Path(results_dir)
    files = (MODEL_FILE, HISTORY_FILE, METRICS_FILE, SUBMISSION_FILE)
    there = [name for name in files if (results_dir / name).exists()]
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
    Path(path).write_text(json.dumps(metrics, indent=2))
    return Path(path)


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
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "species"])
        writer.writerows(rows)
    return len(rows)
