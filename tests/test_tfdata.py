from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from seedlings_utils.dataset import load_image
from seedlings_utils.synthetic import make_synthetic_seedlings
from seedlings_utils.tfdata import make_tf_dataset, measure_tf_images_per_second

from .conftest import label_from_pixels

#: Largest difference allowed from Pillow (lesson 05's load_image) for lossless files: one level of 255.
TOLERANCE = 1 / 255 + 1e-6


def epoch(ds) -> tuple[np.ndarray, np.ndarray]:
    """One pass over ``ds``: all images and all labels, concatenated."""
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds], strict=True)
    return np.concatenate(xs), np.concatenate(ys)


def test_batches_have_the_right_shapes_and_labels(indexed):
    image_dir, filenames, labels = indexed
    ds = make_tf_dataset(image_dir, filenames, labels, batch_size=5, image_size=12)
    batches = [(x.numpy(), y.numpy()) for x, y in ds]
    assert [x.shape for x, _ in batches] == [(5, 12, 12, 3), (5, 12, 12, 3), (2, 12, 12, 3)]
    for x, y in batches:
        assert x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0
        assert [label_from_pixels(img) for img in x] == y.tolist()
    assert np.concatenate([y for _, y in batches]).tolist() == labels.tolist()  # file order kept
    assert max(x.max() for x, _ in batches) > 0.5  # scaled once, not twice


def test_images_only_for_prediction(indexed):
    image_dir, filenames, _ = indexed
    ds = make_tf_dataset(image_dir, filenames, batch_size=20, image_size=8)
    assert isinstance(ds.element_spec, tf.TensorSpec)
    (x,) = list(ds)
    assert x.shape == (12, 8, 8, 3) and x.dtype == tf.float32


def test_bad_arguments(indexed):
    image_dir, filenames, labels = indexed
    with pytest.raises(ValueError, match="labels"):
        make_tf_dataset(image_dir, filenames, labels[:3])
    with pytest.raises(ValueError, match="nothing"):
        make_tf_dataset(image_dir, filenames[:0])


@pytest.mark.parametrize("cached", [False, True])
def test_shuffle_keeps_pairs_differs_per_epoch_and_repeats_with_the_seed(indexed, tmp_path, cached):
    image_dir, filenames, labels = indexed
    ids = np.arange(len(filenames))  # each image's position as its "label": shows the order of samples

    def make(seed, name):
        cache_file = tmp_path / name if cached else None
        return make_tf_dataset(image_dir, filenames, ids, batch_size=5, image_size=8, shuffle=True, seed=seed,
                               cache_file=cache_file)

    ds = make(3, "a")
    orders = []
    for _ in range(2):
        x, order = epoch(ds)
        assert [label_from_pixels(img) for img in x] == labels[order].tolist()  # pixels match their labels
        assert sorted(order) == ids.tolist()
        orders.append(order)
    assert orders[0].tolist() != ids.tolist()
    assert orders[0].tolist() != orders[1].tolist()
    again = make(3, "b")
    assert [epoch(again)[1].tolist() for _ in range(2)] == [o.tolist() for o in orders]
    assert epoch(make(4, "c"))[1].tolist() != orders[0].tolist()


def test_unordered_decoding_keeps_pairs(indexed):
    image_dir, filenames, labels = indexed
    ids = np.arange(len(filenames))
    ds = make_tf_dataset(image_dir, filenames, ids, batch_size=4, image_size=8, num_parallel_calls=4,
                         deterministic=False)
    x, order = epoch(ds)
    assert sorted(order) == ids.tolist()
    assert [label_from_pixels(img) for img in x] == labels[order].tolist()


def test_cache_file_is_written_then_read_instead_of_the_images(indexed, tmp_path):
    image_dir, filenames, labels = indexed
    cache_file = tmp_path / "tfcache" / "train"
    ds = make_tf_dataset(image_dir, filenames, labels, batch_size=5, image_size=8, cache_file=cache_file)
    first = epoch(ds)
    assert (tmp_path / "tfcache" / "train.index").is_file()
    assert list((tmp_path / "tfcache").glob("train.data-*"))
    for name in filenames:  # decoding happens in the first epoch only: the images are not needed any more
        (image_dir / name).unlink()
    second = epoch(ds)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_an_early_stopped_epoch_leaves_no_cache(indexed, tmp_path):
    image_dir, filenames, labels = indexed
    ds = make_tf_dataset(image_dir, filenames, labels, batch_size=5, image_size=8, cache_file=tmp_path / "c")
    next(iter(ds))
    assert not (tmp_path / "c.index").exists()
    assert epoch(ds)[1].tolist() == labels.tolist()  # the next full epoch builds it, complete
    assert (tmp_path / "c.index").is_file()


@pytest.mark.parametrize("change", ["image_size", "fewer_files", "labels"])
def test_a_cache_for_other_inputs_is_not_replayed(indexed, tmp_path, change):
    image_dir, filenames, labels = indexed
    cache_file = tmp_path / "c"
    epoch(make_tf_dataset(image_dir, filenames, labels, batch_size=5, image_size=8, cache_file=cache_file))
    size, names, new_labels = 8, filenames, labels
    if change == "image_size":
        size = 12
    elif change == "fewer_files":
        names, new_labels = filenames[:-4], labels[:-4]
    else:
        new_labels = labels[::-1].copy()
    x, y = epoch(make_tf_dataset(image_dir, names, new_labels, batch_size=5, image_size=size,
                                 cache_file=cache_file))
    assert x.shape == (len(names), size, size, 3)
    assert y.tolist() == new_labels.tolist()


def _noise(width: int = 90, height: int = 70) -> Image.Image:
    """A smooth random picture: enough detail that a wrong resize or channel shows."""
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)).resize((width, height))


@pytest.mark.parametrize("kind", ["RGB", "RGBA", "L", "LA", "P", "P+transparency", "1", "I;16", "gif",
                                  "animated.gif", "bmp", "webp", "jpg"])
@pytest.mark.parametrize("size", [16, 128])
def test_every_kind_of_file_gives_rgb_close_to_pillow(tmp_path, kind, size):
    base = _noise()
    name = "x.png"
    if kind == "I;16":  # a true 16-bit gradient: must be scaled down to 8 bits, not clipped to white
        gradient = np.linspace(0, 65535, 70 * 90).reshape(70, 90).astype(np.uint16)
        Image.fromarray(gradient).save(tmp_path / name)
        with Image.open(tmp_path / name) as img:
            assert img.mode.startswith("I")
    elif kind == "P+transparency":
        base.convert("P").save(tmp_path / name, transparency=0)
    elif kind == "animated.gif":
        name = kind
        base.save(tmp_path / name, save_all=True, append_images=[base.rotate(90)])
    elif kind in ("gif", "bmp", "webp", "jpg"):
        name = f"x.{kind}"
        base.save(tmp_path / name)
    else:
        base.convert(kind).save(tmp_path / name)
    (x,) = list(make_tf_dataset(tmp_path, [name], batch_size=1, image_size=size))
    image = x.numpy()[0]
    assert image.shape == (size, size, 3) and image.dtype == np.float32
    assert 0.0 <= image.min() and image.max() <= 1.0
    diff = np.abs(image - load_image(tmp_path / name, size))
    if kind == "jpg":  # TensorFlow's JPEG decoder rounds its IDCT differently from Pillow's
        assert diff.max() <= 6 / 255 and diff.mean() <= 2 / 255
    else:
        assert diff.max() <= TOLERANCE and diff.mean() <= 0.5 / 255
    if kind == "I;16":
        assert 0.45 < image.mean() < 0.55 and image.min() < 0.05 and image.max() > 0.95


def test_seedlings_match_pillow_within_one_level(tmp_path):
    make_synthetic_seedlings(tmp_path / "raw", per_class=2, seed=1, progress=False)
    image_dir = tmp_path / "raw" / "train"
    filenames = sorted(p.relative_to(image_dir).as_posix() for p in image_dir.rglob("*.png"))
    (x,) = list(make_tf_dataset(image_dir, filenames, batch_size=len(filenames), image_size=64))
    expected = np.stack([load_image(image_dir / name, 64) for name in filenames])
    diff = np.abs(x.numpy() - expected)
    assert diff.max() <= TOLERANCE and diff.mean() <= 0.5 / 255


def test_model_fit_on_the_tf_dataset(indexed, tmp_path):
    image_dir, filenames, labels = indexed
    ds = make_tf_dataset(image_dir, filenames, labels, batch_size=4, image_size=8, shuffle=True, seed=1,
                         cache_file=tmp_path / "c")
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(ds, epochs=1, verbose=0, shuffle=False)  # the dataset shuffles itself
    assert len(history.history["loss"]) == 1 and np.isfinite(history.history["loss"][0])


def test_measure_tf_images_per_second(indexed):
    image_dir, filenames, labels = indexed
    ds = make_tf_dataset(image_dir, filenames, labels, batch_size=4, image_size=8)
    assert measure_tf_images_per_second(ds) > 0
    assert measure_tf_images_per_second(ds, batches=1) > 0
    assert measure_tf_images_per_second(make_tf_dataset(image_dir, filenames, batch_size=5, image_size=8)) > 0
    with pytest.raises(ValueError):
        measure_tf_images_per_second(ds, batches=0)
