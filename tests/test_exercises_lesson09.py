"""Lesson 09's exercise checks reject typical wrong answers, each with a message naming the mistake.

(That every reference solution passes its check is tests/test_export_and_exercises.py's job.)
"""

from __future__ import annotations

import textwrap

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

