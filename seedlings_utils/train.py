"""Lesson 06: train with checkpoints that survive a Colab disconnect, evaluate, and write a submission."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import keras
import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

from .dataset import SeedlingsDataset
from .flatten import scan_test_images

MODEL_FILE = "model.keras"
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"
SUBMISSION_FILE = "submission.csv"
BACKUP_DIR = "training_backup"


def training_callbacks(data_dir: str | Path, patience: int = 4) -> list[keras.callbacks.Callback]:
    """The callbacks of lesson 06, all writing under ``data_dir``.

    - ``BackupAndRestore``: saves the whole training state every epoch into ``training_backup/``; if
      the runtime dies (a Colab disconnect), running the same cell again resumes from the last
      finished epoch instead of epoch 1. The backup is deleted when training ends normally.
    - ``ModelCheckpoint``: keeps the best model so far (by validation accuracy) in ``model.keras``.
    - ``CSVLogger``: one row per epoch in ``history.csv`` (appended to when resuming).
    - ``ReduceLROnPlateau``: halves the learning rate when validation loss stops improving.
    """
    data_dir = Path(data_dir)
    resuming = (data_dir / BACKUP_DIR).exists()
    if resuming:
        print(f"Found {data_dir / BACKUP_DIR}: resuming the interrupted training run.")
    return [
        keras.callbacks.BackupAndRestore(str(data_dir / BACKUP_DIR)),
        keras.callbacks.ModelCheckpoint(str(data_dir / MODEL_FILE), monitor="val_accuracy", save_best_only=True),
        keras.callbacks.CSVLogger(str(data_dir / HISTORY_FILE), append=resuming),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=patience, min_lr=1e-5),
    ]


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
