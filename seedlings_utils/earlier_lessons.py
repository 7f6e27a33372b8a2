"""Rebuild what earlier lessons would have left, so that any lesson can run first in a fresh runtime.

Each ``ensure_*`` returns the existing outputs when they are there and consistent with the step before,
and otherwise rebuilds them (and whatever they need) with the same package functions the lessons use.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .image_scan import MANIFEST_FILE, flatten_images, given_validation
from .index import CLASSES_FILE, FILENAMES_FILE, LABELS_FILE, build_index, load_index, save_index
from .sources import (
    COURSE_RECORD,
    RawData,
    describe_source,
    fetch_raw_data,
    raw_data,
    raw_from_course,
    read_course_record,
    read_source_record,
    same_source,
)
from .split import SPLIT_FILES, load_split, save_split, split_train_val

RAW_DIR, ALL_IMAGES_DIR = "raw", "all_images"
#: Lesson 05's folder tree for ``image_dataset_from_directory``: ``<species>/<name>``, links into ``all_images/``.
SPECIES_FOLDERS_DIR = "by_species"


def ensure_raw(
    data_dir: str | Path, source: str = "synthetic", source_path: str | Path | None = None,
    synthetic_per_class: int = 40, seed: int = 42, progress: bool = True, sha256: str | None = None,
    course_dir: str | Path | None = None,
) -> RawData:
    """Lesson 01's ``raw/``.

    With ``course_dir`` (what every lesson after 01 passes, see :func:`course_data`): the data lesson 01 recorded there,
    rebuilt in this runtime when ``raw/`` does not hold it yet (:func:`~seedlings_utils.sources.raw_from_course`);
    with no record there, what ``raw/`` holds, else the synthetic set of ``synthetic_per_class`` images per
    species. Without ``course_dir``: ``raw/`` as it is when a finished one exists (whatever its source), else
    fetched from ``source``.
    """
    raw_dir = Path(data_dir) / RAW_DIR
    existing = read_source_record(raw_dir)
    course = read_course_record(course_dir) if course_dir else None
    if course is not None and (existing is None or not same_source(existing, course["source"])):
        print(f"This runtime has no copy of lesson 01's data yet: {describe_source(course['source'])}.")
        return raw_from_course(data_dir, course_dir, course, progress=progress)
    if existing is not None:
        return raw_data(raw_dir, existing)
    if course_dir:
        source = "synthetic"  # no record from lesson 01: course_data has said so
    print("No raw data yet: running lesson 01's step.")
    return fetch_raw_data(data_dir, source, source_path, synthetic_per_class, seed, progress=progress, sha256=sha256)


def course_data(course_dir: str | Path | None, data_dir: str | Path, synthetic_per_class: int = 400,
                seed: int = 42, progress: bool = True) -> dict:
    """The cell after the parameters of every lesson after 01: this runtime's ``raw/`` from lesson 01's record.

    Resolves ``COURSE_DIR`` (on Colab: a folder on Google Drive, mounted first; elsewhere ``DATA_DIR``), says
    in one line which data the lesson uses, builds ``raw/`` (:func:`ensure_raw`: a zip is unpacked from
    ``COURSE_DIR``, with its time printed) and returns the keywords every ``ensure_*`` takes (``RAW``).
    With no record from lesson 01 the lesson uses the synthetic set, and says so.
    """
    from .data_dirs import resolve_course_dir

    course_dir = resolve_course_dir(course_dir, data_dir)
    record = read_course_record(course_dir)
    if record is None:
        print(f"Data: the SYNTHETIC set ({synthetic_per_class} images per species on average). COURSE_DIR = "
              f"{course_dir} holds no {COURSE_RECORD}: lesson 01 writes it. For the real photos, run lesson 01 with "
              "DATA_SOURCE set and this COURSE_DIR, then this cell again.")
    else:
        print(f"Data: {describe_source(record['source'])}, as lesson 01 recorded in {course_dir / COURSE_RECORD}.")
    raw_kwargs = {"course_dir": course_dir, "synthetic_per_class": synthetic_per_class}
    ensure_raw(data_dir, seed=seed, progress=progress, **raw_kwargs)
    return raw_kwargs


def ensure_all_images(data_dir: str | Path, progress: bool = True, **raw_kwargs) -> Path:
    """Lesson 02's ``all_images/``, brought in line with ``raw/train`` (a no-op when it already is)."""
    raw = ensure_raw(data_dir, progress=progress, **raw_kwargs)
    checked_before = (Path(data_dir) / MANIFEST_FILE).is_file()  # then it is a quick re-check: no progress bars
    flatten_images(raw.root / "train", Path(data_dir) / ALL_IMAGES_DIR, progress=progress and not checked_before)
    return Path(data_dir) / ALL_IMAGES_DIR


def ensure_index(data_dir: str | Path, progress: bool = True, **raw_kwargs) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Lesson 03's arrays, rebuilt when missing or when they no longer match ``all_images/``."""
    data_dir = Path(data_dir)
    all_images = ensure_all_images(data_dir, progress=progress, **raw_kwargs)
    if all((data_dir / name).is_file() for name in (FILENAMES_FILE, LABELS_FILE, CLASSES_FILE)):
        filenames, labels, classes = load_index(data_dir)
        if sorted(filenames.tolist()) == sorted(p.name for p in all_images.iterdir()):
            return filenames, labels, classes
    print("Index missing or out of date: running lesson 03's step.")
    filenames, labels, classes = build_index(all_images)
    save_index(data_dir, filenames, labels, classes)
    return filenames, labels, classes


def ensure_species_folders(data_dir: str | Path, progress: bool = True, **raw_kwargs) -> Path:
    """``DATA_DIR/by_species/<species>/<name>``: every image lesson 02 kept, one folder per species of the index.

    What ``keras.utils.image_dataset_from_directory`` needs, made only of images lesson 02 checked, so a
    corrupt file, a stray text file or a misspelt species folder in ``raw/train`` can neither stop the
    one-liner nor give it a thirteenth class; the class ids are the index's (both sort the species). The
    files are hard links into ``all_images/`` (copies where the file system cannot link): no second copy
    on disk. Brought in line with the index: links it no longer names are removed, missing ones added.
    """
    import os
    import shutil

    data_dir = Path(data_dir)
    filenames, labels, classes = ensure_index(data_dir, progress=progress, **raw_kwargs)
    all_images, root = data_dir / ALL_IMAGES_DIR, data_dir / SPECIES_FOLDERS_DIR
    wanted = {Path(classes[label]) / name for name, label in zip(filenames.tolist(), labels.tolist(), strict=True)}
    if root.is_dir():  # drop what the index no longer has (another source, a re-run lesson 02)
        for path in sorted(root.rglob("*"), reverse=True):
            if path.is_dir():
                if not any(path.iterdir()) or path.parent == root and path.name not in classes:
                    shutil.rmtree(path)
            elif path.relative_to(root) not in wanted:
                path.unlink()
    for species in classes:
        (root / species).mkdir(parents=True, exist_ok=True)
    for relative in sorted(wanted):
        source, target = all_images / relative.name, root / relative
        if target.exists() and _size_and_time(target) == _size_and_time(source):  # a link, or a copy2 copy
            continue
        target.unlink(missing_ok=True)
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)
    return root


def _size_and_time(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def ensure_split(
    data_dir: str | Path, val_fraction: float = 0.2, seed: int = 42, progress: bool = True, **raw_kwargs
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Lesson 04's ``(X_train, X_val, y_train, y_val)`` (``train_test_split``'s order), rebuilt when missing or
    out of date with the index: the data's own validation set (``raw/val``) when it has one, else a stratified
    split of ``val_fraction``."""
    data_dir = Path(data_dir)
    filenames, labels, _ = ensure_index(data_dir, progress=progress, seed=seed, **raw_kwargs)
    given_val = given_validation(data_dir / ALL_IMAGES_DIR, filenames)  # the data's own val/ folder, if any
    if all((data_dir / name).is_file() for name in SPLIT_FILES):
        x_train, x_val, y_train, y_val = load_split(data_dir)
        if sorted(np.concatenate([x_train, x_val]).tolist()) == sorted(filenames.tolist()) and (
                not given_val.any() or sorted(x_val.tolist()) == sorted(filenames[given_val].tolist())):
            return x_train, x_val, y_train, y_val
    print("Split missing or out of date: running lesson 04's step.")
    x_train, x_val, y_train, y_val = split_train_val(filenames, labels, val_fraction, seed, given_val)
    save_split(data_dir, x_train, x_val, y_train, y_val)
    return x_train, x_val, y_train, y_val
