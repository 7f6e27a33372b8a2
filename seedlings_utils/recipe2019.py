"""The 2019 blog recipe's batch loader, reproduced faithfully so that lessons can show what it did.

Do not use it for training: it is here to be compared with :mod:`seedlings_utils.dataset`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def recipe2019_load_batch(image_dir: str | Path, filenames, image_size: int = 80) -> np.ndarray:
    """What the 2019 ``__getitem__`` returned for a batch of ``filenames``: skimage read, resize, then ``/ 255``.

    ``skimage.transform.resize`` already returns floats in [0, 1], so the extra ``/ 255.0`` squeezes
    every pixel into [0, 1/255]: the network sees images 255 times darker than intended. Resizing to
    ``(size, size, 3)`` also silently interpolates a 4-channel (RGBA) image down to 3 channels.
    """
    from skimage.io import imread
    from skimage.transform import resize

    return np.array([resize(imread(str(Path(image_dir) / str(name))), (image_size, image_size, 3))
                     for name in filenames]) / 255.0
