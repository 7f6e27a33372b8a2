"""Measuring loaders: images per second and resident memory, over time, for any source of batches."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt


def _proc_status_mb(field: str) -> float | None:
    """A memory line of Linux's ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in MB; None elsewhere."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return None


def peak_rss_mb() -> float:
    """The highest resident memory this process has had, in MB."""
    peak = _proc_status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """This process's resident memory now, in MB (Linux ``/proc``; elsewhere the peak so far)."""
    now = _proc_status_mb("VmRSS")
    return now if now is not None else peak_rss_mb()


def pydataset_batches(dataset, batches: int | None = None) -> Iterator:
    """Batches of a ``keras.utils.PyDataset`` read the way ``model.fit`` reads them (its workers included)."""
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    total = len(dataset) if batches is None else min(batches, len(dataset))
    adapter = PyDatasetAdapter(dataset, shuffle=False)
    adapter.on_epoch_begin()
    try:
        iterator = iter(adapter.get_numpy_iterator())
        for _ in range(total):
            yield next(iterator)
    finally:
        adapter.on_epoch_end()


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


def plot_traces(traces: Iterable[LoaderTrace], title: str = "Loaders side by side") -> plt.Figure:
    """Images read over time (steeper is faster) and resident memory over time, one line per loader."""
    traces = list(traces)
    fig, (ax_images, ax_memory) = plt.subplots(1, 2, figsize=(12, 4))
    for trace in traces:
        label = f"{trace.name} ({trace.images_per_second:.0f} images/s)"
        ax_images.plot(trace.seconds, trace.images, label=label)
        ax_memory.plot(trace.seconds, trace.rss_mb, label=trace.name)
    ax_images.set(xlabel="seconds", ylabel="images read", title="Images read over time")
    ax_memory.set(xlabel="seconds", ylabel="resident memory (MB)", title="Memory over time (from zero: flat is good)")
    ax_memory.set_ylim(0, max((max(t.rss_mb) for t in traces), default=1) * 1.15)
    for ax in (ax_images, ax_memory):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
