"""Lesson 09's exercises: another backbone's input range; unfreezing the top with BatchNormalization kept
frozen; an input that costs nothing, to see how long the model waits for data.

Each check runs the learner's code on small arrays or a tiny stand-in network of its own (never the
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
# Exercise 2: unfreeze the top of a backbone, BatchNormalization kept frozen

TOP = 5  # layers the check asks to unfreeze


def _stand_in_backbone():
    """A tiny backbone in the image of MobileNetV3's: conv-BN-activation blocks, frozen as after phase 1."""
    import keras
    from keras import layers

    inputs = keras.Input((8, 8, 3))
    x = inputs
    for block in range(4):
        x = layers.Conv2D(4, 3, padding="same", use_bias=False, name=f"block{block}_conv")(x)
        x = layers.BatchNormalization(name=f"block{block}_bn")(x)
        x = layers.ReLU(name=f"block{block}_relu")(x)
    backbone = keras.Model(inputs, x, name="backbone")
    backbone.trainable = False  # phase 1
    return backbone


def _check_unfreeze(unfreeze_top_layers) -> str:
    import keras
    from keras import layers

    backbone = _stand_in_backbone()
    unfreeze_top_layers(backbone, TOP)
    bottom, top = backbone.layers[:-TOP], backbone.layers[-TOP:]
    bn = [layer for layer in backbone.layers if isinstance(layer, layers.BatchNormalization)]
    if not backbone.trainable or not backbone.trainable_weights:
        raise Incorrect("backbone.trainable is still False, so Keras trains none of its weights, whatever its layers "
                        "say (backbone.trainable_weights is empty). Set backbone.trainable = True first, then "
                        "freeze what must stay frozen")
    thawed_bottom = [layer.name for layer in bottom if layer.trainable and layer.weights]
    frozen_top = [layer.name for layer in top if not layer.trainable and layer.weights
                  and not isinstance(layer, layers.BatchNormalization)]
    if thawed_bottom and frozen_top:
        raise Incorrect(f"you unfroze the bottom ({thawed_bottom}) and froze the top ({frozen_top}): "
                        f"backbone.layers[-{TOP}:] are the last {TOP} layers, the ones to train; "
                        f"backbone.layers[:-{TOP}] the bottom, to keep frozen")
    if thawed_bottom:
        raise Incorrect(f"the bottom layers {thawed_bottom} are trainable too: only the last {TOP} layers "
                        f"(backbone.layers[-{TOP}:]) may learn; freeze backbone.layers[:-{TOP}], whose general "
                        "edges and textures stay as ImageNet made them")
    if frozen_top:
        raise Incorrect(f"the top layers {frozen_top} are frozen: the last {TOP} layers, BatchNormalization excepted, "
                        "must be trainable in phase 2")
    trainable_bn = [layer.name for layer in bn if layer.trainable]
    if trainable_bn:
        raise Incorrect(f"BatchNormalization layers {trainable_bn} are trainable. fit calls the model with "
                        "training=True, which in Keras 3.15 overrides the training=False written when calling the "
                        "backbone: a trainable BatchNormalization then normalises with each batch's statistics and "
                        "overwrites the moving averages it learned on ImageNet. Set trainable = False on every "
                        "BatchNormalization layer (a frozen one runs in inference mode)")
    # behaviour: one training step of a model around the backbone, the way the lesson builds it
    inputs = keras.Input((8, 8, 3))
    features = backbone(inputs, training=False)
    outputs = layers.Dense(2, activation="softmax")(layers.GlobalAveragePooling2D()(features))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy", run_eagerly=True)
    rng = np.random.default_rng(0)
    x, y = rng.random((8, 8, 8, 3), dtype=np.float32) * 3, np.arange(8) % 2
    before = {w.path: w.numpy() for w in backbone.weights}
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    changed = {w.path for w in backbone.weights if not np.array_equal(w.numpy(), before[w.path])}
    moving = sorted(p for p in changed if "moving" in p)
    if moving:
        raise Incorrect(f"one training step changed BatchNormalization statistics ({moving[0]} ...): keep every "
                        "BatchNormalization layer frozen (trainable = False)")
    top_weights = {w.path for layer in top for w in layer.trainable_weights}
    if not changed & top_weights:
        raise Incorrect("one training step changed none of the top layers' weights: make them trainable "
                        "(after backbone.trainable = True)")
    return (f"the last {TOP} layers learn, BatchNormalization excepted; one training step left every moving "
            "average as it was and changed only the top's weights.")


q2 = Exercise(
    name="q2",
    task="Write unfreeze_top_layers(backbone, n): the last n layers trainable, BatchNormalization and the rest frozen.",
    checker=_check_unfreeze,
    hint_text=("Three loops' worth: `backbone.trainable = True` (otherwise nothing inside can learn); then "
               "`layer.trainable = False` for every layer in `backbone.layers[:-n]`; then `layer.trainable = False` "
               "for every layer that is a `keras.layers.BatchNormalization`, wherever it is."),
    solution_code='''
from keras import layers


def unfreeze_top_layers(backbone, n):
    backbone.trainable = True  # first the whole backbone, or no layer inside it can learn
    for layer in backbone.layers[:-n]:
        layer.trainable = False  # the bottom stays as ImageNet made it
    for layer in backbone.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.trainable = False  # a frozen one runs in inference mode, even when fit says training=True
''',
    answer_name="unfreeze_top_layers",
)

# ---------------------------------------------------------------------------------------------------------
# Exercise 3: an input that costs nothing


def _counting_loader():
    """A PyDataset of 3 batches of 4 small images that counts how often a batch is read."""
    import keras

    class Counting(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            rng = np.random.default_rng(1)
            self.images = rng.random((12, 6, 6, 3), dtype=np.float32)
            self.labels = np.arange(12) % 3
            self.reads = 0

        def __len__(self):
            return 3

        def __getitem__(self, index):
            self.reads += 1
            return self.images[4 * index: 4 * index + 4], self.labels[4 * index: 4 * index + 4]

    return Counting()


def _check_free_input(repeat_one_batch) -> str:
    import tensorflow as tf

    loader = _counting_loader()
    expected_x, expected_y = loader.images[:4], loader.labels[:4]
    tf_loader = tf.data.Dataset.from_tensor_slices((loader.images, loader.labels)).batch(4)
    for kind, source in (("a PyDataset", loader), ("a tf.data.Dataset", tf_loader)):
        ds = repeat_one_batch(source)
        if not isinstance(ds, tf.data.Dataset):
            raise Incorrect(f"for {kind}, repeat_one_batch returned {type(ds).__name__}: return a tf.data.Dataset "
                            "(model.fit takes it, and it can repeat for ever at no cost)")
        reads = loader.reads
        elements = list(ds.take(6).as_numpy_iterator())
        if kind == "a PyDataset" and loader.reads > reads:
            raise Incorrect(f"taking 6 batches read the loader {loader.reads - reads} more times: your dataset still "
                            "loads from the loader at every step, so it costs what the loader costs. Read ONE batch "
                            "first (loader[0]), then serve that batch from memory")
        first = elements[0] if elements else None
        if first is not None and np.shape(first[0]) == expected_x.shape[1:]:
            raise Incorrect("each element is a single image, not a batch: from_tensor_slices cuts the batch into its "
                            "images. tf.data.Dataset.from_tensors(batch) keeps the whole batch as one element")
        if len(elements) < 6:
            raise Incorrect(f"your dataset ends after {len(elements)} element(s); model.fit must be able to take as "
                            "many steps as the loader has and more: add .repeat() (for ever)")
        for images, labels in elements:
            if np.shape(images) != expected_x.shape or not np.allclose(images, expected_x) \
                    or not np.array_equal(labels, expected_y):
                raise Incorrect(f"for {kind}, every element must be the loader's first batch, (images "
                                f"{expected_x.shape}, labels {expected_y.shape}), unchanged; got images of shape "
                                f"{np.shape(images)}")
        if int(ds.cardinality()) != int(tf.data.INFINITE_CARDINALITY):
            raise Incorrect(f"the dataset has {int(ds.cardinality())} elements; an input for as many steps as you "
                            "time should repeat for ever: .repeat() with no count")
    return ("one batch from memory, for ever: a step on it costs only the model. The time a loader adds on top of "
            "that is the time the model waits for data.")


q3 = Exercise(
    name="q3",
    task="Write repeat_one_batch(loader): a tf.data.Dataset that gives the loader's first batch again and again, "
         "reading the loader only once.",
    checker=_check_free_input,
    hint_text=("Get one batch: `loader[0]` for a PyDataset, `next(iter(loader))` for a tf.data.Dataset. Then "
               "`tf.data.Dataset.from_tensors(batch).repeat()`: from_tensors keeps the (images, labels) pair as ONE "
               "element (from_tensor_slices would cut it into single images), repeat() without a count never ends."),
    solution_code='''
import keras
import tensorflow as tf


def repeat_one_batch(loader):
    batch = loader[0] if isinstance(loader, keras.utils.PyDataset) else next(iter(loader))
    return tf.data.Dataset.from_tensors(tuple(batch)).repeat()  # one element, for ever, from memory
''',
    answer_name="repeat_one_batch",
)
