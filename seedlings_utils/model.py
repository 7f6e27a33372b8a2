"""The course's CNN, trained from scratch on the seedlings images."""

from __future__ import annotations

import keras
from keras import layers


def build_augmentation(seed: int | None = None) -> keras.Sequential:
    """Random flips and rotations: a seedling photographed from above has no "up".

    Keras runs these layers only while training; at inference they pass images through unchanged.
    """
    return keras.Sequential(
        [
            layers.RandomFlip("horizontal_and_vertical", seed=seed),
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

    Inputs are ``(image_size, image_size, 3)`` float images scaled to [0, 1]; labels are integer class
    ids (hence ``sparse_categorical_crossentropy``: no one-hot arrays as in the 2019 recipe).
    At 128 px with 4 blocks (about 1.2 M weights) this is the recipe we give a learner with a GPU and
    the real data; ``base_filters=16`` and a small ``image_size`` make a quick CPU run.
    """
    inputs = keras.Input(shape=(image_size, image_size, 3), name="image")
    x = build_augmentation(seed)(inputs) if augment else inputs
    filters = base_filters
    for block in range(blocks):
        for conv in range(2):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"block{block}_conv{conv}")(x)
            x = layers.BatchNormalization(momentum=0.9, name=f"block{block}_bn{conv}")(x)
            x = layers.ReLU(name=f"block{block}_relu{conv}")(x)
        x = layers.MaxPooling2D(name=f"block{block}_pool")(x)
        filters *= 2
    x = layers.GlobalAveragePooling2D(name="global_pool")(x)
    x = layers.Dropout(dropout, seed=seed, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="species")(x)
    model = keras.Model(inputs, outputs, name="seedlings_cnn")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
