"""Lesson 09's exercise checks reject typical wrong answers, each with a message naming the mistake.

(That every reference solution passes its check is tests/test_export_and_exercises.py's job.)
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from seedlings_utils.exercises import lesson09 as ex

from .helpers import define, rejected

# ---- Exercise 1: ResNet50's input range ------------------------------------------------------------------


def resnet_input(body: str):
    return define(f'''
import numpy as np
from keras.applications import resnet50


def to_resnet_input(images):
{textwrap.indent(textwrap.dedent(body).strip(), "    ")}
''', "to_resnet_input")


@pytest.mark.parametrize("body, phrases", [
    ("return resnet50.preprocess_input(images.copy())", ("Multiply by 255 first",)),
    ("return images * 255.0", ("only the scale is right", "BGR")),
    ("return images * 255.0 - np.array([123.68, 116.779, 103.939], dtype=np.float32)", ("still in RGB order",)),
    ("return images * 2.0 - 1.0", ("[-1, 1]", "'caffe' style")),
    ("return images.copy()", ("unchanged",)),
    ("return images / 255.0", ("divided by 255 again",)),
    ("return resnet50.preprocess_input(images * 255.0) / 255.0", ("the first pixel should be",)),
], ids=["forgot-255", "only-scaled", "rgb-order", "tf-style", "unchanged", "divided-again", "scaled-down-after"])
def test_q1_rejects_wrong_ranges_and_channel_orders(body, phrases):
    rejected(ex.q1, resnet_input(body), *phrases)


def test_q1_rejects_changing_the_callers_batch_in_place():
    # preprocess_input on a float32 array works in place: the loader's own batch would be modified
    rejected(ex.q1, resnet_input("images *= 255.0\nreturn resnet50.preprocess_input(images)"),
             "changed the batch it was given", "IN PLACE")


def test_q1_rejects_returning_nothing():
    rejected(ex.q1, resnet_input("resnet50.preprocess_input(images * 255.0)"), "returned None")


# ---- Exercise 2: a small CNN under mixed precision -------------------------------------------------------------


def mixed_cnn(head: str, compile_line: str = 'model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")',
              before: str = ""):
    """A learner's build_mixed_cnn: two convolutions, then ``head`` (from the pooled features ``x`` to ``outputs``)."""
    return define(f"""
import keras
from keras import layers


def build_mixed_cnn(image_size, num_classes):
{textwrap.indent(textwrap.dedent(before).strip(), "    ")}
    inputs = keras.Input((image_size, image_size, 3))
    x = layers.Conv2D(8, 3, activation="relu")(inputs)
    x = layers.Conv2D(8, 3, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
{textwrap.indent(textwrap.dedent(head).strip(), "    ")}
    model = keras.Model(inputs, outputs)
    {compile_line}
    return model
""", "build_mixed_cnn")


RIGHT_HEAD = 'outputs = layers.Dense(num_classes, activation="softmax", dtype="float32")(x)'


def test_q2_accepts_a_separate_float32_softmax():
    head = 'x = layers.Dense(num_classes)(x)\noutputs = layers.Activation("softmax", dtype="float32")(x)'
    assert ex.q2.evaluate(mixed_cnn(head)).status == "Correct"


@pytest.mark.parametrize("head, before, phrases", [
    ('outputs = layers.Dense(num_classes, activation="softmax")(x)', "", ("output is float16", "dtype='float32'")),
    ('x = layers.Dense(num_classes, dtype="float32")(x)\noutputs = layers.Activation("softmax")(x)', "",
     ("output is float16", "separate Activation")),
    (RIGHT_HEAD, 'keras.mixed_precision.set_global_policy("float32")', ("changed the global policy",)),
    ('x = layers.Dense(16, dtype="float16")(x)\n' + RIGHT_HEAD, "", ("weights kept in float16",)),
    ('outputs = layers.Dense(num_classes, activation="relu", dtype="float32")(x)', "", ("softmax",)),
], ids=["float16-output", "float16-separate-softmax", "policy-switched-off", "float16-weights", "no-softmax"])
def test_q2_rejects_the_mistakes_of_mixed_precision(head, before, phrases):
    rejected(ex.q2, mixed_cnn(head, before=before), *phrases)


def test_q2_rejects_a_model_where_nothing_computes_in_float16():
    answer = define("""
import keras
from keras import layers


def build_mixed_cnn(image_size, num_classes):
    inputs = keras.Input((image_size, image_size, 3))
    x = layers.Conv2D(8, 3, activation="relu", dtype="float32")(inputs)
    x = layers.GlobalAveragePooling2D(dtype="float32")(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model
""", "build_mixed_cnn")
    rejected(ex.q2, answer, "no layer computes in float16")


def test_q2_rejects_an_uncompiled_model():
    rejected(ex.q2, mixed_cnn(RIGHT_HEAD, compile_line="pass"), "not compiled")


def test_q2_leaves_the_global_policy_as_it_found_it():
    import keras

    before = keras.mixed_precision.global_policy().name
    ex.q2.evaluate(mixed_cnn(RIGHT_HEAD))
    ex.q2.evaluate(mixed_cnn(RIGHT_HEAD, before='keras.mixed_precision.set_global_policy("float32")'))
    assert keras.mixed_precision.global_policy().name == before



# ---- Exercise 3: a loader that makes the model wait -----------------------------------------------------------

PHOTOS_HEADER = """
import math
import threading
from pathlib import Path

import keras
import numpy as np

from seedlings_utils.exercises import lesson09 as ex
"""


def photos(init: str, getitem: str = "", extra: str = ""):
    """A learner's FastPhotos: SlowPhotos' attributes, then ``init`` at the end of __init__ and ``getitem`` as the
    body of __getitem__ (by default SlowPhotos' own), ``extra`` at module level before the class."""
    getitem = getitem or """
rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
images = [ex.read_photo(self.image_dir / name, self.image_size) for name in self.filenames[rows]]
return np.stack(images).astype(np.float32) / 255.0, self.labels[rows]
"""
    return define(f"""
{textwrap.dedent(extra).strip()}


class FastPhotos(keras.utils.PyDataset):
    def __init__(self, image_dir, filenames, labels, batch_size=32, image_size=64, **kwargs):
        self.image_dir, self.filenames, self.labels = Path(image_dir), list(filenames), np.asarray(labels)
        self.batch_size, self.image_size = batch_size, image_size
{textwrap.indent(textwrap.dedent(init).strip(), "        ")}

    def __len__(self):
        return math.ceil(len(self.filenames) / self.batch_size)

    def __getitem__(self, index):
{textwrap.indent(textwrap.dedent(getitem).strip(), "        ")}
""", "FastPhotos", header=PHOTOS_HEADER)


def test_q3_the_starter_is_rejected_for_its_lost_keyword_arguments():
    starter = define(ex.STARTER, "SlowPhotos", header=PHOTOS_HEADER)
    rejected(ex.q3, starter, "workers=1", "never reach Keras", "super().__init__(**kwargs)")


def test_q3_accepts_a_cache_on_disk_read_once():
    answer = photos("super().__init__(**kwargs)", extra="", getitem="""
if not hasattr(self, "pixels"):
    raise RuntimeError("no cache")
rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
return self.pixels[rows].astype(np.float32) / 255.0, self.labels[rows]
""")
    original_init = answer.__init__

    def init_with_cache(self, image_dir, filenames, labels, batch_size=32, image_size=64, **kwargs):
        original_init(self, image_dir, filenames, labels, batch_size, image_size, **kwargs)
        path = Path(image_dir) / "cache.npy"  # lesson 07: one photo at a time into a memory-mapped file
        pixels = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8,
                                           shape=(len(self.filenames), image_size, image_size, 3))
        for i, name in enumerate(self.filenames):
            pixels[i] = ex.read_photo(self.image_dir / name, image_size)
        pixels.flush()
        del pixels
        self.pixels = np.load(path, mmap_mode="r")

    answer.__init__ = init_with_cache
    outcome = ex.q3.evaluate(answer)
    assert outcome.status == "Correct" and "cache on disk" in outcome.message, outcome


@pytest.mark.parametrize("init, getitem, extra, phrases", [
    ("super().__init__(workers=4)", "", "", ("workers=4", "never reach Keras")),
    ("super().__init__(**{**kwargs, 'max_queue_size': 64})", "", "", ("max_queue_size=1", "queue")),
    ("super().__init__(**kwargs)\nself.use_multiprocessing = True", "", "", ("use_multiprocessing",)),
    # every photo decoded into a list in __init__: the data set in memory
    ("super().__init__(**kwargs)\nself.all = [ex.read_photo(Path(image_dir) / n, image_size) for n in filenames]",
     "rows = slice(index * self.batch_size, (index + 1) * self.batch_size)\n"
     "return np.stack(self.all[rows]).astype(np.float32) / 255.0, self.labels[rows]",
     "", ("data set in memory", "MB at once")),
    # batches remembered after they were served
    ("super().__init__(**kwargs)\nself.served = {}",
     "if index not in self.served:\n"
     "    rows = slice(index * self.batch_size, (index + 1) * self.batch_size)\n"
     "    images = [ex.read_photo(self.image_dir / n, self.image_size) for n in self.filenames[rows]]\n"
     "    self.served[index] = (np.stack(images).astype(np.float32) / 255.0, self.labels[rows])\n"
     "return self.served[index]", "", ("batches remembered", "data set in memory")),
    # a prefetch of every batch by a thread of its own, started in __init__
    ("super().__init__(**kwargs)\nself.ahead = {}\n"
     "threading.Thread(target=lambda: [self.ahead.setdefault(i, self.load(i)) for i in range(len(self))]).start()",
     "return self.ahead.pop(index) if index in self.ahead else self.load(index)",
     "", ("prefetch", "data set in memory")),
    # workers reach Keras, but one lock lets a single read wait on the drive at a time
    ("super().__init__(**kwargs)",
     "rows = slice(index * self.batch_size, (index + 1) * self.batch_size)\n"
     "with DRIVE_LOCK:\n"
     "    images = [ex.read_photo(self.image_dir / n, self.image_size) for n in self.filenames[rows]]\n"
     "return np.stack(images).astype(np.float32) / 255.0, self.labels[rows]",
     "DRIVE_LOCK = threading.Lock()", ("still waits", "one at a time")),
    ("super().__init__(**kwargs)",
     "rows = slice(index * self.batch_size, (index + 1) * self.batch_size)\n"
     "return np.stack([ex.read_photo(self.image_dir / n, self.image_size) for n in self.filenames[rows]]), "
     "self.labels[rows]", "", ("uint8", "float32")),
    ("super().__init__(**kwargs)",
     "rows = slice(index * self.batch_size, (index + 1) * self.batch_size)\n"
     "images = [ex.read_photo(self.image_dir / n, self.image_size) for n in self.filenames[rows]]\n"
     "return np.stack(images).astype(np.float32) / 255.0 / 255.0, self.labels[rows]", "", ("divided by 255 twice",)),
    ("super().__init__(**kwargs)",
     "rows = slice(index * self.batch_size, (index + 1) * self.batch_size)\n"
     "images = [ex.read_photo(self.image_dir / n, self.image_size) for n in self.filenames[rows]]\n"
     "return np.stack(images).astype(np.float32) / 255.0, self.labels[rows][::-1]", "", ("its own label",)),
], ids=["workers-hardcoded", "huge-queue", "processes", "all-in-a-list", "batches-remembered", "prefetch-all",
        "serialised-reads", "uint8", "scaled-twice", "labels-shuffled"])
def test_q3_rejects_what_keeps_the_model_waiting_or_the_photos_in_memory(init, getitem, extra, phrases):
    answer = photos(init, getitem, extra)
    if "self.load(" in getitem or "self.load(" in init:
        def load(self, index):
            rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
            images = [ex.read_photo(self.image_dir / n, self.image_size) for n in self.filenames[rows]]
            return np.stack(images).astype(np.float32) / 255.0, self.labels[rows]
        answer.load = load
    rejected(ex.q3, answer, *phrases)
