"""Measuring loaders: images per second and resident memory, over time, for any source of batches."""

from __future__ import annotations

import resource
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path


def proc_status_mb(*fields: str) -> dict[str, float]:
    """Memory lines of Linux's ``/proc/self/status`` in MB, e.g. ``proc_status_mb("VmRSS", "RssAnon")``; {} elsewhere.

    - ``VmRSS``: resident memory now, the pages of this process that sit in RAM; ``VmHWM``: its peak,
      kept by the kernel.
    - ``RssAnon``: the *anonymous* part of ``VmRSS``: heap, stacks, NumPy arrays, buffers, memory the
      process holds and that only the process can give back. The kernel keeps no peak of it.
    - ``RssFile``: the part that maps files: program code and libraries, and memory-mapped data (a
      ``np.load(..., mmap_mode="r")`` cache). These pages are page cache: they count in ``VmRSS`` but the
      kernel can drop them at any time and read them again from disk.
    """
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return {}
    values = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in fields:
            values[key] = int(rest.split()[0]) / 1024  # the kernel writes kB
    return values


def peak_rss_mb() -> float:
    """The highest resident memory this process has had (since :func:`reset_peak_rss`), in MB."""
    peak = proc_status_mb("VmHWM").get("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """This process's resident memory now, in MB (Linux ``/proc``; elsewhere the peak so far)."""
    now = proc_status_mb("VmRSS").get("VmRSS")
    return now if now is not None else peak_rss_mb()


def anon_mb() -> float | None:
    """This process's anonymous resident memory now (``RssAnon``), in MB; None where ``/proc`` has no such line."""
    return proc_status_mb("RssAnon").get("RssAnon")


def reset_peak_rss() -> bool:
    """Restart the kernel's peak of resident memory (``VmHWM``) from the current value; False where impossible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")  # "5": reset the peak (Linux 4.0 and later)
    except OSError:
        return False
    return True


def resident_memory_mb() -> tuple[float, float]:
    """This process's resident memory in MB, split in two: ``(anonymous, file_backed)``.

    *Anonymous* pages (``RssAnon``) hold the process's own data, such as NumPy arrays: they stay in RAM
    (or go to swap) until the process frees them. *File-backed* pages (``RssFile``) are pages of files
    mapped into memory (libraries, and memory-mapped shards): clean ones can be dropped by the kernel at
    any time and read again from the file. Linux only; elsewhere both are ``nan``.
    """
    values = proc_status_mb("RssAnon", "RssFile")
    return values.get("RssAnon", float("nan")), values.get("RssFile", float("nan"))


class MemorySampler:
    """The peak anonymous memory (``RssAnon``) and resident memory (``VmRSS``) of this process during a ``with``.

    The kernel keeps a peak of resident memory but none of its anonymous part, so a thread reads
    ``/proc/self/status`` every ``interval`` seconds and keeps the highest values (a spike shorter than
    ``interval`` can be missed). Values are in MB, None where ``/proc`` is missing (not Linux)::

        with MemorySampler() as memory:
            model.fit(dataset, epochs=1)
        print(memory.start_anon_mb, memory.peak_anon_mb)
    """

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.start_anon_mb: float | None = None
        self.start_rss_mb: float | None = None
        self.peak_anon_mb: float | None = None
        self.peak_rss_mb: float | None = None
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def _sample(self) -> None:
        values = proc_status_mb("RssAnon", "VmRSS")
        if "RssAnon" in values:
            self.peak_anon_mb = max(self.peak_anon_mb or 0.0, values["RssAnon"])
        if "VmRSS" in values:
            self.peak_rss_mb = max(self.peak_rss_mb or 0.0, values["VmRSS"])
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> MemorySampler:
        values = proc_status_mb("RssAnon", "VmRSS")
        self.start_anon_mb, self.start_rss_mb = values.get("RssAnon"), values.get("VmRSS")
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def pydataset_batches(dataset, batches: int | None = None) -> Iterator:
    """Batches of a ``keras.utils.PyDataset`` read the way ``model.fit`` reads them (its workers included).

    Keras has no public way to read a ``PyDataset`` as ``fit`` does, so this uses ``fit``'s own adapter, a
    private class. Should a Keras release move it, the batches are read in order by ``dataset.workers``
    threads instead (close to ``fit`` with threads), with a warning, rather than failing.
    """
    total = len(dataset) if batches is None else min(batches, len(dataset))
    try:
        from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter
    except ImportError:
        yield from _batches_in_threads(dataset, total)
        return
    adapter = PyDatasetAdapter(dataset, shuffle=False)
    adapter.on_epoch_begin()
    try:
        iterator = iter(adapter.get_numpy_iterator())
        for _ in range(total):
            yield next(iterator)
    finally:
        adapter.on_epoch_end()


def _batches_in_threads(dataset, total: int) -> Iterator:
    """``total`` batches of ``dataset`` in order, loaded ahead by ``dataset.workers`` threads (the fallback)."""
    import collections
    import warnings
    from concurrent.futures import ThreadPoolExecutor

    warnings.warn("keras' PyDatasetAdapter was not found: reading batches with a thread pool of our own instead",
                  stacklevel=3)
    workers = max(1, int(getattr(dataset, "workers", 1) or 1))
    dataset.on_epoch_begin()
    try:
        with ThreadPoolExecutor(workers) as pool:  # at most 2 x workers batches loaded ahead, never more
            ahead = min(total, 2 * workers)
            pending = collections.deque(pool.submit(dataset.__getitem__, i) for i in range(ahead))
            while pending:
                batch = pending.popleft().result()
                if ahead < total:
                    pending.append(pool.submit(dataset.__getitem__, ahead))
                    ahead += 1
                yield batch
    finally:
        dataset.on_epoch_end()


@dataclass
class LoaderTrace:
    """What :func:`trace_loader` saw: after each batch, the time, the images so far and the memory."""

    name: str
    seconds: list[float] = field(default_factory=list)
    images: list[int] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        return self.images[-1] / self.seconds[-1] if self.seconds and self.seconds[-1] > 0 else float("nan")

    def as_dict(self) -> dict:
        return {"name": self.name, "images_per_second": self.images_per_second, "seconds": self.seconds,
                "images": self.images, "rss_mb": self.rss_mb}


def trace_loader(name: str, make_batches: Callable[[], Iterable]) -> LoaderTrace:
    """Read every batch ``make_batches()`` yields, from a cold start, recording time, images and memory."""
    trace = LoaderTrace(name, [0.0], [0], [rss_mb()])
    start, count = time.perf_counter(), 0
    for batch in make_batches():
        images = batch[0] if isinstance(batch, tuple) else batch
        count += len(images)
        trace.seconds.append(time.perf_counter() - start)
        trace.images.append(count)
        trace.rss_mb.append(rss_mb())
    return trace


def measure_images_per_second(dataset, batches: int | None = None) -> float:
    """Images per second when iterating ``dataset`` the way ``model.fit`` does (honouring ``workers``).

    Reads ``batches`` batches (default: one whole epoch) through Keras' own data adapter, so threads or
    processes are used exactly as in training. The clock runs from a cold start to the last batch, so
    the cost of starting workers is included, as it is in every epoch of ``fit``.
    """
    return trace_loader("dataset", lambda: pydataset_batches(dataset, batches)).images_per_second


def measure_tf_images_per_second(dataset, batches: int | None = None) -> float:
    """Images per second when iterating ``dataset`` (default: one whole epoch; else its first ``batches``).

    Like :func:`~seedlings_utils.profiling.measure_images_per_second`, the clock runs from a cold start
    (creating the iterator, which starts ``tf.data``'s threads and fills its buffers) to the last batch.
    To time a ``cache_file`` pipeline warm, iterate one whole epoch first: a partial epoch leaves no cache.
    """
    if batches is not None and batches < 1:
        raise ValueError(f"batches must be at least 1, got {batches}")
    trace = trace_loader("tf.data", lambda: (dataset if batches is None else dataset.take(batches)).as_numpy_iterator())
    if trace.images[-1] == 0:
        raise ValueError("the dataset yielded no images")
    return trace.images_per_second
