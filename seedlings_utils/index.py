"""Lesson 03: the index, two parallel arrays (file names in ``all_images/``, integer labels) and the class list."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .flatten import MANIFEST_FILE, SKIPPED_FILE, read_manifest


# ---- BEGIN notebooks/03_index_filenames_and_labels.ipynb: edit the notebook, then `make export` ----
def labels_from_species(species: list[str]) -> tuple[np.ndarray, list[str]]:
    """``(labels, classes)``: ``classes`` is the sorted list of distinct species, and each image's label is the
    position of its species in that list."""
    classes = sorted(set(species))  # sorted: the same numbers on every machine, whatever order folders were read in
    class_id = {name: i for i, name in enumerate(classes)}
    labels = np.array([class_id[s] for s in species], dtype=np.int64)  # one integer per image, not one-hot
    return labels, classes


def build_index(all_images_dir: str | Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(filenames, labels, classes)`` for every image in ``all_images_dir``, from lesson 02's ``all_images.csv``."""
    rows = read_flat_manifest(all_images_dir)  # each file of all_images/ and the species folder it came from
    filenames = np.array([row["file"] for row in rows], dtype=str)  # bare names: the loader adds the folder
    labels, classes = labels_from_species([row["species"] for row in rows])
    return filenames, labels, classes


FILENAMES_FILE, LABELS_FILE, CLASSES_FILE = "filenames.npy", "labels.npy", "classes.json"


def save_index(data_dir: str | Path, filenames, labels, classes: list[str]) -> list[Path]:
    """Write ``filenames.npy``, ``labels.npy`` and ``classes.json`` into ``data_dir``; returns their paths."""
    if len(filenames) != len(labels):
        raise ValueError(f"{len(filenames)} file names but {len(labels)} labels")
    data_dir = Path(data_dir)
    paths = [data_dir / FILENAMES_FILE, data_dir / LABELS_FILE, data_dir / CLASSES_FILE]
    np.save(paths[0], np.asarray(filenames, dtype=str))  # a text array: np.load reads it back without pickle
    np.save(paths[1], np.asarray(labels, dtype=np.int64))
    paths[2].write_text(json.dumps(list(classes), indent=2))  # which number is which species
    return paths


def load_index(data_dir: str | Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(filenames, labels, classes)`` as :func:`save_index` wrote them."""
    data_dir = Path(data_dir)
    classes = json.loads((data_dir / CLASSES_FILE).read_text())
    return np.load(data_dir / FILENAMES_FILE), np.load(data_dir / LABELS_FILE), classes
# ---- END notebooks/03_index_filenames_and_labels.ipynb ----


def read_flat_manifest(all_images_dir: str | Path) -> list[dict[str, str]]:
    """Lesson 02's record of ``all_images/`` (``all_images.csv`` next to it): one row per image, with its
    ``file`` and ``species``; raises if the record is missing, names a file the folder lacks, or holds fewer
    than two species (a classifier needs at least two things to tell apart)."""
    all_images_dir = Path(all_images_dir)
    manifest = all_images_dir.parent / MANIFEST_FILE
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} is missing: run lesson 02 (flatten), which writes it.")
    rows = read_manifest(manifest)
    missing = [row["file"] for row in rows if not (all_images_dir / row["file"]).exists()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} indexed images are not in {all_images_dir}, e.g. "
                                f"{missing[:3]}: run lesson 02 (flatten) again.")
    species = sorted({row["species"] for row in rows})
    if len(species) < 2:
        raise ValueError(f"{manifest} holds {len(rows)} images of {len(species)} species ({', '.join(species)}): a "
                         "classifier needs at least two. Check the species folders of raw/train (lesson 02's "
                         f"{SKIPPED_FILE} lists every file it left out, and why).")
    return rows


def load_classes(data_dir: str | Path) -> list[str]:
    """The species names in class-id order."""
    return json.loads((Path(data_dir) / CLASSES_FILE).read_text())
