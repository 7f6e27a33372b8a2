"""Lesson 05's exercises: a PyDataset for a new file format, an epoch order a resumed run repeats, and the
workers and threads-or-processes setting for three kinds of loader.

The first two checks run the learner's code on ten tiny images of their own: image ``i``'s red channel says it
is image ``i``, and its label is ``i``, so a check can tell which image landed in which batch, with which label.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from . import Exercise, Incorrect, image_number, pixel_value, tiny_image_folder
from .loader_checks import check_images, check_kwargs_reach_keras, check_pydataset, min_count, numbered_noise_png

COUNT, BATCH, SIZE, WORKERS = 10, 4, 8, 3  # 10 images in batches of 4: 4 + 4 + 2, the last one partial
SIZES = [4, 4, 2]
#: The memory checks' data set (:func:`~seedlings_utils.exercises.loader_checks.check_pydataset`): enough images
#: of noise, in batches of MEMORY_BATCH, that holding them all is far more than a few batches.
MEMORY_BATCH, MEMORY_SIZE = 2, 32
MEMORY_COUNT = min_count(MEMORY_BATCH)


def _pydataset_class(answer, name: str):
    import keras

    if not (isinstance(answer, type) and issubclass(answer, keras.utils.PyDataset)):
        raise Incorrect(f"pass the class itself, `ex.qN.check({name})`, a subclass of keras.utils.PyDataset "
                        f"(got {answer!r})")
    return answer


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
    check_images(images, f"batch {i}")
    return images, [image_number(image) for image in images], [int(v) for v in labels.ravel()]


def _epoch(ds) -> list[tuple[np.ndarray, list[int], list[int]]]:
    """One epoch read the way ``model.fit`` reads it: Keras' adapter, the workers, ``on_epoch_end`` after."""
    from ..profiling import pydataset_batches

    with contextlib.closing(pydataset_batches(ds)) as batches:  # the epoch ends (workers stop) before any check
        read = list(batches)
    return [_batch(batch, i) for i, batch in enumerate(read)]


def _npy_folder(folder: str, count: int, shift: int = 0) -> list[str]:
    """``count`` images as .npy files of uint8 (SIZE, SIZE, 3); image i's red value says it is image i + shift."""
    names = []
    for i in range(count):
        image = np.empty((SIZE, SIZE, 3), dtype=np.uint8)
        image[...] = (pixel_value(i + shift), 128, 64)
        name = f"img_{i:04d}.npy"
        np.save(Path(folder) / name, image)
        names.append(name)
    return names


def _noise_npy_folder(folder: Path, count: int) -> list[str]:
    """``count`` .npy files of uint8 noise (MEMORY_SIZE px): the memory check's data set."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    names = [f"noise_{i:04d}.npy" for i in range(count)]
    for name in names:
        np.save(folder / name, rng.integers(0, 256, (MEMORY_SIZE, MEMORY_SIZE, 3), dtype=np.uint8))
    return names


def _noise_png_folder(folder: Path, count: int) -> list[str]:
    """``count`` numbered PNGs of noise (MEMORY_SIZE px): the memory check's data set."""
    names = [f"noise_{i:04d}.png" for i in range(count)]
    for i, name in enumerate(names):
        numbered_noise_png(folder / name, i, MEMORY_SIZE)
    return names


def _build_npy(cls, folder: str, names: list[str]):
    """The answer over ``names``, read by WORKERS threads, once its keyword arguments are seen to reach Keras."""
    labels = np.arange(len(names))
    check_kwargs_reach_keras(lambda **kw: cls(folder, np.array(names), labels, batch_size=BATCH, **kw), cls.__name__)
    return cls(folder, np.array(names), labels, batch_size=BATCH, workers=WORKERS)


def _held_pixels(ds) -> int:
    """Bytes of NumPy arrays an object keeps in its attributes (in lists, tuples and dicts too)."""
    seen, total, todo = set(), 0, list(vars(ds).values())
    while todo:
        value = todo.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, np.ndarray) and value.dtype != object and value.dtype.kind not in "US":
            total += value.nbytes
        elif isinstance(value, list | tuple | set):
            todo.extend(value)
        elif isinstance(value, dict):
            todo.extend(value.values())
    return total


def _check_npy(answer) -> str:
    cls = _pydataset_class(answer, "NpyBatches")
    with tempfile.TemporaryDirectory() as folder:
        names = _npy_folder(folder, COUNT)
        ds = _build_npy(cls, folder, names)
        one_image = SIZE * SIZE * 3
        if _held_pixels(ds) >= COUNT * one_image:
            raise Incorrect(f"right after __init__ your data set holds {_held_pixels(ds)} bytes of arrays, as much as "
                            f"all {COUNT} images: it loaded every image, the whole data set in memory, the very thing "
                            "a PyDataset avoids. Keep only the file names and labels; np.load each file in "
                            "__getitem__")
        n = len(ds)
        if n == COUNT // BATCH:
            raise Incorrect(f"the last partial batch is missing: {COUNT} images with batch_size {BATCH} need "
                            f"{len(SIZES)} batches ({' + '.join(map(str, SIZES))}), __len__ returned {n}: use "
                            "math.ceil(n / batch_size)")
        if n != len(SIZES):
            raise Incorrect(f"__len__ returned {n}; {COUNT} images with batch_size {BATCH} make {len(SIZES)} "
                            f"batches ({' + '.join(map(str, SIZES))}): __len__ counts batches, not images")
        _npy_folder(folder, COUNT, shift=20)  # the files change on disk after __init__
        batches = _epoch(ds)
        for i, (images, _, _) in enumerate(batches):
            if images.dtype != np.float32:
                raise Incorrect(f"batch {i}: images of dtype {images.dtype}: return float32, "
                                "image.astype(np.float32) / 255 (float64 takes twice the memory)")
        numbers = [k for _, got, _ in batches for k in got]
        if numbers == list(range(COUNT)):
            raise Incorrect("the files were rewritten on disk after __init__, yet your batches showed the old images: "
                            "__init__ read every image: the whole data set in memory. Keep only the names and "
                            "labels; np.load each file when __getitem__ asks for its batch")
        sizes = [len(got) for _, got, _ in batches]
        if sizes != SIZES:
            raise Incorrect(f"the batches hold {sizes} images; {COUNT} images with batch_size {BATCH} give {SIZES}: "
                            "batch i is files i * batch_size up to (i + 1) * batch_size, the last one shorter")
        if numbers != list(range(20, 20 + COUNT)):
            raise Incorrect(f"the epoch read images {[k - 20 for k in numbers]}; expected each once, in the order "
                            f"given: {list(range(COUNT))}")
        for i, (_, got, labels) in enumerate(batches):
            if labels != [k - 20 for k in got]:
                raise Incorrect(f"batch {i}: images {[k - 20 for k in got]} came with labels {labels}: take the "
                                "labels from the same slice as the file names")
        _npy_folder(folder, COUNT, shift=30)  # and again before a second epoch
        again = [k for _, got, _ in _epoch(ds) for k in got]
        if again != list(range(30, 30 + COUNT)):
            raise Incorrect("the files changed on disk between two epochs, yet the second epoch returned the images "
                            "of the first: your data set keeps the images it has read, a cache that grows to the "
                            "whole data set in memory. Read each batch from disk every time")
    with tempfile.TemporaryDirectory() as folder:
        names = _noise_npy_folder(Path(folder), MEMORY_COUNT)
        labels = np.arange(MEMORY_COUNT)
        held = check_pydataset(lambda **kw: cls(folder, np.array(names), labels, batch_size=MEMORY_BATCH, **kw),
                               MEMORY_BATCH, name=cls.__name__)
    return (f"{COUNT} .npy images with batch_size {BATCH} come as {' + '.join(map(str, SIZES))}, each with its "
            f"label, read from disk when asked (the files changed between epochs and your batches followed); "
            f"with workers={WORKERS}; {held}.")


def _orders(cls, folder: str, names: list[str], seed: int, epoch: int, epochs: int) -> list[list[int]]:
    """The image numbers of ``epochs`` epochs of ``cls(..., seed=seed, epoch=epoch)``, labels checked on the way."""
    labels = np.arange(len(names))
    try:
        ds = cls(folder, np.array(names), labels, batch_size=BATCH, image_size=SIZE, seed=seed, epoch=epoch)
    except TypeError as err:
        if "epoch" in str(err):
            raise Incorrect(f"{cls.__name__}(..., epoch={epoch}) failed ({err}): keep the epoch=0 argument of the "
                            "starter code") from err
        raise
    if len(ds) != len(SIZES):
        raise Incorrect(f"__len__ returned {len(ds)}; {COUNT} images with batch_size {BATCH} make {len(SIZES)} "
                        "batches")
    orders = []
    for e in range(epochs):
        numbers = []
        for i, (_, got, got_labels) in enumerate(_epoch(ds)):  # on_epoch_end runs after each epoch, as in fit
            if got_labels != got:
                raise Incorrect(f"epoch {epoch + e + 1}, batch {i}: images {got} came with labels {got_labels}: "
                                "index the file names and the labels with the same order")
            numbers += got
        counts = Counter(numbers)
        twice = sorted(k for k, c in counts.items() if c > 1)
        never = sorted(set(range(COUNT)) - set(counts))
        if twice or never:
            raise Incorrect(f"epoch {epoch + e + 1} read images {numbers}: " + (f"{twice} more than once" if twice
                            else "") + (" and " if twice and never else "") + (f"{never} never" if never else "")
                            + ". Every epoch must read every image exactly once: draw a permutation")
        orders.append(numbers)
    return orders


def _check_shuffled(answer) -> str:
    cls = _pydataset_class(answer, "Shuffled")
    with tempfile.TemporaryDirectory() as folder:
        names = tiny_image_folder(folder, COUNT)
        orders = _orders(cls, folder, names, seed=0, epoch=0, epochs=3)
        if orders[0] == list(range(COUNT)):
            raise Incorrect("the first epoch read the images in file order (0, 1, ..., 9): draw the first epoch's "
                            "order in __init__ already")
        for epoch in (2, 3):
            if orders[epoch - 1] in orders[: epoch - 1]:
                raise Incorrect(f"epoch {epoch} repeated an earlier epoch's order {orders[epoch - 1]}: on_epoch_end "
                                "must count the epoch and draw that epoch's order (a generator made anew from the "
                                "seed alone gives the same order again)")
        if _orders(cls, folder, names, seed=0, epoch=0, epochs=1)[0] != orders[0]:
            raise Incorrect("two data sets made with seed=0 started in different orders: draw the orders from the "
                            "seed, np.random.default_rng([seed, epoch])")
        if _orders(cls, folder, names, seed=1, epoch=0, epochs=1)[0] == orders[0]:
            raise Incorrect("seed=0 and seed=1 gave the same order: the seed is ignored. Use "
                            "np.random.default_rng([seed, epoch])")
        resumed = _orders(cls, folder, names, seed=0, epoch=2, epochs=1)[0]
        if resumed != orders[2]:
            raise Incorrect(f"a data set made with epoch=2 (a run resumed at its third epoch) read {resumed}, but the "
                            f"third epoch of a run from the start read {orders[2]}. One generator made in __init__ "
                            "gives orders that depend on how many epochs this object has lived through, which a new "
                            "runtime forgets: draw each epoch's order from (seed, epoch) alone, "
                            "np.random.default_rng([seed, epoch]).permutation(n)")
    with tempfile.TemporaryDirectory() as folder:
        names = _noise_png_folder(Path(folder), MEMORY_COUNT)
        labels = np.arange(MEMORY_COUNT)
        held = check_pydataset(lambda **kw: cls(folder, np.array(names), labels, batch_size=MEMORY_BATCH,
                                                image_size=MEMORY_SIZE, seed=0, epoch=0, **kw),
                               MEMORY_BATCH, name=cls.__name__)
    return ("every epoch reads each image once, with its label, in a new order; the seed repeats the orders, and a "
            f"run resumed at epoch 3 reads exactly what the third epoch of a run from the start read; {held}.")


#: The loaders the third exercise describes: what one image costs, and what the right setting must satisfy.
KINDS = {
    "pillow": "decode with Pillow (C code that lets go of the GIL while it decodes)",
    "network": "wait about 50 ms for each file on a network disk, then a quick decode",
    "pure_python": "decode with a decoder written in pure Python (every step runs Python code)",
}


def _check_settings(answer) -> str:
    if not callable(answer):
        raise Incorrect(f"pass the function itself, `ex.q3.check(loader_settings)` (got {answer!r})")
    for cores in (2, 8):
        chosen = {}
        for kind, what in KINDS.items():
            got = answer(kind, cores)
            if not isinstance(got, dict) or set(got) != {"workers", "use_multiprocessing"}:
                raise Incorrect(f"loader_settings({kind!r}, {cores}) returned {got!r}: return a dict with exactly "
                                "the keys 'workers' and 'use_multiprocessing', the keyword arguments of PyDataset")
            workers, processes = got["workers"], got["use_multiprocessing"]
            if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
                raise Incorrect(f"loader_settings({kind!r}, {cores}): workers={workers!r}; it is a whole number of "
                                "workers, at least 1")
            if not isinstance(processes, bool):
                raise Incorrect(f"loader_settings({kind!r}, {cores}): use_multiprocessing={processes!r}; it is "
                                "True (processes) or False (threads)")
            pool = "processes" if processes else "threads"
            where = f"for loaders that {what}, with {cores} cores, you chose {workers} {pool}"
            if kind == "pure_python":
                if not processes:
                    raise Incorrect(f"{where}: the GIL lets only one thread run Python code at a time, so threads "
                                    "compute pure Python no faster than one. Use processes, use_multiprocessing=True")
                if workers > cores:
                    raise Incorrect(f"{where}: computing work gains nothing from more workers than cores; each extra "
                                    "process costs memory and a copy of every batch. At most one per core")
                if workers < max(1, cores - 1):
                    raise Incorrect(f"{where}: {cores - workers} of {cores} cores stay idle. About one process per "
                                    "core (leaving one for the main process is fine)")
            else:
                if processes:
                    reason = ("Pillow lets go of the GIL while it decodes, so threads already decode in parallel"
                              if kind == "pillow" else "a waiting thread holds no GIL and no core")
                    raise Incorrect(f"{where}: {reason}. Processes only add a copy of every batch, a slower start "
                                    "every epoch and, on macOS and Windows, a class that must come from a module. "
                                    "Use threads")
                if kind == "pillow" and workers < max(1, cores - 1):
                    raise Incorrect(f"{where}: decoding is CPU work and {cores - workers} of {cores} cores stay idle. "
                                    "Start with one worker per core")
                if kind == "pillow" and workers > 2 * cores:
                    raise Incorrect(f"{where}: decoding is CPU work; more threads than cores cannot decode faster. "
                                    "Start with one worker per core")
                if kind == "network" and workers <= cores:
                    raise Incorrect(f"{where}: a thread waiting for the network disk uses no core, so one per core "
                                    "leaves the cores idle while every worker waits. Use more workers than cores "
                                    "(several per core) to keep more reads in flight")
            chosen[kind] = workers
        if chosen["network"] <= chosen["pillow"]:
            raise Incorrect(f"with {cores} cores you gave the network loader {chosen['network']} workers and the "
                            f"Pillow loader {chosen['pillow']}: the waiting loader should get more, since its "
                            "workers mostly wait")
    return ("threads where Pillow decodes or the files keep workers waiting (more of them for waiting), processes, "
            "about one per core, where pure Python computes.")


q1 = Exercise(
    name="q1",
    task="Write NpyBatches: a PyDataset over .npy image files, each batch read from disk when asked, float32 in "
         "[0, 1], the last partial batch kept, workers passed to Keras.",
    checker=_check_npy,
    hint_text=("The lesson's FirstDataset with another reader: in `__getitem__`, "
               "`np.stack([np.load(self.folder / name) for name in self.filenames[rows]])`, then "
               "`.astype(np.float32) / 255` once. Nothing but names and labels in `__init__`, which starts with "
               "`super().__init__(**kwargs)`; `__len__` uses `math.ceil`."),
    solution_code='''
import math
from pathlib import Path

import keras
import numpy as np


class NpyBatches(keras.utils.PyDataset):
    """(images, labels) batches read from .npy files of uint8 pixels, in file order."""

    def __init__(self, folder, filenames, labels, batch_size=32, **kwargs):
        super().__init__(**kwargs)  # workers, use_multiprocessing, max_queue_size reach Keras
        self.folder = Path(folder)
        self.filenames, self.labels = np.asarray(filenames), np.asarray(labels)  # names only, no pixels
        self.batch_size = batch_size

    def __len__(self):
        return math.ceil(len(self.filenames) / self.batch_size)  # ceil: the partial batch counts

    def __getitem__(self, index):
        rows = slice(index * self.batch_size, (index + 1) * self.batch_size)  # shorter at the end
        images = np.stack([np.load(self.folder / name) for name in self.filenames[rows]])  # read now, from disk
        return images.astype(np.float32) / 255, self.labels[rows]  # 0-255 -> 0-1, once
''',
    answer_name="NpyBatches",
)

q2 = Exercise(
    name="q2",
    task="Complete Shuffled: a new random order every epoch, drawn from (seed, epoch), so that a run resumed at "
         "epoch k reads what epoch k of a run from the start read.",
    checker=_check_shuffled,
    hint_text=("Keep `self.seed` and `self.epoch`. A helper `self.order = np.random.default_rng([self.seed, "
               "self.epoch]).permutation(len(self.filenames))`, called in `__init__`; `on_epoch_end` adds 1 to "
               "`self.epoch` and calls it again. `__getitem__` slices `self.order` and indexes both the names and "
               "the labels with that slice."),
    solution_code='''
import math
from pathlib import Path

import keras
import numpy as np

from seedlings_utils.dataset import load_image


class Shuffled(keras.utils.PyDataset):
    """(images, labels) in a new order every epoch; the order of epoch k depends on (seed, k) alone."""

    def __init__(self, image_dir, filenames, labels, batch_size=32, image_size=128, seed=0, epoch=0, **kwargs):
        super().__init__(**kwargs)
        self.image_dir = Path(image_dir)
        self.filenames, self.labels = np.asarray(filenames), np.asarray(labels)
        self.batch_size, self.image_size = batch_size, image_size
        self.seed, self.epoch = seed, epoch
        self.draw()  # the first epoch is shuffled too

    def draw(self):
        self.order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.filenames))

    def __len__(self):
        return math.ceil(len(self.filenames) / self.batch_size)

    def __getitem__(self, index):
        picked = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        images = np.stack([load_image(self.image_dir / name, self.image_size) for name in self.filenames[picked]])
        return images, self.labels[picked]  # the same positions: each image keeps its label

    def on_epoch_end(self):
        self.epoch += 1
        self.draw()
''',
    answer_name="Shuffled",
)

q3 = Exercise(
    name="q3",
    task="Write loader_settings(kind, cores): the workers and use_multiprocessing for a Pillow loader, a loader "
         "that waits on a network disk, and a pure-Python decoder.",
    checker=_check_settings,
    hint_text=("Ask of each loader: does it compute Python code (the GIL serialises threads: processes, one per "
               "core), compute in C that lets go of the GIL (threads, one per core), or mostly wait (threads, "
               "several per core)?"),
    solution_code='''
def loader_settings(kind, cores):
    if kind == "pure_python":  # Python code: only processes compute in parallel
        return dict(workers=cores, use_multiprocessing=True)
    if kind == "network":  # waiting uses no core: more threads keep more reads in flight
        return dict(workers=4 * cores, use_multiprocessing=False)
    return dict(workers=cores, use_multiprocessing=False)  # Pillow decodes without the GIL: threads
''',
    answer_name="loader_settings",
)
