"""Lesson 09's model (seedlings_utils.transfer, exported from the notebook): the two traps, the weights.

Each trap has a test that fails if the lesson's model gets it wrong, and a control that shows the test
can tell: a model without the rescaling, and the Keras 2 recipe that relies on ``training=False``.
Nothing here touches a network: the ImageNet download is simulated, failing as it does offline.
"""

from __future__ import annotations

import socket
import urllib.error

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from seedlings_utils import backbone_views, transfer
from seedlings_utils.pretrained_weights import IMAGENET_WEIGHTS_FILE, IMAGENET_WEIGHTS_URL, WeightsUnavailableError

SIZE, CLASSES = 32, 3  # 32 px: the smallest input MobileNetV3 takes, to keep the tests short


def build(augment: bool = True, seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return transfer.build_transfer_model(transfer.load_backbone(SIZE, None), CLASSES, augment=augment, seed=seed)


def batch(n: int = 8, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, SIZE, SIZE, 3), dtype=np.float32), np.arange(n) % CLASSES


def values(variables) -> list[np.ndarray]:
    return [v.numpy() for v in variables]


def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def close(a, b, rtol: float = 1e-3) -> bool:
    """Equal up to ``rtol`` of the largest value (a random backbone gives tiny outputs: no absolute tolerance)."""
    a, b = np.asarray(a), np.asarray(b)
    return bool(np.abs(a - b).max() <= rtol * np.abs(b).max())


def eager(model: keras.Model) -> keras.Model:
    """Train without tracing a graph (seconds instead of tens of seconds on 2 cores); `training` flows the same way."""
    model.run_eagerly = True
    return model


# ---- trap 1: the input range ------------------------------------------------------------------------------------


def test_the_backbone_gets_what_its_preprocess_input_makes_of_0_255_pixels():
    model = build()
    backbone = model.get_layer(transfer.BACKBONE_NAME)
    x, _ = batch()
    expected = backbone(keras.applications.mobilenet_v3.preprocess_input(x * 255.0), training=False)
    fed = backbone_views.backbone_features(model)(x, training=False)
    assert close(fed, expected)
    # control: the same backbone fed the loader's [0, 1] images directly gives other features
    inputs = keras.Input((SIZE, SIZE, 3))
    unscaled = keras.Model(inputs, backbone(inputs, training=False))
    assert not close(unscaled(x), expected, rtol=0.1)
    # and the backbone's own first layer maps 0-255 to [-1, 1], as the lesson says
    first = np.asarray(backbone.layers[1](np.array([[[[0.0, 127.5, 255.0]]]], dtype=np.float32)))
    assert np.allclose(first, [-1.0, 0.0, 1.0])


# ---- phase 1 and trap 2: BatchNormalization in inference mode -----------------------------------------------------


@pytest.mark.slow
def test_phase1_trains_the_head_and_leaves_the_backbone_alone():
    model = build()
    backbone = model.get_layer(transfer.BACKBONE_NAME)
    head_before, backbone_before = values(model.get_layer("species").weights), values(backbone.weights)
    x, y = batch()
    eager(model).fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert same(values(backbone.weights), backbone_before), "phase 1 must not change the backbone (nor its BN averages)"
    assert not same(values(model.get_layer("species").weights), head_before), "the head must learn in phase 1"


def bn_layers(backbone):
    return [layer for layer in backbone.layers if isinstance(layer, layers.BatchNormalization)]


@pytest.mark.slow
def test_phase2_fine_tunes_the_top_and_keeps_batchnorm_in_inference_mode():
    model = transfer.unfreeze_top(build(), top_layers=33, learning_rate=1e-3)
    backbone = model.get_layer(transfer.BACKBONE_NAME)
    top, bottom = backbone.layers[-33:], backbone.layers[:-33]
    top_kernels = [w for layer in top if isinstance(layer, layers.Conv2D) for w in layer.trainable_weights]
    assert top_kernels and not [layer.name for layer in bn_layers(backbone) if layer.trainable]
    assert not [layer.name for layer in bottom if layer.trainable_weights]
    before_bn, before_top, before_bottom = (backbone_views.bn_statistics(model), values(top_kernels),
                                            values(w for layer in bottom for w in layer.weights))
    x, y = batch()
    eager(model).fit(x, y, batch_size=4, epochs=1, verbose=0)  # fit calls the model with training=True
    assert same(backbone_views.bn_statistics(model), before_bn), "fine-tuning moved BatchNormalization averages"
    assert same(values(w for layer in bottom for w in layer.weights), before_bottom), "the bottom must stay frozen"
    assert not same(values(top_kernels), before_top), "the top of the backbone must learn in phase 2"
    # in training mode the backbone computes exactly what it computes in inference mode
    assert np.array_equal(backbone(x * 255, training=True), backbone(x * 255, training=False))


@pytest.mark.slow
def test_control_the_keras2_recipe_lets_fit_move_batchnorm_averages():
    """Keras 3.15: the model called with training=True (as fit calls it at every step) overrides the training=False
    written in the model (keras-team/keras#20285), so trainable BatchNormalization layers update their averages.
    If this fails, a Keras release changed that behaviour, and lesson 09's text about trap 2 must change with it."""
    model = build()
    backbone = model.get_layer(transfer.BACKBONE_NAME)
    backbone.trainable = True  # the Keras 2 recipe: everything unfrozen, relying on backbone(x, training=False)
    before = backbone_views.bn_statistics(model)
    x, _ = batch()
    model(x, training=True)
    assert not same(backbone_views.bn_statistics(model), before)
    inference = backbone_views.bn_statistics(model)
    model(x)  # without training=, the training=False written in the model holds
    assert same(backbone_views.bn_statistics(model), inference)


@pytest.mark.slow
def test_fine_tuned_model_is_phase_2_for_the_benchmark():
    keras.utils.set_random_seed(0)
    model = backbone_views.fine_tuned_model(CLASSES, SIZE, seed=0)
    backbone = model.get_layer(transfer.BACKBONE_NAME)
    assert backbone.trainable and model.get_layer("augmentation") is not None
    assert not [layer.name for layer in bn_layers(backbone) if layer.trainable]
    assert len(model.trainable_weights) > 2  # more than the head's kernel and bias


# ---- weights: None, a file on disk, offline ------------------------------------------------------------------


@pytest.mark.slow
def test_weights_none_and_a_local_weights_file(tmp_path):
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    keras.utils.set_random_seed(0)
    original = transfer.load_backbone(SIZE, None)
    saved = tmp_path / "mobilenet_v3_small.weights.h5"
    original.save_weights(saved)
    assert same(values(transfer.load_backbone(SIZE, str(saved)).weights), values(original.weights))
    assert not same(values(transfer.load_backbone(SIZE, None).weights), values(original.weights))  # random again
    # the older .h5 layout, the one of the file Keras downloads for weights="imagenet"
    legacy = tmp_path / "weights_mobilenet_v3_small_no_top.h5"
    with h5py.File(legacy, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, original)
    assert same(values(transfer.load_backbone(SIZE, legacy).weights), values(original.weights))


def test_offline_the_imagenet_download_fails_with_one_clear_message(monkeypatch, tmp_path):
    import keras.src.backend.config as keras_config
    import keras.src.utils.file_utils as file_utils

    attempts = []

    def no_network(url, *args, **kwargs):  # what urllib raises without a network; nothing is sent anywhere
        attempts.append(url)
        raise urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(file_utils, "urlretrieve", no_network)
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(tmp_path))  # no weights cached from an earlier run
    with pytest.raises(WeightsUnavailableError) as caught:
        transfer.load_backbone(SIZE, "imagenet")
    assert attempts == [IMAGENET_WEIGHTS_URL]
    message = str(caught.value)
    assert "Could not download the ImageNet weights" in message and "No network?" in message
    assert "WEIGHTS = None" in message and "set WEIGHTS to its path" in message
    assert IMAGENET_WEIGHTS_FILE in message
    # one message, not Keras' traceback: no chained exception, and IPython shows only this line
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert caught.value._render_traceback_() == [f"WeightsUnavailableError: {message}"]
    assert "\n" not in message


@pytest.mark.slow
def test_a_missing_or_foreign_weights_file_says_what_to_do(tmp_path):
    with pytest.raises(WeightsUnavailableError, match="is not a file.*WEIGHTS = None"):
        transfer.load_backbone(SIZE, tmp_path / "nowhere.weights.h5")
    other = keras.Sequential([keras.Input((SIZE, SIZE, 3)), layers.Conv2D(2, 3), layers.Flatten(), layers.Dense(2)])
    foreign = tmp_path / "other.weights.h5"
    other.save_weights(foreign)
    with pytest.raises(WeightsUnavailableError, match="does not hold weights this backbone can load"):
        transfer.load_backbone(SIZE, foreign)


# ---- mixed precision, augmentation in the pipeline ---------------------------------------------------------------


def test_mixed_precision_computes_in_float16_with_a_float32_output():
    try:
        assert transfer.use_mixed_precision(True) == "mixed_float16"
        model = build(augment=False)
        assert model.output.dtype == "float32"
        assert model.get_layer(transfer.BACKBONE_NAME).compute_dtype == "float16"
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    finally:
        assert transfer.use_mixed_precision(False) == "float32"
    assert keras.mixed_precision.dtype_policy().name == "float32"


def test_augment_in_pipeline_changes_images_every_epoch_and_keeps_labels():
    image = np.arange(SIZE * SIZE * 3, dtype=np.float32).reshape(1, SIZE, SIZE, 3) / (SIZE * SIZE * 3)
    ds = tf.data.Dataset.from_tensor_slices((np.repeat(image, 8, axis=0), np.arange(8))).batch(4)
    augmented = transfer.augment_in_pipeline(ds, seed=1)
    epochs = [list(augmented.as_numpy_iterator()) for _ in range(2)]
    for epoch in epochs:
        assert np.array_equal(np.concatenate([y for _, y in epoch]), np.arange(8))
        assert not any(np.allclose(x, image[0]) for xs, _ in epoch for x in xs)
    assert not np.allclose(epochs[0][0][0], epochs[1][0][0])
