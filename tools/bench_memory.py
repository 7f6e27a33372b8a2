"""``make bench``'s memory part: every loader the course teaches, and the peers a learner would pick instead, at
every scale, each in a fresh process (``python -m tools.bench epoch-memory JOB``), and what grows with the data set's
size.

Pixels are never held: the memory for decoded images (peak minus the memory once the loader has read its first
batch) stays flat from the smallest scale to the largest; what a loader holds per image is bookkeeping (a name, a
label, a position, a place in a shuffle buffer), at most 1 KB per extra image.

What each process does, and why it proves that (and no more is needed):

- It builds its loader over the whole data set of its scale, and reads one batch: every piece of per-image
  bookkeeping is built then (the names and labels, the order of the epoch, ``tf.data``'s shuffle buffer of names,
  which fills before its first element, Grain's index, the bucket's index of shards). The memory at that moment
  against the data set's size is the bookkeeping per image; a loader that held the pixels from the start would
  show 12 KB an image (64 px) there.
- It then reads the same number of images at every scale (``read_images``: by default the images of 10x the
  smallest scale, capped at the largest scale's epoch; several passes at the small scales, a part of one epoch at
  the large ones), through ``model.fit``'s own data path, with a tiny model (one pooling and one dense layer) so
  that the reading, not the model, takes the time. The C allocator keeps part of what decoding and batching used,
  so memory also follows the images a process has read: reading as many at every scale leaves the size of the
  data set the only difference. Because that number is several times the smallest scale's images, a loader that
  kept what it read (decoded images, or shards) would hold several times more at the largest scale than at the
  smallest: its memory for decoded images would grow by hundreds of MB, far over the 5 % the target allows.
- Reading all of the largest scale's epoch in every process (the benchmark's first design, with lesson
  06's model training every step) adds no case to that proof: nothing a loader builds per image is
  built later in the epoch, and a loader that keeps what it reads already shows it after several times the smallest
  data set. It made the full run take most of an hour.
- One loader trains lesson 06's model as a cross-check (``"cache (.npy memmap), training lesson 06's model"``):
  the model's weights, activations and optimizer add the same memory at every scale, so its row is flat as the
  others.

The bucket loader (lesson 12) reads its shards from an S3-compatible server (moto's, :mod:`seedlings_utils.
bucket_server`) that runs in a process of its own, as a real store is another machine: the objects it holds are
never counted as the loader's memory. Its shard cache has a budget of 4 shards, below one epoch's shards at every
scale, so it evicts and downloads again as lesson 12 shows.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from seedlings_utils.profiling import peak_rss_mb, pydataset_batches

from .paths import REPO_ROOT


def replicate(image_dir: Path, filenames: np.ndarray, labels: np.ndarray, factor: int, out_dir: Path):
    """``factor`` times the data set, as hard links (copies where links are impossible) under new names."""
    import shutil

    out_dir.mkdir(parents=True, exist_ok=True)
    names = []
    for k in range(factor):
        for name in filenames:
            new = f"r{k}__{name}"
            target = out_dir / new
            if not target.exists():
                try:
                    os.link(image_dir / name, target)
                except OSError:
                    shutil.copy2(image_dir / name, target)
            names.append(new)
    return out_dir, np.array(names), np.tile(labels, factor)


# The loaders the course teaches, as a training epoch uses them (shuffle on), and the peers a learner would pick
# instead (Keras' own loader; Grain with one or two worker processes); the last one trains lesson 06's model
MEMORY_LOADERS = {
    "PyDataset, 2 threads": "lesson 05",
    "cache (.npy memmap)": "lesson 07",
    "tf.data": "lesson 08, names shuffled",
    "tf.data + cache file": "lesson 08",
    "tf.data, shuffled positions": "lesson 08, going deeper",
    "Grain, 1 worker process": "lesson 11, the training process only",
    "Grain, 2 worker processes": "lesson 11, the training process only",
    "bucket (S3 shards, shard cache)": "lesson 12, the server in its own process",
    "Keras image_dataset_from_directory": "peer: Keras' own loader, shuffle buffer of 8 batches of names",
    "cache (.npy memmap), training lesson 06's model": "lesson 07 + 06: the cross-check, the model training",
}
#: What ``--quick`` measures: one loader of each kind of plumbing (a PyDataset, a tf.data cache file, Grain's
#: worker processes, the bucket and its server, Keras' class folders, lesson 06's model over the cache)
QUICK_MEMORY_LOADERS = ("PyDataset, 2 threads", "tf.data + cache file", "Grain, 1 worker process",
                        "bucket (S3 shards, shard cache)", "Keras image_dataset_from_directory",
                        "cache (.npy memmap), training lesson 06's model")
#: The loader read by lesson 06's model (the others by a tiny one): the cross-check, and the loader it reads with
TRAINED_LOADER, TRAINED_READS = "cache (.npy memmap), training lesson 06's model", "cache (.npy memmap)"
#: Shards of the bucket loader's cache budget: below one epoch's shards at every scale
BUCKET_CACHE_SHARDS = 4
RSS_NOTE = ("resident memory (RSS) also counts file pages: libraries, and the memory-mapped cache or tf.data's "
            "cache file read back; the kernel can drop those and reread them, so the flatness figure is anonymous "
            "memory (RssAnon), what the process itself holds")


def memory_loader(loader: str, scale: dict, image_size: int, batch_size: int):
    """``loader`` over one scale's files, shuffled as in training (``scale``: :func:`prepare_scale`'s paths)."""
    from seedlings_utils.cache import CachedDataset
    from seedlings_utils.dataset import SeedlingsDataset
    from seedlings_utils.tfdata import make_tf_dataset

    loader = TRAINED_READS if loader == TRAINED_LOADER else loader
    # memory-mapped, as lesson 04's load_split opens the split the lessons' loaders read
    labels = np.load(scale["labels"], mmap_mode="r")
    common = dict(batch_size=batch_size, shuffle=True, seed=0)
    if loader == "cache (.npy memmap)":  # the cache holds its own list of file names
        return CachedDataset(scale["cache_dir"], labels, workers=2, **common)
    if loader.startswith("Grain, "):  # over the cache, like lesson 07's loader; its workers not counted
        return GrainEpochs(scale["cache_dir"], labels, batch_size, workers=int(loader.split()[1]))
    if loader == "bucket (S3 shards, shard cache)":
        return BucketEpochs(scale["bucket"], batch_size, image_size)
    if loader == "Keras image_dataset_from_directory":  # class folders of hard links, as lesson 05's by_species/
        import keras

        return keras.utils.image_dataset_from_directory(scale["class_dir"], image_size=(image_size, image_size),
                                                        verbose=False, **common)
    names = np.load(scale["filenames"], mmap_mode="r")
    if loader == "PyDataset, 2 threads":
        return SeedlingsDataset(scale["image_dir"], names, labels, image_size=image_size, workers=2, **common)
    if loader == "tf.data":
        return make_tf_dataset(scale["image_dir"], names, labels, image_size=image_size, **common)
    if loader == "tf.data + cache file":
        return make_tf_dataset(scale["image_dir"], names, labels, image_size=image_size,
                               cache_file=scale["tf_cache_file"], **common)
    if loader == "tf.data, shuffled positions":
        from seedlings_utils.tfdata import make_tf_dataset_by_position

        return make_tf_dataset_by_position(scale["image_dir"], names, labels, batch_size=batch_size,
                                           image_size=image_size, seed=0)
    raise ValueError(f"unknown loader {loader!r}; known: {', '.join(MEMORY_LOADERS)}")


class BucketEpochs:
    """Lesson 12's loader for the memory runs: :func:`~seedlings_utils.bucket.read_epoch` through a
    :class:`~seedlings_utils.bucket.ShardCache` of :data:`BUCKET_CACHE_SHARDS` shards, from the server at
    ``bucket["endpoint_url"]``; one epoch (the next in the shard order) each time it is iterated. Batches are
    ``(images, labels, weights)``, the last one padded with blanks of weight 0."""

    def __init__(self, bucket: dict, batch_size: int, image_size: int):
        from seedlings_utils.bucket import ShardCache
        from seedlings_utils.bucket_server import LOCAL_CREDENTIALS, s3_filesystem

        index = json.loads(Path(bucket["index"]).read_text())
        largest = max(shard["bytes"] for shard in index["shards"])
        fs = s3_filesystem(bucket["endpoint_url"], environ=LOCAL_CREDENTIALS)
        self.folder = Path(bucket["cache_dir"]) / str(os.getpid())  # its own: processes may run side by side
        self.cache = ShardCache(fs, bucket["prefix"], index, self.folder, BUCKET_CACHE_SHARDS * largest)
        self.names = [shard["name"] for shard in index["shards"]]
        self.batch_size, self.image_size, self.epoch = batch_size, image_size, 0
        self.batches = math.ceil(index["images"] / batch_size)

    def __iter__(self):
        from seedlings_utils.bucket import read_epoch

        self.epoch += 1
        return read_epoch(self.cache, self.names, self.batch_size, self.image_size, seed=0, epoch=self.epoch - 1)


class GrainEpochs:
    """Lesson 11's Grain loader for the memory runs: one iterator, whose worker processes start once, and one epoch
    of batches each time it is iterated (a fresh iterator per pass would start the workers again every pass, as
    no training run does)."""

    def __init__(self, cache_dir: str | Path, labels, batch_size: int, workers: int, epochs: int = 64):
        from seedlings_utils.killed_runs import grain_training_batches

        self.dataset = grain_training_batches(cache_dir, labels, batch_size, seed=0, epochs=epochs, workers=workers)
        self.batches = math.ceil(len(labels) / batch_size)
        self.iterator = None

    def __iter__(self):
        if self.iterator is None:
            self.iterator = iter(self.dataset)
        for _ in range(self.batches):
            yield next(self.iterator)


def _tf_cache_stamp(cache_file: str | Path) -> list[tuple[str, int]]:
    """The files a ``tf.data`` cache file is made of, with their modification times (to see it was only read)."""
    from seedlings_utils.tf_cache_file import cache_files

    return sorted((p.name, p.stat().st_mtime_ns) for p in cache_files(cache_file) if not p.name.endswith(".lockfile"))


BUCKET = "bench"  # the bucket on the benchmark's own server; each scale under its own prefix


def bucket_shards(image_dir: Path, names: np.ndarray, labels: np.ndarray, shard_size: int, out_dir: Path,
                  endpoint_url: str, prefix: str) -> dict:
    """Lesson 12's shards of these files, packed once (kept in ``out_dir`` for the next run) and put in the bucket
    at ``endpoint_url`` under ``prefix``; what :class:`BucketEpochs` needs to read them."""
    from seedlings_utils.bucket import INDEX_FILE, pack_shards
    from seedlings_utils.bucket_server import LOCAL_CREDENTIALS, s3_filesystem

    index_file = out_dir / INDEX_FILE
    index = json.loads(index_file.read_text()) if index_file.is_file() else None
    if index is None or index["images"] != len(names) or index["shards"][0]["count"] != min(shard_size, len(names)):
        pack_shards(image_dir, names, labels, out_dir, shard_size=shard_size, progress=False)
    fs = s3_filesystem(endpoint_url, environ=LOCAL_CREDENTIALS, timeout=60)
    if not fs.exists(BUCKET):
        fs.mkdir(BUCKET)
    fs.put(str(out_dir) + "/", f"{BUCKET}/{prefix}/", recursive=True)
    return {"endpoint_url": endpoint_url, "prefix": f"{BUCKET}/{prefix}", "index": str(index_file),
            "cache_dir": str(out_dir.parent / f"{out_dir.name}-cache")}


def prepare_scale(image_dir, filenames, labels, factor, image_size, batch_size, work_dir,
                  loaders=tuple(MEMORY_LOADERS), endpoint_url: str | None = None) -> tuple[dict, dict]:
    """``factor`` times the data set as hard links, its index, and what ``loaders`` read built on disk before any
    timing: both caches, the class folders of Keras' loader, the bucket's shards (put on the server at
    ``endpoint_url``, :func:`bucket_server_process`).

    Returns the paths (what :func:`memory_loader` reads) and the seconds each build took. A cache that is
    already there and current is not rebuilt (then the seconds are those of checking it, for ``tf.data``
    of reading it once); shards already packed are only put on the server again.
    """
    from seedlings_utils.cache import build_image_cache

    folder, names, ys = replicate(image_dir, filenames, labels, factor, work_dir / f"x{factor}")
    index = work_dir / f"x{factor}-index"
    index.mkdir(parents=True, exist_ok=True)
    np.save(index / "filenames.npy", names)
    np.save(index / "labels.npy", ys)
    scale = {"image_dir": str(folder), "filenames": str(index / "filenames.npy"), "labels": str(index / "labels.npy"),
             "cache_dir": str(work_dir / f"x{factor}-cache-{image_size}"),
             "tf_cache_file": str(work_dir / f"x{factor}-tfcache-{image_size}" / "data")}
    build = {}

    def timed(name, make):
        start = time.perf_counter()
        make()
        build[name] = time.perf_counter() - start

    if any(loader in loaders for loader in ("cache (.npy memmap)", TRAINED_LOADER)) or any(
            loader.startswith("Grain") for loader in loaders):  # written shard by shard
        timed("cache (.npy memmap)", lambda: build_image_cache(folder, names, image_size, scale["cache_dir"],
                                                               progress=False))
    if "tf.data + cache file" in loaders:  # one complete pass writes tf.data's cache file, with the measured call
        timed("tf.data + cache file", lambda: read_one_pass(memory_loader("tf.data + cache file", scale, image_size,
                                                                          batch_size)))
    if "Keras image_dataset_from_directory" in loaders:
        scale["class_dir"] = str(work_dir / f"x{factor}-classes")
        from seedlings_utils.waiting import class_folders

        timed("class folders (hard links)", lambda: class_folders(folder, names, ys, scale["class_dir"]))
    if "bucket (S3 shards, shard cache)" in loaders:
        if endpoint_url is None:
            raise ValueError("the bucket loader needs a server: give endpoint_url (bucket_server_process)")
        shard_size = min(256, max(8, len(filenames) // 8))  # 8 shards or more at 1x: the cache's 4 hold half
        timed("bucket shards (packed, put)", lambda: scale.update(bucket=bucket_shards(
            folder, names, ys, shard_size, work_dir / f"x{factor}-shards-{shard_size}", endpoint_url, f"x{factor}")))
    return scale, build


def read_one_pass(data) -> int:
    """Every batch of ``data`` read once without a model (a ``PyDataset`` as ``fit`` reads it); the images read."""
    import keras

    batches = pydataset_batches(data) if isinstance(data, keras.utils.PyDataset) else data
    return sum(len(batch[1]) for batch in batches)


def anon_with_loader_started(data) -> float | None:
    """Anonymous memory (MB) once ``data`` has made its first batch through a fresh iterator, still open.

    A ``tf.data`` shuffle fills its whole buffer (the names) before its first element; a ``PyDataset`` holds its
    names, labels and order from its constructor on. What this adds up with the data set's size is bookkeeping.
    """
    import keras

    from seedlings_utils.profiling import anon_mb

    if isinstance(data, keras.utils.PyDataset):
        data[0]
        return anon_mb()
    iterator = iter(data)
    next(iterator)
    if isinstance(data, BucketEpochs):  # the shards fetched ahead are in flight (their bytes in memory) until
        for future in list(data.cache.pending.values()):  # written to the cache: wait, so every scale is read
            future.result()  # at the same point, not wherever two download threads happen to be
    value = anon_mb()
    del iterator
    return value


def read_plan(images: int, read_images: int, batch_size: int) -> tuple[int, int | None]:
    """``(epochs, steps per epoch)`` that read about ``read_images`` images of a data set of ``images``: whole
    passes when it is smaller (``None`` steps: the whole loader), else the first batches of one epoch."""
    if read_images >= images:
        return max(1, round(read_images / images)), None
    return 1, math.ceil(read_images / batch_size)


def tiny_model(num_classes: int, image_size: int):
    """One pooling and one dense layer, compiled: ``fit`` reads the loader as it does for any model, and the step
    costs next to nothing, so the time is the loader's."""
    import keras

    inputs = keras.Input(shape=(image_size, image_size, 3))
    outputs = keras.layers.Dense(num_classes)(keras.layers.GlobalAveragePooling2D()(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _endless(data):
    """Epoch after epoch of a loader that makes one epoch per iteration (:class:`GrainEpochs`,
    :class:`BucketEpochs`)."""
    while True:
        yield from data


def epoch_memory(loader: str, scale: dict, image_size: int, batch_size: int, read_images: int) -> dict:
    """``model.fit`` reading about ``read_images`` images with ``loader`` (shuffle on); its peak memory.

    Run in a fresh process (see :func:`memory_by_scale`). A thread samples anonymous and resident memory
    (:class:`~seedlings_utils.profiling.MemorySampler`) from before the first image is read to the end of
    ``fit``; the kernel's own peak of resident memory is restarted at the same moment and read after ``fit``.
    The model is :func:`tiny_model`, but lesson 06's for :data:`TRAINED_LOADER` (the cross-check); the images
    are read as :func:`read_plan` says (the module's docstring says why the same number at every scale).
    """
    import keras

    from seedlings_utils.model import build_cnn
    from seedlings_utils.profiling import MemorySampler, reset_peak_rss

    labels = np.load(scale["labels"], mmap_mode="r")
    keras.utils.set_random_seed(0)
    classes = int(labels.max()) + 1
    trained = loader == TRAINED_LOADER
    model = build_cnn(classes, image_size, base_filters=8) if trained else tiny_model(classes, image_size)
    data = memory_loader(loader, scale, image_size, batch_size)
    tf_cache = _tf_cache_stamp(scale["tf_cache_file"]) if loader == "tf.data + cache file" else None
    epochs, steps = read_plan(len(labels), read_images, batch_size)
    reset_peak_rss()
    start = time.perf_counter()
    with MemorySampler() as memory:
        started = anon_with_loader_started(data)
        fit_start = time.perf_counter()
        if isinstance(data, (GrainEpochs, BucketEpochs)):  # one epoch per iteration: read as one generator
            model.fit(_endless(data), steps_per_epoch=steps or data.batches, epochs=epochs, verbose=0)
        else:
            model.fit(data, epochs=epochs, steps_per_epoch=steps, verbose=0)
    row = {"loader": loader, "images": int(len(labels)), "model": "lesson 06's CNN" if trained else "tiny",
           "read_images": read_images, "epochs": epochs, "steps_per_epoch": steps,
           "images_read": epochs * (len(labels) if steps is None else steps * batch_size),
           "peak_anon_mb": memory.peak_anon_mb,
           "anon_before_reading_mb": memory.start_anon_mb, "anon_loader_started_mb": started,
           "peak_rss_mb": peak_rss_mb(),
           "rss_before_reading_mb": memory.start_rss_mb, "start_seconds": fit_start - start,
           "epoch_seconds": time.perf_counter() - fit_start, "samples": memory.samples}
    if tf_cache is not None:  # True: the epoch read the cache file built beforehand and rewrote nothing
        row["read_from_cache_file"] = bool(tf_cache) and _tf_cache_stamp(scale["tf_cache_file"]) == tf_cache
    if isinstance(data, BucketEpochs):  # what lesson 12 shows: downloads and hits, with a budget below an epoch
        row["bucket"] = {"shards": len(data.names), "cache_shards": BUCKET_CACHE_SHARDS,
                         **{key: int(value) for key, value in data.cache.stats.items()}}
        import shutil

        shutil.rmtree(data.folder, ignore_errors=True)
    return row


def _epoch_memory_in_a_fresh_process(loader: str, scale: dict, factor: int, image_size: int, batch_size: int,
                                     read_images: int) -> dict:
    job = json.dumps({"loader": loader, "scale": scale, "image_size": image_size, "batch_size": batch_size,
                      "read_images": read_images})
    started = time.perf_counter()
    for attempt in range(2):
        out = subprocess.run([sys.executable, "-m", "tools.bench", "epoch-memory", job], capture_output=True, text=True,
                             env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, cwd=REPO_ROOT)
        # CPython 3.11's compile() is not thread-safe (python/cpython#106905): np.load parsing a header in one of
        # Grain's threads while another parses can fail with this SystemError. Once is bad luck: run it again.
        if out.returncode == 0 or "AST constructor recursion depth mismatch" not in out.stderr or attempt:
            break
        print(f"  {factor:>3}x, {loader}: CPython's compile() raced in a thread (cpython#106905); again", flush=True)
    if out.returncode != 0:
        raise RuntimeError(f"the epoch with {loader} at {factor}x failed:\n{out.stderr[-3000:]}")
    row = {"factor": factor, **json.loads(out.stdout.strip().splitlines()[-1]),
           "process_seconds": time.perf_counter() - started}
    print(f"  {factor:>3}x, {loader}: {row['images']} images, {row['images_read']} read in "
          f"{row['epoch_seconds']:.0f} s "
          f"({row['process_seconds']:.0f} s with the process), peak anonymous {row['peak_anon_mb']:.0f} MB, "
          f"peak resident {row['peak_rss_mb']:.0f} MB", flush=True)
    return row


def serve_bucket(port: int) -> None:
    """The child process of :func:`bucket_server_process`: lesson 12's local server until stdin closes."""
    from seedlings_utils.bucket_server import LocalServer

    server = LocalServer(port).start()
    print("serving", flush=True)
    sys.stdin.read()
    server.stop()


@contextlib.contextmanager
def bucket_server_process():
    """Lesson 12's S3-compatible server (moto's) in a process of its own: its endpoint URL, while in the block.

    The objects live in that process (moto keeps those over 5 MB in temporary files): what the bucket holds is
    never the reading process's memory, as a real store is another machine."""
    from seedlings_utils.bucket_server import free_port

    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "tools.bench_memory", "serve-bucket", str(port)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT)
    try:
        if process.stdout.readline().strip() != "serving":
            raise RuntimeError(f"the bucket's server did not start (exit status {process.wait(timeout=30)})")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stdin.close()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def memory_by_scale(image_dir, filenames, labels, factors, image_size, batch_size, work_dir,
                    loaders=tuple(MEMORY_LOADERS), jobs: int = 1, repeats: int = 1,
                    read_factor: int = 10) -> tuple[list[dict], dict]:
    """:func:`epoch_memory` for every loader at every scale, each in a fresh Python process so peaks do not mix.

    Every process reads as many images: ``read_factor`` times the base set (capped at the largest scale), e.g.
    at 1x, 10x and 50x with ``read_factor=10``: 10 passes at 1x, one at 10x, a fifth of an epoch at 50x; so the
    scales differ in the size of the data set only, not in how much the process has read.
    ``repeats`` epochs (each in its own process) per loader and scale: the row kept is the one with the
    median peak anonymous memory, and ``peak_anon_mb_runs`` lists them all (``tf.data``'s autotuned buffers
    make its peak vary by a few % from process to process). ``jobs`` processes run at a time (each process's
    memory is its own, but parallel epochs share the cores: their seconds are only comparable with
    ``jobs=1``). The bucket loader's server runs in a process of its own the whole time
    (:func:`bucket_server_process`). Returns the rows (one per loader and scale, in that order) and the build
    seconds per scale.
    """
    from concurrent.futures import ThreadPoolExecutor

    read_images = len(filenames) * min(read_factor, max(factors))
    rows, builds = [], {}
    with contextlib.ExitStack() as stack:
        endpoint_url = (stack.enter_context(bucket_server_process())
                        if "bucket (S3 shards, shard cache)" in loaders else None)
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=jobs))
        for factor in factors:
            scale, build = prepare_scale(image_dir, filenames, labels, factor, image_size, batch_size, work_dir,
                                         loaders=loaders, endpoint_url=endpoint_url)
            builds[f"{factor}x"] = build
            print(f"  {factor:>3}x: {len(np.load(scale['filenames']))} images, built in "
                  + ", ".join(f"{k} {v:.0f} s" for k, v in build.items()), flush=True)
            epochs = {loader: [pool.submit(_epoch_memory_in_a_fresh_process, loader, scale, factor, image_size,
                                           batch_size, read_images) for _ in range(repeats)] for loader in loaders}
            for runs in epochs.values():  # this scale's epochs end before the next scale's builds start
                runs = sorted((run.result() for run in runs), key=lambda row: row["peak_anon_mb"])
                rows.append({**runs[(len(runs) - 1) // 2], "peak_anon_mb_runs": [r["peak_anon_mb"] for r in runs]})
    return rows, builds


def _smallest_and_largest(memory: list[dict]) -> dict[str, tuple[dict, dict]]:
    """Per loader, its rows at the smallest and the largest scale (loaders measured at one scale only are left out)."""
    ends = {}
    for loader in dict.fromkeys(row["loader"] for row in memory):
        rows = sorted((row for row in memory if row["loader"] == loader), key=lambda row: row["factor"])
        if len(rows) > 1:
            ends[loader] = rows[0], rows[-1]
    return ends


def memory_growth(memory: list[dict]) -> dict[str, float]:
    """Per loader, peak anonymous memory at the largest scale relative to the smallest, minus 1 (0.05: +5 %)."""
    return {loader: large["peak_anon_mb"] / small["peak_anon_mb"] - 1
            for loader, (small, large) in _smallest_and_largest(memory).items()}


def image_memory_growth(memory: list[dict]) -> dict[str, float]:
    """Per loader, the memory for decoded images (peak anonymous memory minus that once the loader has started),
    largest scale vs smallest, minus 1 (0.05: +5 %).

    Every scale has read the same number of images by the end of its epoch (see :func:`memory_by_scale`): a
    loader that never holds pixels needs the same few batches and buffers at any size of the data set.
    """
    return {loader: (large["peak_anon_mb"] - large["anon_loader_started_mb"])
            / (small["peak_anon_mb"] - small["anon_loader_started_mb"]) - 1
            for loader, (small, large) in _smallest_and_largest(memory).items()
            if small.get("anon_loader_started_mb") is not None and large.get("anon_loader_started_mb") is not None}


def bookkeeping_bytes_per_image(memory: list[dict]) -> dict[str, float]:
    """Per loader, the anonymous memory held once it has started, per extra image of the largest scale, in bytes.

    That is its bookkeeping: names, labels, the order, a shuffle buffer of names. A loader that kept the images
    would hold at least one decoded image's bytes for each.
    """
    return {loader: (large["anon_loader_started_mb"] - small["anon_loader_started_mb"]) * 2**20
            / (large["images"] - small["images"])
            for loader, (small, large) in _smallest_and_largest(memory).items()
            if small.get("anon_loader_started_mb") is not None and large.get("anon_loader_started_mb") is not None}




if __name__ == "__main__":
    if sys.argv[1:2] == ["serve-bucket"]:
        serve_bucket(int(sys.argv[2]))
