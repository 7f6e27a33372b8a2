"""Lesson 08: the same job with ``tf.data``: file names -> shuffle -> decode and resize -> (cache ->
bounded shuffle) -> batch -> scale -> prefetch.

The chain itself (:func:`decode_and_resize`, :func:`make_tf_dataset`) is written in the lesson's cells
and exported here (see :mod:`tools.export`). This module adds what is not the lesson: the
stamp that keeps a stale cache file from being replayed (:func:`prepare_cache_file`), timing
(:func:`measure_tf_images_per_second`), and a look inside a pipeline (:func:`pipeline_steps`), which
the exercises and tests use to see what each buffer holds.

Differences from lesson 05's Pillow loader (:func:`~seedlings_utils.dataset.load_image`), measured on
the course's synthetic seedlings and on PNGs of every mode (RGB, RGBA, L, LA, P, 1, 16-bit) by
``tests/test_tfdata.py``: with ``antialias=True`` (which, like Pillow's ``BILINEAR``, widens the filter
when shrinking) each value is at most 1/255 away from Pillow's, 0.1-0.25/255 on average. Without
``antialias`` shrinking 36 synthetic seedlings to 48 px differs by 5.6/255 on average and by up to
133/255 at thin leaf edges (to 128 px: 1.4/255 and 107/255). The price is speed: on a CPU the
antialiased resize takes about as long as decoding the PNG. JPEGs differ a little more (up to about
4/255: another IDCT). Not handled here as Pillow handles them: EXIF orientation is ignored, TIFF files
cannot be decoded at all (``tf.io.decode_image`` reads PNG, JPEG, GIF, BMP and WebP), and a file that
does not decode stops the epoch with an error that does not name the file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from .cache_folder import cache_fingerprint


def _cache_files(cache_file: Path) -> list[Path]:
    """The files ``Dataset.cache(cache_file)`` writes: ``<name>.index``, ``<name>.data-*``, lock files."""
    if not cache_file.parent.is_dir():
        return []
    name = cache_file.name
    return sorted(p for p in cache_file.parent.iterdir()
                  if p.name == f"{name}.index" or p.name.startswith(f"{name}.data-")
                  or (p.name.startswith(f"{name}_") and p.name.endswith(".lockfile")))


def prepare_cache_file(
    cache_file: str | Path,
    image_dir: str | Path,
    names: Sequence[str],
    labels: np.ndarray | None,
    image_size: int,
    order: str = "",
) -> str:
    """``cache_file`` as a string for ``Dataset.cache``, after deleting a cache written for other inputs.

    ``Dataset.cache`` never checks what it holds: it replays whatever an earlier run wrote. So
    ``<cache_file>.json`` records a fingerprint of the images (names, sizes, times), the labels, the
    image size and ``order`` (how the first pass was ordered, e.g. the shuffle seed: the cache replays
    that order); when any of them changes, or an earlier first pass never finished (a killed run leaves
    a lock file that would stop the next one), the old cache files are removed and the next complete
    epoch writes new ones.
    """
    cache_file = Path(cache_file)
    labels_digest = "none" if labels is None else hashlib.sha256(np.asarray(labels).tobytes()).hexdigest()
    fingerprint = f"{cache_fingerprint(image_dir, names, image_size)}/{labels_digest}/{order}"
    stamp = cache_file.with_name(cache_file.name + ".json")
    try:
        current = json.loads(stamp.read_text(encoding="utf-8")).get("fingerprint") == fingerprint
    except (OSError, ValueError, AttributeError):
        current = False
    if not current or not cache_is_written(cache_file):  # other inputs, or a first pass that never finished
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        for path in _cache_files(cache_file):  # a lock file left by a killed run would stop the next one
            path.unlink()
        stamp.write_text(json.dumps({"fingerprint": fingerprint}), encoding="utf-8")
    return str(cache_file)


def cache_is_written(cache_file: str | Path) -> bool:
    """True when ``Dataset.cache(cache_file)`` has finished a complete pass: its ``.index`` and ``.data-*`` exist."""
    cache_file = Path(cache_file)
    return (cache_file.with_name(cache_file.name + ".index").is_file()
            and any(cache_file.parent.glob(cache_file.name + ".data-*")))


# ---- BEGIN notebooks/08_the_same_job_with_tf_data.ipynb: edit the notebook, then `make export` ----
AUTOTUNE = tf.data.AUTOTUNE  # "choose for me": tf.data tunes parallel calls and buffer sizes while it runs


def decode_and_resize(path, image_size):
    """One image file as a uint8 tensor (image_size, image_size, 3), as lesson 05's Pillow loader gives it."""
    data = tf.io.read_file(path)
    # channels=3: grayscale, palette and RGBA become RGB; expand_animations=False: a GIF gives its first frame
    image = tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False)
    # antialias=True: every old pixel under a new one counts, as in Pillow (thin leaves survive the shrink)
    image = tf.image.resize(image, (image_size, image_size), method="bilinear", antialias=True)
    # back to whole values 0-255: one byte per value, as Pillow gives (and as a cache stores)
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def scale_batch(images, *label):
    """uint8 images to float32 in [0, 1], once per batch, as lesson 05's load_image does; labels unchanged."""
    images = tf.cast(images, tf.float32) / 255.0
    return (images, *label) if label else images


def make_tf_dataset(image_dir, filenames, labels=None, batch_size=32, image_size=128, shuffle=False, seed=None,
                    cache_file=None, num_parallel_calls=AUTOTUNE, deterministic=True, shuffle_buffer=1000,
                    prefetch_batches=AUTOTUNE):
    """Batches of (images, labels) from image files (images only when labels is None), float32 in [0, 1].

    shuffle: the file names in a new order every epoch (the same sequence of orders for the same seed).
    cache_file: the first complete epoch writes the decoded images to <cache_file>.index and .data-*,
        later epochs read them back instead of decoding (an epoch stopped early writes no cache).
    num_parallel_calls, deterministic: for the decoding map (deterministic=False: images as they finish).
    shuffle_buffer: decoded images shuffled after a cache: shuffle_buffer x image_size² x 3 bytes in memory.
    prefetch_batches: batches made ready ahead of the model (AUTOTUNE: tf.data chooses while it runs).
    """
    names = np.asarray(filenames, dtype=str)
    if len(names) == 0:
        raise ValueError("no file names: nothing to load")
    if labels is not None and len(labels) != len(names):
        raise ValueError(f"{len(names)} file names but {len(labels)} labels")
    folder = str(Path(image_dir)) + os.sep  # joined to a name when its image is read: names are shorter
    ds = tf.data.Dataset.from_tensor_slices(names if labels is None else (names, np.asarray(labels)))
    if shuffle:  # every name in the buffer, no image: a full new order every epoch
        ds = ds.shuffle(len(names), seed=seed, reshuffle_each_iteration=True)

    def decode(name, *label):  # the label stays in the same element as its image
        image = decode_and_resize(tf.strings.join([folder, name]), image_size)
        return (image, *label) if label else image

    ds = ds.map(decode, num_parallel_calls=num_parallel_calls, deterministic=deterministic)
    if cache_file is not None:
        # the first complete epoch writes the uint8 images to the file, later ones replay them in that order
        order = f"names shuffled={shuffle},seed={seed}"
        ds = ds.cache(prepare_cache_file(cache_file, image_dir, names, labels, image_size, order))
        if shuffle:  # mix the replayed order again, in a BOUNDED buffer of decoded images
            ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).map(scale_batch, num_parallel_calls=num_parallel_calls, deterministic=deterministic)
    return ds.prefetch(prefetch_batches)


def shuffled_order(n, seed=None):
    """The positions 0 .. n-1 in a new random order every epoch (the same sequence of orders for the same seed).

    Each epoch makes one permutation of all n positions, a single int64 tensor: 8 bytes a position, no buffer.
    """
    # one random number per epoch: rerandomize_each_iteration draws a new one each time the data set is read
    epoch_seed = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)

    def permutation(number):  # ... which seeds one shuffle of every position, as one tensor
        order = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=tf.stack([number, 0]))
        return tf.data.Dataset.from_tensor_slices(order)

    # flat_map cannot know how many positions come out: assert_cardinality states the count of elements,
    # which Keras needs to know the length of an epoch
    return epoch_seed.flat_map(permutation).apply(tf.data.experimental.assert_cardinality(n))


def make_tf_dataset_by_position(image_dir, filenames, labels=None, batch_size=32, image_size=128, seed=None):
    """make_tf_dataset(shuffle=True) without a buffer of names: each name once, positions shuffled every epoch."""
    names = np.asarray(filenames, dtype=str)
    folder = str(Path(image_dir)) + os.sep
    name_of = tf.constant(names)  # every name once, in one tensor
    label_of = None if labels is None else tf.constant(np.asarray(labels))

    def decode(i):  # image i's name and label, looked up by position
        image = decode_and_resize(tf.strings.join([folder, name_of[i]]), image_size)
        return image if label_of is None else (image, label_of[i])

    ds = shuffled_order(len(names), seed).map(decode, num_parallel_calls=AUTOTUNE)
    return ds.batch(batch_size).map(scale_batch, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)
# ---- END notebooks/08_the_same_job_with_tf_data.ipynb ----


def measure_tf_images_per_second(dataset: tf.data.Dataset, batches: int | None = None) -> float:
    """Images per second when iterating ``dataset`` (default: one whole epoch; else its first ``batches``).

    Like :func:`~seedlings_utils.profiling.measure_images_per_second`, the clock runs from a cold start
    (creating the iterator, which starts ``tf.data``'s threads and fills its buffers) to the last batch.
    To time a ``cache_file`` pipeline warm, iterate one whole epoch first: a partial epoch leaves no cache.
    """
    from .profiling import trace_loader

    if batches is not None and batches < 1:
        raise ValueError(f"batches must be at least 1, got {batches}")
    trace = trace_loader("tf.data", lambda: (dataset if batches is None else dataset.take(batches)).as_numpy_iterator())
    if trace.images[-1] == 0:
        raise ValueError("the dataset yielded no images")
    return trace.images_per_second


#: Ops inside a ``map`` function that read or decode image files: such a map is the "decode" step.
DECODING_OPS = frozenset({"ReadFile", "DecodeImage", "DecodePng", "DecodeJpeg", "DecodeAndCropJpeg", "DecodeBmp",
                          "DecodeGif", "DecodeWebP", "DecodeRaw"})


@dataclass
class PipelineStep:
    """One transformation of a ``tf.data`` pipeline, as :func:`pipeline_steps` reads it from the dataset's graph.

    ``kind``: ``"source"``, ``"random"`` (``Dataset.random``), ``"shuffle"``, ``"map"``, ``"cache"``,
    ``"batch"``, ``"prefetch"``, ``"zip"``, ``"take"``, ``"cardinality"``, or the op's name for anything else.
    ``buffer_size``: elements a ``shuffle`` or ``prefetch`` holds (-1: AUTOTUNE; 0 for a ``permutation``).
    ``permutation``: a ``shuffle`` that is a ``flat_map`` over one shuffled tensor of every position
    (:func:`shuffled_order`): a full new order each epoch, with no buffer. ``reshuffle``: a new order every
    epoch (for a permutation: the ``Dataset.random`` seeding it draws anew each epoch). ``count``: the
    elements a ``cardinality`` step asserts. ``filename``: a ``cache``'s file ("" = in memory).
    ``decodes``: a ``map`` that reads or decodes files. ``image_source``: a source whose elements are already
    images (held in memory, all of them). ``branches``: for ``zip`` (and other ops with
    several inputs), each input's steps.
    """

    kind: str
    op: str
    buffer_size: int | None = None
    filename: str | None = None
    reshuffle: bool | None = None
    decodes: bool = False
    permutation: bool = False
    count: int | None = None
    parallel: bool = False
    deterministic: str | None = None  # a map's: "true", "false" or "default"
    image_source: bool = False  # a source whose elements are images already (rank 3 or more): held in memory
    branches: list[list[PipelineStep]] = field(default_factory=list)


_KINDS = {"TensorSliceDataset": "source", "TensorDataset": "source", "RangeDataset": "source",
          "ShuffleDatasetV3": "shuffle", "ShuffleDatasetV2": "shuffle", "ShuffleDataset": "shuffle",
          "MapDataset": "map", "ParallelMapDatasetV2": "map", "ParallelMapDataset": "map",
          "CacheDatasetV2": "cache", "CacheDataset": "cache", "BatchDatasetV2": "batch", "BatchDataset": "batch",
          "ParallelBatchDataset": "batch", "PrefetchDataset": "prefetch", "ZipDataset": "zip",
          "RandomDatasetV2": "random", "RandomDataset": "random", "TakeDataset": "take",
          "AssertCardinalityDataset": "cardinality"}
#: Ops that shuffle a whole tensor at once: a ``flat_map`` over one of them is a permutation of positions.
SHUFFLING_OPS = frozenset({"StatelessShuffle", "RandomShuffle"})


def pipeline_steps(dataset: tf.data.Dataset) -> list[PipelineStep]:
    """The transformations of ``dataset``, from its source to its output, with what each buffer holds.

    Read from the dataset's serialized graph (``Dataset._as_serialized_graph``, which ``tf.data``
    itself uses to send pipelines to other processes; ``tests/test_tfdata.py`` checks it still works).
    A step with several inputs (``zip``) comes first: the walk back from the output stops there, and
    each input's steps are in its ``branches``.
    """
    graph = tf.compat.v1.GraphDef()
    policy = tf.data.experimental.ExternalStatePolicy.IGNORE
    graph.ParseFromString(dataset._as_serialized_graph(external_state_policy=policy).numpy())
    nodes = {node.name: node for node in graph.node}
    functions = {f.signature.name: f for f in graph.library.function}

    def const(name: str):
        tensor = tf.make_ndarray(nodes[name.split(":")[0]].attr["value"].tensor)
        value = tensor.item() if tensor.size == 1 else tensor
        return value.decode() if isinstance(value, bytes) else value

    def ops_in(function_name: str, seen: set[str]) -> set[str]:
        if function_name in seen or function_name not in functions:
            return set()
        seen.add(function_name)
        ops = set()
        for node in functions[function_name].node_def:
            ops.add(node.op)
            for attr in node.attr.values():
                if attr.func.name:
                    ops |= ops_in(attr.func.name, seen)
        return ops

    def is_dataset(name: str) -> bool:
        return "Dataset" in nodes[name.split(":")[0]].op

    def chain(name: str) -> list[PipelineStep]:
        steps = []
        while True:
            node = nodes[name.split(":")[0]]
            inputs = [i for i in node.input if not i.startswith("^")]
            step = PipelineStep(_KINDS.get(node.op, node.op), node.op)
            if step.kind == "shuffle":
                step.buffer_size = int(const(inputs[1]))
                step.reshuffle = bool(node.attr["reshuffle_each_iteration"].b)
            elif step.kind == "prefetch":
                step.buffer_size = int(const(inputs[1]))
            elif step.kind == "random":
                step.reshuffle = bool(node.attr["rerandomize_each_iteration"].b)
            elif step.kind == "cardinality":
                step.count = int(const(inputs[1]))
            elif step.kind == "source":
                ranks = [len(shape.dim) for shape in node.attr["output_shapes"].list.shape if not shape.unknown_rank]
                step.image_source = any(rank >= 3 for rank in ranks)
            elif node.op in ("FlatMapDataset", "InterleaveDataset") and ops_in(node.attr["f"].func.name,
                                                                              set()) & SHUFFLING_OPS:
                step.kind, step.permutation, step.buffer_size = "shuffle", True, 0
            elif step.kind == "cache":
                step.filename = str(const(inputs[1]))
            elif step.kind == "map":
                step.decodes = bool(ops_in(node.attr["f"].func.name, set()) & DECODING_OPS)
                step.parallel = node.op.startswith("ParallelMap")
                step.deterministic = node.attr["deterministic"].s.decode() if "deterministic" in node.attr else None
            upstream = [i for i in inputs if is_dataset(i)]
            steps.append(step)
            if len(upstream) != 1:
                step.branches = [chain(i) for i in upstream] if len(upstream) > 1 else []
                return steps[::-1]
            name = upstream[0]

    (retval,) = [node for node in graph.node if node.op == "_Retval"]
    steps = chain(retval.input[0])
    seeded_anew = False  # a permutation reshuffles when the Dataset.random feeding it draws anew every epoch
    for step in steps:
        if step.kind == "random":
            seeded_anew = bool(step.reshuffle)
        elif step.permutation:
            step.reshuffle = seeded_anew
    return steps


def describe_pipeline(dataset: tf.data.Dataset, image_bytes: int | None = None) -> str:
    """One line per step of ``dataset`` saying what its buffer holds: names, positions, decoded images or batches.

    ``image_bytes`` (for example ``IMAGE_SIZE * IMAGE_SIZE * 3`` for uint8 images) adds the memory a
    buffer of decoded images takes.
    """
    steps = pipeline_steps(dataset)
    counts = [step.count for step in steps if step.kind == "cardinality"]
    lines, holds = [], "file names"
    for step in steps:
        what = ""
        if step.kind == "shuffle" and step.permutation:
            what = "one permutation of every position, made anew each epoch" if step.reshuffle else \
                "one permutation of every position, the same each epoch"
            what += f": {_megabytes(counts[0] * 8)}" if counts else ": 8 bytes a position"
        elif step.kind == "shuffle":
            what = f"a buffer of {step.buffer_size:,} {holds}"
            if holds == "decoded images" and image_bytes:
                what += f": {_megabytes(step.buffer_size * image_bytes)}"
        elif step.kind == "map" and step.decodes:
            holds = "decoded images"
            what = "reads, decodes and resizes " + ("in parallel" if step.parallel else "one image at a time")
            what += ", unordered" if step.deterministic == "false" else ""
        elif step.kind == "cache":
            what = f"{holds}, written to {step.filename}" if step.filename else f"every one of the {holds} in memory"
        elif step.kind == "batch":
            holds = "batches"
        elif step.kind == "prefetch":
            what = "AUTOTUNE: a few batches" if step.buffer_size == -1 else f"{step.buffer_size:,} {holds}"
        elif step.kind == "random":
            what = "a random number each epoch, seeding the permutation"
            holds = "positions"
        elif step.kind == "cardinality":
            what = f"{step.count:,} {holds}"
        elif step.kind == "source":
            if step.op == "RangeDataset":
                what, holds = "positions 0, 1, 2, ... into the file names", "positions"
            else:
                what = "file names (and labels)"
        lines.append(f"{step.kind:<11} {what}".rstrip())
    return "\n".join(lines)


def _megabytes(size: int) -> str:
    return f"{size / 1e6:,.1f} MB" if size >= 100_000 else f"{size / 1e3:,.1f} kB"


_MEASURE_SHUFFLE = """
import sys
import numpy as np
import tensorflow as tf
from seedlings_utils.profiling import proc_status_mb

names = np.load(sys.argv[1])
labels = np.arange(len(names)) % 12
warm = iter(tf.data.Dataset.from_tensor_slices((names[:100], labels[:100])).shuffle(100))
next(warm)  # tf.data's own start-up memory, out of the figure
del warm
before = proc_status_mb("RssAnon").get("RssAnon", float("nan"))
ds = tf.data.Dataset.from_tensor_slices((names, labels)).shuffle(len(names), seed=0)
first = next(iter(ds))  # the shuffle fills its whole buffer before it hands on the first element
after = proc_status_mb("RssAnon").get("RssAnon", float("nan"))
print((after - before) * 2**20 / len(names))
"""


def name_shuffle_bytes_per_image(names, count: int = 100_000) -> float:
    """Bytes of memory each image costs in ``from_tensor_slices((names, labels)).shuffle(len(names))``, buffer full.

    ``names`` are repeated (or cut) to ``count`` and measured in a fresh Python process: its anonymous memory
    (what the process itself holds) before the names become a dataset and after the shuffle has filled its buffer,
    divided by ``count``. Linux only (``/proc/self/status``); elsewhere ``nan``.
    """
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "names.npy"
        np.save(path, np.resize(np.asarray(names, dtype=str), count))
        out = subprocess.run([sys.executable, "-c", _MEASURE_SHUFFLE, str(path)], capture_output=True, text=True,
                             env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, check=True)
    return float(out.stdout.strip().splitlines()[-1])
