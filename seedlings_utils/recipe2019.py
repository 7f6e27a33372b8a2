"""The 2019 blog recipe's batch loader, reproduced faithfully so that lessons can show what it did.

Do not use it for training: it is here to be compared with :mod:`seedlings_utils.dataset`.
"""

from __future__ import annotations

from pathlib import Path

import keras
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


class Recipe2019Generator(keras.utils.PyDataset):  # 2019: keras.utils.Sequence
    """The 2019 recipe's generator class, reproduced as the benchmark's baseline.

    Kept as it was, with only the changes needed to run at all today, each marked: ``np.int`` (removed
    from NumPy) becomes ``int``, the base class has its Keras 3 name, and the image folder and size are
    arguments instead of hard-coded. Like the original it skips ``super().__init__()`` (Keras warns and
    loads with one worker), never shuffles, reads with skimage and divides by 255 a second time.
    """

    def __init__(self, image_filenames, labels, batch_size, image_dir, image_size=80):
        self.image_filenames = image_filenames
        self.labels = labels
        self.batch_size = batch_size
        self.image_dir = image_dir  # 2019: '/content/all_images/'
        self.image_size = image_size  # 2019: 80

    def __len__(self):
        return int(np.ceil(len(self.image_filenames) / float(self.batch_size)))  # 2019: .astype(np.int)

    def __getitem__(self, idx):
        batch_x = self.image_filenames[idx * self.batch_size : (idx + 1) * self.batch_size]
        batch_y = self.labels[idx * self.batch_size : (idx + 1) * self.batch_size]
        return recipe2019_load_batch(self.image_dir, batch_x, self.image_size), np.array(batch_y)
