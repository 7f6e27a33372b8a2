"""Lesson 09's exercises: another backbone's input range; a small CNN built for mixed precision.

Each check runs the learner's code on small arrays or a tiny model of its own (never the
notebook's data, model or files), in a second or two.
"""

from __future__ import annotations

import numpy as np

from . import Exercise, Incorrect

# ---------------------------------------------------------------------------------------------------------
# Exercise 1: ResNet50's input range and channel order

#: ImageNet's mean colour in the 0-255 scale, as ResNet50's ("caffe") preprocessing subtracts it, in BGR order
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)


def _images() -> np.ndarray:
    """A batch in [0, 1] whose three channels differ, so that a swap of red and blue shows."""
    rng = np.random.default_rng(9)
    images = rng.random((3, 5, 5, 3), dtype=np.float32)
    images[..., 0] *= 0.3  # little red, much blue: RGB and BGR look different
    images[..., 2] = 0.6 + 0.4 * images[..., 2]
    return images


def _check_resnet_input(to_resnet_input) -> str:
    from keras.applications import resnet50

    images = _images()
    given = images.copy()
    out = to_resnet_input(given)
    if out is None:
        raise Incorrect("to_resnet_input returned None: return the preprocessed batch")
    if not np.array_equal(given, images):
        raise Incorrect("your function changed the batch it was given: keras' preprocess_input works IN PLACE on a "
                        "float32 NumPy array, so the loader's images were modified too. Give it a new array "
                        "(`images * 255.0` is one)")
    out = np.asarray(out, dtype=np.float32)
    if out.shape != images.shape:
        raise Incorrect(f"the batch had shape {images.shape}, yours has {out.shape}: keep one image per image, "
                        "same size, three channels")
    expected = resnet50.preprocess_input(images * 255.0)
    if np.allclose(out, expected, atol=1e-3):
        return ("0-255, RGB turned into BGR, ImageNet's mean colour subtracted: what ResNet50 saw in training. "
                "Its model does not include this step (MobileNetV3's does): it belongs in your model or pipeline.")
    rgb255 = images * 255.0
    candidates = [
        (resnet50.preprocess_input(images.copy()),
         f"your values lie between {out.min():.0f} and {out.max():.0f}: preprocess_input subtracted ImageNet's mean "
         "colour, which is on the 0-255 scale, from pixels in [0, 1]. Multiply by 255 first"),
        (rgb255, "only the scale is right (0-255): ResNet50's preprocessing ('caffe' style) also turns RGB into BGR "
                 "and subtracts ImageNet's mean colour. keras.applications.resnet50.preprocess_input does both"),
        (rgb255 - CAFFE_MEAN_BGR[::-1], "the mean colour is subtracted, but the channels are still in RGB order: "
                                        "ResNet50 was trained on BGR images. preprocess_input reverses the last "
                                        "axis for you"),
        (rgb255 - CAFFE_MEAN_BGR, "the channels are still in RGB order, and each got the mean of another channel: "
                                  "ResNet50 wants BGR. Use keras.applications.resnet50.preprocess_input"),
        (images * 2.0 - 1.0, "that is the [-1, 1] range of MobileNet and EfficientNet ('tf' style); ResNet50 uses the "
                             "'caffe' style: 0-255, BGR, minus ImageNet's mean colour"),
        (images, "the batch came back unchanged, in [0, 1]: ResNet50 would see an almost black, wrongly coloured "
                 "image. Scale to 0-255, then apply keras.applications.resnet50.preprocess_input"),
        (images / 255.0, "you divided by 255 again: our loaders already give [0, 1] (the 2019 recipe's bug, lesson "
                         "05). ResNet50 wants 0-255 then preprocess_input"),
    ]
    for wrong, message in candidates:
        if np.allclose(out, wrong, atol=1e-3):
            raise Incorrect(message)
    raise Incorrect(f"the first pixel should be {np.round(expected[0, 0, 0], 2).tolist()} (BGR, 0-255 minus the "
                    f"mean colour) but is {np.round(out[0, 0, 0], 2).tolist()}. Compare with "
                    "keras.applications.resnet50.preprocess_input(images * 255.0)")


q1 = Exercise(
    name="q1",
    task="Write to_resnet_input(images): our [0, 1] float batch as keras.applications.ResNet50 expects it.",
    checker=_check_resnet_input,
    hint_text=("Each family documents its `preprocess_input`. ResNet50's takes pixels in 0-255 (so multiply by "
               "255 first), turns RGB into BGR and subtracts ImageNet's mean colour: "
               "`keras.applications.resnet50.preprocess_input(images * 255.0)`. Multiplying also makes a new "
               "array, which matters: preprocess_input changes a float32 array in place."),
    solution_code='''
from keras.applications import resnet50


def to_resnet_input(images):
    # 0-255 first (a new array: preprocess_input works in place), then BGR minus ImageNet's mean colour
    return resnet50.preprocess_input(images * 255.0)
''',
    answer_name="to_resnet_input",
)

# ---------------------------------------------------------------------------------------------------------
# Exercise 2: a small CNN under mixed precision

#: (image size, classes) the check builds the learner's model at
MIXED_SHAPES = ((32, 5), (24, 12))


def _build_under_mixed_policy(build_mixed_cnn, image_size: int, num_classes: int):
    """Call the learner's function under ``mixed_float16``, as the lesson does; the global policy is put back."""
    import keras

    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_mixed_cnn(image_size, num_classes)
        after = keras.mixed_precision.global_policy().name
    finally:
        keras.mixed_precision.set_global_policy(before)
    return model, after


def _check_mixed_cnn(build_mixed_cnn) -> str:
    import keras

    for image_size, num_classes in MIXED_SHAPES:
        model, policy_after = _build_under_mixed_policy(build_mixed_cnn, image_size, num_classes)
        what = f"build_mixed_cnn({image_size}, {num_classes})"
        if not isinstance(model, keras.Model):
            raise Incorrect(f"{what} returned {type(model).__name__}; return the keras.Model")
        if policy_after != "mixed_float16":
            raise Incorrect(f"{what} changed the global policy to {policy_after!r}: leave it as it is (the lesson sets "
                            "it once, before any layer is built); give a single layer its own dtype instead")
        layers = [layer for layer in model.layers if layer.weights]
        if not any(isinstance(layer, keras.layers.Conv2D) for layer in layers):
            raise Incorrect(f"{what}: no Conv2D layer; the exercise asks for a small CNN")
        float16 = [layer.name for layer in layers if layer.compute_dtype == "float16"]
        if not float16:
            raise Incorrect(f"{what}: no layer computes in float16, so mixed precision does nothing here. Was every "
                            "layer given dtype='float32', or the model built under another policy? Only the output "
                            "stays float32")
        half_weights = sorted({w.path for w in model.weights if w.dtype != "float32"})
        if half_weights:
            raise Incorrect(f"{what}: weights kept in float16 ({half_weights[:2]}...): small updates round away in "
                            "float16. Under mixed_float16 the weights stay float32 by themselves: don't give a layer "
                            "dtype='float16'")
        if model.output.dtype != "float32":
            last = model.layers[-1]
            where = (f"the last layer, {last.name} ({type(last).__name__}), computes in {last.compute_dtype}")
            raise Incorrect(f"{what}: the output is {model.output.dtype}: {where}. The softmax and the loss need "
                            "float32 digits: give the layer that applies the softmax dtype='float32' (a Dense with "
                            "dtype='float32' followed by a separate Activation('softmax') is still float16)")
        if tuple(model.output.shape[1:]) != (num_classes,):
            raise Incorrect(f"{what}: the output has shape {tuple(model.output.shape)}, expected "
                            f"(batch, {num_classes})")
        if getattr(model, "optimizer", None) is None or not getattr(model, "compiled", False):
            raise Incorrect(f"{what}: the model is not compiled; compile it (adam, sparse_categorical_crossentropy): "
                            "under mixed_float16, compile wraps the optimizer in a LossScaleOptimizer")
        images = np.random.default_rng(0).random((2, image_size, image_size, 3), dtype=np.float32)
        probabilities = np.asarray(model.predict(images, verbose=0))
        if not np.all(np.isfinite(probabilities)) or not np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-3):
            raise Incorrect(f"{what}: the outputs of two images sum to {probabilities.sum(axis=1).round(3).tolist()}, "
                            "not 1: end with a softmax over the classes")
    return (f"the convolutions compute in float16 ({len(float16)} layer(s)), every weight is float32, the softmax "
            "output is float32, and compile wrapped the optimizer in a LossScaleOptimizer.")


q2 = Exercise(
    name="q2",
    task="Write build_mixed_cnn(image_size, num_classes): a small CNN, compiled, ready for mixed_float16.",
    checker=_check_mixed_cnn,
    hint_text=("Don't touch the policy in your function: build the layers as usual, they take mixed_float16 from "
               "the global policy. Give the last layer, the one with activation='softmax', dtype='float32', and "
               "compile with an ordinary optimizer: Keras wraps it in a LossScaleOptimizer by itself."),
    solution_code="""
import keras
from keras import layers


def build_mixed_cnn(image_size, num_classes):
    inputs = keras.Input((image_size, image_size, 3))
    x = layers.Conv2D(16, 3, activation="relu")(inputs)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(32, 3, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32")(x)  # the output stays float32
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
""",
    answer_name="build_mixed_cnn",
)
