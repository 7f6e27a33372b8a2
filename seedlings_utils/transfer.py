"""Lesson 09: transfer learning with a pretrained MobileNetV3Small, two phases, augmentation, mixed precision.

The technique (``load_backbone``, ``build_transfer_model``, ``unfreeze_top``, ``augment_in_pipeline``,
``use_mixed_precision``) is written in notebook 09's cells and exported below. This module adds what is
not the lesson: :func:`weights_help`, which turns a failed download of the ImageNet weights (offline) or a
wrong weights file into one message that says what to do; :func:`bn_statistics` and
:func:`backbone_features`, which the lesson's checks and the tests use to see the two traps; and
:func:`fine_tuned_model`, the model ``make bench`` times.
"""


from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from .model import build_augmentation

#: The file Keras downloads for ``MobileNetV3Small(include_top=False, weights="imagenet")``, and where from
IMAGENET_WEIGHTS_FILE = "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5"
IMAGENET_WEIGHTS_URL = f"https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v3/{IMAGENET_WEIGHTS_FILE}"


class WeightsUnavailableError(RuntimeError):
    """The backbone's weights could not be had; the message says what to do instead."""

    def _render_traceback_(self) -> list[str]:
        # IPython and Jupyter show this instead of a traceback: one message, not 40 lines from inside Keras
        return [f"{type(self).__name__}: {self}"]


def _raised_while_downloading(err: BaseException) -> bool:
    """True when ``err`` came out of Keras' download (``keras.utils.get_file``), e.g. no network."""
    tb = err.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name in ("get_file", "urlretrieve"):
            return True
        tb = tb.tb_next
    return False


@contextlib.contextmanager
def weights_help(weights) -> Iterator[None]:
    """Around building a ``keras.applications`` backbone: its weight failures become one clear message.

    ``weights="imagenet"`` without a network (or with a damaged download), a path that is not a file, or a
    file that holds another network's weights each raise :class:`WeightsUnavailableError` naming the fix:
    ``WEIGHTS = None`` (random weights, offline) or the path of a weights file already on disk.
    """
    fixes = ("Set WEIGHTS = None to train from random weights (works offline, but learns nothing from ImageNet), or "
             f"download {IMAGENET_WEIGHTS_FILE} on a machine with a network ({IMAGENET_WEIGHTS_URL}; after one "
             "successful run Keras keeps it in ~/.keras/models/), copy it here and set WEIGHTS to its path")
    if weights is not None and weights != "imagenet":
        path = Path(str(weights)).expanduser()
        if not path.is_file():
            raise WeightsUnavailableError(f"WEIGHTS = {str(weights)!r} is not a file. {fixes}.")
    # Keras warns about every layer of a file it cannot match before it fails: hold those warnings back, and
    # pass them on only if it does not fail (then they matter: some layers kept their random weights)
    with warnings.catch_warnings(record=True) as held:
        warnings.simplefilter("always")
        try:
            yield
        except Exception as err:
            explained = _explain(err, weights, fixes)
            if explained is None:
                raise
            raise explained from None  # one message; Keras' traceback says nothing more that helps
    for warning in held:
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)


def _explain(err: Exception, weights, fixes: str) -> WeightsUnavailableError | None:
    """The one message for a failure to get the weights, or ``None`` when ``err`` is about something else."""
    reason = str(err).splitlines()[0] if str(err) else type(err).__name__
    if weights == "imagenet" and _raised_while_downloading(err):
        return WeightsUnavailableError(f"Could not download the ImageNet weights ({reason[-160:]}). No network? "
                                       f"{fixes}.")
    if weights is not None and weights != "imagenet":
        return WeightsUnavailableError(f"WEIGHTS = {str(weights)!r} does not hold weights this backbone can load "
                                       f"({type(err).__name__}: {reason[:200]}). It must be a file saved from the "
                                       f"same network (MobileNetV3Small without its top): {IMAGENET_WEIGHTS_FILE}, "
                                       "or a .weights.h5 file written by backbone.save_weights(...). Or set "
                                       "WEIGHTS = None.")
    return None


# ---- BEGIN notebooks/09_transfer_learning_and_a_busy_gpu.ipynb: edit the notebook, then `make export` ----
def use_mixed_precision(enabled):
    """Layers built from now on compute in float16 with float32 weights (enabled) or all in float32."""
    policy = "mixed_float16" if enabled else "float32"
    keras.mixed_precision.set_global_policy(policy)
    return policy


BACKBONE_NAME = "backbone"  # its name inside our model: model.get_layer("backbone")


def load_backbone(image_size, weights="imagenet"):
    """MobileNetV3Small without its ImageNet classifier: (image_size, image_size, 3) images, 0-255 -> features.

    weights: "imagenet" (downloaded once), None (random: offline, nothing learned from ImageNet), or the
    path of a weights file saved from the same network.
    """
    with weights_help(weights):  # offline or a wrong file: one message that says what to do, no long traceback
        return keras.applications.MobileNetV3Small(
            input_shape=(image_size, image_size, 3),
            include_top=False,  # without the 1,000 ImageNet classes: our own head goes on top
            weights=weights,
            include_preprocessing=True,  # its first layer maps 0-255 to [-1, 1], as in its ImageNet training
            name=BACKBONE_NAME,
        )


def build_transfer_model(backbone, num_classes=12, augment=True, dropout=0.2, learning_rate=1e-3, seed=None):
    """Phase 1: augmentation, the frozen pretrained backbone and a new head, compiled.

    Inputs are float images in [0, 1], as every loader of the course gives them; labels are class ids.
    """
    image_size = backbone.input_shape[1]
    backbone.trainable = False  # phase 1: only the new head learns; ImageNet's features stay as they are
    inputs = keras.Input(shape=(image_size, image_size, 3), name="image")
    x = build_augmentation(seed)(inputs) if augment else inputs  # lesson 06's flips and turns, training only
    # Trap 1: our loaders give [0, 1], MobileNetV3 expects 0-255 (its own first layer rescales to [-1, 1]).
    # Without this line every image looks almost black to it
    x = layers.Rescaling(255.0, name="to_0_255")(x)
    x = backbone(x, training=False)  # inference mode, except under fit's training=True (see trap 2)
    x = layers.GlobalAveragePooling2D(name="global_pool")(x)  # one number per feature map
    x = layers.Dropout(dropout, seed=seed, name="dropout")(x)
    # float32 even under mixed precision: a float16 softmax rounds small probabilities to 0, and the loss logs them
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="species")(x)
    model = keras.Model(inputs, outputs, name="seedlings_transfer")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def unfreeze_top(model, top_layers=33, learning_rate=1e-5):
    """Phase 2: the backbone's last top_layers layers learn too, BatchNormalization excepted; recompiled."""
    backbone = model.get_layer(BACKBONE_NAME)
    backbone.trainable = True  # first the whole backbone, or no layer inside it can learn
    for layer in backbone.layers[:-top_layers]:
        layer.trainable = False  # the bottom: general edges and textures, kept as ImageNet made them
    for layer in backbone.layers:
        if isinstance(layer, layers.BatchNormalization):
            # Trap 2: a frozen BatchNormalization normalises with its ImageNet running averages whatever `training`
            # says. A trainable one, under fit's training=True (which overrides the training=False in the model),
            # normalises with each batch's statistics and overwrites the averages
            layer.trainable = False
    # recompile: trainable flags take effect at compile; 100x lower rate: adjust ImageNet's features, don't wipe them
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def augment_in_pipeline(dataset, seed=None):
    """The other placement: lesson 06's random flips and turns as a tf.data step, on the CPU, in parallel."""
    augmentation = build_augmentation(seed)
    # training=True: outside a model nothing says "training", and these layers must act on every batch
    augmented = dataset.map(lambda images, labels: (augmentation(images, training=True), labels),
                            num_parallel_calls=tf.data.AUTOTUNE)
    return augmented.prefetch(tf.data.AUTOTUNE)  # the next batches are augmented while the model trains
# ---- END notebooks/09_transfer_learning_and_a_busy_gpu.ipynb ----


def bn_statistics(model: keras.Model) -> list[np.ndarray]:
    """The moving mean and variance of every BatchNormalization layer inside ``model`` (copies, in layer order)."""
    found = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, layers.BatchNormalization):
            found += [layer.moving_mean.numpy(), layer.moving_variance.numpy()]
    return found


def backbone_features(model: keras.Model) -> keras.Model:
    """A model from ``model``'s input to what its backbone outputs (the input of the pooling after it)."""
    return keras.Model(model.input, model.get_layer("global_pool").input)


def fine_tuned_model(num_classes: int = 12, image_size: int = 224, weights=None, seed: int | None = None,
                     top_layers: int = 33) -> keras.Model:
    """Lesson 09's model as phase 2 trains it (the backbone's top unfrozen): what ``make bench`` times."""
    model = build_transfer_model(load_backbone(image_size, weights), num_classes, seed=seed)
    return unfreeze_top(model, top_layers)
