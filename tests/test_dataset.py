import threading
import warnings

import keras
import numpy as np
import pytest
from PIL import Image

from seedlings_utils.dataset import SeedlingsDataset, load_image, load_image_uint8
from seedlings_utils.profiling import measure_images_per_second, pydataset_batches
from seedlings_utils.recipe2019 import recipe2019_load_batch
from seedlings_utils.tfdata import make_tf_dataset

from .helpers import label_from_pixels


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P", "I;16"])
def test_load_image_gives_rgb_in_unit_range(tmp_path, mode):
    path = tmp_path / "x.png"
    Image.new("RGB", (37, 19), (255, 128, 0)).convert(mode).save(path)
    image = load_image(path, 16)
    assert image.shape == (16, 16, 3) and image.dtype == np.float32
    assert 0.0 <= image.min() and image.max() <= 1.0


def test_load_image_scales_exactly_once(tmp_path):
    Image.new("RGB", (10, 10), (255, 0, 51)).save(tmp_path / "x.png")
    assert load_image(tmp_path / "x.png", 4)[0, 0].tolist() == pytest.approx([1.0, 0.0, 0.2])


def test_load_image_names_a_bad_file(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(OSError, match="broken.png"):
        load_image(tmp_path / "broken.png", 8)


def test_batches_have_the_right_shapes_and_labels(indexed):
    image_dir, filenames, labels = indexed
    ds = SeedlingsDataset(image_dir, filenames, labels, batch_size=5, image_size=12)
    assert len(ds) == 3
    seen = []
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.shape == (len(y), 12, 12, 3) and x.dtype == np.float32
        assert [label_from_pixels(img) for img in x] == y.tolist()  # pixels match their labels
        seen += y.tolist()
    assert sorted(seen) == sorted(labels.tolist())
    with pytest.raises(IndexError):
        ds[3]


def test_shuffle_changes_order_each_epoch_but_keeps_pairs(indexed):
    image_dir, filenames, labels = indexed
    ds = SeedlingsDataset(image_dir, filenames, labels, batch_size=4, image_size=8, shuffle=True, seed=0)
    orders = []
    for _ in range(3):
        orders.append(ds.order.copy())
        for i in range(len(ds)):
            x, y = ds[i]
            assert [label_from_pixels(img) for img in x] == y.tolist()
        ds.on_epoch_end()
    assert all(sorted(o) == list(range(12)) for o in orders)
    assert not (orders[0] == orders[1]).all() and not (orders[1] == orders[2]).all()
    same_seed = SeedlingsDataset(image_dir, filenames, labels, shuffle=True, seed=0)
    assert (same_seed.order == orders[0]).all()


def test_workers_reach_keras_and_no_super_warning(indexed):
    image_dir, filenames, labels = indexed
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = SeedlingsDataset(image_dir, filenames, labels, workers=2, use_multiprocessing=True, max_queue_size=3)
        assert (ds.workers, ds.use_multiprocessing, ds.max_queue_size) == (2, True, 3)


def test_images_only_for_prediction(indexed):
    image_dir, filenames, _ = indexed
    x = SeedlingsDataset(image_dir, filenames, batch_size=20, image_size=8)[0]
    assert isinstance(x, np.ndarray) and x.shape == (12, 8, 8, 3)


@pytest.mark.parametrize("make_loader", [SeedlingsDataset, make_tf_dataset], ids=["PyDataset", "tf.data"])
def test_bad_arguments(indexed, make_loader):
    image_dir, filenames, labels = indexed
    with pytest.raises(ValueError, match="labels"):
        make_loader(image_dir, filenames, labels[:3])
    with pytest.raises(ValueError, match="nothing"):
        make_loader(image_dir, filenames[:0])


@pytest.mark.slow
def test_model_fit_reads_the_dataset_with_threads(indexed):
    image_dir, filenames, labels = indexed
    loaded_in = []  # the thread that loaded each batch

    class Recorded(SeedlingsDataset):
        def __getitem__(self, index):
            loaded_in.append(threading.current_thread())
            return super().__getitem__(index)

    ds = Recorded(image_dir, filenames, labels, batch_size=4, image_size=8, shuffle=True, seed=1, workers=2)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(ds, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    # Keras's workers are threads started from Python; without workers, fit reads the batches in TensorFlow's
    # own threads (Python names such foreign threads "Dummy-<n>"), apart from two first peeks in the main thread
    in_workers = [thread for thread in loaded_in[2:]
                  if thread is not threading.main_thread() and not thread.name.startswith("Dummy-")]
    assert len(loaded_in) == 2 + 2 * len(ds), loaded_in
    assert len(in_workers) == 2 * len(ds), f"every batch should load in a worker thread: {loaded_in}"
    assert len(set(in_workers)) >= 2, "two workers: more than one thread should have loaded batches"


@pytest.mark.parametrize("workers,processes", [(1, False), (2, False), (2, True)])
def test_measure_images_per_second(indexed, workers, processes):
    image_dir, filenames, labels = indexed
    ds = SeedlingsDataset(image_dir, filenames, labels, batch_size=4, image_size=8, workers=workers,
                          use_multiprocessing=processes)
    assert measure_images_per_second(ds) > 0
    assert measure_images_per_second(ds, batches=1) > 0


def test_recipe2019_scaled_twice(indexed):
    image_dir, filenames, _ = indexed
    old = recipe2019_load_batch(image_dir, filenames[:3], 8)
    new = SeedlingsDataset(image_dir, filenames[:3], batch_size=3, image_size=8)[0]
    assert old.shape == new.shape
    assert old.max() <= 1 / 255 + 1e-9 < 0.5 < new.max()
    # filenames[0] is RGB: same picture, 255 times darker. filenames[1] is RGBA: skimage's resize to
    # (size, size, 3) interpolates 4 channels into 3, so even rescaled the colours are wrong.
    assert np.allclose(old[0] * 255, new[0], atol=0.02)
    assert not np.allclose(old[1] * 255, new[1], atol=0.05)


def test_a_missing_file_is_named_as_missing(indexed):
    image_dir, filenames, labels = indexed
    (image_dir / filenames[0]).unlink()
    with pytest.raises(OSError, match=f"{filenames[0]} is missing"):
        SeedlingsDataset(image_dir, filenames, labels, batch_size=4, image_size=8)[0]


def test_a_file_truncated_after_indexing_is_named_inside_the_with_block(tmp_path):
    full = tmp_path / "full.png"
    Image.effect_noise((64, 64), 50).convert("RGB").save(full)
    cut = tmp_path / "cut.png"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])  # opens fine, fails while decoding
    assert load_image_uint8(full, 8).shape == (8, 8, 3)
    with pytest.raises(OSError, match="cut.png.*truncated"):
        load_image_uint8(cut, 8)


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_every_epoch_through_keras_reads_each_image_once_in_a_new_order(indexed, processes):
    """What the lesson says: reshuffling reaches the workers too (a new pool is forked every epoch)."""
    image_dir, filenames, labels = indexed
    ds = SeedlingsDataset(image_dir, filenames, np.arange(len(filenames)), batch_size=5, image_size=8, shuffle=True,
                          seed=3, workers=2, use_multiprocessing=processes)
    epochs = []
    for _ in range(3):  # pydataset_batches calls on_epoch_end after the epoch, as fit does
        batches = list(pydataset_batches(ds))
        assert [len(y) for _, y in batches] == [5, 5, 2]  # the last partial batch kept
        epochs.append([int(v) for _, y in batches for v in y])
    assert all(sorted(e) == list(range(len(filenames))) for e in epochs)
    assert epochs[0] != epochs[1] and epochs[1] != epochs[2]


def test_a_broken_file_mid_epoch_stops_keras_with_its_name(indexed):
    image_dir, filenames, labels = indexed
    victim = image_dir / filenames[7]
    victim.write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    ds = SeedlingsDataset(image_dir, filenames, labels, batch_size=4, image_size=8, workers=2)
    read = 0
    with pytest.raises(OSError, match=filenames[7]):
        for x, _ in pydataset_batches(ds):
            read += len(x)
    assert read == 4  # the first batch came through; the second holds the broken file


def test_what_lesson_05_says_about_image_dataset_from_directory(kaggle_tree, tmp_path):
    """Output in [0, 255], not scaled; .tif and .webp files left out; a random, unstratified validation cut."""
    train = kaggle_tree / "train"
    first = sorted((train / "Maize").iterdir())[0]
    with Image.open(first) as img:
        for ending in (".tif", ".webp"):
            img.convert("RGB").save(first.with_name("extra" + ending))
    ds = keras.utils.image_dataset_from_directory(str(train), image_size=(8, 8), batch_size=64, shuffle=False,
                                                  verbose=False)
    assert not any(p.endswith((".tif", ".webp")) for p in ds.file_paths) and len(ds.file_paths) == 12
    x, _ = next(ds.as_numpy_iterator())
    assert x.dtype == np.float32 and x.max() > 1.5  # 0-255: scaling is left to the user
    with pytest.raises(ValueError, match="No images found"):  # a flat folder is not a folder tree
        keras.utils.image_dataset_from_directory(str(train / "Maize"), image_size=(8, 8), verbose=False)
    # shuffle=False and validation_split: the last files in alphabetical order, whatever their class
    _, val = keras.utils.image_dataset_from_directory(str(train), image_size=(8, 8), validation_split=0.25,
                                                      subset="both", shuffle=False, verbose=False)
    assert {p.split("/")[-2] for p in val.file_paths} == {"Maize"}


def test_batches_read_as_fit_reads_them_even_without_keras_private_adapter(indexed, monkeypatch):
    """``pydataset_batches`` uses fit's private adapter; if a Keras release moves it, a thread pool stands in."""
    import sys

    image_dir, filenames, labels = indexed
    ds = SeedlingsDataset(image_dir, filenames, labels, batch_size=4, image_size=8, workers=2)
    expected = [ds[i][1].tolist() for i in range(len(ds))]
    assert [y.tolist() for _, y in pydataset_batches(ds)] == expected
    monkeypatch.setitem(sys.modules, "keras.src.trainers.data_adapters.py_dataset_adapter", None)  # import fails
    with pytest.warns(UserWarning, match="PyDatasetAdapter was not found"):
        read = [(x.shape, y.tolist()) for x, y in pydataset_batches(ds)]
        first_two = [y.tolist() for _, y in pydataset_batches(ds, batches=2)]
    assert [y for _, y in read] == expected and all(shape[1:] == (8, 8, 3) for shape, _ in read)
    assert first_two == expected[:2]
