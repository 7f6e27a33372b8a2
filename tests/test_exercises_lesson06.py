"""Lesson 06's exercise checks reject typical wrong answers, each with a message naming the mistake.

(That every reference solution passes its check is tests/test_export_and_exercises.py's job.)
"""

from __future__ import annotations

import textwrap

import pytest

from seedlings_utils.exercises import CORRECT
from seedlings_utils.exercises import lesson06 as ex

from .helpers import define, rejected

# ---- Exercise 1: output layer and loss for integer labels ------------------------------------------------


def classifier(head: str):
    """A build_tiny_classifier whose last lines (output layer, model, compile) are ``head``."""
    return define(f'''
import keras
from keras import layers


def build_tiny_classifier(num_classes, image_size, one_hot=False):
    inputs = keras.Input(shape=(image_size, image_size, 3))
    x = layers.Conv2D(8, 3, activation="relu")(inputs)
    x = layers.GlobalAveragePooling2D()(x)
{textwrap.indent(textwrap.dedent(head).strip(), "    ")}
    return model
''', "build_tiny_classifier")


def head(output='Dense(num_classes, activation="softmax")', loss="sparse_categorical_crossentropy",
         metrics=True, compiled=True) -> str:
    """The last lines of a build_tiny_classifier: its output layer, and its compile call (if ``compiled``)."""
    lines = f"model = keras.Model(inputs, layers.{output}(x))\n"
    if compiled:
        lines += f'model.compile(optimizer="adam", loss="{loss}"' + (', metrics=["accuracy"]' if metrics else "") + ")"
    return lines


@pytest.mark.parametrize("changes, phrases", [
    (dict(loss="categorical_crossentropy"),
     ("categorical_crossentropy expects one-hot labels", "sparse_categorical_crossentropy")),
    (dict(output='Dense(1, activation="sigmoid")'), ("output shape is (None, 1)", "(None, 3)")),
    (dict(output='Dense(num_classes, activation="sigmoid")'), ("not 1", "activation='softmax'")),
    (dict(output='Dense(num_classes, activation="sigmoid")', loss="binary_crossentropy"),
     ("binary_crossentropy is for yes/no",)),
    (dict(metrics=False), ("metrics=['accuracy']",)),
    (dict(compiled=False), ("not compiled",)),
    (dict(), ("one_hot=True", "still sparse_categorical_crossentropy", "categorical_crossentropy")),  # always sparse
], ids=["categorical-for-integers", "one-output", "sigmoid", "binary", "no-accuracy", "not-compiled",
        "sparse-for-one-hot"])
def test_q1_rejects_wrong_outputs_and_losses(changes, phrases):
    rejected(ex.q1, classifier(head(**changes)), *phrases)


def test_q1_accepts_logits_with_from_logits():
    logits = classifier('''
        model = keras.Model(inputs, layers.Dense(num_classes)(x))
        losses = keras.losses.CategoricalCrossentropy, keras.losses.SparseCategoricalCrossentropy
        model.compile(optimizer="adam", loss=losses[0 if one_hot else 1](from_logits=True), metrics=["accuracy"])
    ''')
    assert ex.q1.evaluate(logits).status == CORRECT


def test_q1_rejects_an_answer_without_the_one_hot_argument():
    no_flag = define('''
import keras
from keras import layers


def build_tiny_classifier(num_classes, image_size):
    inputs = keras.Input(shape=(image_size, image_size, 3))
    outputs = layers.Dense(num_classes, activation="softmax")(layers.GlobalAveragePooling2D()(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
''', "build_tiny_classifier")
    rejected(ex.q1, no_flag, "keep the argument one_hot=False")


# ---- Exercise 2: augmentation inside the model, in training only -----------------------------------------

AUGMENTATION = '''
import keras
import tensorflow as tf
from keras import layers


def with_augmentation(model, seed=None):
    inputs = keras.Input(shape=model.input_shape[1:])
{body}
    return keras.Model(inputs, model(x))
'''


def augmenter(body: str):
    return define(AUGMENTATION.format(body=textwrap.indent(textwrap.dedent(body).strip(), "    ")),
                  "with_augmentation")


def test_q2_rejects_augmentation_that_also_runs_at_inference():
    always = augmenter("x = layers.Lambda(lambda t: tf.image.flip_left_right(t))(inputs)")
    rejected(ex.q2, always, "at inference", "validation and the submission would see flipped", "Lambda")


def test_q2_rejects_no_augmentation_in_training():
    rejected(ex.q2, lambda model, seed=None: model, "unchanged 12 times out of 12", "RandomFlip")


def test_q2_accepts_augmentation_whatever_training_flag_was_given_when_building():
    # In Keras 3.15 fit, evaluate and predict pass `training` explicitly, which overrides a flag given while
    # building the functional model: such an answer works in fit and predict, so the check accepts it.
    forced = augmenter('''
        x = layers.RandomFlip("horizontal_and_vertical", seed=seed)(inputs, training=True)
        x = layers.RandomRotation(0.5, fill_mode="reflect", seed=seed)(x, training=True)
    ''')
    assert ex.q2.evaluate(forced).status == CORRECT


def test_q2_rejects_random_flip_alone():
    flips_only = augmenter('x = layers.RandomFlip("horizontal_and_vertical", seed=seed)(inputs)')
    rejected(ex.q2, flips_only, "only ever flipped, never turned", "RandomRotation")


def test_q2_rejects_flipping_one_way_only():
    one_way = augmenter('x = layers.RandomFlip("horizontal", seed=seed)(inputs)')
    rejected(ex.q2, one_way, "only ever flipped left-right", "horizontal_and_vertical")


def test_q2_rejects_augmenting_the_output_instead_of_the_input():
    after = define('''
import keras
from keras import layers


def with_augmentation(model, seed=None):
    inputs = keras.Input(shape=model.input_shape[1:])
    return keras.Model(inputs, layers.Dense(5)(model(inputs)))
''', "with_augmentation")
    rejected(ex.q2, after, "returned shape")


# ---- Exercise 3: resume after an interrupt, keep the lowest val_loss -------------------------------------

CALLBACKS = '''
import csv
from pathlib import Path

import keras


def resumable_callbacks(results_dir):
    results_dir = Path(results_dir)
    resuming = (results_dir / "training_backup").exists()
    threshold = None
    if {condition}:
        with open(results_dir / "history.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        threshold = {threshold}
    return [
        {backup}
        keras.callbacks.ModelCheckpoint(str(results_dir / "model.keras"), monitor="{monitor}", save_best_only={best},
                                        initial_value_threshold=threshold),
        keras.callbacks.CSVLogger(str(results_dir / "history.csv"), append={append}),
    ]
'''
RIGHT = dict(condition='resuming and (results_dir / "history.csv").is_file()',
             threshold='min(float(r["val_loss"]) for r in rows)', monitor="val_loss", best="True",
             append="resuming", backup='keras.callbacks.BackupAndRestore(str(results_dir / "training_backup")),')


def callbacks(**changes: str):
    return define(CALLBACKS.format(**{**RIGHT, **changes}), "resumable_callbacks")


@pytest.mark.slow
def test_q3_accepts_the_template_written_right():
    assert ex.q3.evaluate(callbacks()).status == CORRECT


@pytest.mark.slow
def test_q3_rejects_a_checkpoint_that_forgets_the_best_score_on_resume():
    rejected(ex.q3, callbacks(threshold="None"), "after the resume, epoch 4", "overwrote model.keras",
             "initial_value_threshold")


@pytest.mark.slow
def test_q3_rejects_the_last_rows_score_as_threshold():
    rejected(ex.q3, callbacks(threshold='float(rows[-1]["val_loss"])'), "epoch 5", "last epoch's val_loss",
             "lowest")


@pytest.mark.slow
def test_q3_rejects_the_lessons_val_accuracy_and_save_everything():
    rejected(ex.q3, callbacks(monitor="val_accuracy", threshold="None"), "when val_accuracy improved",
             'monitor="val_loss"')
    rejected(ex.q3, callbacks(best="False"), "after every epoch", "save_best_only=True")


@pytest.mark.slow
def test_q3_rejects_a_threshold_read_from_an_earlier_runs_history():
    # a fresh run (no training_backup/) obeys the best score of a finished run's history.csv: no epoch beats it
    rejected(ex.q3, callbacks(condition='(results_dir / "history.csv").is_file()'), "a fresh run",
             "model.keras was never written", "old history.csv", "only when resuming")


@pytest.mark.slow
def test_q3_rejects_always_appending_to_history():
    # a fresh run appends its rows under a finished run's
    rejected(ex.q3, callbacks(append="True"), "the 3 rows of an earlier, finished run",
             "append=True only when resuming")


@pytest.mark.parametrize("changes, phrase", [
    (dict(backup=""), "ran 5 epochs, not the 2 missing ones"),
    (dict(append="False"), "history.csv holds epochs 4, 5"),
], ids=["no-backup", "history-restarted"])
@pytest.mark.slow
def test_q3_rejects_no_resume_and_a_restarted_history(changes, phrase):
    rejected(ex.q3, callbacks(**changes), phrase)

