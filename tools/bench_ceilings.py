"""What the machine allows each loader, measured in the same run as the loaders (``make bench``, issue 33).

A loader's *steady speed* (images/s once its first batches are out, :func:`split_trace`) is compared with a
*ceiling* measured here on the same files, the same cores, in the same process:

- loaders that decode every epoch (lesson 05's ``PyDataset``, lesson 12's bucket reader, the 2019 recipe):
  the same decoder (Pillow's open and resize, ``seedlings_utils.dataset.load_image``; skimage for the 2019
  recipe) on one core, times the cores; and, to see the real scaling, the same decoder in as many threads (and,
  unless ``quick``, processes) as cores, actually run;
- ``tf.data`` and Keras' ``image_dataset_from_directory``: TensorFlow's decoding and resizing (lesson 08's
  ``decode_and_resize``) in ``tf.data`` with one call at a time and one thread per operation, times the cores,
  and with as many parallel calls as cores;
- loaders that read decoded pixels (lesson 07's cache, Grain over it, ``tf.data``'s cache file): a copy of the
  same bytes from memory (NumPy, warm), and the same files read cold from disk after
  ``posix_fadvise(POSIX_FADV_DONTNEED)`` (no root needed; pages another process maps stay cached, so "cold" is
  checked against a warm read of the same files and reported as it came out);
- training (lesson 09's model in :mod:`seedlings_utils.waiting`): the same steps fed one batch from memory,
  taken from the waiting measurement of the same run (no second measurement).

:func:`ceiling_shares` gives each loader's steady speed as a share of its ceiling; :func:`grain_stages` times
Grain's stages over the cache, the loader furthest below its ceiling, to say why.
"""

from __future__ import annotations

import os
import re
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np

#: Each loader of the speed table -> the ceiling it is compared with (a key of ``ceilings``).
LOADER_CEILINGS = {
    "2019 recipe (skimage)": "skimage_decode",
    "PyDataset, 1 worker": "pil_decode",
    "PyDataset, 2 threads": "pil_decode",
    "PyDataset, 2 processes": "pil_decode",
    "cache (.npy memmap)": "memory_copy",
    "Grain, 1 worker process": "memory_copy",
    "Grain, 2 worker processes": "memory_copy",
    "tf.data": "tf_decode",
    "tf.data + cache file": "memory_copy",
    "Keras image_dataset_from_directory": "tf_decode",
    "bucket (S3 shards, shard cache)": "pil_decode",
    "bucket (local shards, shard cache)": "pil_decode",
}

#: What each ceiling is, for the page.
CEILING_WHAT = {
    "pil_decode": "Pillow decoding and resizing (lesson 05's load_image), one core x the cores",
    "skimage_decode": "skimage reading and resizing (the 2019 recipe's), one core x the cores",
    "tf_decode": "TensorFlow decoding and resizing (lesson 08's decode_and_resize), one core x the cores",
    "memory_copy": "a copy of the same decoded bytes in memory (NumPy, warm)",
    "training": "the same training steps of lesson 09's model fed one batch from memory",
}


def split_trace(trace: dict, warmup_batches: int) -> dict:
    """Start-up apart from steady speed, from a trace (``LoaderTrace.as_dict()``: seconds and images after each
    batch, from a cold start).

    ``first_batch_seconds``: from the start to the first batch (threads, processes, pipelines starting, buffers
    filling). ``steady_images_per_second``: the images after the first ``warmup_batches`` batches (at least the
    first one) over the seconds they took. ``steady_batches``: how many batches that is (0: too few batches read,
    the figure is nan).
    """
    seconds, images = trace["seconds"], trace["images"]
    batches = len(seconds) - 1
    skip = min(max(1, warmup_batches), batches - 1) if batches > 1 else 0
    span = seconds[-1] - seconds[skip] if skip else 0.0
    steady = (images[-1] - images[skip]) / span if skip and span > 0 else float("nan")
    return {"first_batch_seconds": seconds[1] if batches else float("nan"), "steady_images_per_second": steady,
            "steady_batches": batches - skip if skip else 0}


def _best_rate(work: Callable[[], int], repeats: int) -> float:
    """The best of ``repeats`` runs of ``work`` (which returns the images it did), in images per second."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        done = work()
        rates.append(done / (time.perf_counter() - start))
    return max(rates)


def _decode_pil(args) -> int:  # module level: process pools pickle it by name
    from seedlings_utils.dataset import load_image

    image_dir, names, image_size = args
    for name in names:
        load_image(Path(image_dir) / name, image_size)
    return len(names)


def _chunks(names, parts: int) -> list:
    return [chunk.tolist() for chunk in np.array_split(np.asarray(names), parts) if len(chunk)]


def pil_ceiling(image_dir, names, image_size: int, cores: int, processes: bool = True) -> dict:
    """Lesson 05's decoder (Pillow open, resize, scale to float32) on one core, in ``cores`` threads and (with
    ``processes``) ``cores`` processes, all on ``names``; ``images_per_second`` is one core x ``cores``."""
    one = _best_rate(lambda: _decode_pil((image_dir, names, image_size)), 1)
    with ThreadPoolExecutor(cores) as pool:
        threads = _best_rate(lambda: sum(pool.map(_decode_pil, [(image_dir, c, image_size)
                                                               for c in _chunks(names, cores)])), 1)
    result = {"one_core": one, "cores": cores, "images_per_second": one * cores, "threads": threads,
              "threads_count": cores, "processes": None}
    if processes:
        import multiprocessing

        # spawn: a fork of a process running TensorFlow's threads can hang; its start-up is not timed
        with ProcessPoolExecutor(cores, mp_context=multiprocessing.get_context("spawn")) as pool:
            list(pool.map(_decode_pil, [(image_dir, names[:1], image_size)] * cores))  # started, imports done
            result["processes"] = _best_rate(lambda: sum(pool.map(_decode_pil, [(image_dir, c, image_size)
                                                                               for c in _chunks(names, cores)])), 1)
    return result


def skimage_ceiling(image_dir, names, image_size: int, cores: int) -> dict:
    """The 2019 recipe's decoder (skimage read and resize) on one core; ``images_per_second`` is x ``cores``."""
    from seedlings_utils.recipe2019 import recipe2019_load_batch

    one = _best_rate(lambda: len(recipe2019_load_batch(image_dir, names, image_size)), 1)
    return {"one_core": one, "cores": cores, "images_per_second": one * cores}


def tf_ceiling(image_dir, names, image_size: int, cores: int) -> dict:
    """Lesson 08's ``decode_and_resize`` in ``tf.data``: one call at a time with one thread per operation (one
    core), then ``cores`` parallel calls; ``images_per_second`` is one core x ``cores``."""
    import tensorflow as tf

    from seedlings_utils.tfdata import decode_and_resize

    paths = [str(Path(image_dir) / name) for name in names]

    def rate(parallel):
        options = tf.data.Options()
        options.threading.max_intra_op_parallelism = 1  # each decode and resize on one thread
        options.threading.private_threadpool_size = parallel
        ds = tf.data.Dataset.from_tensor_slices(paths).map(lambda p: decode_and_resize(p, image_size),
                                                           num_parallel_calls=parallel if parallel > 1 else None)
        ds = ds.with_options(options)
        for _ in ds.take(2):  # the graph traced and built: not timed
            pass
        return _best_rate(lambda: sum(1 for _ in ds), 1)

    one = rate(1)
    return {"one_core": one, "cores": cores, "images_per_second": one * cores, "parallel": rate(cores),
            "parallel_calls": cores}


def _drop_from_page_cache(paths) -> None:
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _read_files(paths, buffer: bytearray) -> int:
    total = 0
    for path in paths:
        with open(path, "rb", buffering=0) as f:
            while True:
                got = f.readinto(buffer)
                if not got:
                    break
                total += got
    return total


def disk_read(paths, image_count: int) -> dict:
    """The files ``paths`` (``image_count`` images in all) read whole, cold then warm, in images per second.

    Cold: after ``posix_fadvise(POSIX_FADV_DONTNEED)`` on each file, which asks the kernel to drop its cached
    pages (no root needed; a page another process maps stays). ``cold_dropped`` is False when the cold read was
    not clearly slower than the warm one (the pages were probably still cached: the figure is then not a disk's).
    """
    paths = [str(p) for p in paths]
    size = sum(os.path.getsize(p) for p in paths)
    buffer = bytearray(8 << 20)
    can_drop = hasattr(os, "posix_fadvise")
    if can_drop:
        _drop_from_page_cache(paths)
    start = time.perf_counter()
    _read_files(paths, buffer)
    cold = time.perf_counter() - start
    warm = min(_timed(lambda: _read_files(paths, buffer)) for _ in range(2))
    per_image = size / max(1, image_count)
    return {"bytes": size, "bytes_per_image": per_image, "cold_images_per_second": image_count / cold,
            "warm_images_per_second": image_count / warm, "cold_gb_per_second": size / cold / 1e9,
            "warm_gb_per_second": size / warm / 1e9, "cold_dropped": can_drop and cold > 1.5 * warm,
            "how": "posix_fadvise(POSIX_FADV_DONTNEED) on each file, then one read (not root: drop_caches not used)"
            if can_drop else "posix_fadvise is not available here: the cold read may come from the page cache"}


def _timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def memory_ceiling(images: np.ndarray, repeats: int = 5) -> dict:
    """A copy of ``images`` (uint8, decoded) into another array in memory, warm (the best of ``repeats``), in
    images/s and GB/s; and the same bytes copied and scaled to float32 in [0, 1], as every cache loader returns
    them (``x.astype(np.float32) / 255``)."""
    out = np.empty_like(images)
    np.copyto(out, images)  # both arrays' pages touched: warm
    copy = min(_timed(lambda: np.copyto(out, images)) for _ in range(repeats))
    scale = min(_timed(lambda: images.astype(np.float32) / np.float32(255)) for _ in range(repeats))
    n = len(images)
    return {"images_per_second": n / copy, "gb_per_second": images.nbytes / copy / 1e9,
            "copy_and_scale_images_per_second": n / scale, "bytes_per_image": images.nbytes // max(1, n)}


def cache_ceilings(cache_dir, tf_cache_files, image_count: int) -> dict:
    """The ceilings of the loaders that read decoded pixels: lesson 07's cache in ``cache_dir`` (its shards
    copied in memory, and read from disk cold and warm) and ``tf.data``'s cache file (``tf_cache_files``, read
    from disk cold and warm)."""
    from seedlings_utils.cache import read_cache_info

    info = read_cache_info(cache_dir)
    shards = [Path(cache_dir) / name for name in info["shards"]]
    images = np.concatenate([np.load(path) for path in shards])[:image_count]  # the same bytes, in memory
    memory = memory_ceiling(images)
    return {"memory_copy": memory, "cache_disk": disk_read(shards, info["count"]),
            "tf_cache_file_disk": disk_read(tf_cache_files, image_count) if tf_cache_files else None}


def training_ceiling(wait_runs: dict, batch_size: int) -> dict | None:
    """Training from memory, from the waiting measurement of the same run (:mod:`seedlings_utils.waiting`): its
    free input *is* one batch kept in memory and repeated. ``images_per_second``: the batch over the compute
    milliseconds per step; for each loader its training images/s (compute plus waiting per step) and share."""
    steps = {name: r for name, r in wait_runs.items() if r.get("compute_ms_per_step")}
    if not steps:
        return None
    compute = statistics.median(r["compute_ms_per_step"] for r in steps.values())
    loaders = {name: {"images_per_second": 1000 * batch_size / (r["compute_ms_per_step"] + r["wait_ms_per_step"]),
                      "share": r["compute_ms_per_step"] / (r["compute_ms_per_step"] + r["wait_ms_per_step"])}
               for name, r in steps.items() if r.get("wait_ms_per_step") is not None}
    return {"images_per_second": 1000 * batch_size / compute, "compute_ms_per_step": compute, "loaders": loaders}


def ceiling_shares(steady: dict[str, float], ceilings: dict) -> dict:
    """Each loader's steady speed as a share of its ceiling (:data:`LOADER_CEILINGS`); loaders without one are
    left out (the page says "not measured in this run")."""
    shares = {}
    for loader, speed in steady.items():
        key = LOADER_CEILINGS.get(loader)
        ceiling = (ceilings.get(key) or {}).get("images_per_second") if key else None
        if ceiling:
            shares[loader] = {"ceiling": key, "ceiling_images_per_second": ceiling,
                              "steady_images_per_second": speed, "share": speed / ceiling}
    return shares


def grain_stages(cache_dir, labels, batch_size: int, batches: int) -> dict:
    """Why Grain over the cache is slower than lesson 07's loader over the same bytes, measured stage by stage in
    this process (images per second, ``batches`` batches each):

    - ``cache_whole_batches``: lesson 07's ``load_batch`` of whole batches (the cache loader's way);
    - ``record_reads``: the Grain source's records read one at a time (``CacheSource[i]``: a ``load_batch`` of one
      image), what Grain does for every record;
    - ``batching``: Grain's batching of records already read (stacking them);
    - ``grain_in_process``: the whole Grain pipeline with no worker process (steady speed, after its first batch);
    - ``grain_one_read_thread_in_process``: the same pipeline with one reader thread instead of Grain's default
      (``grain_read_threads``, 16 in Grain 0.2.18, whatever the cores), in this process;
    - ``grain_whole_batches_in_process``: the same shuffle in Grain, each batch's positions read at once with
      lesson 07's ``load_batch`` (what a fix of the record-by-record read would give), in this process;
    - ``stage_timing``: Grain's own per-stage timing (``ExecutionTrackingMode.STAGE_TIMING``), each stage's
      microseconds per element it produced (its own time, without the stages it reads from).
    The rows with worker processes in the speed table add the transfer between processes to these.
    """
    import grain

    from seedlings_utils.cache import CachedDataset
    from seedlings_utils.killed_runs import CacheSource, grain_training_batches

    labels = np.asarray(labels)
    n = min(len(labels), batches * batch_size)
    cache = CachedDataset(cache_dir, labels, batch_size=batch_size)
    order = np.random.default_rng(0).permutation(len(labels))[:n]
    whole = _best_rate(lambda: sum(len(cache.load_batch(np.sort(order[i:i + batch_size])))
                                   for i in range(0, n, batch_size)), 3)
    source = CacheSource(cache_dir, labels)
    records = _best_rate(lambda: sum(1 for i in order if source[int(i)] is not None), 2)
    read = [source[int(i)] for i in order[:batch_size]]
    stacked = _best_rate(lambda: sum(len(np.stack([r[0] for r in read])) for _ in range(batches)), 3)

    def whole_batches():  # the same shuffle and batches, each batch read at once: positions first, then pixels
        positions = grain.MapDataset.range(len(labels)).shuffle(seed=0).batch(batch_size)
        return positions.map(lambda picked: (cache.load_batch(picked), labels[picked])).to_iter_dataset()

    def read_threads(count):  # grain_training_batches with ``count`` reader threads instead of Grain's default
        from seedlings_utils.killed_runs import _images_and_labels
        from seedlings_utils.resume import grain_epochs

        batches_ = grain_epochs(source, batch_size, 0, 1).map(_images_and_labels)
        return batches_.to_iter_dataset(grain.ReadOptions(num_threads=count))

    def in_process(make=lambda: grain_training_batches(cache_dir, labels, batch_size, workers=0)):
        iterator = iter(make())
        next(iterator)
        start, count = time.perf_counter(), 0
        for _, (images, _labels) in zip(range(batches), iterator, strict=False):
            count += len(images)
        return count / (time.perf_counter() - start) if count else float("nan")

    options = grain.experimental.DatasetOptions(
        execution_tracking_mode=grain.experimental.ExecutionTrackingMode.STAGE_TIMING)
    timed = grain.experimental.WithOptionsIterDataset(grain_training_batches(cache_dir, labels, batch_size, workers=0),
                                                      options)
    iterator = iter(timed)
    for _, _batch in zip(range(batches), iterator, strict=False):
        pass
    stages = []
    try:  # Grain 0.2.18 keeps get_execution_summary out of its public API; its stats report every 5 s: now
        from grain._src.python.dataset.dataset import get_execution_summary

        def report(stats):
            stats.report()
            for parent in stats._parents:
                report(parent)

        report(iterator._stats)
        summary = get_execution_summary(iterator)
        for node_id in sorted(summary.nodes):
            node = summary.nodes[node_id]
            if node.num_produced_elements:
                stages.append({"stage": re.sub(r" @ [^)]*", "", node.name), "elements": int(node.num_produced_elements),
                               "us_per_element": node.total_processing_time_ns / node.num_produced_elements / 1e3})
    except (AttributeError, ImportError, ValueError) as error:  # another Grain release: left out, and said why
        stages = [{"stage": f"not available: {type(error).__name__}: {error}", "elements": 0, "us_per_element": None}]
    return {"images": n, "cache_whole_batches": whole, "record_reads": records, "batching": stacked,
            "grain_in_process": max(in_process() for _ in range(2)),
            "grain_whole_batches_in_process": max(in_process(whole_batches) for _ in range(2)),
            "grain_read_threads": grain.ReadOptions().num_threads,
            "grain_one_read_thread_in_process": max(in_process(lambda: read_threads(1)) for _ in range(2)),
            "stage_timing": stages}


def measure_ceilings(image_dir, names, image_size: int, cache_dir, tf_cache_files, processes: bool = True) -> dict:
    """Every ceiling but training's (see :func:`training_ceiling`), on the files ``names`` of ``image_dir``."""
    cores = os.cpu_count() or 1
    names = list(names)
    print("  decoding ceilings ...", flush=True)
    ceilings = {"pil_decode": pil_ceiling(image_dir, names, image_size, cores, processes=processes),
                "skimage_decode": skimage_ceiling(image_dir, names[: max(8, len(names) // 8)], image_size, cores),
                "tf_decode": tf_ceiling(image_dir, names, image_size, cores)}
    print("  memory and disk ceilings ...", flush=True)
    ceilings.update(cache_ceilings(cache_dir, tf_cache_files, len(names)))
    return ceilings


def speed_results(traces: dict, ceilings: dict, extras: dict, wait_runs: dict, batch_size: int, batches: int,
                  warmup_batches: int) -> dict:
    """What the speed side adds to ``bench.json``: start-up and steady speed per loader, the ceilings (training's
    too), each loader's share of its ceiling, Grain's stages and lesson 12's requests and bytes per image."""
    split = {name: split_trace(trace.as_dict() if hasattr(trace, "as_dict") else trace, warmup_batches)
             for name, trace in traces.items()}
    steady = {name: figures["steady_images_per_second"] for name, figures in split.items()}
    ceilings = {**ceilings, "training": training_ceiling(wait_runs, batch_size)}
    print("  Grain's stages over the cache ...", flush=True)
    bucket = {name: {**figures, "requests_per_image": figures["requests"] / figures["images"],
                     "bytes_per_image": figures["bytes"] / figures["images"]}
              for name, figures in extras.get("bucket", {}).items()}
    return {"first_batch_seconds": {name: figures["first_batch_seconds"] for name, figures in split.items()},
            "steady_images_per_second": steady,
            "ceilings": ceilings,
            "ceiling_share": ceiling_shares(steady, ceilings),
            "grain_stages": grain_stages(extras["cache_dir"], extras["labels"], batch_size, batches),
            "bucket": bucket}
