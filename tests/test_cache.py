from __future__ import annotations

import json
import os
import pickle

import keras
import numpy as np
import pytest
from PIL import Image

import seedlings_utils.cache as cache_module
from seedlings_utils.cache import CachedDataset, build_image_cache
from seedlings_utils.cache_manifest import cache_filenames, cache_fingerprint, cache_is_current, shard_name
from seedlings_utils.dataset import load_image
from seedlings_utils.profiling import measure_images_per_second, pydataset_batches, trace_loader
from seedlings_utils.synthetic import make_synthetic_seedlings

from .helpers import label_from_pixels, species_colour

SIZE = 12


@pytest.fixture
def cached(indexed, tmp_path):
    """The tiny tree cached in shards of 5 images: 12 images -> shards of 5, 5 and 2."""
    image_dir, filenames, labels = indexed
    cache_dir = build_image_cache(image_dir, filenames, SIZE, tmp_path / "cache", shard_size=5, progress=False)
    return cache_dir, image_dir, filenames, labels


@pytest.fixture
def count_decodes(monkeypatch):
    """Counts the calls of ``load_image_uint8`` made by the cache builder."""
    calls = []
    real = cache_module.load_image_uint8

    def counting(path, image_size):
        calls.append(path)
        return real(path, image_size)

    monkeypatch.setattr(cache_module, "load_image_uint8", counting)
    return calls


def test_shards_are_uint8_and_json_describes_them(cached):
    cache_dir, _, filenames, _ = cached
    info = json.loads((cache_dir / "cache.json").read_text())
    assert (info["image_size"], info["count"], info["shard_size"]) == (SIZE, 12, 5)
    assert "filenames" not in info  # the names are in filenames.npy, opened memory-mapped
    names = cache_filenames(cache_dir)
    assert isinstance(names, np.memmap) and not names.flags.writeable and names.tolist() == filenames.tolist()
    assert info["shards"] == [shard_name(i) for i in range(3)]
    shapes = []
    for name in info["shards"]:
        shard = np.load(cache_dir / name)
        assert shard.dtype == np.uint8
        shapes.append(shard.shape)
        # uint8 on disk: one byte per value (plus the .npy header), not four
        assert (cache_dir / name).stat().st_size < shard.size + 256
    assert shapes == [(5, SIZE, SIZE, 3), (5, SIZE, SIZE, 3), (2, SIZE, SIZE, 3)]
    assert sorted(p.name for p in cache_dir.parent.iterdir() if p.name.startswith("cache")) == ["cache"]


def test_cached_images_equal_load_image(tmp_path):
    make_synthetic_seedlings(tmp_path / "raw", per_class=2, seed=1, progress=False)
    image_dir = tmp_path / "raw" / "train"
    filenames = sorted(p.relative_to(image_dir).as_posix() for p in image_dir.rglob("*.png"))
    cache_dir = build_image_cache(image_dir, filenames, 32, tmp_path / "cache", shard_size=7, progress=False)
    ds = CachedDataset(cache_dir, batch_size=5)
    images = np.concatenate([ds[i] for i in range(len(ds))])
    expected = np.stack([load_image(image_dir / name, 32) for name in filenames])
    assert images.dtype == np.float32 and images.shape == (24, 32, 32, 3)
    np.testing.assert_array_equal(images, expected)  # the same decoder and resize: bit for bit


def test_labels_stay_with_pixels_across_shards_and_epochs(cached):
    cache_dir, _, _, labels = cached
    ds = CachedDataset(cache_dir, labels, batch_size=4, shuffle=True, seed=0)
    assert len(ds) == 3
    orders = []
    for _ in range(3):
        orders.append(ds.order.copy())
        seen = []
        for i in range(len(ds)):
            x, y = ds[i]
            assert x.shape == (len(y), SIZE, SIZE, 3) and x.dtype == np.float32
            assert 0.0 <= x.min() and x.max() <= 1.0
            assert [label_from_pixels(img) for img in x] == y.tolist()
            seen += y.tolist()
        assert sorted(seen) == sorted(labels.tolist())
        ds.on_epoch_end()
    assert not (orders[0] == orders[1]).all() and not (orders[1] == orders[2]).all()
    assert (CachedDataset(cache_dir, labels, shuffle=True, seed=0).order == orders[0]).all()
    with pytest.raises(IndexError):
        ds[3]


def test_unshuffled_batches_follow_the_file_order(cached):
    cache_dir, _, filenames, labels = cached
    ds = CachedDataset(cache_dir, labels, batch_size=7)  # batch 0 spans shards 0 and 1
    x, y = ds[0]
    assert y.tolist() == labels[:7].tolist()
    assert [label_from_pixels(img) for img in x] == labels[:7].tolist()
    assert ds.filenames.tolist() == filenames.tolist()


def test_images_only_for_prediction(cached):
    cache_dir = cached[0]
    x = CachedDataset(cache_dir, batch_size=20)[0]
    assert isinstance(x, np.ndarray) and x.shape == (12, SIZE, SIZE, 3)


def test_bad_arguments(cached, tmp_path):
    cache_dir, _, _, labels = cached
    with pytest.raises(ValueError, match="labels"):
        CachedDataset(cache_dir, labels[:3])
    with pytest.raises(FileNotFoundError, match="build_image_cache"):
        CachedDataset(tmp_path / "nowhere")


def test_second_build_decodes_nothing(indexed, tmp_path, count_decodes):
    image_dir, filenames, _ = indexed
    cache_dir = tmp_path / "cache"
    assert not cache_is_current(cache_dir, image_dir, filenames, SIZE)
    build_image_cache(image_dir, filenames, SIZE, cache_dir, shard_size=5, progress=False)
    assert len(count_decodes) == 12
    assert cache_is_current(cache_dir, image_dir, filenames, SIZE)
    before = (cache_dir / shard_name(0)).stat().st_mtime_ns
    assert build_image_cache(image_dir, filenames, SIZE, cache_dir, shard_size=5, progress=False) == cache_dir
    assert len(count_decodes) == 12  # nothing decoded the second time
    assert (cache_dir / shard_name(0)).stat().st_mtime_ns == before


def _rewrite_first_image(image_dir, filenames):
    """Give the first image another species' colour (same size and mode, so possibly the same byte count)."""
    path = image_dir / filenames[0]
    stat = path.stat()
    with Image.open(path) as img:
        size, mode = img.size, img.mode
    Image.new("RGB", size, species_colour(2)).convert(mode).save(path)
    # a coarse file-system clock could give the rewrite the old time: make sure it moves, as it would later
    os.utime(path, ns=(stat.st_atime_ns, max(path.stat().st_mtime_ns, stat.st_mtime_ns + 1_000_000)))


@pytest.mark.parametrize("change", ["image_size", "fewer_files", "reordered", "rewritten", "touched"])
def test_a_change_of_inputs_triggers_a_rebuild(cached, count_decodes, change):
    cache_dir, image_dir, filenames, labels = cached
    size, names = SIZE, filenames
    if change == "image_size":
        size = SIZE + 4
    elif change == "fewer_files":
        names = filenames[:-1]
    elif change == "reordered":
        names = filenames[::-1]
    elif change == "rewritten":
        _rewrite_first_image(image_dir, filenames)
    else:
        path = image_dir / filenames[0]
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    assert not cache_is_current(cache_dir, image_dir, names, size)
    build_image_cache(image_dir, names, size, cache_dir, shard_size=5, progress=False)
    assert len(count_decodes) == len(names)
    assert cache_is_current(cache_dir, image_dir, names, size)
    ds = CachedDataset(cache_dir, batch_size=len(names))
    assert ds.image_size == size and ds.filenames.tolist() == list(names)
    pixel_labels = [label_from_pixels(img) for img in ds[0]]
    if change == "rewritten":
        assert labels[0] != 2 and pixel_labels[0] == 2  # the cache shows the new picture
    else:
        assert pixel_labels == [labels[filenames.tolist().index(n)] for n in names]


def test_fingerprint_depends_on_size_names_and_files(indexed):
    image_dir, filenames, _ = indexed
    base = cache_fingerprint(image_dir, filenames, SIZE)
    assert base == cache_fingerprint(image_dir, list(filenames), SIZE)
    assert base != cache_fingerprint(image_dir, filenames, SIZE + 1)
    assert base != cache_fingerprint(image_dir, filenames[1:], SIZE)
    _rewrite_first_image(image_dir, filenames)
    assert base != cache_fingerprint(image_dir, filenames, SIZE)


@pytest.mark.parametrize("earlier_cache", [False, True])
def test_an_interrupted_build_is_never_used(indexed, tmp_path, monkeypatch, earlier_cache):
    image_dir, filenames, labels = indexed
    cache_dir = tmp_path / "cache"
    if earlier_cache:  # a complete cache for another IMAGE_SIZE is there already
        build_image_cache(image_dir, filenames, SIZE + 4, cache_dir, shard_size=5, progress=False)
    calls = []
    real = cache_module.load_image_uint8

    def failing(path, image_size):
        calls.append(path)
        if len(calls) == 7:
            raise KeyboardInterrupt  # the kernel stopped in the middle of shard 1
        return real(path, image_size)

    monkeypatch.setattr(cache_module, "load_image_uint8", failing)
    with pytest.raises(KeyboardInterrupt):
        build_image_cache(image_dir, filenames, SIZE, cache_dir, shard_size=5, progress=False)
    assert len(calls) == 7
    assert not cache_is_current(cache_dir, image_dir, filenames, SIZE)
    assert not (tmp_path / "cache.partial").exists()
    if earlier_cache:  # the old cache is untouched, and still says what it holds
        assert CachedDataset(cache_dir).image_size == SIZE + 4
    else:
        assert not cache_dir.exists()
        with pytest.raises(FileNotFoundError):
            CachedDataset(cache_dir)

    monkeypatch.setattr(cache_module, "load_image_uint8", real)
    build_image_cache(image_dir, filenames, SIZE, cache_dir, shard_size=5, progress=False)
    assert cache_is_current(cache_dir, image_dir, filenames, SIZE)
    x, y = CachedDataset(cache_dir, labels, batch_size=12)[0]
    assert [label_from_pixels(img) for img in x] == y.tolist()


def test_a_killed_build_left_behind_is_cleaned_up(indexed, tmp_path):
    """A build killed outright (no ``except`` ran) leaves ``cache.partial``: never read, rebuilt next time."""
    image_dir, filenames, _ = indexed
    partial = tmp_path / "cache.partial"
    partial.mkdir()
    np.save(partial / shard_name(0), np.zeros((5, SIZE, SIZE, 3), np.uint8))
    assert not cache_is_current(tmp_path / "cache", image_dir, filenames, SIZE)
    build_image_cache(image_dir, filenames, SIZE, tmp_path / "cache", shard_size=5, progress=False)
    assert not partial.exists() and cache_is_current(tmp_path / "cache", image_dir, filenames, SIZE)
    assert CachedDataset(tmp_path / "cache")[0].max() > 0


def test_a_folder_that_is_not_a_cache_is_never_deleted(indexed, tmp_path):
    image_dir, filenames, _ = indexed
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not an image cache"):
        build_image_cache(image_dir, filenames, SIZE, precious, progress=False)
    assert (precious / "notes.txt").read_text() == "keep me"
    empty = tmp_path / "empty"
    empty.mkdir()
    build_image_cache(image_dir, filenames, SIZE, empty, progress=False)
    assert cache_is_current(empty, image_dir, filenames, SIZE)


def test_a_missing_shard_makes_the_cache_stale(cached):
    cache_dir, image_dir, filenames, _ = cached
    (cache_dir / shard_name(1)).unlink()
    assert not cache_is_current(cache_dir, image_dir, filenames, SIZE)


def test_shards_are_written_one_at_a_time_through_memmaps(indexed, tmp_path, monkeypatch):
    image_dir, filenames, _ = indexed
    shapes = []
    real = np.lib.format.open_memmap

    def spy(*args, **kwargs):
        shapes.append(kwargs["shape"])
        return real(*args, **kwargs)

    monkeypatch.setattr(np.lib.format, "open_memmap", spy)
    build_image_cache(image_dir, filenames, SIZE, tmp_path / "cache", shard_size=5, progress=False)
    assert [shape[0] for shape in shapes] == [5, 5, 2]


def test_reading_uses_memory_mapping(cached, monkeypatch):
    cache_dir, _, _, labels = cached
    modes = []
    real = np.load

    def spy(*args, **kwargs):
        modes.append(kwargs.get("mmap_mode"))
        return real(*args, **kwargs)

    monkeypatch.setattr(np, "load", spy)
    ds = CachedDataset(cache_dir, labels, batch_size=4)
    assert modes == ["r"]  # the names only (filenames.npy): no shard opened until a batch is asked for
    ds[0]
    assert modes == ["r", "r"]  # batch 0 lies in shard 0 only
    ds[1]
    assert modes == ["r", "r", "r"]  # batch 1 needs shard 1 too; shard 0 stays open
    assert isinstance(ds.shard(0), np.memmap) and ds.shard(0).dtype == np.uint8


def test_pickling_leaves_the_memory_maps_behind(cached):
    cache_dir, _, _, labels = cached
    ds = CachedDataset(cache_dir, labels, batch_size=5, workers=2, use_multiprocessing=True)
    first = ds[0]
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._shards == {} and len(ds._shards) == 1
    again = clone[0]
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert str(clone.shard(0).filename).endswith(shard_name(0))  # reopened from its file
    assert (clone.workers, clone.use_multiprocessing) == (2, True)


@pytest.mark.slow
def test_model_fit_learns_from_the_cache(cached, monkeypatch):
    """fit reads every cached image once per epoch and learns the colour-coded labels from those pixels
    (a loader that returned wrong or blank images could not get above chance, 1/3)."""
    cache_dir, _, _, labels = cached
    ds = CachedDataset(cache_dir, labels, batch_size=4, shuffle=True, seed=1)
    read = []
    real = CachedDataset.load_batch

    def counting(self, picked):
        read.extend(picked.tolist())
        return real(self, picked)

    monkeypatch.setattr(CachedDataset, "load_batch", counting)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(keras.optimizers.Adam(0.1), "sparse_categorical_crossentropy", metrics=["accuracy"])
    epochs = 10
    history = model.fit(ds, epochs=epochs, verbose=0)
    # every image once per epoch (Keras also peeks at a batch or two to learn the shapes: less than an epoch)
    assert min(read.count(k) for k in range(len(labels))) >= epochs
    assert len(read) < (epochs + 1) * len(labels)
    assert history.history["accuracy"][-1] == 1.0, history.history["accuracy"]
    predicted = model.predict(CachedDataset(cache_dir, batch_size=5), verbose=0).argmax(axis=1)
    assert predicted.tolist() == labels.tolist()


@pytest.mark.parametrize("workers,processes", [(1, False), (2, False), (2, True)])
def test_read_the_way_fit_reads_it(cached, workers, processes):
    """Through Keras' own adapter (threads, processes), the batches are the dataset's, in order, each image
    with its label, and the speed figure counts exactly the images asked for."""
    cache_dir, _, _, labels = cached
    ds = CachedDataset(cache_dir, labels, batch_size=5, workers=workers, use_multiprocessing=processes)
    batches = list(pydataset_batches(ds))
    assert len(batches) == len(ds) == 3
    for i, (x, y) in enumerate(batches):
        np.testing.assert_array_equal(x, ds[i][0])
        assert y.tolist() == labels[i * 5 : (i + 1) * 5].tolist() == [label_from_pixels(img) for img in x]
    trace = trace_loader("cache", lambda: pydataset_batches(ds, 2))
    assert trace.images[-1] == 10 and np.isfinite(trace.images_per_second) and trace.images_per_second > 0
    assert np.isfinite(measure_images_per_second(ds, batches=1))
