import csv
import json

import keras
import numpy as np
import pytest

from seedlings_utils.dataset import SeedlingsDataset
from seedlings_utils.image_scan import flatten_images
from seedlings_utils.index import build_index
from seedlings_utils.model import build_cnn
from seedlings_utils.results import (
    evaluate_predictions,
    list_test_images,
    load_history,
    predict_classes,
    save_metrics,
    write_submission,
)
from seedlings_utils.train import BACKUP_DIR, best_logged, training_callbacks


def test_build_cnn_shapes_and_compile():
    model = build_cnn(num_classes=5, image_size=32, base_filters=4, blocks=3)
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 5)
    out = model.predict(np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32), verbose=0)
    assert np.allclose(out.sum(axis=1), 1, atol=1e-5)
    assert model.loss == "sparse_categorical_crossentropy"
    assert build_cnn(12, 128).count_params() > 1_000_000  # the full recipe is a real network


def test_augmentation_is_off_at_inference():
    model = build_cnn(num_classes=3, image_size=16, base_filters=4, blocks=2, seed=1)
    x = np.random.default_rng(0).random((1, 16, 16, 3), dtype=np.float32)
    assert np.allclose(model.predict(x, verbose=0), model.predict(x, verbose=0))


def test_evaluate_predictions():
    classes = ["a", "b", "c"]
    y_true = np.array([0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 2, 0])
    m = evaluate_predictions(y_true, y_pred, classes)
    assert m["val_accuracy"] == pytest.approx(4 / 6) == m["val_micro_f1"]
    expected_b = {"precision": pytest.approx(2 / 3), "recall": 1.0, "f1": pytest.approx(0.8), "support": 2}
    assert m["per_class"]["b"] == expected_b
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    json.dumps(m)


def test_load_history_counts_a_resumed_epoch_once(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("epoch,accuracy,loss\n0,0.1,2.0\n1,0.2,1.5\n1,0.25,1.4\n2,0.3,1.0\n")
    history = load_history(path)
    assert history["epoch"] == [0, 1, 2] and history["accuracy"] == [0.1, 0.25, 0.3]


@pytest.fixture
def tiny_run(kaggle_tree, tmp_path):
    out = tmp_path / "all_images"
    flatten_images(kaggle_tree / "train", out, progress=False)
    filenames, labels, classes = build_index(out)
    return kaggle_tree, out, filenames, labels, classes


def _split_one_per_class(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, val)``: the first image of each class for validation, the rest for training."""
    val = np.array([int(np.flatnonzero(labels == c)[0]) for c in np.unique(labels)])
    return np.setdiff1d(np.arange(len(labels)), val), val


def _weights(model: keras.Model) -> list[np.ndarray]:
    return [np.array(w) for w in model.get_weights()]


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


class Disconnect(keras.callbacks.Callback):
    """Last callback: notes the weights after each epoch and stops training like a dropped runtime."""

    def __init__(self, after_epoch: int):
        super().__init__()
        self.after_epoch, self.weights, self.iterations, self.learning_rates = after_epoch, {}, {}, {}

    def on_epoch_end(self, epoch, logs=None):
        self.weights[epoch] = _weights(self.model)
        self.iterations[epoch] = int(self.model.optimizer.iterations)
        self.learning_rates[epoch] = float(self.model.optimizer.learning_rate)
        if epoch == self.after_epoch:
            raise KeyboardInterrupt


class LowerRate(keras.callbacks.Callback):
    """Halves the learning rate after the first epoch, as ReduceLROnPlateau does when the validation loss stalls."""

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            self.model.optimizer.learning_rate = float(self.model.optimizer.learning_rate) / 2


class StartState(keras.callbacks.Callback):
    """Notes the weights and optimizer step when the first epoch of a fit begins (after any restore)."""

    def on_epoch_begin(self, epoch, logs=None):
        if not hasattr(self, "epoch"):
            self.epoch, self.weights = epoch, _weights(self.model)
            self.iterations = int(self.model.optimizer.iterations)
            self.learning_rate = float(self.model.optimizer.learning_rate)


@pytest.mark.slow
def test_training_writes_checkpoint_history_and_resumes(tiny_run, tmp_path):
    source, image_dir, filenames, labels, classes = tiny_run
    tr, va = _split_one_per_class(labels)
    keras.utils.set_random_seed(0)
    train = SeedlingsDataset(image_dir, filenames[tr], labels[tr], batch_size=4, image_size=16, shuffle=True, seed=0)
    val = SeedlingsDataset(image_dir, filenames[va], labels[va], batch_size=4, image_size=16)
    assert not set(filenames[tr]) & set(filenames[va])
    model = build_cnn(len(classes), 16, base_filters=4, blocks=2, learning_rate=1e-3, seed=0)
    run = tmp_path / "run"
    run.mkdir()

    cut = Disconnect(after_epoch=1)  # a Colab disconnect after the second epoch
    with pytest.raises(KeyboardInterrupt):  # LowerRate: what ReduceLROnPlateau does after a stalled epoch
        model.fit(train, validation_data=val, epochs=4, callbacks=[LowerRate(), *training_callbacks(run), cut],
                  verbose=0)
    assert (run / BACKUP_DIR).exists()

    resumed = build_cnn(len(classes), 16, base_filters=4, blocks=2, seed=1)  # a new runtime: other weights
    assert not _same(_weights(resumed), cut.weights[1])
    start = StartState()
    history = resumed.fit(train, validation_data=val, epochs=4, callbacks=[*training_callbacks(run), start],
                          verbose=0)
    assert start.epoch == 2 and len(history.history["loss"]) == 2, "only the two missing epochs should run"
    assert _same(start.weights, cut.weights[1]), "the resumed run must start from the weights saved at the cut"
    assert start.iterations == cut.iterations[1] > 0, "and from the optimizer's state (its step count) too"
    assert start.learning_rate == pytest.approx(cut.learning_rates[1]) and cut.learning_rates[1] < 1e-3, \
        "and with the learning rate lowered before the cut, not the new model's 1e-3"
    assert not (run / BACKUP_DIR).exists()
    logged = load_history(run / "history.csv")
    assert logged["epoch"] == [0, 1, 2, 3]
    best = keras.models.load_model(run / "model.keras")
    accuracy = float(np.mean(predict_classes(best, val) == labels[va]))
    assert accuracy == pytest.approx(max(logged["val_accuracy"]), abs=1e-6), "model.keras is the best epoch"


class ScriptedScores(keras.callbacks.Callback):
    """First callback: replaces the real val_accuracy with made-up ones, so a resumed epoch is surely worse."""

    def __init__(self, scores: list[float]):
        super().__init__()
        self.scores, self.weights = scores, {}

    def on_epoch_end(self, epoch, logs=None):
        logs["val_accuracy"] = self.scores[epoch]
        self.weights[epoch] = _weights(self.model)


@pytest.mark.slow
def test_best_checkpoint_survives_a_resume(tiny_run, tmp_path):
    """A new ModelCheckpoint forgets the best score; without the threshold, epoch 3 (0.6) would replace epoch 2's
    model (0.9), and epoch 4 (0.7) would follow."""
    source, image_dir, filenames, labels, classes = tiny_run
    tr, va = _split_one_per_class(labels)
    train = SeedlingsDataset(image_dir, filenames[tr], labels[tr], batch_size=5, image_size=16, shuffle=True, seed=0)
    val = SeedlingsDataset(image_dir, filenames[va], labels[va], batch_size=5, image_size=16)
    scores = [0.5, 0.9, 0.6, 0.7]
    run = tmp_path / "run"
    first = ScriptedScores(scores)
    with pytest.raises(KeyboardInterrupt):
        build_cnn(len(classes), 16, base_filters=4, blocks=2, seed=0).fit(
            train, validation_data=val, epochs=4, callbacks=[first, *training_callbacks(run), Disconnect(1)],
            verbose=0)
    assert best_logged(run / "history.csv") == 0.9
    second = ScriptedScores(scores)
    callbacks = training_callbacks(run)
    build_cnn(len(classes), 16, base_filters=4, blocks=2, seed=1).fit(
        train, validation_data=val, epochs=4, callbacks=[second, *callbacks], verbose=0)
    saved = _weights(keras.models.load_model(run / "model.keras"))
    assert not _same(saved, second.weights[3]) and not _same(saved, second.weights[2]), \
        "a resumed epoch worse than the best before the cut overwrote model.keras"
    assert _same(saved, first.weights[1])
    assert load_history(run / "history.csv")["val_accuracy"] == scores


@pytest.mark.slow
def test_early_stopping_ends_the_run_and_leaves_the_best_epoch_in_the_model(tiny_run, tmp_path):
    """Scores that stop improving after epoch 1: with patience 1 (2 epochs for early stopping) the run ends after
    epoch 3, and both the model in memory and model.keras hold epoch 1's weights, not the last epoch's."""
    source, image_dir, filenames, labels, classes = tiny_run
    tr, va = _split_one_per_class(labels)
    train = SeedlingsDataset(image_dir, filenames[tr], labels[tr], batch_size=5, image_size=16, shuffle=True, seed=0)
    val = SeedlingsDataset(image_dir, filenames[va], labels[va], batch_size=5, image_size=16)
    scores = [0.5, 0.9, 0.6, 0.7, 0.95, 0.95]
    scripted = ScriptedScores(scores)
    model = build_cnn(len(classes), 16, base_filters=4, blocks=2, seed=0)
    history = model.fit(train, validation_data=val, epochs=len(scores), verbose=0,
                        callbacks=[scripted, *training_callbacks(tmp_path, patience=1)])
    assert history.history["val_accuracy"] == scores[:4], "two epochs without a better score: the run stops"
    assert _same(_weights(model), scripted.weights[1]) and not _same(scripted.weights[1], scripted.weights[3])
    assert _same(_weights(keras.models.load_model(tmp_path / "model.keras")), scripted.weights[1])
    assert not (tmp_path / BACKUP_DIR).exists() and load_history(tmp_path / "history.csv")["epoch"] == [0, 1, 2, 3]


def test_best_logged_and_a_fresh_run_ignore_old_scores(tmp_path):
    assert best_logged(tmp_path / "history.csv") is None
    (tmp_path / "history.csv").write_text("epoch,loss,val_accuracy\n0,2.0,0.4\n1,1.5,0.75\n2,1.2,0.5\n")
    assert best_logged(tmp_path / "history.csv") == 0.75 and best_logged(tmp_path / "history.csv", "nope") is None
    (tmp_path / BACKUP_DIR).mkdir()
    checkpoint = next(c for c in training_callbacks(tmp_path) if isinstance(c, keras.callbacks.ModelCheckpoint))
    assert checkpoint.best == 0.75
    (tmp_path / BACKUP_DIR).rmdir()
    checkpoint = next(c for c in training_callbacks(tmp_path) if isinstance(c, keras.callbacks.ModelCheckpoint))
    assert checkpoint.best is None, "no backup: a new run, whatever an old history.csv says"


def test_a_new_run_moves_the_last_runs_files_aside_before_it_writes(tmp_path, capsys):
    last_run = {"model.keras": b"weights", "history.csv": b"epoch,loss\n0,1.0\n", "metrics.json": b"{}"}
    for name, content in last_run.items():
        (tmp_path / name).write_bytes(content)
    logger = next(c for c in training_callbacks(tmp_path) if isinstance(c, keras.callbacks.CSVLogger))
    logger.on_train_begin()  # what fit does first: opens history.csv for writing
    logger.on_train_end()
    assert {name: (tmp_path / "previous_run" / name).read_bytes() for name in last_run} == last_run
    assert not (tmp_path / "model.keras").exists() and not (tmp_path / "metrics.json").exists()
    assert "model.keras, history.csv, metrics.json moved to" in capsys.readouterr().out


def test_predict_and_submission(tiny_run, tmp_path):
    source, image_dir, filenames, labels, classes = tiny_run
    model = build_cnn(len(classes), 16, base_filters=4, blocks=2)
    ds = SeedlingsDataset(image_dir, filenames, labels, batch_size=5, image_size=16)
    assert predict_classes(model, ds).shape == (12,)
    with pytest.raises(ValueError):
        predict_classes(model, SeedlingsDataset(image_dir, filenames, labels, shuffle=True))
    rows = write_submission(model, source / "test", classes, tmp_path / "submission.csv", image_size=16)
    with open(tmp_path / "submission.csv") as f:
        table = list(csv.reader(f))
    assert rows == 3 and table[0] == ["file", "species"]
    assert [r[0] for r in table[1:]] == list_test_images(source / "test")
    assert all(r[1] in classes for r in table[1:])
    assert list_test_images(tmp_path / "missing") == []
    save_metrics({"val_accuracy": 0.5}, tmp_path / "m.json")
    assert json.loads((tmp_path / "m.json").read_text()) == {"val_accuracy": 0.5}
