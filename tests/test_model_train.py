import csv
import json

import keras
import numpy as np
import pytest

from seedlings_utils.dataset import SeedlingsDataset
from seedlings_utils.flatten import flatten_images
from seedlings_utils.index import build_index
from seedlings_utils.model import build_cnn
from seedlings_utils.train import (
    BACKUP_DIR,
    evaluate_predictions,
    list_test_images,
    load_history,
    predict_classes,
    save_metrics,
    training_callbacks,
    write_submission,
)


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


def test_training_writes_checkpoint_history_and_resumes(tiny_run, tmp_path):
    source, image_dir, filenames, labels, classes = tiny_run
    keras.utils.set_random_seed(0)
    ds = SeedlingsDataset(image_dir, filenames, labels, batch_size=4, image_size=16, shuffle=True, seed=0)
    model = build_cnn(len(classes), 16, base_filters=4, blocks=2)
    run = tmp_path / "run"
    run.mkdir()

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt  # a Colab disconnect after the second epoch

    with pytest.raises(KeyboardInterrupt):
        model.fit(ds, validation_data=ds, epochs=4, callbacks=[*training_callbacks(run), Interrupt()], verbose=0)
    assert (run / BACKUP_DIR).exists()
    resumed = build_cnn(len(classes), 16, base_filters=4, blocks=2)
    history = resumed.fit(ds, validation_data=ds, epochs=4, callbacks=training_callbacks(run), verbose=0)
    assert len(history.history["loss"]) == 2, "the resumed run should only train the two missing epochs"
    assert not (run / BACKUP_DIR).exists()
    assert load_history(run / "history.csv")["epoch"] == [0, 1, 2, 3]
    assert keras.models.load_model(run / "model.keras").output_shape == (None, len(classes))


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
