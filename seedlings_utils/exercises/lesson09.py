"""Lesson 09's exercises: another backbone's input range; a small CNN built for mixed precision; a loader that
makes the model wait, found and fixed.

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

# ---------------------------------------------------------------------------------------------------------
# Exercise 3: find and fix a loader that makes the model wait

#: the check's photos: COUNT of them, read at SIZE px in batches of BATCH, with WORKERS threads and a queue of QUEUE
COUNT, SIZE, BATCH, WORKERS, QUEUE = 120, 48, 2, 2, 1
#: how long the simulated network drive takes to serve one photo (a wait, not work: threads overlap it)
READ_SECONDS = 0.004
#: what the check's model takes per training step while it reads the first epoch (so that a queue can fill up)
STEP_SECONDS = 0.015
#: batches of float32 photos a loader may hold at once: Keras' queue, each worker's batch and its temporary copies
ALLOWED_BATCHES = 4 * (QUEUE + WORKERS)


class _Drive:
    """Counts what :func:`read_photo` does: reads, and the most reads waiting on the drive at the same time."""

    def __init__(self):
        import threading

        self._lock = threading.Lock()
        self.reads = self.in_flight = self.most_in_flight = 0

    def reset(self) -> None:
        with self._lock:
            self.reads = self.most_in_flight = 0

    def begin(self) -> None:
        with self._lock:
            self.reads += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)

    def end(self) -> None:
        with self._lock:
            self.in_flight -= 1


DRIVE = _Drive()


def read_photo(path, image_size: int) -> np.ndarray:
    """One photo from a slow network drive (a mounted Google Drive, say), as uint8 (image_size, image_size, 3).

    Every call waits ``READ_SECONDS`` for the drive before it decodes: the drive's latency, not work for the CPU,
    so several threads can wait at the same time. (A simulation: the exercise's photos are on the local disk.)
    """
    import time

    from PIL import Image

    DRIVE.begin()
    try:
        time.sleep(READ_SECONDS)
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB").resize((image_size, image_size), Image.Resampling.BILINEAR),
                              dtype=np.uint8)
    finally:
        DRIVE.end()


def photo_value(number: int) -> int:
    """The red value (0-255) of the check's photo ``number`` (0 to 119)."""
    return 3 + 2 * number


def photo_number(image) -> int:
    """Inverse of :func:`photo_value`, for an image as uint8 (0-255) or as float in [0, 1]."""
    red = float(np.asarray(image)[..., 0].mean())  # no float64 copy: the check measures what a loader holds
    red = red * 255 if red <= 1.0 else red
    return int(round((red - 3) / 2))


def photo_folder(folder, count: int = COUNT) -> list[str]:
    """``count`` small PNGs in ``folder``; photo i is plain, its red value :func:`photo_value` (i)."""
    from pathlib import Path

    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(count):
        names.append(f"photo_{i:04d}.png")
        Image.new("RGB", (40 + i % 7, 36), (photo_value(i), 128, 64)).save(folder / names[-1])
    return names


STARTER = '''
class SlowPhotos(keras.utils.PyDataset):
    """Batches of photos read from a slow network drive with ex.read_photo, in every epoch."""

    def __init__(self, image_dir, filenames, labels, batch_size=32, image_size=64, **kwargs):
        super().__init__()
        self.image_dir, self.filenames, self.labels = Path(image_dir), list(filenames), np.asarray(labels)
        self.batch_size, self.image_size = batch_size, image_size

    def __len__(self):
        return math.ceil(len(self.filenames) / self.batch_size)

    def __getitem__(self, index):
        rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
        images = [ex.read_photo(self.image_dir / name, self.image_size) for name in self.filenames[rows]]
        return np.stack(images).astype(np.float32) / 255.0, self.labels[rows]
'''


def _photos_in(batch, epoch: int, i: int) -> list[int]:
    """The photo numbers of one batch, after checking it: a pair, SIZE px, float32 in [0, 1], each photo's label."""
    if not (isinstance(batch, tuple) and len(batch) == 2):
        raise Incorrect(f"epoch {epoch}, batch {i}: __getitem__ must return a pair (images, labels)")
    images, labels = np.asarray(batch[0]), np.asarray(batch[1])
    if images.ndim != 4 or images.shape[1:] != (SIZE, SIZE, 3):
        raise Incorrect(f"epoch {epoch}, batch {i}: images of shape {images.shape}, expected (n, {SIZE}, {SIZE}, 3) "
                        f"with image_size={SIZE}")
    if images.dtype != np.float32:
        raise Incorrect(f"epoch {epoch}, batch {i}: images of dtype {images.dtype}: the model is fed float32 in "
                        "[0, 1], `.astype(np.float32) / 255.0` (a cache keeps uint8 and converts each batch)")
    top = float(images.max())
    if top > 1.0 + 1e-6:
        raise Incorrect(f"epoch {epoch}, batch {i}: values up to {top:.0f}: not in [0, 1]. Divide the 0-255 "
                        "pixels by 255, once")
    if top <= 1 / 255 + 1e-6:
        raise Incorrect(f"epoch {epoch}, batch {i}: every value is at most {top:.4f}: divided by 255 twice. "
                        "Divide by 255 exactly once")
    got = [photo_number(image) for image in images]
    if [int(v) for v in labels.ravel()] != got:
        raise Incorrect(f"epoch {epoch}, batch {i}: photos {got} came with labels {labels.ravel().tolist()}: "
                        "each photo must keep its own label")
    return got


def _epoch(ds, epoch: int, step_seconds: float = 0.0) -> None:
    """One epoch of ``ds`` read the way ``model.fit`` reads it, each batch checked and dropped, as a model would,
    after ``step_seconds`` (a model's pace, so that a queue larger than Keras' fills up)."""
    import contextlib
    import time

    from ..profiling import pydataset_batches

    numbers = []
    with contextlib.closing(pydataset_batches(ds)) as batches:
        for i, batch in enumerate(batches):
            numbers += _photos_in(batch, epoch, i)
            del batch
            time.sleep(step_seconds)
    if numbers != list(range(COUNT)):
        raise Incorrect(f"epoch {epoch} served photos {numbers[:8]}... ({len(numbers)} in all); expected each of the "
                        f"{COUNT} once, in the order of the file names, as SlowPhotos serves them")


def _warm_up() -> None:
    """One epoch of a tiny loader through Keras' adapter, so that what Python allocates once (imports, the thread
    pool's machinery) is not counted as the learner's loader holding photos."""
    import contextlib

    import keras

    from ..profiling import pydataset_batches

    class Zeros(keras.utils.PyDataset):
        def __len__(self):
            return 3

        def __getitem__(self, index):
            return np.zeros((BATCH, SIZE, SIZE, 3), np.float32), np.zeros(BATCH)

    with contextlib.closing(pydataset_batches(Zeros(workers=WORKERS, max_queue_size=QUEUE))) as batches:
        for _ in batches:
            pass


def _settings_reach_keras(ds, caught) -> None:
    """The workers and queue the check passed are what Keras sees, with threads (not processes)."""
    if any("super().__init__" in str(w.message) for w in caught) or ds.workers != WORKERS:
        raise Incorrect(f"the check passed workers={WORKERS}, but Keras sees workers={ds.workers}: your keyword "
                        "arguments never reach Keras, so it loads one batch at a time. Hand them on: "
                        "super().__init__(**kwargs)")
    if ds.max_queue_size != QUEUE:
        raise Incorrect(f"the check passed max_queue_size={QUEUE}, but Keras sees {ds.max_queue_size}: every batch "
                        "in that queue is decoded images in memory. Pass the keyword arguments on as they come, "
                        "super().__init__(**kwargs)")
    if ds.use_multiprocessing:
        raise Incorrect("your class turns use_multiprocessing on: keep what the caller passes "
                        "(super().__init__(**kwargs)); threads are what overlap the drive's waits here")


def _check_fast_photos(FastPhotos) -> str:  # noqa: N803 (the learner's class)
    import tempfile
    import warnings

    from .lesson05 import _pydataset_class
    from .loader_checks import watch

    cls = _pydataset_class(FastPhotos, "FastPhotos")
    _warm_up()
    with tempfile.TemporaryDirectory() as tmp:
        folder = f"{tmp}/drive"
        names = photo_folder(folder)
        labels = np.arange(COUNT)
        image_bytes = SIZE * SIZE * 3  # one decoded photo as uint8
        DRIVE.reset()
        with warnings.catch_warnings(record=True) as caught, watch() as held:
            warnings.simplefilter("always")
            ds = cls(folder, names, labels, batch_size=BATCH, image_size=SIZE, workers=WORKERS, max_queue_size=QUEUE)
            _settings_reach_keras(ds, caught)
            _epoch(ds, 1, STEP_SECONDS)  # at a model's pace: a queue or a prefetch larger than allowed fills up
        limit = ALLOWED_BATCHES * BATCH * 4 * image_bytes  # that many batches of float32 photos
        if held.peak_bytes > limit or held.most_images > COUNT // 4:
            raise Incorrect(f"your loader held {held.peak_bytes / 1e6:.2f} MB at once ({held.most_images} Pillow "
                            f"images alive at most), more than {ALLOWED_BATCHES} batches of decoded photos "
                            f"({limit / 1e6:.2f} MB), where the check's {COUNT} photos take "
                            f"{COUNT * image_bytes / 1e6:.2f} MB as uint8: "
                            "an in-memory cache, a prefetch of many batches, or batches remembered after they were "
                            "served. That is the data set in memory, what this course exists to avoid. Let Keras' "
                            "workers overlap the reads, or cache the decoded photos on disk (lesson 07)")
        DRIVE.reset()
        _epoch(ds, 2)
        reads, at_once = DRIVE.reads, max(1, DRIVE.most_in_flight)
    waits = reads / at_once  # photo reads the model waits for, one after the other, in a steady epoch
    if waits > 0.6 * COUNT:
        raise Incorrect(f"the model still waits for the drive: in the second epoch your loader read {reads} photos, "
                        f"{'one at a time' if at_once == 1 else f'at most {at_once} at once'}, as SlowPhotos does "
                        f"({COUNT}, one at a time). Let Keras' workers read in parallel, or read each photo once "
                        "into a cache on disk")
    if reads == 0:
        how = (f"your loader read every photo once, before training, into a cache on disk: the second epoch "
               f"waited for no read at all (SlowPhotos waits for {COUNT} reads per epoch)")
    else:
        how = (f"your loader's workers waited for up to {at_once} photos at once: {COUNT} reads per epoch take "
               f"the time of about {waits:.0f} (SlowPhotos: {COUNT}, one at a time)")
    return (f"{how}; batches float32 in [0, 1], every photo once with its label, workers={WORKERS} reached Keras, "
            f"and at most {held.peak_bytes / 1e6:.2f} MB held at once. On the lesson's model, wait_share would show "
            "the share of each step spent waiting fall.")


q3 = Exercise(
    name="q3",
    task=("SlowPhotos makes the model wait for a slow drive. Write FastPhotos, the same batches from the same "
          "arguments, so that the model waits less, without keeping the photos in memory."),
    checker=_check_fast_photos,
    hint_text=("Each ex.read_photo waits for the drive; SlowPhotos reads one photo after the other. Look at what "
               "happens to `workers=2` when you create it: `SlowPhotos(..., workers=2).workers`. With the keyword "
               "arguments handed on (`super().__init__(**kwargs)`), Keras' threads wait for several photos at once. "
               "(Reading every photo once into a cache on disk, as in lesson 07, also works.) An in-memory list of "
               "every photo is not a fix: it is the data set in memory."),
    solution_code='''
import math
from pathlib import Path

import keras
import numpy as np

from seedlings_utils.exercises import lesson09 as ex


class FastPhotos(keras.utils.PyDataset):
    def __init__(self, image_dir, filenames, labels, batch_size=32, image_size=64, **kwargs):
        super().__init__(**kwargs)  # workers reach Keras: its threads wait for several photos at once
        self.image_dir, self.filenames, self.labels = Path(image_dir), list(filenames), np.asarray(labels)
        self.batch_size, self.image_size = batch_size, image_size

    def __len__(self):
        return math.ceil(len(self.filenames) / self.batch_size)

    def __getitem__(self, index):
        rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
        images = [ex.read_photo(self.image_dir / name, self.image_size) for name in self.filenames[rows]]
        return np.stack(images).astype(np.float32) / 255.0, self.labels[rows]
''',
    answer_name="FastPhotos",
)
