"""Lesson 04: shuffle and split the index into training and validation sets."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split
from tqdm.auto import tqdm


# ---- BEGIN notebooks/04_shuffle_and_split.ipynb: edit the notebook, then `make export` ----
def split_train_val(filenames, labels, val_fraction: float = 0.2, seed: int = 42):
    """``(X_train, X_val, y_train, y_val)``: shuffled, stratified by label, the same for the same ``seed``."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1, not {val_fraction}")
    filenames, labels = np.asarray(filenames), np.asarray(labels)
    ok = stratifiable(labels)  # a species with a single image cannot be split: it goes to training below
    X_train, X_val, y_train, y_val = train_test_split(
        filenames[ok], labels[ok],
        test_size=val_fraction,  # this share of each species goes to validation
        stratify=labels[ok],     # ... of EACH species: small ones keep their share too
        random_state=seed,       # the same split on every run and every machine
        shuffle=True,            # shuffle before cutting (the default, written out)
    )
    return np.concatenate([X_train, filenames[~ok]]), X_val, np.concatenate([y_train, labels[~ok]]), y_val


SPLIT_FILES = ("X_train_filenames.npy", "X_val_filenames.npy", "y_train.npy", "y_val.npy")  # train_test_split's order


def save_split(data_dir: str | Path, x_train, x_val, y_train, y_val) -> list[Path]:
    """Write the four arrays under their names (``X_train_filenames.npy`` ...) into ``data_dir``."""
    paths = [Path(data_dir) / name for name in SPLIT_FILES]
    for path, array in zip(paths, (x_train, x_val, y_train, y_val), strict=True):
        partial = path.with_name(path.name + ".partial")
        with open(partial, "wb") as f:  # a file object: np.save would add ".npy" to a name that lacks it
            np.save(f, np.asarray(array))
        partial.replace(path)  # one rename: a reader sees the old file or the new one, never half of one
    return paths


def load_split(data_dir: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(X_train, X_val, y_train, y_val)`` as :func:`save_split` wrote them, memory-mapped and read-only."""
    x_train, x_val, y_train, y_val = (np.load(Path(data_dir) / name, mmap_mode="r") for name in SPLIT_FILES)
    return x_train, x_val, y_train, y_val
# ---- END notebooks/04_shuffle_and_split.ipynb ----


def stratifiable(labels) -> np.ndarray:
    """True for each image whose class has at least two images; a warning names the classes with a single one.

    ``train_test_split(..., stratify=labels)`` refuses a class with one member ("The least populated classes in
    y have only 1 member, which is too few"): one image cannot be in both sets.
    """
    labels = np.asarray(labels)
    single = np.bincount(labels)[labels] < 2
    if single.any():
        print(f"Warning: class ids {sorted(set(labels[single].tolist()))} have a single image each; "
              "it goes to training (nothing to validate it with).")
    return ~single


def zip_folder(folder: str | Path, zip_path: str | Path, progress: bool = True) -> Path:
    """Zip ``folder`` (e.g. ``all_images/``) into ``zip_path``, entries sorted, written under a temporary name.

    PNGs are already compressed, so the zip is stored without recompressing: it is a way to move one
    file instead of thousands (to Drive, to another machine), not a way to save space.
    """
    folder, zip_path = Path(folder), Path(zip_path)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    tmp = zip_path.with_name(zip_path.name + ".partial")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
        for path in tqdm(files, desc=f"zip {folder.name}/", unit="file", disable=not progress):
            archive.write(path, Path(folder.name) / path.relative_to(folder))
    tmp.replace(zip_path)
    return zip_path
