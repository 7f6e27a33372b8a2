"""Lesson 01's exercises: the arithmetic of "does it fit", and a data set's decoded size read from headers only."""

from __future__ import annotations

import math
import tempfile
import tracemalloc
from contextlib import contextmanager
from numbers import Integral
from pathlib import Path

import numpy as np

from . import Exercise, Incorrect

#: ``(count, budget_bytes, channels, dtype)`` for q1: the real set at 128 px (128 misses by a hair), 100,000
#: images in 12 GB as float32 (exactly 100 px: "fits" means at most the budget), grayscale float16.
SIDE_CASES = [(4_750, 233_000_000, 3, "uint8"), (100_000, 12_000_000_000, 3, "float32"), (1_000, 10**9, 1, "float16")]
#: More traced memory than this while working out an answer means it built images to measure them.
ALLOCATION_LIMIT = 1 << 20


def _bytes(count: int, side: int, channels: int, dtype) -> int:
    return count * side * side * channels * np.dtype(dtype).itemsize


def _largest(count: int, budget: int, channels: int, dtype) -> int:
    return math.isqrt(budget // (count * channels * np.dtype(dtype).itemsize))


@contextmanager
def _traced():
    """Trace Python and NumPy allocations meanwhile; yields a list that receives the peak in bytes."""
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    start = tracemalloc.get_traced_memory()[0]
    peak = []
    try:
        yield peak
    finally:
        peak.append(tracemalloc.get_traced_memory()[1] - start)
        if not was_tracing:
            tracemalloc.stop()


def _check_largest_side(largest_side) -> str:
    small = (2_000, 50_000_000, 3, "uint8")  # survives an answer that builds the images, and shows that it does
    with _traced() as peak:
        largest_side(*small)
    if peak[0] > ALLOCATION_LIMIT:
        raise Incorrect(f"working out the answer held {peak[0] / 1e6:.0f} MB in memory: your code built the images "
                        "(np.zeros, np.empty ...) to measure them. That is the data set in memory, what this course "
                        "avoids; and at 100,000 images it would not fit. Compute the bytes: count x side x side x "
                        "channels x bytes per value")
    for count, budget, channels, dtype in [small, *SIDE_CASES]:
        side = largest_side(count, budget, channels, dtype)
        case = f"largest_side({count:_}, {budget:_}, {channels}, {dtype!r})"
        if isinstance(side, bool) or not isinstance(side, Integral):
            raise Incorrect(f"{case} returned {side!r} ({type(side).__name__}): return a whole number of pixels, "
                            "e.g. with math.isqrt or int(...)")
        side, want = int(side), _largest(count, budget, channels, dtype)
        itemsize = np.dtype(dtype).itemsize
        if side > want:
            needed = _bytes(count, side, channels, dtype)
            if side == math.isqrt(budget // (count * itemsize)) and channels > 1:
                why = f"you left out the channels: each pixel holds {channels} values"
            elif side == math.isqrt(budget // (count * channels)) and itemsize > 1:
                why = f"you left out the bytes per value: one {dtype} value takes {itemsize} bytes (np.dtype(dtype)" \
                      ".itemsize)"
            elif side == want + 1:
                why = "round down: a side that is one pixel too large does not fit"
            else:
                why = "the largest side that fits is smaller"
            raise Incorrect(f"{case} returned {side}, but {count:,} images of {side} x {side} x {channels} {dtype} "
                            f"values take {needed:,} bytes, more than the budget of {budget:,}: {why}")
        if side < want:
            fits = _bytes(count, side + 1, channels, dtype)
            why = ("'fits' means at most the budget (<=), not strictly below it" if fits == budget else
                   "a byte is 8 bits, and itemsize already counts bytes" if side == _largest(count * 8, budget,
                                                                                              channels, dtype) else
                   "find the largest side, not just one that fits")
            raise Incorrect(f"{case} returned {side}, but a side of {side + 1} fits too ({fits:,} bytes, budget "
                            f"{budget:,}): {why}")
    return (f"e.g. {SIDE_CASES[0][0]:,} RGB images in {SIDE_CASES[0][1] / 1e6:.0f} MB as uint8: at most "
            f"{_largest(*SIDE_CASES[0])} px a side; 100,000 in 12 GB as float32: {_largest(*SIDE_CASES[1])} px.")


q1 = Exercise(
    name="q1",
    task="Write largest_side(count, budget_bytes, channels, dtype): the largest whole side at which count square "
         "images fit in budget_bytes.",
    checker=_check_largest_side,
    hint_text=("Images of side s take `count * s * s * channels * itemsize` bytes, with `itemsize = "
               "np.dtype(dtype).itemsize` (1 for uint8, 4 for float32). Solve for s and round down: "
               "`math.isqrt(budget_bytes // (count * channels * itemsize))`. Never build the images to measure them."),
    solution_code='''
import math

import numpy as np


def largest_side(count, budget_bytes, channels, dtype):
    per_pixel = count * channels * np.dtype(dtype).itemsize  # bytes of one pixel position, over all images
    return math.isqrt(budget_bytes // per_pixel)
''',
    answer_name="largest_side",
)

#: q2's images: (width, height, mode), of several sizes and with 1, 3 or 4 channels, as real folders have.
HEADER_CASES = [(w, h, mode) for w, h in [(320, 240), (150, 90), (64, 300), (333, 111), (200, 200), (48, 48)]
                for mode in ("RGB", "RGBA", "L", "P")]


def _noise_images(folder: Path) -> list[Path]:
    """Random-noise PNGs (they barely compress: the files are large), one per :data:`HEADER_CASES` entry."""
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for k, (width, height, mode) in enumerate(HEADER_CASES):
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        path = folder / f"plant_{k:02d}.png"
        image = Image.fromarray(pixels)
        (image.quantize(64) if mode == "P" else image.convert(mode)).save(path)
        paths.append(path)
    return paths


@contextmanager
def _counting_decodes():
    """Count Pillow's decodes meanwhile (every way to the pixels, np.asarray and convert included, calls load)."""
    from PIL import ImageFile

    calls = []
    original = ImageFile.ImageFile.load

    def load(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    ImageFile.ImageFile.load = load
    try:
        yield calls
    finally:
        ImageFile.ImageFile.load = original


def _check_decoded_bytes(decoded_bytes) -> str:
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        paths = _noise_images(Path(tmp))
        on_disk = sum(p.stat().st_size for p in paths)
        with _counting_decodes() as decodes, _traced() as peak:
            total = decoded_bytes([str(p) for p in paths])
        if decodes:
            raise Incorrect(f"your code decoded the images (Pillow's decoder ran {len(decodes)} times): that reads and "
                            "unpacks every pixel, the slow part at 3,000 px a side. Image.open(path).size reads only "
                            "the header: nothing is decoded until you ask for the pixels")
        if peak[0] > on_disk / 3:
            raise Incorrect(f"your code held {peak[0] / 1e6:.1f} MB at once for {on_disk / 1e6:.1f} MB of files: it "
                            "kept every image (or its file's bytes) in memory, the data set in memory that this course "
                            "avoids. Open one file at a time and keep only two numbers from it")
        if isinstance(total, bool) or not isinstance(total, Integral):
            raise Incorrect(f"decoded_bytes returned {total!r} ({type(total).__name__}): return the number of bytes, "
                            "an int")
        total = int(total)
        want = sum(w * h * 3 for w, h, _ in HEADER_CASES)
        if total == want:
            return (f"{len(paths)} images, {on_disk / 1e6:.1f} MB of files, {want / 1e6:.1f} MB decoded, read from "
                    "their headers alone.")
        own_channels = sum(w * h * len(Image.new(m, (1, 1)).getbands()) for w, h, m in HEADER_CASES)
        first = HEADER_CASES[0]
        if total == on_disk:
            raise Incorrect(f"{total:,} bytes is the files' size on disk: PNG is compressed. Decoded, each image takes "
                            "width x height x 3 bytes (RGB, uint8)")
        if total == own_channels:
            raise Incorrect(f"{total:,} bytes counts each file's own channels (1 for grayscale, 4 with alpha): the "
                            "loader converts every image to RGB, so count 3 bytes a pixel for all of them")
        if total == len(paths) * first[0] * first[1] * 3:
            raise Incorrect(f"{total:,} bytes is {len(paths)} times the first image: the images differ in size, add "
                            "up each one's width x height x 3")
        raise Incorrect(f"decoded_bytes gave {total:,} bytes, not {want:,}: each image decodes to width x height x 3 "
                        "bytes (RGB, uint8); add them up")


q2 = Exercise(
    name="q2",
    task="Write decoded_bytes(paths): the bytes the images take decoded as RGB uint8 at their own sizes, without "
         "decoding any of them.",
    checker=_check_decoded_bytes,
    hint_text=("`with Image.open(path) as image: width, height = image.size` reads the file's header only. Each "
               "image decodes to `width * height * 3` bytes (RGB, uint8), whatever mode the file stores. Add them up "
               "one file at a time; `np.asarray(image)`, `.convert()` or `.load()` would decode it."),
    solution_code='''
from PIL import Image


def decoded_bytes(paths):
    total = 0
    for path in paths:
        with Image.open(path) as image:  # the header only: nothing is decoded
            width, height = image.size
        total += width * height * 3  # RGB, one byte a value
    return total
''',
    answer_name="decoded_bytes",
)
