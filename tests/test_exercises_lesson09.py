"""Lesson 09's exercise checks reject typical wrong answers, each with a message naming the mistake.

(That every reference solution passes its check is tests/test_export_and_exercises.py's job.)
"""

from __future__ import annotations

import json
import textwrap

import pytest

from seedlings_utils.exercises import NOT_ATTEMPTED
from seedlings_utils.exercises import lesson09 as ex
from seedlings_utils.lessons import NOTEBOOKS_DIR

from .conftest import define, rejected

NOTEBOOK = NOTEBOOKS_DIR / "09_transfer_learning_and_a_busy_gpu.ipynb"


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


# ---- Exercise 2: unfreeze the top, BatchNormalization frozen ---------------------------------------------------


def unfreeze(body: str):
    return define(f'''
from keras import layers


def unfreeze_top_layers(backbone, n):
{textwrap.indent(textwrap.dedent(body).strip(), "    ")}
''', "unfreeze_top_layers")


def test_q2_rejects_the_keras2_recipe_that_leaves_batchnorm_trainable():
    wrong = unfreeze('''
        backbone.trainable = True
        for layer in backbone.layers[:-n]:
            layer.trainable = False
    ''')
    rejected(ex.q2, wrong, "BatchNormalization layers", "overrides the training=False", "trainable = False")


def test_q2_rejects_unfreezing_everything():
    rejected(ex.q2, unfreeze("backbone.trainable = True"), "the bottom layers", "trainable too")


def test_q2_rejects_setting_layers_without_the_backbone_itself():
    wrong = unfreeze('''
        for layer in backbone.layers[-n:]:
            layer.trainable = not isinstance(layer, layers.BatchNormalization)
    ''')
    rejected(ex.q2, wrong, "backbone.trainable is still False")


def test_q2_rejects_unfreezing_the_bottom_instead_of_the_top():
    wrong = unfreeze('''
        backbone.trainable = True
        for layer in backbone.layers[n:]:
            layer.trainable = False
        for layer in backbone.layers:
            if isinstance(layer, layers.BatchNormalization):
                layer.trainable = False
    ''')
    rejected(ex.q2, wrong, "you unfroze the bottom", "froze the top")


# ---- Exercise 3: an input that costs nothing --------------------------------------------------------------


def repeat(body: str):
    return define(f'''
import itertools

import keras
import tensorflow as tf


def repeat_one_batch(loader):
    batch = loader[0] if isinstance(loader, keras.utils.PyDataset) else next(iter(loader))
{textwrap.indent(textwrap.dedent(body).strip(), "    ")}
''', "repeat_one_batch")


def test_q3_rejects_from_tensor_slices_which_cuts_the_batch_into_images():
    rejected(ex.q3, repeat("return tf.data.Dataset.from_tensor_slices(tuple(batch)).repeat()"),
             "single image", "from_tensors")


def test_q3_rejects_a_dataset_that_ends():
    rejected(ex.q3, repeat("return tf.data.Dataset.from_tensors(tuple(batch))"), "ends after 1 element", ".repeat()")


def test_q3_rejects_reading_the_loader_at_every_step():
    wrong = repeat('''
        if not isinstance(loader, keras.utils.PyDataset):
            return tf.data.Dataset.from_tensors(tuple(batch)).repeat()
        spec = tuple(tf.TensorSpec(part.shape, tf.as_dtype(part.dtype)) for part in batch)
        return tf.data.Dataset.from_generator(lambda: (loader[0] for _ in itertools.count()), output_signature=spec)
    ''')
    rejected(ex.q3, wrong, "still loads from the loader at every step")


def test_q3_rejects_something_that_is_not_a_dataset():
    rejected(ex.q3, repeat("return batch"), "returned tuple", "return a tf.data.Dataset")


# ---- the notebook's untouched starters -------------------------------------------------------------------------


def test_untouched_starters_are_not_attempted():
    cells = ["".join(c["source"]) for c in json.loads(NOTEBOOK.read_text())["cells"] if c["cell_type"] == "code"]
    for q in (ex.q1, ex.q2, ex.q3):
        starter = next(c for c in cells if f"ex.{q.name}.check(" in c and "raise NotImplementedError" in c)
        namespace: dict = {}
        exec(starter.split(f"ex.{q.name}.check(")[0], namespace)
        assert q.evaluate(namespace[q.answer_name]).status == NOT_ATTEMPTED
