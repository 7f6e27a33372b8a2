"""Lesson 05: a Keras 3 ``PyDataset`` that reads one batch of images from disk at a time."""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
from PIL import Image

from .images import to_rgb


def load_image_uint8(path: str | Path, image_size: int) -> np.ndarray:
    """One image decoded and resized: a uint8 array ``(image_size, image_size, 3)``, values 0-255.

    Grayscale, palette, 16-bit and RGBA files become RGB (:func:`~seedlings_utils.images.to_rgb`); the
    image is resized (bilinear) to a square. A file that cannot be read (say it went bad after lesson 02
    checked it) raises ``OSError`` naming it, instead of a bare decoder error deep inside ``model.fit``.
    """
    try:
        with Image.open(path) as img:
            rgb = to_rgb(img).resize((image_size, image_size), Image.Resampling.BILINEAR)
    except FileNotFoundError as err:
        raise OSError(f"Image {path} is missing: it was there when lesson 03 indexed it. Re-run lessons 02-04 "
                      "to rebuild all_images/ and the index.") from err
    except Exception as err:  # Pillow raises OSError, ValueError, SyntaxError ... for bad files
        raise OSError(f"Could not read image {path}: {type(err).__name__}: {err}. It was readable when "
                      "lesson 02 checked it; re-run lesson 02 to re-check and skip it.") from err
    return np.asarray(rgb, dtype=np.uint8)


def load_image(path: str | Path, image_size: int) -> np.ndarray:
    """One image as a float32 array ``(image_size, image_size, 3)`` scaled to [0, 1], exactly once."""
    return load_image_uint8(path, image_size).astype(np.float32) / 255.0


class SeedlingsDataset(keras.utils.PyDataset):
    """Batches of ``(images, labels)`` loaded from ``image_dir`` on demand: only one batch is in memory.

    ``filenames`` and ``labels`` are the arrays saved by lessons 03-04. ``labels=None`` yields images
    only (for predicting). With ``shuffle=True`` the sample order is reshuffled at the end of every
    epoch, reproducibly from ``seed``, so batches differ from epoch to epoch. ``workers``,
    ``use_multiprocessing`` and ``max_queue_size`` go to ``keras.utils.PyDataset`` through ``**kwargs``.
    """

    def __init__(
        self,
        image_dir: str | Path,
        filenames: np.ndarray,
        labels: np.ndarray | None = None,
        batch_size: int = 32,
        image_size: int = 128,
        shuffle: bool = False,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if labels is not None and len(labels) != len(filenames):
            raise ValueError(f"{len(filenames)} file names but {len(labels)} labels")
        if len(filenames) == 0:
            raise ValueError("no file names: nothing to load")
        self.image_dir = Path(image_dir)
        self.filenames = np.asarray(filenames)
        self.labels = None if labels is None else np.asarray(labels)
        self.batch_size = int(batch_size)
        self.image_size = int(image_size)
        self.shuffle = shuffle
        self._rng = np.random.default_rng(seed)
        self.order = self._rng.permutation(len(self.filenames)) if shuffle else np.arange(len(self.filenames))

    def __len__(self) -> int:
        return math.ceil(len(self.filenames) / self.batch_size)

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range for {len(self)} batches")
        picked = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        images = self.load_batch(picked)
        if self.labels is None:
            return images
        return images, self.labels[picked]

    def load_batch(self, picked: np.ndarray) -> np.ndarray:
        """Float32 images in [0, 1] for the samples at positions ``picked``, decoded from disk here.

        The one method lesson 07's cached loader replaces: everything else (batching, labels,
        reshuffling) is shared.
        """
        return np.stack([load_image(self.image_dir / name, self.image_size) for name in self.filenames[picked]])

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self.order = self._rng.permutation(len(self.filenames))


def measure_images_per_second(dataset: keras.utils.PyDataset, batches: int | None = None) -> float:
    """Images per second when iterating ``dataset`` the way ``model.fit`` does (honouring ``workers``).

    Reads ``batches`` batches (default: one whole epoch) through Keras' own data adapter, so threads or
    processes are used exactly as in training. The clock runs from a cold start to the last batch, so
    the cost of starting workers is included, as it is in every epoch of ``fit``.
    """
    from .profiling import pydataset_batches, trace_loader

    return trace_loader("dataset", lambda: pydataset_batches(dataset, batches)).images_per_second
