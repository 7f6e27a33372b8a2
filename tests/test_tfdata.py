from __future__ import annotations

import gc
import os
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from packaging.version import Version
from PIL import Image

from seedlings_utils.dataset import load_image
from seedlings_utils.pipeline_buffers import describe_pipeline, pipeline_steps
from seedlings_utils.profiling import measure_tf_images_per_second
from seedlings_utils.synthetic import make_synthetic_seedlings
from seedlings_utils.tf_cache_file import cache_is_written
from seedlings_utils.tfdata import make_tf_dataset

from .helpers import label_from_pixels, species_colour

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


@pytest.mark.parametrize("cached", [False, True])
def test_unordered_decoding_keeps_pairs(indexed, tmp_path, op_determinism_off, cached):
    image_dir, filenames, labels = indexed
    # the first image takes far longer to decode than the others: unordered decoding hands it on late
    Image.new("RGB", (2000, 2000), species_colour(int(labels[0]))).save(image_dir / filenames[0], compress_level=0)
    ids = np.arange(len(filenames))
    ds = make_tf_dataset(image_dir, filenames, ids, batch_size=4, image_size=8, num_parallel_calls=4,
                         deterministic=False, cache_file=tmp_path / "c" if cached else None)
    assert [s.deterministic for s in pipeline_steps(ds) if s.kind == "map"] == ["false", "false"]
    x, order = epoch(ds)
    assert sorted(order) == ids.tolist()
    assert [label_from_pixels(img) for img in x] == labels[order].tolist()
    if cached:  # map -> cache -> batch: the map hands on images as they finish
        assert order.tolist() != ids.tolist(), "the slow first image should have come later"
    else:  # map -> batch: tf.data fuses them (map_and_batch_fusion, on by default): each batch keeps its
        # images in order, but a batch that is ready may overtake the one waiting for the slow image
        batches = order.reshape(-1, 4)
        assert sorted(b[0] for b in batches) == list(range(0, len(ids), 4))
        assert all(b.tolist() == list(range(b[0], b[0] + 4)) for b in batches), batches


def test_cache_file_is_written_then_read_instead_of_the_images(indexed, tmp_path):
    image_dir, filenames, labels = indexed
    cache_file = tmp_path / "tfcache" / "train"
    ds = make_tf_dataset(image_dir, filenames, labels, batch_size=5, image_size=8, cache_file=cache_file)
    assert not cache_is_written(cache_file) and (tmp_path / "tfcache" / "train.json").is_file()  # the stamp only
    first = epoch(ds)
    assert cache_is_written(cache_file)
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
    stopped = iter(ds)
    next(stopped)
    # prefetch may already have read this tiny set to the end in the background (then the cache is complete);
    # what must never happen is a half-written cache that is replayed as if it were the whole data set
    assert (tmp_path / "c.index").exists() == cache_is_written(tmp_path / "c")
    del stopped  # the stopped iterator holds the cache's lock until it is collected
    gc.collect()
    assert epoch(ds)[1].tolist() == labels.tolist()  # the next full epoch gives every image, and builds the cache
    assert epoch(ds)[1].tolist() == labels.tolist() and cache_is_written(tmp_path / "c")


def test_a_lock_file_left_by_a_killed_run_does_not_stop_the_next(indexed, tmp_path):
    image_dir, filenames, labels = indexed
    make_tf_dataset(image_dir, filenames, labels, batch_size=5, image_size=8, cache_file=tmp_path / "c")
    (tmp_path / "c_0.lockfile").write_text("")  # the run was killed half-way through its first pass
    ds = make_tf_dataset(image_dir, filenames, labels, batch_size=5, image_size=8, cache_file=tmp_path / "c")
    assert epoch(ds)[1].tolist() == labels.tolist()  # else: AlreadyExistsError, "concurrent caching iterator"
    assert cache_is_written(tmp_path / "c")


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


def _many_names(image_dir, filenames, n):
    """``n`` names cycling through the real files: a large data set's graph, without a large folder."""
    return np.array([filenames[i % len(filenames)] for i in range(n)]), np.zeros(n, np.int64)


@pytest.mark.parametrize("cached", [False, True])
def test_names_are_shuffled_before_decoding_and_no_image_buffer_grows_with_the_data(indexed, tmp_path, cached):
    image_dir, filenames, _ = indexed
    for n in (len(filenames), 20_000):
        names, labels = _many_names(image_dir, filenames, n)
        ds = make_tf_dataset(image_dir, names, labels, batch_size=5, image_size=8, shuffle=True, seed=1,
                             cache_file=tmp_path / f"c{n}" if cached else None, shuffle_buffer=7)
        steps = pipeline_steps(ds)
        decode = [i for i, s in enumerate(steps) if s.kind == "map" and s.decodes]
        assert len(decode) == 1
        names_shuffles = [s for s in steps[:decode[0]] if s.kind == "shuffle"]
        image_shuffles = [s for s in steps[decode[0]:] if s.kind == "shuffle"]
        # every NAME in the buffer (bookkeeping: a few hundred bytes each), reshuffled every epoch
        assert [(s.permutation, s.buffer_size, s.reshuffle) for s in names_shuffles] == [(False, n, True)]
        assert int(ds.cardinality()) == -(-n // 5), "Keras must know how many batches an epoch has"
        # decoded images: only after a cache, in a buffer of shuffle_buffer whatever the data set's size
        assert [(s.buffer_size, s.reshuffle) for s in image_shuffles] == ([(7, True)] if cached else [])
        assert not [s for s in steps if s.kind == "cache" and not s.filename]  # never a cache in memory
        kinds = [s.kind for s in steps]
        assert kinds[-3:] == ["batch", "map", "prefetch"] and kinds.index("batch") > decode[0]
        assert steps[-1].buffer_size == -1  # prefetch(AUTOTUNE), as the canonical chain


def test_by_position_shuffles_a_permutation_with_no_buffer_and_keeps_pairs(indexed):
    from seedlings_utils.tfdata import make_tf_dataset_by_position

    image_dir, filenames, labels = indexed
    for n in (len(filenames), 20_000):
        names, ys = _many_names(image_dir, filenames, n)
        steps = pipeline_steps(make_tf_dataset_by_position(image_dir, names, ys, batch_size=5, image_size=8, seed=1))
        # every position in one permutation, drawn anew each epoch, with no buffer: 8 bytes an image
        assert [(s.permutation, s.buffer_size, s.reshuffle) for s in steps if s.kind == "shuffle"] == [(True, 0, True)]
        assert [s.count for s in steps if s.kind == "cardinality"] == [n]
    ds = make_tf_dataset_by_position(image_dir, filenames, labels, batch_size=5, image_size=8, seed=1)
    assert int(ds.cardinality()) == -(-len(filenames) // 5)
    first, second = epoch(ds), epoch(ds)
    for images, ys in (first, second):
        assert sorted(ys.tolist()) == sorted(labels.tolist())
        assert [label_from_pixels(x) for x in images] == ys.tolist()
    assert first[1].tolist() != second[1].tolist() or len(set(labels.tolist())) == 1


def test_the_pipeline_holds_each_name_once_not_its_full_path(indexed):
    """Lesson 08 keeps the file NAMES in its graph and joins the folder per image: 60 bytes an image, not 240."""
    image_dir, filenames, labels = indexed
    ds = make_tf_dataset(image_dir, filenames, labels, batch_size=4, image_size=8, shuffle=True, seed=1)
    graph = ds._as_serialized_graph(external_state_policy=tf.data.experimental.ExternalStatePolicy.WARN).numpy()
    folder = (str(image_dir) + os.sep).encode()
    assert all(name.encode() in graph for name in filenames), "every name is in the pipeline's graph"
    assert graph.count(folder) == 1, "the folder once, not once per image: no list of full paths"
    # ... and every image is still read from image_dir (the folder joined to its name), with its own label
    images, ys = next(iter(make_tf_dataset(image_dir, filenames, labels, batch_size=len(filenames), image_size=8)))
    assert images.shape[0] == len(filenames) and ys.numpy().tolist() == list(labels)


def test_the_default_image_buffer_is_a_thousand_images(indexed, tmp_path):
    image_dir, filenames, labels = indexed
    ds = make_tf_dataset(image_dir, filenames, labels, shuffle=True, seed=1, cache_file=tmp_path / "c")
    shuffles = [(s.permutation, s.buffer_size) for s in pipeline_steps(ds) if s.kind == "shuffle"]
    assert shuffles == [(False, len(filenames)), (False, 1000)]


def test_shuffled_order_is_a_new_permutation_every_epoch_and_the_same_orders_for_a_seed():
    from seedlings_utils.tfdata import shuffled_order

    def orders(seed):
        ds = shuffled_order(50, seed)
        return [list(ds.as_numpy_iterator()) for _ in range(3)]

    first = orders(3)
    assert all(sorted(order) == list(range(50)) for order in first)
    assert first[0] != first[1] != first[2] and first == orders(3) and first != orders(4)
    fixed = tf.data.Dataset.random(seed=1, rerandomize_each_iteration=False).take(1).flat_map(
        lambda s: tf.data.Dataset.from_tensor_slices(tf.random.experimental.stateless_shuffle(
            tf.range(50, dtype=tf.int64), seed=tf.stack([s, 0]))))
    names = tf.data.Dataset.from_tensor_slices([str(i) for i in range(50)]).shuffle(50)
    assert [(s.permutation, s.reshuffle) for s in pipeline_steps(shuffled_order(50, 3)) if s.kind == "shuffle"] \
        == [(True, True)]
    assert [(s.permutation, s.reshuffle) for s in pipeline_steps(fixed) if s.kind == "shuffle"] == [(True, False)]
    assert [(s.permutation, s.buffer_size) for s in pipeline_steps(names) if s.kind == "shuffle"] == [(False, 50)]


def where(order: np.ndarray) -> np.ndarray:
    """``where(order)[i]``: the place at which image ``i`` came in an epoch whose labels are ``order``."""
    place = np.empty_like(order)
    place[order] = np.arange(len(order))
    return place


def test_after_a_cache_an_image_moves_at_most_buffer_places_earlier(indexed, tmp_path):
    image_dir, filenames, _ = indexed
    ids = np.arange(len(filenames))

    def make(name, buffer):
        return make_tf_dataset(image_dir, filenames, ids, batch_size=5, image_size=8, shuffle=True, seed=5,
                               cache_file=tmp_path / name, shuffle_buffer=buffer)

    replay = make("one", 1)  # a buffer of one image shuffles nothing: we see the cache's own order
    cache_order = [epoch(replay)[1] for _ in range(3)]
    assert sorted(cache_order[0]) == ids.tolist() and cache_order[0].tolist() != ids.tolist()  # names shuffled
    assert cache_order[1].tolist() == cache_order[2].tolist() == cache_order[0].tolist()  # replayed as written
    mixed = make("three", 3)  # same seed: the same names' order is written to its cache
    epochs = [epoch(mixed)[1] for _ in range(3)]
    for order in epochs:
        assert sorted(order) == ids.tolist()
        assert (where(order) >= where(cache_order[0]) - 2).all()  # buffer 3: at most 2 places earlier
    assert epochs[1].tolist() != epochs[2].tolist()  # yet a new order every epoch


def test_a_cache_written_in_another_order_is_rebuilt(indexed, tmp_path):
    image_dir, filenames, _ = indexed
    ids = np.arange(len(filenames))
    cache_file = tmp_path / "c"
    in_file_order = make_tf_dataset(image_dir, filenames, ids, batch_size=5, image_size=8, cache_file=cache_file)
    assert epoch(in_file_order)[1].tolist() == ids.tolist()
    shuffled = make_tf_dataset(image_dir, filenames, ids, batch_size=5, image_size=8, shuffle=True, seed=2,
                               cache_file=cache_file, shuffle_buffer=1)
    # replaying the file-order cache with a buffer of 1 would give ids again: the names' shuffle must show
    assert epoch(shuffled)[1].tolist() != ids.tolist()


def test_pipeline_steps_and_describe_pipeline_name_what_each_buffer_holds(indexed, tmp_path):
    image_dir, filenames, labels = indexed
    paths = [str(image_dir / name) for name in filenames]
    images = tf.data.Dataset.from_tensor_slices(paths).map(lambda p: tf.io.decode_png(tf.io.read_file(p)))
    zipped = tf.data.Dataset.zip((images, tf.data.Dataset.from_tensor_slices(labels))).cache().shuffle(9)
    steps = pipeline_steps(zipped)
    assert [s.kind for s in steps] == ["zip", "cache", "shuffle"]
    assert [[s.kind for s in branch] for branch in steps[0].branches] == [["source", "map"], ["source"]]
    assert steps[0].branches[0][1].decodes and not steps[0].branches[0][1].parallel
    assert steps[1].filename == "" and steps[2].buffer_size == 9
    text = describe_pipeline(make_tf_dataset(image_dir, filenames, labels, shuffle=True, seed=1,
                                             cache_file=tmp_path / "c", shuffle_buffer=50, image_size=128),
                             image_bytes=128 * 128 * 3)
    assert f"a buffer of {len(filenames)} file names" in text
    assert "a buffer of 50 decoded images: 2.5 MB" in text and "written to" in text
    from seedlings_utils.tfdata import make_tf_dataset_by_position

    text = describe_pipeline(make_tf_dataset_by_position(image_dir, filenames, labels, seed=1))
    assert "one permutation of every position, made anew each epoch" in text
    assert f"cardinality {len(filenames)} positions" in text


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


@pytest.mark.slow
def test_model_fit_learns_from_the_tf_dataset_and_keras_leaves_its_order_alone(indexed, tmp_path):
    image_dir, filenames, labels = indexed
    ds = make_tf_dataset(image_dir, filenames, labels, batch_size=4, image_size=8, shuffle=True, seed=1,
                         cache_file=tmp_path / "c")
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy", metrics=["accuracy"])
    if Version(keras.__version__) >= Version("3.15"):  # fit's default shuffle=True: ignored, said since Keras 3.15
        with pytest.warns(UserWarning, match="shuffle=True.*will be ignored"):
            model.fit(ds, epochs=1, verbose=0)
    else:  # ignored without a word (the floor of requirements.txt, tested by make test-oldest)
        model.fit(ds, epochs=1, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # shuffle=False: nothing to ignore, no warning
        history = model.fit(ds, epochs=30, verbose=0, shuffle=False)
    assert history.history["accuracy"][-1] == 1.0  # one colour per species: it must learn them all
    assert cache_is_written(tmp_path / "c")
    # ... and from the right labels (a constant label would also give accuracy 1.0): each file's own species
    predicted = model.predict(make_tf_dataset(image_dir, filenames, batch_size=4, image_size=8), verbose=0)
    assert predicted.argmax(axis=1).tolist() == list(labels)


def test_measure_tf_images_per_second(indexed):
    image_dir, filenames, labels = indexed
    ds = make_tf_dataset(image_dir, filenames, labels, batch_size=4, image_size=8)
    assert measure_tf_images_per_second(ds) > 0
    assert measure_tf_images_per_second(ds, batches=1) > 0
    assert measure_tf_images_per_second(make_tf_dataset(image_dir, filenames, batch_size=5, image_size=8)) > 0
    with pytest.raises(ValueError):
        measure_tf_images_per_second(ds, batches=0)


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads Linux's /proc/self/status")
@pytest.mark.slow
def test_a_name_in_the_shuffle_costs_a_few_hundred_bytes_not_an_image():
    from seedlings_utils.pipeline_buffers import name_shuffle_bytes_per_image

    size = name_shuffle_bytes_per_image(["Common Chickweed__000000123.png"], count=100_000)
    assert 30 < size < 1024, size  # bookkeeping: under 1 KB an image, a 128 px image is 49,152 bytes
