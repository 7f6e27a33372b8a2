"""Views of lesson 09's backbone for its checks and the tests, and the fine-tuned model ``make bench`` times.

:func:`bn_statistics` and :func:`backbone_features` let the lesson's checks and the tests see the two traps of
fine-tuning (BatchNormalization statistics that move, a backbone fed the wrong scale);
:func:`fine_tuned_model` is lesson 09's model as phase 2 trains it.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from .transfer import build_transfer_model, load_backbone, unfreeze_top


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
