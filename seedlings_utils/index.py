"""Lesson 03: the index, two parallel arrays (file names in ``all_images/``, integer labels) and the class list."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .flatten import MANIFEST_FILE, read_manifest

FILENAMES_FILE = "filenames.npy"
LABELS_FILE = "labels.npy"
CLASSES_FILE = "classes.json"


def build_index(all_images_dir: str | Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(filenames, labels, classes)`` for every image in ``all_images_dir``.

    Read from ``all_images.csv``, which lesson 02 wrote next to the folder: each image's species is the
    species folder it was copied from. ``classes`` are those species, sorted; a label is the position of
    the image's species in that list (the 2019 recipe numbered folders in whatever order ``os.walk``
    met them). Every indexed file is checked to exist.
    """
    all_images_dir = Path(all_images_dir)
    manifest = all_images_dir.parent / MANIFEST_FILE
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} is missing: run lesson 02 (flatten), which writes it.")
    rows = read_manifest(manifest)
    classes = sorted({row["species"] for row in rows})
    class_id = {name: i for i, name in enumerate(classes)}
    filenames = np.array([row["file"] for row in rows], dtype=str)
    labels = np.array([class_id[row["species"]] for row in rows], dtype=np.int64)
    missing = [f for f in filenames if not (all_images_dir / f).exists()]
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
