"""Which images a stratified split can place: a class needs at least two images, one for each side."""

from __future__ import annotations

import numpy as np


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
