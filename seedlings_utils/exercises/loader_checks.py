"""What every exercise asks of an answer that reads images: no more than a few batches of decoded images alive
at any time, by any means; and of a ``PyDataset``: keyword arguments that reach Keras, images float32 in [0, 1].

One home for these checks; an exercise module (``lessonNN.py``) calls them on its own small data::

    from .loader_checks import check_function, check_pipeline, check_pydataset
    check_pydataset(lambda **kw: Answer(folder, names, labels, batch_size=2, **kw), batch_size=2)  # a PyDataset
    check_pipeline(answer(paths, labels, size, batch_size, seed), batch_size)                     # a tf.data answer
    check_function(lambda: answer(folder, out_dir), count=len(names), image_bytes=one_image_bytes)  # anything else

Each raises :class:`~seedlings_utils.exercises.Incorrect` with a message that names the mistake and says how
many decoded images were held against the bound, :data:`FEW_BATCHES` batches.

- :func:`check_pydataset` (``make(**kwargs)`` builds the answer over the check's files): the keyword arguments
  reach Keras (``workers=2, use_multiprocessing=True, max_queue_size=3`` are what ``ds.workers``, ... say, with
  no warning that ``super().__init__(**kwargs)`` was skipped); then, while it builds one and serves two epochs
  of batches in this thread, it measures what the answer holds: the memory Python and NumPy allocate
  (``tracemalloc``: arrays, ``bytes``, lists, dicts, ``functools.lru_cache``, wherever they are kept) right
  after ``__init__``, at the end of each epoch (before ``on_epoch_end``, after the cyclic collector) and at
  the peak of serving one batch (beyond two batches); and the Pillow images alive (their pixels are outside
  ``tracemalloc``'s view). Allowed: :data:`FEW_BATCHES` batches as float32 (4 bytes a value), plus
  :data:`SLACK_BYTES` for the answer's own small objects. Every batch's images must be float32 in [0, 1],
  scaled once. Use at least :func:`min_count` images of noise (:func:`numbered_noise_png`, 32 px: noise does
  not compress, so a file's bytes weigh as much as its pixels) and build a fresh data set each time ``make``
  is called.
- :func:`check_pipeline`: reads the ``tf.data`` graph (:func:`~seedlings_utils.pipeline_buffers.pipeline_steps`):
  a source of decoded images (``from_tensor_slices`` of images), a ``cache()`` without a file after decoding,
  and every buffer after decoding (``shuffle``, ``prefetch``, ``num_parallel_calls``) counted in images (a
  buffer after ``batch`` holds whole batches). ``AUTOTUNE`` is bounded by tf.data itself and passes. Build
  the answer for many more paths than a few batches (lesson 08: 20,000 names, a file's path repeated; only the
  graph is built, no file is read), so that ``prefetch(len(paths))`` and the like show.
- :func:`check_function`: any other call that reads images (copies, indexes, resizes a cache), measured as
  above (pass the same work twice, on two copies of the files: the smaller count is kept, and a copy no
  earlier call read shows a cache of what the answer read; run one warm-up call on a third copy first).

What each refuses, in the learner's words, is in the tests: ``tests/test_exercises_lesson0{2,3,5,7,8}.py``.
"""

from __future__ import annotations

import gc
import math
import tracemalloc
import warnings
import weakref
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import Incorrect, pixel_value

#: "A few batches": the most decoded images any answer may keep alive, in batches of the check's batch size.
FEW_BATCHES = 4
#: The keyword arguments :func:`check_kwargs_reach_keras` passes, none of them Keras' default.
KERAS_KWARGS = {"workers": 2, "use_multiprocessing": True, "max_queue_size": 3}
#: Bytes of Python objects an answer may keep beyond the images (a permutation, names, labels, a memory map's
#: header): the measure's own noise.
SLACK_BYTES = 16_000


def few(batch_size: int) -> int:
    """The most decoded images an answer may hold: :data:`FEW_BATCHES` batches of ``batch_size``."""
    return FEW_BATCHES * batch_size


def min_count(batch_size: int) -> int:
    """The fewest images a check's data set needs for "every image held" to be far beyond a few batches, even
    with the images held as uint8 and the bound counted in float32 images (4 bytes a value)."""
    return 3 * 4 * few(batch_size)


def _few_text(batch_size: int) -> str:
    return f"more than a few batches ({FEW_BATCHES} batches of {batch_size} = {few(batch_size)} images)"


def numbered_noise_png(path: Path, number: int, size: int = 32) -> int:
    """A ``size`` x ``size`` PNG whose red channel is ``pixel_value(number % 50)`` (so
    :func:`~seedlings_utils.exercises.image_number` reads it back) and whose other channels are noise (it does not
    compress: its file weighs about its pixels); returns the bytes of its decoded uint8 pixels."""
    return noise_png(path, seed=number, size=size, red=pixel_value(number % 50))


def noise_png(path: Path, seed: int, size: int = 200, red: int | None = None) -> int:
    """Write a ``size`` x ``size`` PNG of random pixels (it does not compress) whose red value is ``red`` when
    given; returns the bytes its decoded pixels take."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    if red is not None:
        pixels[..., 0] = red
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return pixels.nbytes


# ---- measuring what a call holds ---------------------------------------------------------------------------


@dataclass
class Held:
    """What :func:`watch` saw: ``peak_bytes`` Python and NumPy allocated at once beyond what was there before,
    ``kept_bytes`` still allocated at the end, ``most_images`` Pillow images alive at one time and
    ``images_left`` still alive at the end."""

    peak_bytes: int = 0
    kept_bytes: int = 0
    most_images: int = 0
    images_left: int = 0


@contextmanager
def watch():
    """``with watch() as held: ...``: what the block allocates and keeps (see :class:`Held`)."""
    from PIL import Image

    held = Held()
    alive = [0]
    original_init = Image.Image.__init__

    def counting_init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        alive[0] += 1
        held.most_images = max(held.most_images, alive[0])

        def gone() -> None:
            alive[0] -= 1

        weakref.finalize(self, gone)

    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    start = tracemalloc.get_traced_memory()[0]
    Image.Image.__init__ = counting_init
    try:
        yield held
    finally:
        Image.Image.__init__ = original_init
        now, peak = tracemalloc.get_traced_memory()
        held.peak_bytes, held.kept_bytes, held.images_left = peak - start, now - start, alive[0]
        if not was_tracing:
            tracemalloc.stop()


def held_by(*calls: Callable[[], Any]) -> tuple[Held, list]:
    """Run each call under :func:`watch`: the least any of them held, and their results.

    Two calls that do the same work, not one: once in a while the interpreter grows one of its own large tables
    (the interned strings, say) during a call, and that one call then shows a megabyte or two the answer never held.
    """
    results, seen = [], []
    for call in calls:
        with watch() as held:
            results.append(call())
        seen.append(held)
    return Held(*(min(getattr(h, f) for h in seen) for f in ("peak_bytes", "kept_bytes", "most_images",
                                                             "images_left"))), results


def check_function(*calls: Callable[[], Any], count: int, image_bytes: int,
                   what: str = "Read, copy or write one image at a time.", most: int = 2) -> list:
    """Run ``calls`` (the same work twice, see :func:`held_by`) and refuse one that held more than ``most`` of
    the check's ``count`` images (``image_bytes`` each, decoded) at once; returns the calls' results."""
    held, results = held_by(*calls)
    refuse_if_all_held(held, count, image_bytes, what, most)
    return results


def refuse_if_all_held(held: Held, count: int, image_bytes: int, what: str, most: int = 2) -> None:
    """Raise :class:`Incorrect` if ``held`` shows more than ``most`` of ``count`` images held at once."""
    bound = max(most, 1)
    if held.most_images > max(bound, 2):
        raise Incorrect(f"your answer held {held.most_images} decoded images at once ({count} in the check's folder), "
                        f"more than {bound}: that is the data set in memory, what this course exists to avoid. {what}")
    if held.peak_bytes > (bound + 1) * image_bytes + SLACK_BYTES // 4:
        raise Incorrect(f"your answer held {held.peak_bytes / 1e6:.1f} MB at once, as much as "
                        f"{held.peak_bytes / image_bytes:.0f} of the check's {count} images ({image_bytes / 1e3:.0f} "
                        f"kB each): that is the data set in memory, what this course exists to avoid. {what}")


# ---- PyDataset answers ---------------------------------------------------------------------------------------


def check_kwargs_reach_keras(make: Callable[..., Any], name: str = "your PyDataset"):
    """``make(**KERAS_KWARGS)``, refused unless Keras sees every one of them; returns the data set."""
    import keras

    passed = ", ".join(f"{k}={v}" for k, v in KERAS_KWARGS.items())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = make(**KERAS_KWARGS)
        except TypeError as err:
            if any(word in str(err) for word in ("unexpected keyword", *KERAS_KWARGS)):
                raise Incorrect(f"{name}(..., {passed}) failed ({err}): accept **kwargs in __init__ and pass them "
                                "on with super().__init__(**kwargs)") from None
            raise
        if not isinstance(ds, keras.utils.PyDataset):
            raise Incorrect(f"{name}(...) is a {type(ds).__name__}, not a keras.utils.PyDataset: subclass "
                            "keras.utils.PyDataset (or a class of the lesson that does)")
        seen = {k: getattr(ds, k) for k in KERAS_KWARGS}  # Keras warns here when super().__init__ was skipped
    if any("super().__init__" in str(w.message) for w in caught):
        raise Incorrect(f"Keras warned 'Your `PyDataset` class should call `super().__init__(**kwargs)`': your "
                        f"__init__ never calls it, so the {passed} you passed were silently ignored: Keras would "
                        "load with 1 worker, in threads, 10 batches ahead. Start __init__ with "
                        "super().__init__(**kwargs)")
    if seen != KERAS_KWARGS:
        shown = ", ".join(f"{k}={v}" for k, v in seen.items())
        raise Incorrect(f"{passed} were passed, but Keras sees {shown}: the keyword arguments never reach Keras. "
                        "Hand them on, super().__init__(**kwargs), not super().__init__()")
    return ds


def check_images(images, where: str) -> np.ndarray:
    """``images`` (an array or a tensor) must be float32 in [0, 1], scaled once; returns them as NumPy."""
    images = np.asarray(images)
    if images.size == 0:
        raise Incorrect(f"{where}: no images (an empty array)")
    top, bottom = float(np.max(images)), float(np.min(images))
    if images.dtype == np.uint8 or top > 1.0 + 1e-6:
        raise Incorrect(f"{where}: {images.dtype} values up to {top:.0f}: not scaled to [0, 1]. Convert once: "
                        "`.astype(np.float32) / 255` (in tf.data: `tf.cast(images, tf.float32) / 255.0`)")
    if bottom < -1e-6:
        raise Incorrect(f"{where}: values down to {bottom:.2f}; the course's models take images in [0, 1] "
                        "(0-255 divided by 255, nothing subtracted)")
    if top <= 1 / 255 + 1e-6:
        raise Incorrect(f"{where}: every value is at most {top:.4f} (1/255 = 0.0039): scaled twice (divided by 255 "
                        "twice). Divide the 0-255 pixels by 255 exactly once")
    if images.dtype != np.float32:
        raise Incorrect(f"{where}: images of dtype {images.dtype}; return float32, `.astype(np.float32) / 255` "
                        "(`uint8 / 255` gives float64: twice the memory, and not what Keras computes in)")
    return images


def _images_of(batch, where: str):
    if isinstance(batch, tuple | list) and len(batch) >= 1:
        return batch[0]
    raise Incorrect(f"{where} is a {type(batch).__name__}: __getitem__ must return (images, labels)")


def _refuse_held(held_bytes: int, images_alive: int, image_bytes: int, batch_size: int, count: int, when: str,
                 fix: str) -> None:
    """Refuse ``held_bytes`` (or ``images_alive`` Pillow images) beyond a few batches of float32 images."""
    bound = few(batch_size)
    if images_alive > bound:
        raise Incorrect(f"{when}, {images_alive} Pillow images were alive at once in your answer: it held "
                        f"{images_alive} decoded images, {_few_text(batch_size)}, of the check's {count}. {fix}")
    allowed = bound * 4 * image_bytes + SLACK_BYTES  # float32: 4 bytes a value
    if held_bytes > allowed:
        as_float32 = held_bytes // (4 * image_bytes)
        raise Incorrect(f"{when}, your answer holds {held_bytes / 1e3:,.0f} kB, as much as {as_float32:,} "
                        f"decoded images as float32 ({held_bytes // image_bytes:,} as uint8; the check's data set has "
                        f"{count}): {_few_text(batch_size)}. {fix}")


def check_pydataset(make: Callable[..., Any], batch_size: int, image_bytes: int | None = None,
                    name: str = "your PyDataset", epochs: int = 2) -> str:
    """The checks every exercise whose answer is a ``PyDataset`` runs (see the module's doc).

    ``make(**kwargs)`` builds the answer over the check's files (at least :func:`min_count` ``(batch_size)``
    images); ``image_bytes``: one decoded image as uint8 (height x width x 3; by default read from the first
    batch). Returns a one-line note for the check's success message.
    """
    check_kwargs_reach_keras(make, name)
    warm = make()  # a first one: imports and Keras' own first-time work are not the answer's
    _images_of(warm[0], "batch 0")
    del warm
    gc.freeze()  # the interpreter's objects so far, out of gc.collect's way: each collection below is quick
    try:
        image_bytes, count = _measure_serving(make, batch_size, image_bytes, epochs)
    finally:
        gc.unfreeze()
    return (f"{', '.join(f'{k}={v}' for k, v in KERAS_KWARGS.items())} reach Keras, every batch is float32 in "
            f"[0, 1], and at most {FEW_BATCHES} batches of images are held at any time")


def _measure_serving(make: Callable[..., Any], batch_size: int, image_bytes: int | None,
                     epochs: int) -> tuple[int, int]:
    """Build the answer and serve ``epochs`` epochs under :func:`watch`, refusing what it holds (see
    :func:`check_pydataset`); returns the bytes of one decoded uint8 image and the check's image count."""
    with watch() as built:
        ds = make()
        gc.collect()
    count = len(ds) * batch_size
    if count < min_count(batch_size):
        raise ValueError(f"the check's data set is too small to tell a few batches from all of them: {count} "
                         f"images, at least {min_count(batch_size)} needed")  # for the check's author
    if image_bytes is None:
        image_bytes = math.prod(np.shape(_images_of(ds[0], "batch 0"))[1:])
    fix_init = ("Keep only file names and labels in __init__; read each batch's images when __getitem__ asks for "
                "it")
    _refuse_held(built.kept_bytes, built.images_left, image_bytes, batch_size, count, "right after __init__", fix_init)
    fix_serve = ("Read each batch from disk when it is asked for and keep nothing once it is served: no dict or list "
                 "of batches or images, no functools.lru_cache or cache of your own")
    with watch() as served:
        gc.collect()  # what only the cyclic collector frees (ast.literal_eval's closures in np.load, say) is gone
        start = tracemalloc.get_traced_memory()[0]
        kept, worst_peak, alive = 0, 0, 0
        for epoch in range(epochs):
            if hasattr(ds, "on_epoch_begin"):
                ds.on_epoch_begin()
            for index in range(len(ds)):
                tracemalloc.reset_peak()
                before = tracemalloc.get_traced_memory()[0]
                batch = ds[index]
                check_images(_images_of(batch, f"batch {index}"), f"epoch {epoch + 1}, batch {index}")
                del batch
                worst_peak = max(worst_peak, tracemalloc.get_traced_memory()[1] - before)
            gc.collect()
            kept = max(kept, tracemalloc.get_traced_memory()[0] - start)  # at the end of the epoch: the most kept
            alive = max(alive, served.most_images)
            ds.on_epoch_end()
    _refuse_held(max(kept, 0), served.images_left, image_bytes, batch_size, count,
                 f"after serving {epochs} epochs of {len(ds)} batches", fix_serve)
    _refuse_held(max(worst_peak - 2 * batch_size * 4 * image_bytes, 0), alive - batch_size, image_bytes, batch_size,
                 count, "while serving one batch (beyond that batch)",
                 "Read only the batch's own images for each batch, never the whole data set")
    return image_bytes, count


# ---- tf.data answers -----------------------------------------------------------------------------------------


def _all_steps(steps):
    for step in steps:
        yield step
        for branch in step.branches:
            yield from _all_steps(branch)


def decoded_before_the_pipeline(steps) -> bool:
    """True when a source's elements are already images (a tensor of rank 3 or more per element)."""
    return any(step.kind == "source" and step.image_source for step in _all_steps(steps))


def images_held(steps, start: int, batch_size: int) -> list[tuple[int, str, int]]:
    """``(step index, what, images it can hold)`` for each buffer from ``steps[start]`` on (after a ``batch`` a
    buffer holds whole batches): shuffle and prefetch buffers, parallel calls in flight. AUTOTUNE is left out."""
    held, per_element = [], 1
    for i, step in enumerate(steps[start:], start):
        if step.kind == "batch":
            per_element = step.batch_size if step.batch_size and step.batch_size > 0 else batch_size
        if step.kind == "shuffle" and not step.permutation:
            held.append((i, f"a shuffle buffer of {step.buffer_size:,}", step.buffer_size * per_element))
        elif step.kind == "prefetch" and step.buffer_size and step.buffer_size > 0:
            held.append((i, f"prefetch({step.buffer_size:,})", step.buffer_size * per_element))
        if step.parallel_calls and step.parallel_calls > 0:
            held.append((i, f"num_parallel_calls={step.parallel_calls:,}", step.parallel_calls * per_element))
    return held


def _gigabytes(images: int, image_bytes: int = 128 * 128 * 3) -> str:
    size = images * image_bytes
    return f"{size / 1e9:,.1f} GB" if size >= 1e9 else f"{size / 1e6:,.0f} MB"


def check_pipeline(ds, batch_size: int, what: str = "your pipeline",
                   allowed: dict[int, int] | None = None) -> tuple[list, int | None]:
    """Refuse a ``tf.data`` pipeline that can hold more than a few batches of decoded images (see the module's
    doc). ``allowed``: ``{step index: images}`` for a buffer the exercise itself allows (a bounded shuffle after a
    cache file, say). Returns the pipeline's steps and the index of its decoding map (``None``: none)."""
    from ..pipeline_buffers import pipeline_steps

    steps = pipeline_steps(ds)
    if decoded_before_the_pipeline(steps):
        raise Incorrect(f"`{what}` starts from images decoded before the pipeline (from_tensor_slices of the images): "
                        f"every image of the data set is held in memory (100,000 at 128 px: "
                        f"{_gigabytes(100_000)}), {_few_text(batch_size)}. Start from the file paths and decode "
                        "inside the pipeline, in a map")
    decoded = next((i for i, s in enumerate(steps) if s.kind == "map" and s.decodes), None)
    if decoded is None:
        return steps, None
    for step in steps[decoded:]:
        if step.kind == "cache" and not step.filename:
            raise Incorrect("`.cache()` without a file name after decoding keeps every decoded image in memory from "
                            f"the first epoch on (100,000 images at 128 px: {_gigabytes(100_000)}), "
                            f"{_few_text(batch_size)}. Remove it, or give it a file: `.cache(cache_file)`")
    for i, buffer, images in images_held(steps, decoded, batch_size):
        if images > (allowed or {}).get(i, few(batch_size)):
            where = "before batch" if not any(s.kind == "batch" for s in steps[decoded:i + 1]) else \
                "after batch: each element a batch"
            fix = ("Shuffle the file names, before the decoding map, instead" if "shuffle" in buffer else
                   "Leave it to tf.data: `AUTOTUNE`, or a few batches at most")
            raise Incorrect(f"after decoding, {buffer} ({where}) holds up to {images:,} decoded images "
                            f"({_gigabytes(images)} at 128 px), {_few_text(batch_size)}. {fix}.")
    return steps, decoded
