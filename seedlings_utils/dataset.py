"""Lesson 05: a Keras 3 ``PyDataset`` that reads one batch of images from disk at a time.

The loader itself (``load_image_uint8``, ``load_image`` and ``SeedlingsDataset``) is written in notebook
05's cells and exported below. This module adds what is not the lesson: :func:`open_image`, which turns
Pillow's many errors for a missing or broken file into one message naming the file, and
:func:`measure_images_per_second`.
"""


from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
from PIL import Image

from .images import to_rgb


@contextlib.contextmanager
def open_image(path: str | Path) -> Iterator[Image.Image]:
    """``Image.open(path)`` as a context manager whose errors name the file and say what to do.

    Pillow reads only the header on ``open``; the pixels are decoded later, inside the ``with`` block, so
    errors raised there (a truncated PNG) are caught too. A file that cannot be read (say it went bad
    after lesson 02 checked it) raises ``OSError`` naming it, instead of a bare decoder error deep inside
    ``model.fit``.
    """
    try:
        with Image.open(path) as img:
            yield img
    except FileNotFoundError as err:
        raise OSError(f"Image {path} is missing: it was there when lesson 03 indexed it. Re-run lessons 02-04 "
                      "to rebuild all_images/ and the index.") from err
    except Exception as err:  # Pillow raises OSError, ValueError, SyntaxError ... for bad files
        raise OSError(f"Could not read image {path}: {type(err).__name__}: {err}. It was readable when lesson 02 "
                      "checked it: run lesson 02 again, which decodes every image anew and replaces a damaged copy (or "
                      "skips an unreadable original); the later lessons then bring the index and split up to date."
                      ) from err


# ---- BEGIN notebooks/05_a_pydataset_that_reads_from_disk.ipynb: edit the notebook, then `make export` ----
def load_image_uint8(path, image_size):
    """One image file as a uint8 array (image_size, image_size, 3), values 0-255."""
    with open_image(path) as img:  # a missing or unreadable file raises OSError naming it
        img.load()  # decode: open() read only the header; this decompresses every pixel
        rgb = to_rgb(img)  # grayscale, palette, 16-bit, RGBA (some PNGs here) -> 3 channels of 8 bits
        # squash to a square: the proportions are not kept (see "Squash, crop or pad?")
        small = rgb.resize((image_size, image_size), Image.Resampling.BILINEAR)
    return np.asarray(small, dtype=np.uint8)


def load_image(path, image_size):
    """One image as float32 (image_size, image_size, 3) in [0, 1]: what the model is fed."""
    # 0-255 -> 0-1 exactly once (the 2019 recipe divided a [0, 1] image by 255 again)
    return load_image_uint8(path, image_size).astype(np.float32) / 255.0


class SeedlingsDataset(keras.utils.PyDataset):
    """Batches of (images, labels) read from image_dir on demand: only one batch is in memory at a time.

    filenames and labels are lesson 04's arrays (labels=None gives images only, for predicting). With
    shuffle=True the sample order is drawn again after every epoch, repeatably from seed. workers,
    use_multiprocessing and max_queue_size go to keras.utils.PyDataset through **kwargs.
    """

    def __init__(self, image_dir, filenames, labels=None, batch_size=32, image_size=128, shuffle=False,
                 seed=None, **kwargs):
        super().__init__(**kwargs)  # Keras keeps workers etc. here; without this call: 1 worker and a warning
        if labels is not None and len(labels) != len(filenames):
            raise ValueError(f"{len(filenames)} file names but {len(labels)} labels")
        if len(filenames) == 0:
            raise ValueError("no file names: nothing to load")
        self.image_dir = Path(image_dir)
        self.filenames = np.asarray(filenames)  # names, no images; lesson 04's memory-mapped split is not copied
        self.labels = None if labels is None else np.asarray(labels)
        self.batch_size, self.image_size = int(batch_size), int(image_size)
        self.shuffle = shuffle
        self._rng = np.random.default_rng(seed)  # made once: every epoch a new order, the same run after run
        n = len(self.filenames)
        self.order = self._rng.permutation(n) if shuffle else np.arange(n)  # sample i of an epoch is order[i]

    def __len__(self):
        # batches per epoch; ceil keeps the last, partial batch (3,800 images / 32 = 118.75: 119 batches)
        return math.ceil(len(self.filenames) / self.batch_size)

    def __getitem__(self, index):
        if not 0 <= index < len(self):  # past the end a slice is empty: say so instead
            raise IndexError(f"batch {index} out of range for {len(self)} batches")
        picked = self.order[index * self.batch_size : (index + 1) * self.batch_size]  # shorter at the end
        images = self.load_batch(picked)
        if self.labels is None:
            return images
        return images, self.labels[picked]  # the same positions: every image keeps its label

    def load_batch(self, picked):
        """Float32 images in [0, 1] for the samples at positions picked (lesson 07 replaces this method)."""
        return np.stack([load_image(self.image_dir / name, self.image_size) for name in self.filenames[picked]])

    def on_epoch_end(self):
        # Keras calls this after every epoch: a new order, so batches differ from epoch to epoch
        if self.shuffle:
            self.order = self._rng.permutation(len(self.filenames))
# ---- END notebooks/05_a_pydataset_that_reads_from_disk.ipynb ----


def measure_images_per_second(dataset: keras.utils.PyDataset, batches: int | None = None) -> float:
    """Images per second when iterating ``dataset`` the way ``model.fit`` does (honouring ``workers``).

    Reads ``batches`` batches (default: one whole epoch) through Keras' own data adapter, so threads or
    processes are used exactly as in training. The clock runs from a cold start to the last batch, so
    the cost of starting workers is included, as it is in every epoch of ``fit``.
    """
    from .profiling import pydataset_batches, trace_loader

    return trace_loader("dataset", lambda: pydataset_batches(dataset, batches)).images_per_second
