"""A look inside a ``tf.data`` pipeline: each step and what its buffer holds, and what a shuffle of names costs.

Lesson 08's exercises and the tests use it to see that no step holds more decoded images than it should.

Differences from lesson 05's Pillow loader (:func:`~seedlings_utils.dataset.load_image`), measured on
the course's synthetic seedlings and on PNGs of every mode (RGB, RGBA, L, LA, P, 1, 16-bit) by
``tests/test_tfdata.py``: with ``antialias=True`` (which, like Pillow's ``BILINEAR``, widens the filter
when shrinking) each value is at most 1/255 away from Pillow's, 0.1-0.25/255 on average. Without
``antialias`` shrinking 36 synthetic seedlings to 48 px differs by 5.6/255 on average and by up to
133/255 at thin leaf edges (to 128 px: 1.4/255 and 107/255). The price is speed: on a CPU the
antialiased resize takes about as long as decoding the PNG. JPEGs differ more: ``tf.io.decode_image`` undoes
their compression with libjpeg's fast integer inverse DCT (``JDCT_IFAST``, TensorFlow's default), Pillow with
the accurate one (``JDCT_ISLOW``), which puts some values several /255 apart, more at high quality (up to
13/255 at quality 95 on synthetic seedlings, about 1/255 on average); ``tf.io.decode_jpeg(...,
dct_method="INTEGER_ACCURATE")`` decodes exactly as Pillow does, and the two loaders then agree within 1/255
on JPEGs too. Not handled here as Pillow handles them: EXIF orientation is ignored, TIFF files
cannot be decoded at all (``tf.io.decode_image`` reads PNG, JPEG, GIF, BMP and WebP), and a file that
does not decode stops the epoch with an error that does not name the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

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
    elements a ``cardinality`` step asserts. ``filename``: a ``cache``'s file ("" = in memory). ``batch_size``:
    a ``batch``'s. ``parallel_calls``: a parallel ``map``'s or ``batch``'s ``num_parallel_calls`` (-1: AUTOTUNE),
    elements that can be in flight at once.
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
    batch_size: int | None = None
    parallel_calls: int | None = None
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

    def constant_int(name: str) -> int | None:
        """A constant input's value (None when the graph computes it)."""
        return int(const(name)) if nodes[name.split(":")[0]].op == "Const" else None

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
            elif step.kind == "batch":
                step.batch_size = constant_int(inputs[1])
                if node.op == "ParallelBatchDataset":
                    step.parallel_calls = constant_int(inputs[2])
            elif step.kind == "map":
                step.decodes = bool(ops_in(node.attr["f"].func.name, set()) & DECODING_OPS)
                step.parallel = node.op.startswith("ParallelMap")
                if step.parallel:
                    step.parallel_calls = constant_int(inputs[-1])
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
