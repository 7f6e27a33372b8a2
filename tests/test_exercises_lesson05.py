"""Lesson 05's exercises reject the typical wrong answers, each with its own diagnosis."""

import json
import math
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from seedlings_utils.dataset import load_image
from seedlings_utils.exercises import CORRECT, INCORRECT, NOT_ATTEMPTED
from seedlings_utils.exercises import lesson05 as ex

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "05_a_pydataset_that_reads_from_disk.ipynb"


def notebook_starter(q):
    """The learner's untouched cell for ``q``, run (its check prints "Not attempted yet"): the answer it defines."""
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    source = next("".join(c["source"]) for c in cells if c["cell_type"] == "code" and f"ex.{q.name}.check(" in
                  "".join(c["source"]))
    namespace = {"ex": ex, "keras": keras, "np": np, "math": math, "Path": Path, "load_image": load_image}
    exec(source, namespace)
    return namespace[q.answer_name]


@pytest.mark.parametrize("q", [ex.q1, ex.q2, ex.q3], ids=["q1", "q2", "q3"])
def test_untouched_starter_is_not_attempted(q):
    assert q.evaluate(notebook_starter(q)).status == NOT_ATTEMPTED


def incorrect(q, answer) -> str:
    outcome = q.evaluate(answer)
    assert outcome.status == INCORRECT, outcome
    return outcome.message


# ---- exercise 1: Batches ----------------------------------------------------------------------------------------


class Batches(keras.utils.PyDataset):
    """A right answer, which the wrong ones below change in one place each."""

    def __init__(self, image_dir, filenames, labels, batch_size=32, image_size=128, **kwargs):
        super().__init__(**kwargs)
        self.image_dir, self.filenames, self.labels = Path(image_dir), np.asarray(filenames), np.asarray(labels)
        self.batch_size, self.image_size = batch_size, image_size

    def __len__(self):
        return math.ceil(len(self.filenames) / self.batch_size)

    def __getitem__(self, index):
        batch = slice(index * self.batch_size, (index + 1) * self.batch_size)
        names = self.filenames[batch]
        return np.stack([load_image(self.image_dir / n, self.image_size) for n in names]), self.labels[batch]


class NoSuperCall(Batches):  # the 2019 mistake: Keras warns, and the workers are lost
    def __init__(self, image_dir, filenames, labels, batch_size=32, image_size=128, **kwargs):
        self.image_dir, self.filenames, self.labels = Path(image_dir), np.asarray(filenames), np.asarray(labels)
        self.batch_size, self.image_size = batch_size, image_size


class SuperWithoutKwargs(Batches):
    def __init__(self, image_dir, filenames, labels, batch_size=32, image_size=128, **kwargs):
        keras.utils.PyDataset.__init__(self)
        self.image_dir, self.filenames, self.labels = Path(image_dir), np.asarray(filenames), np.asarray(labels)
        self.batch_size, self.image_size = batch_size, image_size


class NoKwargs(Batches):
    def __init__(self, image_dir, filenames, labels, batch_size=32, image_size=128):
        super().__init__(image_dir, filenames, labels, batch_size, image_size)


class DropsLastBatch(Batches):  # the 2019 steps_per_epoch = n // batch_size
    def __len__(self):
        return len(self.filenames) // self.batch_size


class CountsImages(Batches):
    def __len__(self):
        return len(self.filenames)


class WrapsAround(Batches):  # a full last batch, padded with images from the start
    def __getitem__(self, index):
        picked = np.arange(index * self.batch_size, (index + 1) * self.batch_size) % len(self.filenames)
        names = self.filenames[picked]
        return np.stack([load_image(self.image_dir / n, self.image_size) for n in names]), self.labels[picked]


class LabelsOffByOne(Batches):
    def __getitem__(self, index):
        images, labels = super().__getitem__(index)
        return images, (labels + 1) % len(self.filenames)


class ScalesTwice(Batches):
    def __getitem__(self, index):
        images, labels = super().__getitem__(index)
        return images / 255.0, labels


def test_q1_accepts_the_right_answer():
    assert ex.q1.evaluate(Batches).status == CORRECT


def test_q1_no_super_call_is_named():
    message = incorrect(ex.q1, NoSuperCall)
    assert "super().__init__(**kwargs)" in message and "1 worker" in message


def test_q1_super_without_kwargs_loses_the_workers():
    assert "Keras sees workers=1" in incorrect(ex.q1, SuperWithoutKwargs)


def test_q1_init_without_kwargs():
    assert "accept **kwargs" in incorrect(ex.q1, NoKwargs)


def test_q1_dropped_last_partial_batch():
    message = incorrect(ex.q1, DropsLastBatch)
    assert "last partial batch is missing" in message and "__len__ returned 2" in message and "math.ceil" in message


def test_q1_len_counting_images():
    assert "__len__ counts batches, not images" in incorrect(ex.q1, CountsImages)


def test_q1_last_batch_padded():
    assert "[4, 4, 4]" in incorrect(ex.q1, WrapsAround)


def test_q1_labels_not_paired():
    assert "came with labels" in incorrect(ex.q1, LabelsOffByOne)


def test_q1_scaled_twice():
    assert "scaled twice" in incorrect(ex.q1, ScalesTwice)


def test_q1_something_else_than_a_class():
    assert "pass the class itself" in incorrect(ex.q1, "Batches")


# ---- exercise 2: my_load_image ----------------------------------------------------------------------------------


def scales_twice(path, image_size):  # the 2019 recipe: skimage's resize already gives [0, 1], then / 255
    with Image.open(path) as img:
        small = img.convert("RGB").resize((image_size, image_size))
    return np.asarray(small, dtype=np.float32) / 255.0 / 255.0


def not_scaled(path, image_size):
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB").resize((image_size, image_size)), dtype=np.float32)


def no_rgb(path, image_size):
    with Image.open(path) as img:
        return np.asarray(img.resize((image_size, image_size)), dtype=np.float32) / 255.0


def not_resized(path, image_size):
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0


def float64(path, image_size):
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB").resize((image_size, image_size))) / 255.0


def pil_image(path, image_size):
    with Image.open(path) as img:
        return img.convert("RGB").resize((image_size, image_size))


def channels_swapped(path, image_size):
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB").resize((image_size, image_size)), dtype=np.float32)[..., ::-1] / 255.0


@pytest.mark.parametrize("answer, words", [
    (scales_twice, "scaled twice"),
    (not_scaled, "not scaled"),
    (no_rgb, "4 channels"),  # the RGBA file comes second; RGB passes
    (not_resized, "resize to (image_size, image_size)"),
    (float64, "return float32"),
    (pil_image, "return a NumPy array"),
    (channels_swapped, "expected [0.784, 0.392, 0.196]"),
], ids=lambda v: getattr(v, "__name__", None))
def test_q2_typical_mistakes(answer, words):
    assert words in incorrect(ex.q2, answer)


def test_q2_grayscale_left_gray():
    def rgba_only(path, image_size):  # handles RGBA by dropping alpha, leaves grayscale as one channel
        with Image.open(path) as img:
            array = np.asarray(img.resize((image_size, image_size)), dtype=np.float32) / 255.0
        return array[..., :3] if array.ndim == 3 else array

    assert "convert every image to RGB" in incorrect(ex.q2, rgba_only)


# ---- exercise 3: Shuffled ---------------------------------------------------------------------------------------


class Shuffled(keras.utils.PyDataset):
    """A right answer, which the wrong ones below change in one place each."""

    def __init__(self, image_dir, filenames, labels, batch_size=32, image_size=128, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.image_dir, self.filenames, self.labels = Path(image_dir), np.asarray(filenames), np.asarray(labels)
        self.batch_size, self.image_size, self.seed = batch_size, image_size, seed
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(self.filenames))

    def __len__(self):
        return math.ceil(len(self.filenames) / self.batch_size)

    def __getitem__(self, index):
        picked = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        names = self.filenames[picked]
        return np.stack([load_image(self.image_dir / n, self.image_size) for n in names]), self.labels[picked]

    def on_epoch_end(self):
        self.order = self.rng.permutation(len(self.filenames))


class NeverReshuffles(Shuffled):  # the 2019 class: the same batches every epoch
    def on_epoch_end(self):
        pass


class SameSeedEveryEpoch(Shuffled):  # a new generator with the same seed draws the same order again
    def on_epoch_end(self):
        self.order = np.random.default_rng(self.seed).permutation(len(self.filenames))


class FirstEpochInFileOrder(Shuffled):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.order = np.arange(len(self.filenames))


class ShufflesNamesOnly(Shuffled):  # labels stay where they were: pairs broken
    def __getitem__(self, index):
        rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
        names = self.filenames[self.order[rows]]
        return np.stack([load_image(self.image_dir / n, self.image_size) for n in names]), self.labels[rows]


class DrawsWithReplacement(Shuffled):  # rng.integers: some images twice, some never
    def on_epoch_end(self):
        self.order = self.rng.integers(0, len(self.filenames), len(self.filenames))


class IgnoresSeed(Shuffled):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.rng = np.random.default_rng()
        self.order = self.rng.permutation(len(self.filenames))


class FixedSeed(Shuffled):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.rng = np.random.default_rng(1234)
        self.order = self.rng.permutation(len(self.filenames))


def test_q3_accepts_the_right_answer():
    assert ex.q3.evaluate(Shuffled).status == CORRECT


@pytest.mark.parametrize("answer, words", [
    (NeverReshuffles, "epoch 2 repeated an earlier epoch's order"),
    (SameSeedEveryEpoch, "a generator made anew with the same seed gives the same order"),
    (FirstEpochInFileOrder, "the first epoch read the images in file order"),
    (ShufflesNamesOnly, "came with labels"),
    (DrawsWithReplacement, "more than once"),
    (IgnoresSeed, "two data sets made with seed=0 started in different orders"),
    (FixedSeed, "the seed is ignored"),
], ids=lambda v: getattr(v, "__name__", None))
def test_q3_typical_mistakes(answer, words):
    assert words in incorrect(ex.q3, answer)
