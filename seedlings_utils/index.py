"""Lesson 03: the index, two parallel arrays (file names in ``all_images/``, integer labels) and the class list."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .flatten import flat_name, list_training_images

FILENAMES_FILE = "filenames.npy"
LABELS_FILE = "labels.npy"
CLASSES_FILE = "classes.json"


def build_index(
    train_dir: str | Path, all_images_dir: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(filenames, labels, classes)`` for every image under ``train_dir/<species>/``.

    ``classes`` are the species folder names, sorted; a label is the position of the image's own
    species folder in that list, so each label comes from the folder the image sits in (the 2019
    recipe numbered folders in whatever order ``os.walk`` met them). File names are the
    :func:`~seedlings_utils.flatten.flat_name` of each image; with ``all_images_dir`` each is checked to exist.
    """
    train_dir = Path(train_dir)
    classes = sorted(d.name for d in train_dir.iterdir() if d.is_dir() and not d.name.startswith("."))
    class_id = {name: i for i, name in enumerate(classes)}
    images = list_training_images(train_dir)
    filenames = np.array([flat_name(species, rel) for species, rel in images], dtype=str)
    labels = np.array([class_id[species] for species, _ in images], dtype=np.int64)
    if all_images_dir is not None:
        missing = [f for f in filenames if not (Path(all_images_dir) / f).exists()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} indexed images are not in {all_images_dir}, e.g. "
                                    f"{missing[:3]}: run lesson 02 (flatten) again.")
    return filenames, labels, classes


def save_index(data_dir: str | Path, filenames: np.ndarray, labels: np.ndarray, classes: list[str]) -> list[Path]:
    """Write ``filenames.npy``, ``labels.npy`` and ``classes.json`` into ``data_dir``; returns their paths."""
    if len(filenames) != len(labels):
        raise ValueError(f"{len(filenames)} file names but {len(labels)} labels")
    data_dir = Path(data_dir)
    paths = [data_dir / FILENAMES_FILE, data_dir / LABELS_FILE, data_dir / CLASSES_FILE]
    np.save(paths[0], np.asarray(filenames, dtype=str))
    np.save(paths[1], np.asarray(labels, dtype=np.int64))
    paths[2].write_text(json.dumps(list(classes), indent=2))
    return paths


def load_index(data_dir: str | Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read back what :func:`save_index` wrote (no pickles: the arrays are plain strings and integers)."""
    data_dir = Path(data_dir)
    filenames = np.load(data_dir / FILENAMES_FILE)
    labels = np.load(data_dir / LABELS_FILE)
    classes = json.loads((data_dir / CLASSES_FILE).read_text())
    return filenames, labels, classes


def load_classes(data_dir: str | Path) -> list[str]:
    """The species names in class-id order."""
    return json.loads((Path(data_dir) / CLASSES_FILE).read_text())
