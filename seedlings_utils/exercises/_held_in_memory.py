"""A guard for the exercises of lessons 02-03: an answer must never hold every image of the check's folder at once.

:func:`watch` runs a call while it measures two things: the peak of the memory Python allocates (``tracemalloc``
sees ``bytes`` read from files and NumPy arrays) and the largest number of Pillow images alive at one time. An
answer that reads each file, or decodes each image, into a list before it writes anything shows up in either.
"""

from __future__ import annotations

import tracemalloc
import weakref
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import Incorrect


def noise_png(path: Path, seed: int, size: int = 200, red: int | None = None) -> int:
    """Write a ``size`` x ``size`` PNG of random pixels (it does not compress) whose mean red value is ``red`` when
    given; returns the bytes its decoded pixels take."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    if red is not None:
        pixels[..., 0] = red
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return pixels.nbytes


@dataclass
class Held:
    """What :func:`watch` saw: peak bytes Python allocated, and the most Pillow images alive at one time."""

    peak_bytes: int = 0
    most_images: int = 0


@contextmanager
def watch():
    """``with watch() as held: ...``: measures what the block holds at its peak (see the module's doc)."""
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
        held.peak_bytes = tracemalloc.get_traced_memory()[1] - start
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
    return Held(min(h.peak_bytes for h in seen), min(h.most_images for h in seen)), results


def refuse_if_all_held(held: Held, count: int, image_bytes: int, what: str) -> None:
    """Raise :class:`Incorrect` if ``held`` shows about all ``count`` images (``image_bytes`` each) held at once."""
    if held.most_images >= max(3, count // 2):
        raise Incorrect(f"your answer held {held.most_images} decoded images at once ({count} in the check's folder): "
                        f"that is the data set in memory, what this course exists to avoid. {what}")
    if held.peak_bytes > 3 * image_bytes:
        raise Incorrect(f"your answer held {held.peak_bytes / 1e6:.1f} MB at once, as much as "
                        f"{held.peak_bytes / image_bytes:.0f} of the check's {count} images ({image_bytes / 1e3:.0f} "
                        f"kB each): that is the data set in memory, what this course exists to avoid. {what}")
