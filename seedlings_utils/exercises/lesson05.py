"""Lesson 05's exercises: keep the last partial batch, scale exactly once, a new order every epoch.

Each check runs the learner's code on ten tiny PNGs of its own (``tiny_image_folder``): image ``i``'s
red channel says it is image ``i``, and its label is ``i``, so a check can tell which image landed in
which batch, with which label.
"""

from __future__ import annotations

import contextlib
import tempfile
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from . import Exercise, Incorrect, image_number, tiny_image_folder

COUNT, BATCH, SIZE, WORKERS = 10, 4, 8, 3  # 10 images in batches of 4: 4 + 4 + 2, the last one partial
SIZES = [4, 4, 2]


def _pydataset_class(answer, name: str):
    import keras

    if not (isinstance(answer, type) and issubclass(answer, keras.utils.PyDataset)):
        raise Incorrect(f"pass the class itself, `ex.qN.check({name})`, a subclass of keras.utils.PyDataset "
                        f"(got {answer!r})")
    return answer


def _build(cls, folder: str, names: list[str], **kwargs):
    """``cls(folder, names, labels=0..9, batch_size=4, image_size=8, **kwargs)``, and Keras' warnings meanwhile."""
    labels = np.arange(len(names))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = cls(folder, np.array(names), labels, batch_size=BATCH, image_size=SIZE, **kwargs)
        except TypeError as err:
            if "workers" in str(err) or "unexpected keyword" in str(err):
                raise Incorrect(f"{cls.__name__}(..., workers={WORKERS}) failed ({err}): accept **kwargs in "
                                "__init__ and pass them on with super().__init__(**kwargs)") from err
            raise
        settings = (ds.workers, ds.use_multiprocessing, ds.max_queue_size)  # Keras warns here without super()
    return ds, settings, [str(w.message) for w in caught]


def _check_scale(images: np.ndarray, where: str) -> None:
    top = float(np.max(images))
    if top > 1.0 + 1e-6:
        raise Incorrect(f"{where}: values up to {top:.0f}: not scaled. Divide the 0-255 pixels by 255, once")
    if top <= 1 / 255 + 1e-6:
        raise Incorrect(f"{where}: every value is at most {top:.4f} (1/255 = 0.0039): scaled twice, like the 2019 "
                        "recipe. Divide by 255 exactly once")


def _batch(batch, i: int) -> tuple[np.ndarray, list[int], list[int]]:
    """One batch as (images, image numbers read from the pixels, labels), with its shape checked."""
    if not (isinstance(batch, tuple) and len(batch) == 2):
        raise Incorrect(f"batch {i} is a {type(batch).__name__}" + (f" of {len(batch)}" if isinstance(batch, tuple)
                        else "") + ": __getitem__ must return a pair (images, labels)")
    images, labels = np.asarray(batch[0]), np.asarray(batch[1])
    if images.ndim != 4 or images.shape[1:] != (SIZE, SIZE, 3):
        raise Incorrect(f"batch {i}: images of shape {images.shape}; expected (n, {SIZE}, {SIZE}, 3) with "
                        f"image_size={SIZE}: np.stack the batch's images, each (image_size, image_size, 3)")
    if len(labels) != len(images):
        raise Incorrect(f"batch {i}: {len(images)} images but {len(labels)} labels: one label per image")
    _check_scale(images, f"batch {i}")
    return images, [image_number(image) for image in images], [int(v) for v in labels.ravel()]


def _epoch(ds) -> list[tuple[np.ndarray, list[int], list[int]]]:
    """One epoch read the way ``model.fit`` reads it: Keras' adapter, the workers, ``on_epoch_end`` after."""
    from ..profiling import pydataset_batches

    with contextlib.closing(pydataset_batches(ds)) as batches:  # the epoch ends (workers stop) before any check
        read = list(batches)
    return [_batch(batch, i) for i, batch in enumerate(read)]


def _check_batches(answer) -> str:
    cls = _pydataset_class(answer, "Batches")
    with tempfile.TemporaryDirectory() as folder:
        names = tiny_image_folder(folder, COUNT)
        ds, (workers, *_), messages = _build(cls, folder, names, workers=WORKERS)
        if any("super().__init__" in m for m in messages):
            raise Incorrect("Keras warned 'Your `PyDataset` class should call `super().__init__(**kwargs)`': your "
                            f"__init__ never calls it, so the workers={WORKERS} you passed were lost and Keras would "
                            "load with 1 worker. Start __init__ with super().__init__(**kwargs)")
        if workers != WORKERS:
            raise Incorrect(f"workers={WORKERS} was passed, but Keras sees workers={workers}: hand the keyword "
                            "arguments on, super().__init__(**kwargs), not super().__init__()")
        n = len(ds)
        if n == COUNT // BATCH:
            raise Incorrect(f"the last partial batch is missing: {COUNT} images with batch_size {BATCH} need "
                            f"{len(SIZES)} batches ({' + '.join(map(str, SIZES))}), __len__ returned {n}. "
                            f"len(filenames) // batch_size drops the remainder: use math.ceil(n / batch_size)")
        if n != len(SIZES):
            raise Incorrect(f"__len__ returned {n}; {COUNT} images with batch_size {BATCH} make {len(SIZES)} "
                            f"batches ({' + '.join(map(str, SIZES))}): __len__ counts batches, not images")
        batches = _epoch(ds)
        sizes = [len(numbers) for _, numbers, _ in batches]
        if sizes != SIZES:
            raise Incorrect(f"the batches hold {sizes} images; {COUNT} images with batch_size {BATCH} should "
                            f"give {SIZES}: batch i is files i * batch_size up to (i + 1) * batch_size, the last "
                            "one shorter")
        numbers = [k for _, got, _ in batches for k in got]
        if numbers != list(range(COUNT)):
            raise Incorrect(f"the epoch read images {numbers}; expected each once, in the order given: "
                            f"{list(range(COUNT))}")
        for i, (_, got, labels) in enumerate(batches):
            if labels != got:
                raise Incorrect(f"batch {i}: images {got} came with labels {labels}: take the labels from the "
                                "same slice as the file names")
    return f"{COUNT} images with batch_size {BATCH} give batches of {' + '.join(map(str, SIZES))}, in order, " \
           f"each with its label, and Keras loads them with workers={WORKERS}."


def _check_load_image(answer) -> str:
    from PIL import Image

    if not callable(answer):
        raise Incorrect(f"pass the function itself, `ex.q2.check(my_load_image)` (got {answer!r})")
    colour = (200, 100, 50)
    cases = [  # (file name, Pillow mode, size (w, h), the RGB it must come back as)
        ("rgb.png", "RGB", (30, 20), colour),
        ("rgba.png", "RGBA", (20, 30), colour),
        ("gray.png", "L", (25, 25), (120, 120, 120)),
    ]
    with tempfile.TemporaryDirectory() as folder:
        for name, mode, size, expected in cases:
            path = Path(folder) / name
            fill = 120 if mode == "L" else (*colour, 128) if mode == "RGBA" else colour
            Image.new(mode, size, fill).save(path)
            out = answer(path, SIZE)
            what = f"the {mode} file {name} ({size[0]} x {size[1]} pixels)"
            if isinstance(out, Image.Image):
                raise Incorrect(f"{what} came back as a PIL image: return a NumPy array, np.asarray(...)")
            out = np.asarray(out)
            if out.ndim == 2:
                raise Incorrect(f"{what} gave shape {out.shape}: convert every image to RGB (3 channels), "
                                "img.convert('RGB')")
            if out.ndim == 3 and out.shape[-1] == 4:
                raise Incorrect(f"{what} gave 4 channels: drop the alpha channel by converting to RGB")
            if out.shape != (SIZE, SIZE, 3):
                raise Incorrect(f"{what} gave shape {out.shape}; expected ({SIZE}, {SIZE}, 3) for image_size={SIZE}: "
                                "resize to (image_size, image_size)")
            _check_scale(out, what)
            if out.dtype != np.float32:
                raise Incorrect(f"{what} came back as {out.dtype}: return float32 (what Keras computes in; float64 "
                                "takes twice the memory)")
            got = out.reshape(-1, 3).mean(axis=0)
            if not np.allclose(got, np.array(expected) / 255, atol=0.02):
                raise Incorrect(f"{what}: colour {np.round(got, 3).tolist()}, expected "
                                f"{np.round(np.array(expected) / 255, 3).tolist()} (its pixels {expected} / 255)")
    return "RGB, RGBA and grayscale files all come back as float32 (8, 8, 3) arrays in [0, 1], scaled once."


def _first_epoch(cls, folder: str, names: list[str], seed: int) -> list[int]:
    ds, _, _ = _build(cls, folder, names, seed=seed)
    return [k for _, got, _ in _epoch(ds) for k in got]


def _check_shuffled(answer) -> str:
    cls = _pydataset_class(answer, "Shuffled")
    with tempfile.TemporaryDirectory() as folder:
        names = tiny_image_folder(folder, COUNT)
        ds, _, _ = _build(cls, folder, names, seed=0)
        if len(ds) != len(SIZES):
            raise Incorrect(f"__len__ returned {len(ds)}; {COUNT} images with batch_size {BATCH} make {len(SIZES)} "
                            "batches")
        orders = []
        for epoch in range(1, 4):
            numbers = []
            for i, (_, got, labels) in enumerate(_epoch(ds)):  # on_epoch_end runs after each epoch, as in fit
                if labels != got:
                    raise Incorrect(f"epoch {epoch}, batch {i}: images {got} came with labels {labels}: index the "
                                    "file names and the labels with the same order")
                numbers += got
            counts = Counter(numbers)
            twice = sorted(k for k, c in counts.items() if c > 1)
            never = sorted(set(range(COUNT)) - set(counts))
            if twice or never:
                raise Incorrect(f"epoch {epoch} read images {numbers}: " + (f"{twice} more than once" if twice else "")
                                + (" and " if twice and never else "") + (f"{never} never" if never else "")
                                + ". Every epoch must read every image exactly once: draw a permutation")
            orders.append(numbers)
        if orders[0] == list(range(COUNT)):
            raise Incorrect("the first epoch read the images in file order (0, 1, ..., 9): draw the first random "
                            "order in __init__ already")
        for epoch in (2, 3):
            if orders[epoch - 1] in orders[: epoch - 1]:
                raise Incorrect(f"epoch {epoch} repeated an earlier epoch's order {orders[epoch - 1]}: on_epoch_end "
                                "must draw a new order, from the generator made once in __init__ (a generator "
                                "made anew with the same seed gives the same order again)")
        if _first_epoch(cls, folder, names, seed=0) != orders[0]:
            raise Incorrect("two data sets made with seed=0 started in different orders: make the generator from "
                            "the seed, np.random.default_rng(seed), once in __init__")
        if _first_epoch(cls, folder, names, seed=1) == orders[0]:
            raise Incorrect("seed=0 and seed=1 gave the same order: the seed is ignored. Use "
                            "np.random.default_rng(seed)")
    return "every epoch reads each image once, with its label, in a new order, and the seed repeats the orders."


q1 = Exercise(
    name="q1",
    task="Write Batches: a PyDataset in file order whose last partial batch is kept and whose workers reach Keras.",
    checker=_check_batches,
    hint_text=("Start __init__ with `super().__init__(**kwargs)`, then keep the arguments as attributes. `__len__` "
               "is the number of batches: `math.ceil(len(self.filenames) / self.batch_size)`. In `__getitem__`, "
               "slice file names and labels with `[index * self.batch_size : (index + 1) * self.batch_size]`: a "
               "slice stops at the end, so the last batch is simply shorter. `np.stack` the `load_image` results."),
    solution_code='''
import math
from pathlib import Path

import keras
import numpy as np

from seedlings_utils.dataset import load_image


class Batches(keras.utils.PyDataset):
    """(images, labels) batches in file order, the last partial batch kept."""

    def __init__(self, image_dir, filenames, labels, batch_size=32, image_size=128, **kwargs):
        super().__init__(**kwargs)  # workers, use_multiprocessing, max_queue_size reach Keras
        self.image_dir = Path(image_dir)
        self.filenames, self.labels = np.asarray(filenames), np.asarray(labels)
        self.batch_size, self.image_size = batch_size, image_size

    def __len__(self):
        return math.ceil(len(self.filenames) / self.batch_size)  # ceil: the partial batch counts

    def __getitem__(self, index):
        batch = slice(index * self.batch_size, (index + 1) * self.batch_size)  # shorter at the end
        images = np.stack([load_image(self.image_dir / name, self.image_size) for name in self.filenames[batch]])
        return images, self.labels[batch]
''',
    answer_name="Batches",
)

q2 = Exercise(
    name="q2",
    task="Write my_load_image(path, image_size): Pillow, RGB, a square of image_size, float32 in [0, 1].",
    checker=_check_load_image,
    hint_text=("`with Image.open(path) as img:` then `img.convert('RGB')` (grayscale and RGBA become 3 channels), "
               "`.resize((image_size, image_size))`, and `np.asarray(..., dtype=np.float32) / 255.0`. Pillow gives "
               "integers 0-255: divide once, and by nothing else."),
    solution_code='''
import numpy as np
from PIL import Image


def my_load_image(path, image_size):
    """float32 array (image_size, image_size, 3), values in [0, 1]."""
    with Image.open(path) as img:
        rgb = img.convert("RGB")  # grayscale and RGBA become 3 channels
        small = rgb.resize((image_size, image_size), Image.Resampling.BILINEAR)  # squashed to a square
    return np.asarray(small, dtype=np.float32) / 255.0  # 0-255 -> 0-1, once
''',
    answer_name="my_load_image",
)

q3 = Exercise(
    name="q3",
    task="Complete Shuffled: every epoch a new random order, images and labels paired, repeatable from seed.",
    checker=_check_shuffled,
    hint_text=("In `__init__`: `self.rng = np.random.default_rng(seed)` and `self.order = "
               "self.rng.permutation(len(self.filenames))`. `__getitem__` slices `self.order` and indexes both "
               "`self.filenames` and `self.labels` with that slice. `on_epoch_end` draws `self.order` again from "
               "the same `self.rng`."),
    solution_code='''
import math
from pathlib import Path

import keras
import numpy as np

from seedlings_utils.dataset import load_image


class Shuffled(keras.utils.PyDataset):
    """(images, labels) batches in a new random order every epoch, repeatable from seed."""

    def __init__(self, image_dir, filenames, labels, batch_size=32, image_size=128, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.image_dir = Path(image_dir)
        self.filenames, self.labels = np.asarray(filenames), np.asarray(labels)
        self.batch_size, self.image_size = batch_size, image_size
        self.rng = np.random.default_rng(seed)  # made once: new orders, the same ones for the same seed
        self.order = self.rng.permutation(len(self.filenames))  # the first epoch is shuffled too

    def __len__(self):
        return math.ceil(len(self.filenames) / self.batch_size)

    def __getitem__(self, index):
        picked = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        images = np.stack([load_image(self.image_dir / name, self.image_size) for name in self.filenames[picked]])
        return images, self.labels[picked]  # the same positions: each image keeps its label

    def on_epoch_end(self):
        self.order = self.rng.permutation(len(self.filenames))
''',
    answer_name="Shuffled",
)
