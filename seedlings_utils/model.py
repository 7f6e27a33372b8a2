"""Lesson 06: the course's CNN, trained from scratch on the seedlings images.

``build_cnn`` and ``build_augmentation`` are written in lesson 06's cells (below, between the markers);
lessons 07-08, the benchmark and the tests import them from here.
"""

from __future__ import annotations

import keras
from keras import layers


# ---- BEGIN notebooks/06_train_and_evaluate_a_cnn.ipynb: edit the notebook, then `make export` ----
def build_augmentation(seed: int | None = None) -> keras.Sequential:
    """Random flips and rotations: a seedling photographed from above has no "up".

    They act when the model runs in training (``fit`` calls it with ``training=True``); ``evaluate`` and
    ``predict`` call it with ``training=False``, and then they pass the images through unchanged. (A bare
    ``model(x)`` without ``training=`` does augment: in Keras 3.15 these layers default to training.)
    """
    return keras.Sequential(
        [
            layers.RandomFlip("horizontal_and_vertical", seed=seed),
            # 0.5 of a full turn: any angle from -180 to 180 degrees; "reflect" fills the corners with
            # mirrored leaves and soil instead of black triangles the model could learn to notice
            layers.RandomRotation(0.5, fill_mode="reflect", seed=seed),
        ],
        name="augmentation",
    )


def build_cnn(
    num_classes: int = 12,
    image_size: int = 128,
    base_filters: int = 32,
    blocks: int = 4,
    dropout: float = 0.4,
    augment: bool = True,
    learning_rate: float = 1e-3,
    seed: int | None = None,
) -> keras.Model:
    """A VGG-style CNN (conv-BN-ReLU pairs, filters doubling per block), compiled and ready to fit.

    Inputs are ``(image_size, image_size, 3)`` float images in [0, 1]; labels are integer class ids.
    At 128 px with 4 blocks and ``base_filters=32`` (about 1.2 M weights) this is the recipe for a GPU
    and the real data; ``base_filters=16`` and a small ``image_size`` make a quick CPU run.
    """
    inputs = keras.Input(shape=(image_size, image_size, 3), name="image")
    x = build_augmentation(seed)(inputs) if augment else inputs  # inside the model: active in training only
    filters = base_filters
    for block in range(blocks):
        for conv in range(2):  # two 3x3 convolutions see 5x5 pixels, with fewer weights than one 5x5
            # no bias: the batch normalisation right after adds its own learned shift
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"block{block}_conv{conv}")(x)
            # momentum 0.9 (Keras' default is 0.99): the averages used at inference follow training faster
            x = layers.BatchNormalization(momentum=0.9, name=f"block{block}_bn{conv}")(x)
            x = layers.ReLU(name=f"block{block}_relu{conv}")(x)
        x = layers.MaxPooling2D(name=f"block{block}_pool")(x)  # half the width and height ...
        filters *= 2  # ... and twice the filters in the next block
    x = layers.GlobalAveragePooling2D(name="global_pool")(x)  # one number per filter, whatever the image size
    x = layers.Dropout(dropout, seed=seed, name="dropout")(x)  # training only, like the augmentation
    outputs = layers.Dense(num_classes, activation="softmax", name="species")(x)  # probabilities over species
    model = keras.Model(inputs, outputs, name="seedlings_cnn")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",  # labels are class ids 0..11, not one-hot rows
        metrics=["accuracy"],  # val_accuracy: the score the checkpoint keeps the best of
    )
    return model
# ---- END notebooks/06_train_and_evaluate_a_cnn.ipynb ----
