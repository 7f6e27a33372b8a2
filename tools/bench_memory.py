"""``make bench``'s memory part: every loader the course teaches, at every scale, one training epoch in a fresh
process each (``python -m tools.bench epoch-memory JOB``), and what grows with the data set's size.

Pixels are never held: the memory for decoded images (peak minus the memory once the loader has read its first
batch) stays flat from the smallest scale to the largest; what a loader holds per image is bookkeeping (a name, a
label, a position, a place in a shuffle buffer). :mod:`tools.bench` says how the runs are made comparable.
"""

from __future__ import annotations

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


# The loaders the course teaches, as lesson 06's training epoch uses them (shuffle on)
MEMORY_LOADERS = {
    "PyDataset, 2 threads": "lesson 05",
    "cache (.npy memmap)": "lesson 07",
    "tf.data": "lesson 08, names shuffled",
    "tf.data + cache file": "lesson 08",
    "tf.data, shuffled positions": "lesson 08, going deeper",
    "Grain, 2 worker processes": "lesson 11, the training process only",
}
RSS_NOTE = ("resident memory (RSS) also counts file pages: libraries, and the memory-mapped cache or tf.data's "
            "cache file read back; the kernel can drop those and reread them, so the flatness figure is anonymous "
            "memory (RssAnon), what the process itself holds")


def memory_loader(loader: str, scale: dict, image_size: int, batch_size: int):
    """``loader`` over one scale's files, shuffled as in training (``scale``: :func:`prepare_scale`'s paths)."""
    from seedlings_utils.cache import CachedDataset
    from seedlings_utils.dataset import SeedlingsDataset
    from seedlings_utils.tfdata import make_tf_dataset

    # memory-mapped, as lesson 04's load_split opens the split the lessons' loaders read
    labels = np.load(scale["labels"], mmap_mode="r")
    common = dict(batch_size=batch_size, shuffle=True, seed=0)
    if loader == "cache (.npy memmap)":  # the cache holds its own list of file names
        return CachedDataset(scale["cache_dir"], labels, workers=2, **common)
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
    if loader == "Grain, 2 worker processes":  # over the cache, like lesson 07's loader; its workers not counted
        return GrainEpochs(scale["cache_dir"], labels, batch_size, workers=2)
    raise ValueError(f"unknown loader {loader!r}; known: {', '.join(MEMORY_LOADERS)}")


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


def prepare_scale(image_dir, filenames, labels, factor, image_size, batch_size, work_dir) -> tuple[dict, dict]:
    """``factor`` times the data set as hard links, its index, and both caches built on disk before any timing.

    Returns the paths (what :func:`memory_loader` reads) and the seconds each build took. A cache that is
    already there and current is not rebuilt (then the seconds are those of checking it, for ``tf.data``
    of reading it once).
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
    start = time.perf_counter()
    build_image_cache(folder, names, image_size, scale["cache_dir"], progress=False)  # written shard by shard
    build["cache (.npy memmap)"] = time.perf_counter() - start
    start = time.perf_counter()
    # one complete pass writes tf.data's cache file; built with the very call the measured epoch makes
    for _ in memory_loader("tf.data + cache file", scale, image_size, batch_size):
        pass
    build["tf.data + cache file"] = time.perf_counter() - start
    return scale, build


def read_one_pass(data) -> int:
    """Every batch of ``data`` read once without a model (a ``PyDataset`` as ``fit`` reads it); the images read."""
    import keras

    batches = pydataset_batches(data) if isinstance(data, keras.utils.PyDataset) else data
    return sum(len(labels) for _, labels in batches)


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
    value = anon_mb()
    del iterator
    return value


def epoch_memory(loader: str, scale: dict, image_size: int, batch_size: int, passes_before_fit: int = 0) -> dict:
    """One training epoch of lesson 06's model (``model.fit``, shuffle on) reading with ``loader``; its peak memory.

    Run in a fresh process (see :func:`memory_by_scale`). A thread samples anonymous and resident memory
    (:class:`~seedlings_utils.profiling.MemorySampler`) from before the first image is read to the end of
    ``fit``; the kernel's own peak of resident memory is restarted at the same moment and read after ``fit``.
    ``passes_before_fit`` passes over the loader without the model come first (:func:`read_one_pass`), so
    that a small data set is measured after reading as many images as a large one's epoch: the C allocator
    keeps some of what it hands out for decoding and batching, so a process's memory also grows with the
    images it has read (bounded), whatever the size of the data set.
    """
    import keras

    from seedlings_utils.model import build_cnn
    from seedlings_utils.profiling import MemorySampler, reset_peak_rss

    labels = np.load(scale["labels"], mmap_mode="r")
    keras.utils.set_random_seed(0)
    model = build_cnn(int(labels.max()) + 1, image_size, base_filters=8)
    data = memory_loader(loader, scale, image_size, batch_size)
    tf_cache = _tf_cache_stamp(scale["tf_cache_file"]) if loader == "tf.data + cache file" else None
    reset_peak_rss()
    start = time.perf_counter()
    with MemorySampler() as memory:
        started = anon_with_loader_started(data)
        read_before_fit = sum(read_one_pass(data) for _ in range(passes_before_fit))
        fit_start = time.perf_counter()
        if isinstance(data, GrainEpochs):  # one epoch of its one iterator, as a generator
            model.fit(iter(data), steps_per_epoch=data.batches, epochs=1, verbose=0)
        else:
            model.fit(data, epochs=1, verbose=0)
    row = {"loader": loader, "images": int(len(labels)), "passes_before_fit": passes_before_fit,
           "images_read_before_fit": read_before_fit, "peak_anon_mb": memory.peak_anon_mb,
           "anon_before_reading_mb": memory.start_anon_mb, "anon_loader_started_mb": started,
           "peak_rss_mb": peak_rss_mb(),
           "rss_before_reading_mb": memory.start_rss_mb, "passes_seconds": fit_start - start,
           "epoch_seconds": time.perf_counter() - fit_start, "samples": memory.samples}
    if tf_cache is not None:  # True: the epoch read the cache file built beforehand and rewrote nothing
        row["read_from_cache_file"] = bool(tf_cache) and _tf_cache_stamp(scale["tf_cache_file"]) == tf_cache
    return row


def _epoch_memory_in_a_fresh_process(loader: str, scale: dict, factor: int, image_size: int, batch_size: int,
                                     passes_before_fit: int = 0) -> dict:
    job = json.dumps({"loader": loader, "scale": scale, "image_size": image_size, "batch_size": batch_size,
                      "passes_before_fit": passes_before_fit})
    out = subprocess.run([sys.executable, "-m", "tools.bench", "epoch-memory", job],
                         capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, cwd=REPO_ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"the epoch with {loader} at {factor}x failed:\n{out.stderr[-3000:]}")
    row = {"factor": factor, **json.loads(out.stdout.strip().splitlines()[-1])}
    passes = (f" after {passes_before_fit} passes without the model ({row['passes_seconds']:.0f} s)"
              if passes_before_fit else "")
    print(f"  {factor:>3}x, {loader}: {row['images']} images, epoch {row['epoch_seconds']:.0f} s{passes}, "
          f"peak anonymous {row['peak_anon_mb']:.0f} MB, peak resident {row['peak_rss_mb']:.0f} MB", flush=True)
    return row


def memory_by_scale(image_dir, filenames, labels, factors, image_size, batch_size, work_dir,
                    loaders=tuple(MEMORY_LOADERS), jobs: int = 1, repeats: int = 1) -> tuple[list[dict], dict]:
    """:func:`epoch_memory` for every loader at every scale, each in a fresh Python process so peaks do not mix.

    Each process reads as many images as the largest scale's epoch: at 1x of 50x, 49 passes over the loader
    without the model, then the epoch (``passes_before_fit``), so that the scales differ in the size of the
    data set only, not in how much the process has read.
    ``repeats`` epochs (each in its own process) per loader and scale: the row kept is the one with the
    median peak anonymous memory, and ``peak_anon_mb_runs`` lists them all (``tf.data``'s autotuned buffers
    make its peak vary by a few % from process to process). ``jobs`` processes run at a time (each process's
    memory is its own, but parallel epochs share the cores: their seconds are only comparable with
    ``jobs=1``). Returns the rows (one per loader and scale, in that order) and the cache build seconds per scale.
    """
    from concurrent.futures import ThreadPoolExecutor

    rows, builds = [], {}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for factor in factors:
            scale, build = prepare_scale(image_dir, filenames, labels, factor, image_size, batch_size, work_dir)
            builds[f"{factor}x"] = build
            print(f"  {factor:>3}x: {len(np.load(scale['filenames']))} images, caches built in "
                  + ", ".join(f"{k} {v:.0f} s" for k, v in build.items()), flush=True)
            passes = round(max(factors) / factor) - 1  # every scale reads as many images as the largest's epoch
            epochs = {loader: [pool.submit(_epoch_memory_in_a_fresh_process, loader, scale, factor, image_size,
                                           batch_size, passes) for _ in range(repeats)] for loader in loaders}
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


