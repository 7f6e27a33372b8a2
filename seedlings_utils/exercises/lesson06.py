"""Lesson 06's exercises: an output layer and a loss that fits the labels (class ids or one-hot rows);
augmentation that runs only in training; callbacks that resume after an interrupt and keep the best model across it.

Each check builds a tiny Keras model on tiny arrays of its own (never the notebook's data or files).
"""

from __future__ import annotations

import csv
import hashlib
import tempfile
from pathlib import Path

import numpy as np

from . import Exercise, Incorrect

# ---------------------------------------------------------------------------------------------------------
# Exercise 1: the output layer and the loss for integer labels


def _loss_name(model) -> str:
    loss = getattr(model, "loss", None)
    name = loss if isinstance(loss, str) else getattr(loss, "name", None) or getattr(loss, "__name__", "")
    return str(name or type(loss).__name__).lower()


def _check_classifier(build_tiny_classifier) -> str:
    note = _check_integer_labels(build_tiny_classifier)
    _check_one_hot(build_tiny_classifier)
    return note + " With one_hot=True, categorical_crossentropy takes the one-hot rows: the loss follows the labels."


def _cross_entropy(probabilities: np.ndarray, y: np.ndarray) -> tuple[float, bool]:
    """The mean cross-entropy of class ids ``y`` under ``probabilities`` (or under their softmax: logits)."""
    if np.all(probabilities >= 0) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-4):
        return float(-np.mean(np.log(np.clip(probabilities[np.arange(len(y)), y], 1e-7, 1)))), True
    shifted = probabilities - probabilities.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-np.mean(log_softmax[np.arange(len(y)), y])), False


def _check_one_hot(build_tiny_classifier) -> None:
    num_classes, size = 3, 8
    try:
        model = build_tiny_classifier(num_classes, size, one_hot=True)
    except TypeError as err:
        if "one_hot" in str(err) or "positional argument" in str(err):
            raise Incorrect(f"build_tiny_classifier(3, 8, one_hot=True) failed ({err}): keep the argument "
                            "one_hot=False of the starter and choose the loss from it") from None
        raise
    name = _loss_name(model)
    if "sparse" in name:
        raise Incorrect("with one_hot=True the labels are one-hot rows, shape (12, 3), yet the loss is still "
                        "sparse_categorical_crossentropy, which wants one class id per image: when one_hot is True, "
                        "use loss='categorical_crossentropy'")
    if "categorical_crossentropy" not in name and "categoricalcrossentropy" not in name:
        raise Incorrect(f"with one_hot=True the loss is {name!r}: one-hot rows of one species per image take "
                        "loss='categorical_crossentropy'")
    rng = np.random.default_rng(1)
    x = rng.random((12, size, size, 3), dtype=np.float32)
    y = np.arange(12) % num_classes
    scores = model.evaluate(x, np.eye(num_classes, dtype=np.float32)[y], verbose=0, return_dict=True)
    expected, _ = _cross_entropy(model.predict(x, verbose=0), y)
    if not np.isclose(scores["loss"], expected, rtol=1e-3, atol=1e-4):
        raise Incorrect(f"with one_hot=True the loss on 12 images is {scores['loss']:.4f}, but the cross-entropy of "
                        f"the predicted probabilities is {expected:.4f}: softmax outputs with from_logits=False, or "
                        "raw scores with from_logits=True")


def _check_integer_labels(build_tiny_classifier) -> str:
    import keras

    num_classes, size = 3, 8
    model = build_tiny_classifier(num_classes, size)
    if not isinstance(model, keras.Model):
        raise Incorrect(f"build_tiny_classifier returned {type(model).__name__}; return the keras.Model, compiled")
    if tuple(model.output_shape) != (None, num_classes):
        raise Incorrect(f"with num_classes={num_classes} the model's output shape is {tuple(model.output_shape)}; "
                        f"it needs one score per class, (None, {num_classes}): the last layer is "
                        "layers.Dense(num_classes, ...)")
    if getattr(model, "optimizer", None) is None or getattr(model, "loss", None) is None:
        raise Incorrect("the model is not compiled: call model.compile(optimizer=..., loss=..., metrics=[...]) "
                        "before returning it")
    name = _loss_name(model)
    rng = np.random.default_rng(0)
    x = rng.random((12, size, size, 3), dtype=np.float32)
    y = np.arange(12) % num_classes  # integer class ids, the way lessons 03-04 store them
    try:
        scores = model.evaluate(x, y, verbose=0, return_dict=True)
    except Exception as err:
        if "categorical" in name and "sparse" not in name:
            raise Incorrect("categorical_crossentropy expects one-hot labels, one row of "
                            f"{num_classes} zeros and ones per image (shape (12, {num_classes})); our labels are "
                            "integer class ids, shape (12,), and Keras stops with "
                            f"\"{str(err).splitlines()[0][:90]}\". Use loss='sparse_categorical_crossentropy', "
                            "which takes the class id as it is (no to_categorical as in the 2019 recipe)") from None
        if "binary" in name:
            raise Incorrect("binary_crossentropy is for yes/no targets (one independent probability per class); "
                            "one species per image is a single choice among all: softmax output and "
                            "loss='sparse_categorical_crossentropy'") from None
        raise Incorrect(f"model.evaluate on images with integer labels (0 to {num_classes - 1}) failed with the "
                        f"loss {name!r}: {type(err).__name__}: {str(err).splitlines()[0][:120]}. Integer labels "
                        "need loss='sparse_categorical_crossentropy'") from None
    if "sparse_categorical_crossentropy" not in name and "sparsecategoricalcrossentropy" not in name:
        raise Incorrect(f"the loss is {name!r}. For one species per image given as an integer class id, use "
                        "'sparse_categorical_crossentropy': mean squared error and friends treat class 2 as "
                        "'twice class 1'")
    if not any("acc" in key for key in scores):
        raise Incorrect(f"evaluate reports only {sorted(scores)}: add metrics=['accuracy'] to compile (the lesson's "
                        "checkpoint keeps the epoch with the best val_accuracy)")
    probabilities = model.predict(x, verbose=0)
    sums = probabilities.sum(axis=1)
    if np.all(probabilities >= 0) and np.allclose(sums, 1, atol=1e-4):
        expected = -np.mean(np.log(np.clip(probabilities[np.arange(len(y)), y], 1e-7, 1)))
    else:  # raw scores (logits): right only if the loss applies the softmax itself (from_logits=True)
        shifted = probabilities - probabilities.max(axis=1, keepdims=True)
        log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        expected = -np.mean(log_softmax[np.arange(len(y)), y])
        from_logits = bool(getattr(model.loss, "from_logits", False))  # a loss given by name has it False
        if not from_logits or not np.isclose(scores["loss"], expected, rtol=1e-3, atol=1e-4):
            raise Incorrect(f"the model's outputs for an image add up to {sums[0]:.3f}, not 1: they are not "
                            "probabilities over the species. Give the last Dense layer activation='softmax' "
                            "(a sigmoid or ReLU scores each class on its own)")
        return "raw scores (logits) with from_logits=True in the loss: right too; the lesson puts the softmax in " \
               "the model so that predict returns probabilities."
    if not np.isclose(scores["loss"], expected, rtol=1e-3, atol=1e-4):
        raise Incorrect(f"on 12 images the loss is {scores['loss']:.4f}, but the cross-entropy of the predicted "
                        f"probabilities is {expected:.4f}: with a softmax output the loss must not treat the "
                        "outputs as logits (leave from_logits at False)")
    return (f"{num_classes} softmax outputs and sparse_categorical_crossentropy: integer labels go in as they are, "
            f"and the loss on 12 images ({scores['loss']:.3f}) is the mean of -log(probability of the true class).")


q1 = Exercise(
    name="q1",
    task="Complete build_tiny_classifier(num_classes, image_size, one_hot=False): output layer, keras.Model, and a "
         "loss that fits the labels: class ids, or one-hot rows when one_hot is True.",
    checker=_check_classifier,
    hint_text=("One output per species, as probabilities: `layers.Dense(num_classes, activation=\"softmax\")`. "
               "Class ids (0, 1, 2 ...) take `\"sparse_categorical_crossentropy\"`; one-hot rows take "
               "`\"categorical_crossentropy\"`. Pick it with `if one_hot`, and add `metrics=[\"accuracy\"]`."),
    solution_code='''
import keras
from keras import layers


def build_tiny_classifier(num_classes, image_size, one_hot=False):
    inputs = keras.Input(shape=(image_size, image_size, 3))
    x = layers.Conv2D(8, 3, activation="relu")(inputs)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)  # one probability per species
    model = keras.Model(inputs, outputs)
    # class ids -> sparse_categorical_crossentropy; one-hot rows -> categorical_crossentropy
    loss = "categorical_crossentropy" if one_hot else "sparse_categorical_crossentropy"
    model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    return model
''',
    answer_name="build_tiny_classifier",
)

# ---------------------------------------------------------------------------------------------------------
# Exercise 2: augmentation inside the model, active in training only


def _check_augmentation(with_augmentation) -> str:
    import keras
    from keras import layers

    size = 8
    plain = keras.Sequential([keras.Input((size, size, 3)), layers.Flatten()], name="plain")  # output = the image
    # an image with no symmetry: any flip or turn changes it
    image = np.arange(size * size * 3, dtype=np.float32).reshape(1, size, size, 3) / (size * size * 3)
    model = with_augmentation(plain, seed=1)
    if not isinstance(model, keras.Model):
        raise Incorrect(f"with_augmentation returned {type(model).__name__}; return a keras.Model "
                        "(e.g. keras.Model(inputs, model(x)))")
    reference = np.asarray(plain(image))
    for how, call in (("model.predict(x)", lambda: model.predict(image, verbose=0)),
                      ("model(x, training=False)", lambda: np.asarray(model(image, training=False)))):
        seen = call()
        if seen.shape != reference.shape:
            raise Incorrect(f"{how} returned shape {seen.shape}, the wrapped model returns {reference.shape}: "
                            "augment the images first, then pass them to the model")
        if not np.allclose(seen, reference, atol=1e-6):
            raise Incorrect(f"at inference ({how}) your model changed the image: validation and the submission "
                            "would see flipped or turned images. Use Keras' preprocessing layers (RandomFlip, "
                            "RandomRotation), which pass images through unchanged outside training, not a Lambda "
                            "around tf.image functions, which runs at every call")
    seen = [np.asarray(model(image, training=True)) for _ in range(12)]
    changed = sum(not np.allclose(out, reference, atol=1e-6) for out in seen)
    if changed == 0:
        raise Incorrect("in training (model(x, training=True)) the image came through unchanged 12 times out of "
                        "12: no augmentation ran. Put layers.RandomFlip(\"horizontal_and_vertical\") and "
                        "layers.RandomRotation(...) between the input and the model")
    flipped = {"none": image, "left-right": image[:, :, ::-1], "up-down": image[:, ::-1], "both": image[:, ::-1, ::-1]}
    flips = {name: np.asarray(plain(np.ascontiguousarray(version))) for name, version in flipped.items()}
    matched = [next((name for name, flip in flips.items() if np.allclose(out, flip, atol=1e-5)), None) for out in seen]
    if all(matched):
        kinds = sorted(set(matched) - {"none"})
        if set(kinds) <= {"left-right"} or set(kinds) <= {"up-down"}:
            raise Incorrect(f"in 12 training calls the image was only ever flipped {kinds[0]} "
                            "(or left alone): a plant seen from above has no up and no left, so flip both ways, "
                            "RandomFlip(\"horizontal_and_vertical\"), and turn it too, RandomRotation(...)")
        raise Incorrect("in 12 training calls the image was only ever flipped, never turned: RandomFlip alone gives "
                        "just 4 versions of each photo. Add layers.RandomRotation(...) after the flip, as the "
                        "exercise asks (a seedling can grow at any angle)")
    return (f"in training the image changed in {changed} of 12 calls, turned as well as flipped; in predict it came "
            "through untouched. "
            "fit calls the model with training=True, evaluate and predict with training=False (a bare model(x) "
            "without training= augments: these layers default to training in Keras 3.15).")


q2 = Exercise(
    name="q2",
    task="Write with_augmentation(model, seed=None): a keras.Model that flips and turns its input at random in "
         "training only, then applies model.",
    checker=_check_augmentation,
    hint_text=("Make a new input with `keras.Input(shape=model.input_shape[1:])`, pass it through "
               "`layers.RandomFlip(\"horizontal_and_vertical\", seed=seed)` and "
               "`layers.RandomRotation(0.5, fill_mode=\"reflect\", seed=seed)`, then through `model`, and "
               "return `keras.Model(inputs, outputs)`. Do not pass `training=` yourself: Keras sets it."),
    solution_code='''
import keras
from keras import layers


def with_augmentation(model, seed=None):
    inputs = keras.Input(shape=model.input_shape[1:])
    x = layers.RandomFlip("horizontal_and_vertical", seed=seed)(inputs)  # active only when training=True
    x = layers.RandomRotation(0.5, fill_mode="reflect", seed=seed)(x)
    return keras.Model(inputs, model(x))
''',
    answer_name="with_augmentation",
)

# ---------------------------------------------------------------------------------------------------------
# Exercise 3: resume after an interrupt, and keep the lowest val_loss across the resume

#: Made-up validation scores per epoch (the check writes them into the logs): the lowest val_loss is
#: epoch 2 (index 1); the run is cut off after epoch 3; the two resumed epochs are worse than epoch 2,
#: epoch 5 better than epoch 3 and 4. val_accuracy peaks elsewhere, at epoch 3 and then 5.
SCRIPTED_VAL_LOSS = [0.9, 0.4, 0.6, 0.7, 0.5]
SCRIPTED_VAL_ACCURACY = [0.3, 0.2, 0.5, 0.45, 0.9]
INTERRUPT_AFTER = 2  # zero-based epoch after which the "disconnect" comes


class _Disconnect(Exception):
    """The runtime went away (stands for a Colab disconnect)."""


def _scripted_callbacks(results_dir: Path, writes: list[int], snapshots: dict, interrupt: bool):
    import keras

    class Script(keras.callbacks.Callback):
        """First in the list: replaces the real validation scores with the scripted ones."""

        def on_epoch_end(self, epoch, logs=None):
            logs["val_loss"], logs["val_accuracy"] = SCRIPTED_VAL_LOSS[epoch], SCRIPTED_VAL_ACCURACY[epoch]
            snapshots[epoch] = [w.copy() for w in self.model.get_weights()]

        def on_epoch_begin(self, epoch, logs=None):
            snapshots.setdefault("start", (epoch, [w.copy() for w in self.model.get_weights()]))

    class Watch(keras.callbacks.Callback):
        """Last in the list: notes when model.keras changed, and disconnects after INTERRUPT_AFTER."""

        def __init__(self):
            super().__init__()
            self.digest = _digest(results_dir / "model.keras")

        def on_epoch_end(self, epoch, logs=None):
            digest = _digest(results_dir / "model.keras")
            if digest != self.digest:
                writes.append(epoch)
            self.digest = digest
            if interrupt and epoch == INTERRUPT_AFTER:
                raise _Disconnect

    return Script(), Watch()


STALE_VAL_LOSS = 0.05  # an earlier run's best val_loss, lower than any epoch of the run the check makes
STALE_EPOCHS = [0, 1, 2]


def _leave_an_earlier_run(results: Path) -> None:
    """The files a finished run leaves behind: history.csv (a low val_loss) and a model.keras, no backup."""
    rows = ["epoch,accuracy,loss,val_accuracy,val_loss"]
    rows += [f"{e},0.9,0.2,0.95,{STALE_VAL_LOSS + 0.1 * (2 - e):.2f}" for e in STALE_EPOCHS]
    (results / "history.csv").write_text("\n".join(rows) + "\n")
    (results / "model.keras").write_bytes(b"an earlier run's model")


def _digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _tiny_model(seed: int):
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), layers.Dense(3, activation="softmax")])
    # eager: for a model this small, tracing a graph would cost more than the two epochs it runs
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"], run_eagerly=True)
    return model


def _epochs(epochs: list[int]) -> str:
    return ", ".join(str(e + 1) for e in epochs) if epochs else "none"


def _check_resume(resumable_callbacks) -> str:
    import keras

    rng = np.random.default_rng(0)
    x, y = rng.random((16, 4), dtype=np.float32), np.arange(16) % 3
    data = dict(x=x, y=y, validation_data=(x[:6], y[:6]), batch_size=8, epochs=len(SCRIPTED_VAL_LOSS), verbose=0)
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp)
        _leave_an_earlier_run(results)  # a finished run's files: a fresh run must neither extend nor obey them
        first_writes: list[int] = []
        first: dict = {}
        script, watch = _scripted_callbacks(results, first_writes, first, interrupt=True)
        callbacks = resumable_callbacks(results)
        try:
            _tiny_model(0).fit(**data, callbacks=[script, *callbacks, watch])
        except _Disconnect:
            pass
        lowest = int(np.argmin(SCRIPTED_VAL_LOSS[: INTERRUPT_AFTER + 1]))
        if first_writes != [0, lowest]:
            best_accuracy = [0] + [e for e in range(1, INTERRUPT_AFTER + 1)
                                   if SCRIPTED_VAL_ACCURACY[e] > max(SCRIPTED_VAL_ACCURACY[:e])]
            if first_writes == list(range(INTERRUPT_AFTER + 1)):
                raise Incorrect("model.keras was written after every epoch: keep only the best with "
                                "ModelCheckpoint(..., save_best_only=True)")
            if first_writes == best_accuracy:
                raise Incorrect(f"model.keras was written after epochs {_epochs(first_writes)}, when val_accuracy "
                                "improved; this exercise keeps the lowest val_loss: monitor=\"val_loss\"")
            if not first_writes and not any(isinstance(c, keras.callbacks.ModelCheckpoint) for c in callbacks):
                raise Incorrect("no model.keras appeared in results_dir during training: add "
                                "ModelCheckpoint(Path(results_dir) / \"model.keras\", monitor=\"val_loss\", "
                                "save_best_only=True)")
            if not first_writes:
                raise Incorrect(f"results_dir held a finished run's history.csv (best val_loss {STALE_VAL_LOSS}) and "
                                "no training_backup/: a fresh run. Yet model.keras was never written: your threshold "
                                "came from that old history.csv, which no epoch of the new run can beat. Read the "
                                "threshold only when resuming (training_backup/ exists); a fresh run passes "
                                "initial_value_threshold=None")
            raise Incorrect(f"before the interrupt model.keras was written after epochs {_epochs(first_writes)}; "
                            f"val_loss was {SCRIPTED_VAL_LOSS[: INTERRUPT_AFTER + 1]}, so the lowest so far came at "
                            f"epochs 1 and {lowest + 1}: monitor=\"val_loss\" with mode \"min\" (or \"auto\")")
        # the runtime is back: a fresh model, the learner's callbacks made again, fit called again
        second_writes: list[int] = []
        second: dict = {}
        script, watch = _scripted_callbacks(results, second_writes, second, interrupt=False)
        history = _tiny_model(1).fit(**data, callbacks=[script, *resumable_callbacks(results), watch])
        ran = len(history.history["loss"])
        missing = len(SCRIPTED_VAL_LOSS) - INTERRUPT_AFTER - 1
        if ran != missing:
            raise Incorrect(f"after the interrupt (3 of 5 epochs done) the second fit ran {ran} epochs, not the "
                            f"{missing} missing ones: BackupAndRestore(Path(results_dir) / \"training_backup\") "
                            "saves the epoch and weights after each epoch and restores them when fit starts again")
        start_epoch, start_weights = second["start"]
        if not all(np.array_equal(a, b) for a, b in zip(start_weights, first[INTERRUPT_AFTER], strict=True)):
            raise Incorrect("the resumed fit started at the right epoch but not from the weights saved before the "
                            "interrupt")
        if second_writes:
            written = second_writes[0]
            if SCRIPTED_VAL_LOSS[written] > min(SCRIPTED_VAL_LOSS[: INTERRUPT_AFTER + 1]):
                hint = ("a new ModelCheckpoint starts with no best score, so its first epoch always wins: when "
                        "resuming, pass initial_value_threshold=<the lowest val_loss already in history.csv>")
                last_logged = SCRIPTED_VAL_LOSS[INTERRUPT_AFTER]
                if second_writes == [e for e in range(INTERRUPT_AFTER + 1, len(SCRIPTED_VAL_LOSS))
                                     if SCRIPTED_VAL_LOSS[e] < last_logged]:
                    hint = (f"the threshold you resumed with seems to be the last epoch's val_loss ({last_logged}); "
                            "it must be the lowest one in history.csv")
                raise Incorrect(f"after the resume, epoch {written + 1} (val_loss {SCRIPTED_VAL_LOSS[written]}) "
                                f"overwrote model.keras although epoch {lowest + 1} had val_loss "
                                f"{SCRIPTED_VAL_LOSS[lowest]}: {hint}")
        from ..results import load_history

        if not (results / "history.csv").is_file():
            raise Incorrect("no history.csv in results_dir: add CSVLogger(Path(results_dir) / \"history.csv\", "
                            "append=...)")
        with open(results / "history.csv", newline="") as f:
            rows = [int(row["epoch"]) for row in csv.DictReader(f)]
        if len(rows) > len(SCRIPTED_VAL_LOSS) and rows[:len(STALE_EPOCHS)] == STALE_EPOCHS:
            raise Incorrect(f"history.csv holds {len(rows)} rows: the {len(STALE_EPOCHS)} rows of an earlier, "
                            "finished run, then this run's. A fresh run (no training_backup/) must start the file "
                            "anew: append=True only when resuming, append=False otherwise")
        logged = load_history(results / "history.csv")["epoch"]
        if logged != list(range(len(SCRIPTED_VAL_LOSS))):
            raise Incorrect(f"history.csv holds epochs {_epochs(logged)}, not 1 to {len(SCRIPTED_VAL_LOSS)}: when "
                            "resuming, CSVLogger must append (append=True) instead of starting the file again")
    return (f"the resumed run trained only epochs {INTERRUPT_AFTER + 2}-{len(SCRIPTED_VAL_LOSS)}, from the saved "
            f"weights, and model.keras still holds epoch {lowest + 1}, the lowest val_loss.")


q3 = Exercise(
    name="q3",
    task="Write resumable_callbacks(results_dir): resume after an interrupt; model.keras keeps the lowest val_loss, "
         "also across the resume; history.csv one row per epoch.",
    checker=_check_resume,
    hint_text=("Start from the lesson's training_callbacks. Keep the best by `monitor=\"val_loss\"` (lower is "
               "better: mode \"auto\" knows). When `results_dir / \"training_backup\"` exists you are resuming: "
               "read history.csv (csv.DictReader), take the min of its val_loss column and pass it to "
               "ModelCheckpoint as `initial_value_threshold`; CSVLogger then appends. A fresh run: no threshold, "
               "append=False."),
    solution_code='''
import csv
from pathlib import Path

import keras


def resumable_callbacks(results_dir):
    results_dir = Path(results_dir)
    history_csv = results_dir / "history.csv"
    resuming = (results_dir / "training_backup").exists()
    lowest = None
    if resuming and history_csv.is_file():
        with open(history_csv, newline="") as f:
            lowest = min((float(row["val_loss"]) for row in csv.DictReader(f) if row.get("val_loss")), default=None)
    return [
        keras.callbacks.BackupAndRestore(str(results_dir / "training_backup")),
        keras.callbacks.ModelCheckpoint(str(results_dir / "model.keras"), monitor="val_loss", save_best_only=True,
                                        initial_value_threshold=lowest),  # None: a fresh run, no best yet
        keras.callbacks.CSVLogger(str(history_csv), append=resuming),
    ]
''',
    answer_name="resumable_callbacks",
)
