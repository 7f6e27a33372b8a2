"""Lesson 08: the same job with ``tf.data``: read, decode, resize, (cache,) shuffle, scale, batch, prefetch.

``tf.data`` runs the whole pipeline in TensorFlow's own C++ threads, outside Python's lock:
decoding and resizing run ``num_parallel_calls`` images at a time, and ``prefetch`` prepares the next
batches while the model trains on the current one. With ``cache_file``, decoding and resizing happen in
the first epoch only; later epochs read the resized uint8 images back from that file.

Differences from lesson 05's Pillow loader (:func:`~seedlings_utils.dataset.load_image`), measured on
the course's synthetic seedlings and on PNGs of every mode (RGB, RGBA, L, LA, P, 1, 16-bit): with
``antialias=True`` (which, like Pillow's ``BILINEAR``, widens the filter when shrinking) each value is
at most 1/255 away from Pillow's, 0.1-0.25/255 on average. Without ``antialias`` shrinking a 300 px
seedling to 64 px would differ by 4/255 on average and by up to 130/255 at thin leaf edges; the price
is speed: on a CPU the antialiased resize takes about as long as decoding the PNG. JPEGs
differ a little more (up to about 4/255: another IDCT). Not handled here as Pillow handles them: EXIF
orientation is ignored, and TIFF files cannot be decoded at all (``tf.io.decode_image`` reads PNG,
JPEG, GIF, BMP and WebP), and a file that does not decode stops the epoch with an error that does not
name the file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from .cache import cache_fingerprint

AUTOTUNE = tf.data.AUTOTUNE


def decode_and_resize(path: tf.Tensor, image_size: int) -> tf.Tensor:
    """One image file as a uint8 tensor ``(image_size, image_size, 3)``, like ``load_image_uint8``.

    ``decode_image`` with ``channels=3`` turns grayscale, palette and RGBA into RGB (alpha dropped) and
    16-bit PNGs into 8 bits (scaled, not clipped); ``expand_animations=False`` takes a GIF's first frame.
    The resize is bilinear with antialiasing (see the module's docstring for how close to Pillow it is),
    then rounded to whole values 0-255.
    """
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, dtype=tf.uint8, expand_animations=False)
    image = tf.image.resize(image, (image_size, image_size), method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def _cache_files(cache_file: Path) -> list[Path]:
    """The files ``Dataset.cache(cache_file)`` writes: ``<name>.index``, ``<name>.data-*``, lock files."""
    if not cache_file.parent.is_dir():
        return []
    name = cache_file.name
    return sorted(p for p in cache_file.parent.iterdir()
                  if p.name == f"{name}.index" or p.name.startswith(f"{name}.data-")
                  or (p.name.startswith(f"{name}_") and p.name.endswith(".lockfile")))


def _prepare_cache_file(cache_file: Path, fingerprint: str) -> None:
    """Delete a cache ``tf.data`` wrote for other inputs: it would be replayed as it is, stale.

    ``Dataset.cache`` never checks what it holds, so ``<cache_file>.json`` records the fingerprint of
    the images, labels and image size it is for; when they change, the old cache files are removed.
    """
    stamp = cache_file.with_name(cache_file.name + ".json")
    try:
        current = json.loads(stamp.read_text(encoding="utf-8")).get("fingerprint") == fingerprint
    except (OSError, ValueError, AttributeError):
        current = False
    if current:
        return
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    for path in _cache_files(cache_file):
        path.unlink()
    stamp.write_text(json.dumps({"fingerprint": fingerprint}), encoding="utf-8")


def make_tf_dataset(
    image_dir: str | Path,
    filenames: Sequence[str] | np.ndarray,
    labels: np.ndarray | None = None,
    batch_size: int = 32,
    image_size: int = 128,
    shuffle: bool = False,
    seed: int | None = None,
    cache_file: str | Path | None = None,
    num_parallel_calls: int = AUTOTUNE,
    deterministic: bool = True,
) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` of ``(images, labels)`` batches (images only when ``labels`` is ``None``).

    file names -> ``tf.io.read_file`` -> ``decode_image`` -> bilinear resize -> uint8 -> (``cache``) ->
    shuffle -> batch -> float32 / 255 (scaled once, a whole batch at a time) -> prefetch. Images are
    float32 in [0, 1], shape ``(batch, image_size, image_size, 3)``; labels travel through every step
    together with their image.

    - ``shuffle``: a full shuffle, different in every epoch (``reshuffle_each_iteration``), the same
      sequence of epochs for the same ``seed``. Without ``cache_file`` the (file name, label) pairs are
      shuffled *before* decoding: the shuffle buffer holds names only. With ``cache_file`` the decoded
      images are shuffled after the cache (shuffling before it would freeze the first epoch's order into
      the cache), so the buffer holds the whole data set as uint8: ``n * s * s * 3`` bytes in memory
      (4,750 images at 128 px: 233 MB), and filling it delays each epoch's first batch.
    - ``cache_file``: decoded, resized images are written to ``<cache_file>.index`` and
      ``<cache_file>.data-*`` during the first *complete* epoch and read back afterwards (an epoch
      stopped early leaves no cache). ``<cache_file>.json`` records which images, labels and size the
      cache is for; a cache for other inputs is deleted and rebuilt. Use one cache file per data set
      (train, validation): two datasets cannot write one cache at the same time.
    - ``num_parallel_calls`` and ``deterministic`` go to ``map``: ``deterministic=False`` lets images
      come out in the order they finish decoding (faster; pairs stay aligned, the order does not
      repeat exactly).
    """
    image_dir = Path(image_dir)
    names = [str(name) for name in np.asarray(filenames).tolist()]
    if not names:
        raise ValueError("no file names: nothing to load")
    if labels is not None and len(labels) != len(names):
        raise ValueError(f"{len(names)} file names but {len(labels)} labels")
    image_size, count = int(image_size), len(names)
    paths = [str(image_dir / name) for name in names]
    if labels is None:
        ds = tf.data.Dataset.from_tensor_slices(paths)
    else:
        ds = tf.data.Dataset.from_tensor_slices((paths, np.asarray(labels)))
    if shuffle and cache_file is None:
        ds = ds.shuffle(count, seed=seed, reshuffle_each_iteration=True)

    def decode(path, *label):  # label: () or (label,), so one function serves both structures
        image = decode_and_resize(path, image_size)
        return (image, *label) if label else image

    ds = ds.map(decode, num_parallel_calls=num_parallel_calls, deterministic=deterministic)
    if cache_file is not None:
        cache_file = Path(cache_file)
        labels_digest = "none" if labels is None else hashlib.sha256(np.asarray(labels).tobytes()).hexdigest()
        _prepare_cache_file(cache_file, f"{cache_fingerprint(image_dir, names, image_size)}/{labels_digest}")
        ds = ds.cache(str(cache_file))
        if shuffle:
            ds = ds.shuffle(count, seed=seed, reshuffle_each_iteration=True)

    def scale(images, *label):
        images = tf.cast(images, tf.float32) / 255.0  # scaled once, exactly as load_image does
        return (images, *label) if label else images

    # batch first, then scale whole batches: one op per batch instead of one per image (twice as fast from a cache)
    ds = ds.batch(int(batch_size)).map(scale, num_parallel_calls=num_parallel_calls, deterministic=deterministic)
    return ds.prefetch(AUTOTUNE)


def measure_tf_images_per_second(dataset: tf.data.Dataset, batches: int | None = None) -> float:
    """Images per second when iterating ``dataset`` (default: one whole epoch; else its first ``batches``).

    Like :func:`~seedlings_utils.dataset.measure_images_per_second`, the clock runs from a cold start
    (creating the iterator, which starts ``tf.data``'s threads and fills its buffers) to the last batch.
    To time a ``cache_file`` pipeline warm, iterate one whole epoch first: a partial epoch leaves no cache.
    """
    from .profiling import trace_loader

    if batches is not None and batches < 1:
        raise ValueError(f"batches must be at least 1, got {batches}")
    trace = trace_loader("tf.data", lambda: (dataset if batches is None else dataset.take(batches)).as_numpy_iterator())
    if trace.images[-1] == 0:
        raise ValueError("the dataset yielded no images")
    return trace.images_per_second
