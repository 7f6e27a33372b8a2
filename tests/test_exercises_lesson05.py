"""Lesson 05's exercises reject the typical wrong answers, each with its own diagnosis."""

import functools
import math
from pathlib import Path

import keras
import numpy as np
import pytest

from seedlings_utils.dataset import load_image, load_image_uint8
from seedlings_utils.exercises import CORRECT
from seedlings_utils.exercises import lesson05 as ex

from .helpers import WrongAnswers, rejected

WRONG = WrongAnswers()


# ---- exercise 1: NpyBatches -------------------------------------------------------------------------------------


class NpyBatches(keras.utils.PyDataset):
    """A right answer, which the wrong ones below change in one place each."""

    def __init__(self, folder, filenames, labels, batch_size=32, **kwargs):
        super().__init__(**kwargs)
        self.folder, self.filenames, self.labels = Path(folder), np.asarray(filenames), np.asarray(labels)
        self.batch_size = batch_size

    def __len__(self):
        return math.ceil(len(self.filenames) / self.batch_size)

    def read(self, names):
        return np.stack([np.load(self.folder / n) for n in names])

    def __getitem__(self, index):
        rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return self.read(self.filenames[rows]).astype(np.float32) / 255, self.labels[rows]


@WRONG(ex.q1, "super().__init__(**kwargs)")
class NoSuperCall(NpyBatches):  # the 2019 mistake: Keras warns, and the workers are lost
    def __init__(self, folder, filenames, labels, batch_size=32, **kwargs):
        self.folder, self.filenames, self.labels = Path(folder), np.asarray(filenames), np.asarray(labels)
        self.batch_size = batch_size


@WRONG(ex.q1, "Keras sees workers=1")
class SuperWithoutKwargs(NpyBatches):
    def __init__(self, folder, filenames, labels, batch_size=32, **kwargs):
        keras.utils.PyDataset.__init__(self)
        self.folder, self.filenames, self.labels = Path(folder), np.asarray(filenames), np.asarray(labels)
        self.batch_size = batch_size


@WRONG(ex.q1, "accept **kwargs")
class NoKwargs(NpyBatches):
    def __init__(self, folder, filenames, labels, batch_size=32):
        super().__init__(folder, filenames, labels, batch_size)


@WRONG(ex.q1, "the whole data set in memory")
class PreloadsEverything(NpyBatches):  # the whole data set in memory, read once in __init__
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.images = self.read(self.filenames)

    def __getitem__(self, index):
        rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return self.images[rows].astype(np.float32) / 255, self.labels[rows]


@WRONG(ex.q1, "the whole data set in memory")
class PreloadsAsList(PreloadsEverything):  # the same, as a list of arrays
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.images = list(self.images)

    def __getitem__(self, index):
        rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return np.stack(self.images[rows]).astype(np.float32) / 255, self.labels[rows]


@WRONG(ex.q1, "keeps the images it has read")
class CachesWhatItReads(NpyBatches):  # a memo that grows to the whole data set after one epoch
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cache = {}

    def __getitem__(self, index):
        if index not in self.cache:
            self.cache[index] = super().__getitem__(index)
        return self.cache[index]


@WRONG(ex.q1, "last partial batch is missing")
class DropsLastBatch(NpyBatches):
    def __len__(self):
        return len(self.filenames) // self.batch_size


@WRONG(ex.q1, "__len__ counts batches, not images")
class CountsImages(NpyBatches):
    def __len__(self):
        return len(self.filenames)


@WRONG(ex.q1, "not scaled")
class NotScaled(NpyBatches):
    def __getitem__(self, index):
        images, labels = super().__getitem__(index)
        return images * 255, labels


@WRONG(ex.q1, "scaled twice")
class ScalesTwice(NpyBatches):
    def __getitem__(self, index):
        images, labels = super().__getitem__(index)
        return images / 255, labels


@WRONG(ex.q1, "return float32")
class Float64(NpyBatches):
    def __getitem__(self, index):
        rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return self.read(self.filenames[rows]) / 255, self.labels[rows]


@WRONG(ex.q1, "came with labels")
class LabelsOffByOne(NpyBatches):
    def __getitem__(self, index):
        images, labels = super().__getitem__(index)
        return images, (labels + 1) % len(self.filenames)


@WRONG(ex.q1, "uint8", "not scaled to [0, 1]")
class Uint8Images(NpyBatches):  # the file's pixels as they are
    def __getitem__(self, index):
        rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return self.read(self.filenames[rows]), self.labels[rows]


@functools.cache
def _load_npy_cached(path):
    return np.load(path)


@WRONG(ex.q1, "keeps the images it has read")
class LruCached(NpyBatches):  # functools.lru_cache: every file it ever read stays in memory, outside the object
    def read(self, names):
        return np.stack([_load_npy_cached(str(self.folder / n)) for n in names])


_MODULE_CACHE: dict = {}


@WRONG(ex.q1, "keeps the images it has read")
class CachesInAGlobalDict(NpyBatches):  # a dict outside the object: the object's attributes look clean
    def read(self, names):
        for n in names:
            _MODULE_CACHE.setdefault((str(self.folder), n), np.load(self.folder / n))
        return np.stack([_MODULE_CACHE[(str(self.folder), n)] for n in names])


@WRONG(ex.q1, "after serving 2 epochs", "more than a few batches (4 batches of 2 = 8 images)")
class RemembersServedBatches(NpyBatches):  # a log of every batch served, "for debugging"
    def __getitem__(self, index):
        batch = super().__getitem__(index)
        self.__dict__.setdefault("served", []).append(batch)
        return batch


@WRONG(ex.q1, "right after __init__", "more than a few batches", "Keep only file names and labels in __init__")
class ReadsEveryFilesBytesInInit(NpyBatches):  # not decoded yet, but every file's bytes in memory
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.blobs = {n: (self.folder / n).read_bytes() for n in self.filenames}


class KeepsItsLastBatch(NpyBatches):  # one batch kept: a few batches at most, accepted
    def __getitem__(self, index):
        self.last = super().__getitem__(index)
        return self.last


def test_q1_keeping_one_batch_is_within_a_few_batches():
    assert ex.q1.evaluate(KeepsItsLastBatch).status == CORRECT


def test_q1_accepts_the_right_answer():
    assert ex.q1.evaluate(NpyBatches).status == CORRECT


def test_q1_the_memory_messages_say_so():
    assert "in memory" in rejected(ex.q1, PreloadsEverything)
    assert "in memory" in rejected(ex.q1, CachesWhatItReads)


def test_q1_something_else_than_a_class():
    assert "pass the class itself" in rejected(ex.q1, "NpyBatches")


# ---- exercise 2: Shuffled, an order from (seed, epoch) ----------------------------------------------------------


Shuffled = ex.q2.solution_namespace()["Shuffled"]  # a right answer, which the wrong ones below change in one place each


@WRONG(ex.q2, "a data set made with epoch=2 (a run resumed at its third epoch)")
class OneGenerator(Shuffled):  # the lesson's SeedlingsDataset: right in one process, not across a resume
    def draw(self):
        if not hasattr(self, "rng"):
            self.rng = np.random.default_rng(self.seed)
        self.order = self.rng.permutation(len(self.filenames))


@WRONG(ex.q2, "epoch 2 repeated an earlier epoch's order")
class NeverReshuffles(Shuffled):  # the 2019 class: the same batches every epoch
    def on_epoch_end(self):
        pass


@WRONG(ex.q2, "a generator made anew from the seed alone gives the same order again")
class SeedWithoutEpoch(Shuffled):  # a new generator from the seed alone draws the same order again
    def draw(self):
        self.order = np.random.default_rng(self.seed).permutation(len(self.filenames))


@WRONG(ex.q2, "the first epoch read the images in file order")
class FirstEpochInFileOrder(Shuffled):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.order = np.arange(len(self.filenames))


@WRONG(ex.q2, "came with labels")
class ShufflesNamesOnly(Shuffled):  # labels stay where they were: pairs broken
    def __getitem__(self, index):
        rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
        names = self.filenames[self.order[rows]]
        return np.stack([load_image(self.image_dir / n, self.image_size) for n in names]), self.labels[rows]


@WRONG(ex.q2, "more than once")
class DrawsWithReplacement(Shuffled):  # rng.integers: some images twice, some never
    def draw(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        self.order = rng.integers(0, len(self.filenames), len(self.filenames))


@WRONG(ex.q2, "two data sets made with seed=0 started in different orders")
class IgnoresSeed(Shuffled):
    def draw(self):
        self.order = np.random.default_rng().permutation(len(self.filenames))


@WRONG(ex.q2, "the seed is ignored")
class FixedSeed(Shuffled):
    def draw(self):
        self.order = np.random.default_rng([1234, self.epoch]).permutation(len(self.filenames))


@WRONG(ex.q2, "Keras sees workers=1", "never reach Keras")
class Q2SwallowsKwargs(Shuffled):  # **kwargs accepted, never handed on
    def __init__(self, image_dir, filenames, labels, batch_size=32, image_size=128, seed=0, epoch=0, **kwargs):
        super().__init__(image_dir, filenames, labels, batch_size, image_size, seed, epoch)


@WRONG(ex.q2, "uint8", "not scaled to [0, 1]")
class Q2Uint8(Shuffled):  # lesson 05's uint8 loader: 0-255
    def __getitem__(self, index):
        picked = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        images = [load_image_uint8(self.image_dir / name, self.image_size) for name in self.filenames[picked]]
        return np.stack(images), self.labels[picked]


@WRONG(ex.q2, "dtype float64", "float32")
class Q2Float64(Shuffled):
    def __getitem__(self, index):
        images, labels = super().__getitem__(index)
        return images.astype(np.float64), labels


@WRONG(ex.q2, "right after __init__", "more than a few batches", "Keep only file names and labels in __init__")
class Q2ListInInit(Shuffled):  # every image decoded into a list up front
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.images = [load_image(self.image_dir / n, self.image_size) for n in self.filenames]

    def __getitem__(self, index):
        picked = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        return np.stack([self.images[i] for i in picked]), self.labels[picked]


@functools.lru_cache(maxsize=1000)
def _load_image_cached(path, image_size):
    return load_image(path, image_size)


@WRONG(ex.q2, "after serving 2 epochs", "more than a few batches", "lru_cache")
class Q2LruCached(Shuffled):
    def __getitem__(self, index):
        picked = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        images = [_load_image_cached(str(self.image_dir / n), self.image_size) for n in self.filenames[picked]]
        return np.stack(images), self.labels[picked]


@WRONG(ex.q2, "after serving 2 epochs", "Pillow images were alive at once", "more than a few batches")
class Q2KeepsPillowImages(Shuffled):  # opened images kept, "to avoid reopening the files"
    def __getitem__(self, index):
        from PIL import Image

        opened = self.__dict__.setdefault("opened", {})
        picked = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        for n in self.filenames[picked]:
            if n not in opened:
                opened[n] = Image.open(self.image_dir / n).convert("RGB")
        size = (self.image_size, self.image_size)
        images = [np.asarray(opened[n].resize(size), np.float32) / 255 for n in self.filenames[picked]]
        return np.stack(images), self.labels[picked]


def test_q2_accepts_the_right_answer():
    assert ex.q2.evaluate(Shuffled).status == CORRECT


# ---- exercise 3: loader_settings ---------------------------------------------------------------------------------


def settings(pillow=(1, False), network=(4, False), pure_python=(1, True)):
    """A loader_settings whose (workers per core, processes) per kind are given; the defaults are right."""
    chosen = dict(pillow=pillow, network=network, pure_python=pure_python)

    def loader_settings(kind, cores):
        per_core, processes = chosen[kind]
        return dict(workers=max(1, int(per_core * cores)), use_multiprocessing=processes)

    return loader_settings


def test_q3_accepts_the_right_answer_and_one_core_left_for_the_main_process():
    assert ex.q3.evaluate(settings()).status == CORRECT

    def one_left(kind, cores):
        workers = {"network": 3 * cores, "pillow": cores - 1, "pure_python": cores - 1}[kind]
        return dict(workers=max(1, workers), use_multiprocessing=kind == "pure_python")

    assert ex.q3.evaluate(one_left).status == CORRECT


@pytest.mark.parametrize("answer, words", [
    (settings(pure_python=(1, False)), "the GIL lets only one thread run Python code at a time"),
    (settings(pure_python=(4, True)), "more workers than cores"),
    (settings(pure_python=(0.25, True)), "cores stay idle"),
    (settings(pillow=(1, True)), "Pillow lets go of the GIL"),
    (settings(network=(4, True)), "a waiting thread holds no GIL and no core"),
    (settings(network=(1, False)), "Use more workers than cores"),
    (settings(pillow=(0.25, False)), "cores stay idle"),
    (settings(pillow=(4, False)), "more threads than cores cannot decode faster"),
], ids=["threads-for-python", "too-many-processes", "too-few-processes", "processes-for-pillow",
        "processes-for-waiting", "one-per-core-for-waiting", "too-few-threads", "too-many-threads"])
def test_q3_typical_mistakes(answer, words):
    assert words in rejected(ex.q3, answer)


def test_q3_answer_of_the_wrong_shape():
    assert "exactly the keys" in rejected(ex.q3, lambda kind, cores: (cores, False))
    assert "whole number" in rejected(ex.q3, lambda kind, cores: dict(workers=0, use_multiprocessing=False))


@pytest.mark.parametrize("q, answer, phrases", WRONG.cases)
def test_typical_mistakes_are_rejected(q, answer, phrases):
    rejected(q, answer, *phrases)


@pytest.mark.parametrize("answer", [PreloadsEverything, PreloadsAsList, CachesWhatItReads, LruCached,
                                    CachesInAGlobalDict, RemembersServedBatches, ReadsEveryFilesBytesInInit],
                         ids=lambda answer: answer.__name__)
def test_the_shared_memory_check_alone_refuses_every_way_of_holding_the_images(answer, tmp_path):
    """loader_checks.check_pydataset, without the lesson's own checks before it, refuses each means."""
    from seedlings_utils.exercises import Incorrect
    from seedlings_utils.exercises.loader_checks import check_pydataset

    names = ex._noise_npy_folder(tmp_path, ex.MEMORY_COUNT)
    with pytest.raises(Incorrect, match=r"more than a few batches \(4 batches of 2 = 8 images\)"):
        check_pydataset(lambda **kw: answer(tmp_path, names, np.arange(len(names)), batch_size=2, **kw), 2)
    check_pydataset(lambda **kw: NpyBatches(tmp_path, names, np.arange(len(names)), batch_size=2, **kw), 2)
