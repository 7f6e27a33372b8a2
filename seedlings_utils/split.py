"""Lesson 04: shuffle and split the index into training and validation sets."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split
from tqdm.auto import tqdm

#: In the order of ``train_test_split``'s result, the one order the course uses for the four arrays.
SPLIT_FILES = ("X_train_filenames.npy", "X_val_filenames.npy", "y_train.npy", "y_val.npy")


def split_train_val(
    filenames: np.ndarray, labels: np.ndarray, val_fraction: float = 0.2, seed: int = 42
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(X_train, X_val, y_train, y_val)``: shuffled, stratified by label, reproducible from ``seed``.

    Stratified means each species keeps (to within one image) the same share in both sets, which
    matters when classes differ in size: an unlucky plain split can leave a small species almost
    absent from validation. A species with a single image cannot be split: it goes to training, and
    a warning names it.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1, not {val_fraction}")
    filenames, labels = np.asarray(filenames), np.asarray(labels)
    counts = np.bincount(labels)
    single = counts[labels] < 2
    if single.any():
        print(f"Warning: class ids {sorted(set(labels[single].tolist()))} have a single image each; "
              "it goes to training (nothing to validate it with).")
    x_train, x_val, y_train, y_val = train_test_split(
        filenames[~single], labels[~single], test_size=val_fraction, random_state=seed,
        shuffle=True, stratify=labels[~single],
    )
    return np.concatenate([x_train, filenames[single]]), x_val, np.concatenate([y_train, labels[single]]), y_val


def save_split(data_dir: str | Path, x_train, x_val, y_train, y_val) -> list[Path]:
    """Write the four arrays under their contract names (``X_train_filenames.npy`` ...) into ``data_dir``."""
    paths = [Path(data_dir) / name for name in SPLIT_FILES]
    for path, array in zip(paths, (x_train, x_val, y_train, y_val), strict=True):
        np.save(path, np.asarray(array))
    return paths


def load_split(data_dir: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(X_train, X_val, y_train, y_val)`` as saved by :func:`save_split`."""
    x_train, x_val, y_train, y_val = (np.load(Path(data_dir) / name) for name in SPLIT_FILES)
    return x_train, x_val, y_train, y_val


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
