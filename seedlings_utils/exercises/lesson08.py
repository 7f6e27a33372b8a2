"""Lesson 08's exercises: a pipeline in bounded memory; each label with its image under unordered decoding;
a cache file without losing the shuffle; the chain for a new file format (raw bytes).

Each check first builds the learner's pipeline for :data:`N` file names (without reading them) and reads
back what every buffer would hold (:func:`~seedlings_utils.exercises.loader_checks.check_pipeline`: a few
batches of decoded images at most, anywhere; exercise 3's shuffle after its cache file up to 1,000); then it runs the
pipeline on a few numbered images of its own (:func:`~seedlings_utils.exercises.tiny_image_folder`), whose
labels are their numbers, so that a label next to the wrong picture shows.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from . import Exercise, Incorrect, image_number, tiny_image_folder
from .loader_checks import FEW_BATCHES, check_images, check_pipeline, decoded_before_the_pipeline, few

#: File names the checks build each pipeline for (only its graph is built: no file is read).
N = 20_000
#: Images in the checks' own folder, and the size and batch the checks ask for.
COUNT, SIZE, BATCH = 12, 8, 5
#: The most decoded images exercise 3's shuffle after the cache file may hold ("at most 1,000"); every other buffer
#: of every exercise holds a few batches at most (:func:`~seedlings_utils.exercises.loader_checks.check_pipeline`).
BOUND_Q3 = 1000
#: Bytes of one uint8 image at 128 px, for the messages: what a buffer would cost at the full recipe.
BYTES_128 = 128 * 128 * 3


def _tf():
    import tensorflow as tf

    return tf


def _gigabytes(images: int) -> str:
    return f"{images * BYTES_128 / 1e9:,.1f} GB" if images * BYTES_128 >= 1e9 else f"{images * BYTES_128 / 1e6:,.0f} MB"


def _as_dataset(answer, what: str, *args):
    ds = answer(*args)
    if not isinstance(ds, _tf().data.Dataset):
        raise Incorrect(f"`{what}` returned {type(ds).__name__}, not a tf.data.Dataset: end with `return ds...`")
    return ds


def _steps(ds):
    from ..pipeline_buffers import pipeline_steps

    return pipeline_steps(ds)


def _decoding(steps, what: str) -> int:
    """Index of the map that reads and decodes the files."""
    for i, step in enumerate(steps):
        if step.kind == "map" and step.decodes:
            return i
    if decoded_before_the_pipeline(steps):
        raise Incorrect(f"`{what}` starts from images decoded before the pipeline: every image of the data set is "
                        f"held in memory (100,000 at 128 px: {_gigabytes(100_000)}). Start from the file paths and "
                        "decode inside the pipeline, in a map")
    raise Incorrect(f"no step of `{what}` reads and decodes the files: map `decode_and_resize` over the paths "
                    "(`ds.map(lambda path, label: (decode_and_resize(path, image_size), label), ...)`)")


def _bounded(ds, what: str, allowed: dict[int, int] | None = None) -> tuple[list, int]:
    """The pipeline's steps and its decoding map, once no buffer is seen to hold more than a few batches."""
    steps, decoded = check_pipeline(ds, BATCH, what, allowed)
    return steps, _decoding(steps, what) if decoded is None else decoded


def _names_shuffled(steps, decoded: int, n: int) -> None:
    """The file names are shuffled before decoding, all of them (a buffer of every name, or the lesson's
    :func:`~seedlings_utils.tfdata.shuffled_order`, a permutation of every position), anew every epoch."""
    names = [s for s in steps[:decoded] if s.kind == "shuffle"]
    images = [s for s in steps[decoded:] if s.kind == "shuffle"]
    if not names and not images:
        raise Incorrect("nothing shuffles: every epoch comes in the order of `paths`. Shuffle the file names "
                        "before the decoding map: `ds.shuffle(len(paths), seed=seed)`.")
    if not names:
        raise Incorrect(f"only decoded images are shuffled (a buffer of {images[0].buffer_size:,}), so an image "
                        "moves only that far from the order of `paths`. Shuffle the file names, before the "
                        "decoding map, with a buffer of len(paths): names are cheap, and each epoch is then a "
                        "full new order.")
    biggest = max(s.buffer_size for s in names)
    if biggest < n and not any(s.permutation for s in names):
        raise Incorrect(f"the file names are shuffled in a buffer of {biggest:,} for {n:,} names, so an image "
                        f"moves only about {biggest:,} places. Shuffle all of them: `shuffle(len(paths), ...)` "
                        "(a few hundred bytes a name, as lesson 08 measures: it grows with the number of files, "
                        "never with their pixels), or the lesson's `shuffled_order(len(paths), seed)`, "
                        "a permutation of positions at 8 bytes each.")
    if not all(s.reshuffle for s in names):
        raise Incorrect("`reshuffle_each_iteration=False`: every epoch comes in the same order. Leave it out "
                        "(the default reshuffles every epoch).")


def _batches(ds, what: str) -> tuple[list[np.ndarray], np.ndarray]:
    """One epoch of ``(images, labels)`` batches as NumPy: the images of each batch and all labels."""
    images, labels = [], []
    for element in ds.as_numpy_iterator():
        if not (isinstance(element, tuple) and len(element) == 2):
            raise Incorrect(f"`{what}` must yield (images, labels) pairs; an element was {type(element).__name__}"
                            + (f" of {len(element)}" if isinstance(element, tuple) else ""))
        images.append(np.asarray(element[0]))
        labels.append(np.asarray(element[1]).reshape(-1))
    return images, np.concatenate(labels) if labels else np.array([], int)


def _check_batches(images: list[np.ndarray], labels: np.ndarray, what: str, epoch: int) -> None:
    """Batches of BATCH float32 images in [0, 1], scaled once, every image once, each with its own label."""
    sizes = [len(x) for x in images]
    expected = [BATCH] * (COUNT // BATCH) + ([COUNT % BATCH] if COUNT % BATCH else [])
    if sizes != expected:
        raise Incorrect(f"epoch {epoch}: {COUNT} images in batches of {BATCH} should come as batches of "
                        f"{expected}, yours came as {sizes}")
    x = np.concatenate(images)
    if x.shape[1:] != (SIZE, SIZE, 3):
        raise Incorrect(f"images of shape {x.shape[1:]}, expected ({SIZE}, {SIZE}, 3) for image_size={SIZE}")
    if x.dtype == np.float32 and 1 / 255 < x.max() < 0.4:
        raise Incorrect(f"the brightest value is {x.max():.4f}, not about 0.5: the images were divided by 255 twice")
    check_images(x, f"epoch {epoch}'s images")
    numbers = [image_number(image) for image in x]
    if sorted(numbers) != list(range(COUNT)):
        missing = sorted(set(range(COUNT)) - set(numbers))
        raise Incorrect(f"epoch {epoch} should show each of the {COUNT} images once; missing: {missing}, "
                        f"seen twice: {sorted({k for k in numbers if numbers.count(k) > 1})}")
    wrong = [(k, int(label)) for k, label in zip(numbers, labels, strict=True) if k != label]
    if wrong:
        k, label = wrong[0]
        raise Incorrect(f"{len(wrong)} of {COUNT} images came with another image's label (image {k} with the "
                        f"label of image {label}): each label must travel with its own image")


def _repeated_paths(folder: Path, names: list[str], n: int) -> list[str]:
    """``n`` paths cycling through the real files: enough names for the graph, each file exists."""
    return [str(folder / names[i % len(names)]) for i in range(n)]


# ---- Exercise 1 ---------------------------------------------------------------------------------


def _check_bounded(answer, what: str = "bounded_pipeline", make_files=tiny_image_folder) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        names = make_files(folder, COUNT)
        ds = _as_dataset(answer, what, [str(folder / name) for name in names], np.arange(COUNT), SIZE, BATCH, 0)
        _bounded(ds, what)  # images decoded before the pipeline show here, on a few files
        paths = _repeated_paths(folder, names, N)
        steps, decoded = _bounded(_as_dataset(answer, what, paths, np.zeros(N, np.int64), SIZE, BATCH, 0), what)
        _names_shuffled(steps, decoded, N)
        orders = []
        for epoch in (1, 2):
            images, labels = _batches(ds, what)
            _check_batches(images, labels, what, epoch)
            orders.append(labels.tolist())
    if orders[0] == orders[1]:
        raise Incorrect("epochs 1 and 2 came in the same order: shuffle anew every epoch")
    return ("the names are shuffled before decoding (all of them: a full new order each epoch), and "
            f"no buffer holds more than a few batches of images ({FEW_BATCHES} batches of {BATCH}: {few(BATCH)})")


q1 = Exercise(
    name="q1",
    task="Rewrite leaky_pipeline as bounded_pipeline: the same batches, in bounded memory.",
    checker=_check_bounded,
    hint_text="Two things hold every image: `.cache()` without a file name (it keeps what it has seen in "
              "memory) and `.shuffle(len(paths))` placed after the decoding map (its buffer fills with decoded "
              "images). Drop the cache, and move the shuffle before the map, where the items are still file "
              "names: a buffer of len(paths) names costs a few hundred bytes a name (lesson 08 measures it), not a "
              "picture's worth: exactly the lesson's first chain.",
    solution_code='''
import tensorflow as tf

from seedlings_utils.tfdata import AUTOTUNE, decode_and_resize


def bounded_pipeline(paths, labels, image_size, batch_size, seed):
    """Batches of (images in [0, 1], labels), shuffled every epoch, without holding every image in memory."""
    ds = tf.data.Dataset.from_tensor_slices((paths, labels))
    ds = ds.shuffle(len(paths), seed=seed)  # names, not images: ~600 bytes each, a full new order every epoch
    ds = ds.map(lambda path, label: (decode_and_resize(path, image_size), label), num_parallel_calls=AUTOTUNE)
    ds = ds.batch(batch_size)  # no .cache(): it would keep every decoded image in memory
    ds = ds.map(lambda images, label: (tf.cast(images, tf.float32) / 255.0, label))
    return ds.prefetch(AUTOTUNE)
''',
    answer_name="bounded_pipeline",
)


# ---- Exercise 2 ---------------------------------------------------------------------------------


def _zipped_after_decoding(steps) -> bool:
    """A zip (or other multi-input step) one of whose inputs decodes images and another does not."""
    for step in steps:
        if step.branches:
            decodes = [any(s.kind == "map" and s.decodes for s in branch) for branch in step.branches]
            if any(decodes) and not all(decodes):
                return True
            if any(_zipped_after_decoding(branch) for branch in step.branches):
                return True
    return False


def _check_labelled(answer) -> str:
    tf = _tf()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        names = tiny_image_folder(folder, COUNT)
        paths = [str(folder / name) for name in names]
        ds = _as_dataset(answer, "labelled_images", paths, np.arange(COUNT), SIZE)
        steps = _steps(ds)
        if _zipped_after_decoding(steps):
            raise Incorrect("images and labels still travel in two datasets, zipped after the decoding map: "
                            "with deterministic=False an image that decodes fast overtakes a slow one and "
                            "every later label sits next to the wrong picture. Start from one dataset of "
                            "(path, label) pairs and map a function of both that returns (image, label).")
        decoded = _decoding(steps, "labelled_images")  # images decoded before the pipeline show here, on a few files
        _bounded(_as_dataset(answer, "labelled_images", _repeated_paths(folder, names, N), np.zeros(N, np.int64), SIZE),
                 "labelled_images")
        step = steps[decoded]
        if not step.parallel or step.deterministic != "false":
            raise Incorrect("decoding must stay parallel and unordered (`num_parallel_calls=AUTOTUNE, "
                            "deterministic=False`): that is the speed we keep; the label has to follow its "
                            f"image anyway (yours: {'parallel' if step.parallel else 'one at a time'}, "
                            f"deterministic={step.deterministic})")
        spec = ds.element_spec
        if not (isinstance(spec, tuple) and len(spec) == 2):
            raise Incorrect(f"each element must be an (image, label) pair; yours is {spec}")
        if spec[0].shape.rank != 3:
            raise Incorrect(f"each element must be one image of shape ({SIZE}, {SIZE}, 3), not batched; "
                            f"yours has shape {spec[0].shape}")
        if spec[0].dtype != tf.uint8:
            raise Incorrect(f"images should stay uint8, as decode_and_resize gives them; yours are "
                            f"{spec[0].dtype.name}")
        pairs = list(ds.as_numpy_iterator())
    numbers = [image_number(image) for image, _ in pairs]
    if sorted(numbers) != list(range(COUNT)):
        raise Incorrect(f"each of the {COUNT} images should come once; yours came as {numbers}")
    wrong = [(k, int(label)) for k, (_, label) in zip(numbers, pairs, strict=True) if k != label]
    if wrong:
        raise Incorrect(f"{len(wrong)} of {COUNT} images came with another image's label (image {wrong[0][0]} "
                        f"with label {wrong[0][1]})")
    return "each label travels inside the same element as its image, whatever order the images finish in"


q2 = Exercise(
    name="q2",
    task="Rewrite labelled_images so that each label stays with its image under unordered parallel decoding.",
    checker=_check_labelled,
    hint_text="Don't build two datasets. `tf.data.Dataset.from_tensor_slices((paths, labels))` gives one "
              "dataset of (path, label) pairs; a map over it receives both and can return "
              "`(decode_and_resize(path, image_size), label)`: the label then never leaves its image.",
    solution_code='''
import tensorflow as tf

from seedlings_utils.tfdata import AUTOTUNE, decode_and_resize


def labelled_images(paths, labels, image_size):
    """(image, label) pairs, decoded in parallel and unordered, each label with its own image."""
    pairs = tf.data.Dataset.from_tensor_slices((paths, labels))  # one element = one path and its label
    return pairs.map(lambda path, label: (decode_and_resize(path, image_size), label),
                     num_parallel_calls=AUTOTUNE, deterministic=False)
''',
    answer_name="labelled_images",
)


# ---- Exercise 3 ---------------------------------------------------------------------------------


def _check_cached(answer) -> str:
    tf = _tf()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        names = tiny_image_folder(folder, COUNT)
        graph_cache = str(Path(tmp) / "graph" / "cache")
        few_files = _as_dataset(answer, "cached_pipeline", [str(folder / name) for name in names], np.arange(COUNT),
                                SIZE, BATCH, 0, graph_cache)
        _decoding(_steps(few_files), "cached_pipeline")  # images decoded before the pipeline show here, on a few files
        ds_graph = _as_dataset(answer, "cached_pipeline", _repeated_paths(folder, names, N), np.zeros(N, np.int64),
                               SIZE, BATCH, 0, graph_cache)
        steps = _steps(ds_graph)
        decoded = _decoding(steps, "cached_pipeline")
        caches = [i for i, s in enumerate(steps) if s.kind == "cache"]
        if not caches:
            raise Incorrect("there is no `.cache(cache_file)`: every epoch decodes every image again")
        cache = caches[0]
        if not steps[cache].filename:
            raise Incorrect(f"`.cache()` without a file name keeps every decoded image in memory ({N:,} here; "
                            f"100,000 at 128 px: {_gigabytes(100_000)}): pass it `cache_file`")
        if steps[cache].filename != graph_cache:
            raise Incorrect(f"the cache writes to {steps[cache].filename!r}, not to `cache_file` ({graph_cache!r})")
        if cache < decoded:
            raise Incorrect("the cache comes before decoding, so it stores only file names and every epoch "
                            "decodes every image again: put `.cache(cache_file)` after the decoding map")
        if any(s.kind == "batch" for s in steps[decoded:cache]):
            raise Incorrect("the cache holds whole batches, so a shuffle after it can only move whole batches "
                            "and the same images share a batch in every epoch: cache single images and batch "
                            "after the shuffle")
        for i, step in enumerate(steps[cache:], cache):
            if step.kind == "shuffle" and step.buffer_size > BOUND_Q3 and not any(s.kind == "batch"
                                                                                 for s in steps[cache:i]):
                raise Incorrect(f"the shuffle after the cache holds {step.buffer_size:,} decoded images "
                                f"({_gigabytes(step.buffer_size)} at 128 px): the task allows {BOUND_Q3:,} at most")
        unbatched = [i for i, s in enumerate(steps[cache:], cache) if s.kind == "shuffle"
                     and not any(b.kind == "batch" for b in steps[cache:i])]
        _bounded(ds_graph, "cached_pipeline", {i: BOUND_Q3 for i in unbatched})
        after = [s for s in steps[cache:] if s.kind == "shuffle"]
        if not after:
            raise Incorrect("nothing shuffles after the cache: it replays the first epoch's order, so every "
                            "later epoch comes in that same order. Add a shuffle with a bounded buffer "
                            "after `.cache(cache_file)`")
        if not all(s.reshuffle for s in after):
            raise Incorrect("the shuffle after the cache has `reshuffle_each_iteration=False`: every epoch "
                            "replays the same order")
        try:
            _names_shuffled(steps, decoded, N)
        except Incorrect as err:
            raise Incorrect(f"{err} Here it matters twice: the cache keeps the first epoch's order for good, "
                            "and the bounded buffer after it only mixes neighbours in that order.") from None

        cache_file = Path(tmp) / "cache" / "train"
        cache_file.parent.mkdir()
        ds = _as_dataset(answer, "cached_pipeline", [str(folder / name) for name in names], np.arange(COUNT),
                         SIZE, BATCH, 0, str(cache_file))
        images, labels = _batches(ds, "cached_pipeline")
        _check_batches(images, labels, "cached_pipeline", 1)
        if not (cache_file.with_name("train.index").is_file() and list(cache_file.parent.glob("train.data-*"))):
            raise Incorrect(f"after a complete first epoch there is no cache file ({cache_file.name}.index and "
                            f"{cache_file.name}.data-*): the cache is written to another place, or not at all")
        for name in names:  # from now on only the cache can give the images
            (folder / name).unlink()
        orders = []
        for epoch in (2, 3):
            try:
                images, labels = _batches(ds, "cached_pipeline")
            except tf.errors.NotFoundError:
                raise Incorrect(f"epoch {epoch} read the image files again (the check deleted them after epoch "
                                "1): the images must come from the cache") from None
            _check_batches(images, labels, "cached_pipeline", epoch)
            orders.append(labels.tolist())
    if orders[0] == orders[1]:
        raise Incorrect("epochs 2 and 3 came in the same order: the shuffle after the cache must reshuffle "
                        "every epoch")
    return ("decoded once into the cache file, replayed in a new order every epoch, with a bounded buffer of "
            "decoded images")


q3 = Exercise(
    name="q3",
    task="Write cached_pipeline: decode in the first epoch only (cache_file), a new order every epoch, "
         "at most 1,000 decoded images in any buffer.",
    checker=_check_cached,
    hint_text="Start from exercise 1's pipeline. Put `.cache(cache_file)` right after the decoding map (before "
              "it, it would cache file names; after batch, whole batches). The cache replays its first pass "
              "in the same order every epoch and skips everything above it, the names' shuffle included, so "
              "add `.shuffle(1000, seed=seed)` right after the cache, before `batch`.",
    solution_code='''
import tensorflow as tf

from seedlings_utils.tfdata import AUTOTUNE, decode_and_resize


def cached_pipeline(paths, labels, image_size, batch_size, seed, cache_file):
    """Like bounded_pipeline, but decoding only in the first epoch: later epochs read cache_file."""
    ds = tf.data.Dataset.from_tensor_slices((paths, labels))
    ds = ds.shuffle(len(paths), seed=seed)  # names: the cached first epoch is a random order, not the files'
    ds = ds.map(lambda path, label: (decode_and_resize(path, image_size), label), num_parallel_calls=AUTOTUNE)
    ds = ds.cache(str(cache_file))  # epoch 1 writes the decoded images to disk, later epochs read them back
    ds = ds.shuffle(1000, seed=seed)  # the replay comes in epoch 1's order: mix it, 1,000 images at most
    ds = ds.batch(batch_size)
    ds = ds.map(lambda images, label: (tf.cast(images, tf.float32) / 255.0, label))
    return ds.prefetch(AUTOTUNE)
''',
    answer_name="cached_pipeline",
)


# ---- Exercise 4 ---------------------------------------------------------------------------------


def raw_image_folder(folder, count: int, size: int = SIZE) -> list[str]:
    """``count`` images saved as raw bytes, ``size x size x 3`` uint8 values and no header, numbered in their red
    channel as :func:`~seedlings_utils.exercises.pixel_value` says: ``img_0000.rgb`` ..."""
    from . import pixel_value

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(count):
        image = np.empty((size, size, 3), np.uint8)
        image[...] = (pixel_value(i), 128, 64)
        name = f"img_{i:04d}.rgb"
        (folder / name).write_bytes(image.tobytes())
        names.append(name)
    return names


def _check_raw(answer) -> str:
    note = _check_bounded(answer, "raw_pipeline", raw_image_folder)
    return note.replace("decoding", "reading the raw bytes")


q4 = Exercise(
    name="q4",
    task="Write raw_pipeline: the lesson's chain for images stored as raw bytes (image_size x image_size x 3 uint8, "
         "no header).",
    checker=_check_raw,
    hint_text="Exercise 1's chain with another `load`: `data = tf.io.read_file(path)`, "
              "`image = tf.reshape(tf.io.decode_raw(data, tf.uint8), (image_size, image_size, 3))`. The shuffle of "
              "the paths stays before this map, and no `.cache()` in memory.",
    solution_code='''
import tensorflow as tf

from seedlings_utils.tfdata import AUTOTUNE


def raw_pipeline(paths, labels, image_size, batch_size, seed):
    """Batches of (images in [0, 1], labels) from raw uint8 files, shuffled every epoch, in bounded memory."""
    def load(path, label):
        pixels = tf.io.decode_raw(tf.io.read_file(path), tf.uint8)  # the file's bytes as numbers
        image = tf.reshape(pixels, (image_size, image_size, 3))
        return tf.cast(image, tf.float32) / 255.0, label

    ds = tf.data.Dataset.from_tensor_slices((paths, labels))
    ds = ds.shuffle(len(paths), seed=seed)  # names, not images
    ds = ds.map(load, num_parallel_calls=AUTOTUNE)
    return ds.batch(batch_size).prefetch(AUTOTUNE)
''',
    answer_name="raw_pipeline",
)
