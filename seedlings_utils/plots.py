"""The course's pictures: one function per kind of chart, each returning its matplotlib Figure."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator
from PIL import Image

from .waiting import TARGET


def _bars_height(bars: int) -> float:
    """Inches for a figure of ``bars`` horizontal bars: 0.35 each up to 40, then no taller than 15."""
    return min(0.35 * bars + 1, 15)


def plot_class_counts(labels: np.ndarray, classes: Sequence[str], title: str = "Images per species") -> plt.Figure:
    """Horizontal bars: how many images each species has."""
    counts = np.bincount(np.asarray(labels), minlength=len(classes))
    fig, ax = plt.subplots(figsize=(7, _bars_height(len(classes))))
    ax.barh(list(classes), counts, color="tab:green")
    ax.invert_yaxis()
    for y, count in enumerate(counts if len(classes) <= 40 else []):  # 200 numbers would overlap
        ax.text(count, y, f" {count}", va="center", fontsize=8)
    if len(classes) > 40:
        ax.tick_params(axis="y", labelsize=max(3, 8 - len(classes) // 40))
    ax.set_xlabel("images")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_split_counts(y_train: np.ndarray, y_val: np.ndarray, classes: Sequence[str]) -> plt.Figure:
    """Side-by-side bars per species for the two splits, plus each species' share of validation."""
    n = len(classes)
    train = np.bincount(y_train, minlength=n)
    val = np.bincount(y_val, minlength=n)
    fig, (ax, ax_share) = plt.subplots(1, 2, figsize=(11, _bars_height(n) + 0.2), sharey=True,
                                       gridspec_kw={"width_ratios": [3, 1]})
    y = np.arange(n)
    ax.barh(y - 0.2, train, height=0.4, label=f"train ({train.sum()})", color="tab:green")
    ax.barh(y + 0.2, val, height=0.4, label=f"validation ({val.sum()})", color="tab:orange")
    ax.set_yticks(y, list(classes))
    ax.invert_yaxis()
    ax.set_xlabel("images")
    ax.legend()
    share = val / np.maximum(train + val, 1)
    ax_share.barh(y, share, color="tab:orange")
    ax_share.axvline(val.sum() / (train.sum() + val.sum()), color="k", ls="--", lw=1)
    ax_share.set_xlabel("share in validation")
    fig.suptitle("Stratified split: every species keeps the same share")
    fig.tight_layout()
    return fig


def show_images(
    images: Sequence[np.ndarray | Image.Image | str | Path], titles: Sequence[str] | None = None,
    ncols: int = 8, size: float = 1.6,
) -> plt.Figure:
    """A grid of images (arrays in [0, 1] or uint8, PIL images, or paths) with optional titles."""
    nrows = max(1, int(np.ceil(len(images) / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * (size + 0.25)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (ax, image) in enumerate(zip(axes.flat, images, strict=False)):
        if isinstance(image, (str, Path)):
            with Image.open(image) as img:
                image = img.convert("RGB")
        ax.imshow(np.clip(np.asarray(image), 0, 255 if np.asarray(image).dtype == np.uint8 else 1))
        if titles is not None:
            ax.set_title(titles[i], fontsize=7)
    fig.tight_layout()
    return fig


def plot_history(history: Mapping[str, Sequence[float]], class_count: int | None = None) -> plt.Figure:
    """Learning curves: loss and accuracy per epoch, training vs validation; with ``class_count``, the accuracy of
    a guess (1 / ``class_count``, the data's own chance level) as a dotted line."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    epochs = np.arange(1, len(history["loss"]) + 1)
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        ax.plot(epochs, history[metric], "o-", label="train")
        if f"val_{metric}" in history:
            ax.plot(epochs, history[f"val_{metric}"], "o-", label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    if "accuracy" in history and class_count:
        axes[1].axhline(1 / class_count, color="gray", ls=":", lw=1)
        axes[1].text(epochs[0], 1 / class_count, f" chance (1/{class_count})", va="bottom", fontsize=8, color="gray")
    fig.tight_layout()
    return fig


def plot_confusion_matrix(matrix: np.ndarray, classes: Sequence[str], normalize: bool = True) -> plt.Figure:
    """The confusion matrix with species names; rows are true species, columns predictions."""
    matrix = np.asarray(matrix, dtype=float)
    shown = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1) if normalize else matrix
    n = len(classes)
    side = min(7 + max(n - 12, 0) * 0.2, 16)  # 12 classes: 8 x 7 inches; 200: no bigger than 17 x 16
    fig, ax = plt.subplots(figsize=(side + 1, side))
    im = ax.imshow(shown, cmap="Greens", vmin=0, vmax=1 if normalize else None)
    fontsize = 8 if n <= 30 else max(3, 8 - n // 30)
    ax.set_xticks(range(n), list(classes), rotation=60, ha="right", fontsize=fontsize)
    ax.set_yticks(range(n), list(classes), fontsize=fontsize)
    for i in range(n if n <= 30 else 0):  # counts in the cells only while they stay readable
        for j in range(n):
            if matrix[i, j]:
                ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if shown[i, j] > 0.5 * shown.max() else "black")
    ax.set_xlabel("predicted species")
    ax.set_ylabel("true species")
    ax.set_title("Confusion matrix (validation; colour = share of the row)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def plot_images_per_second(results: Mapping[str, float], title: str = "Loader speed") -> plt.Figure:
    """Bars of images/s, one per loader configuration."""
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(results) + 1))
    names = list(results)
    ax.barh(names, [results[n] for n in names], color="tab:blue")
    ax.invert_yaxis()
    for y, name in enumerate(names):
        ax.text(results[name], y, f" {results[name]:.0f}", va="center", fontsize=8)
    ax.set_xlabel("images / second")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_image_sizes(paths: Sequence[str | Path]) -> plt.Figure:
    """Width against height of every image (read from the file headers only: fast). Unreadable files are
    counted in the title, not drawn: lesson 02 decides what to do with them."""
    from .images import read_image_sizes

    sizes, unreadable = read_image_sizes(paths)
    w, h = np.array(sizes, dtype=int).reshape(-1, 2).T
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.scatter(w, h, s=8, alpha=0.4, color="tab:green")
    top = max(w.max(), h.max()) * 1.05
    ax.plot([0, top], [0, top], "k--", lw=1, label="square")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("width (px)")
    ax.set_ylabel("height (px)")
    title = f"{len(sizes)} images: {w.min()}-{w.max()} px wide, {np.mean(w == h):.0%} square"
    ax.set_title(title + (f"\n({unreadable} files could not be read)" if unreadable else ""))
    ax.legend()
    fig.tight_layout()
    return fig


def plot_jobs(single, multi, global_batch: int, crashed_in_epoch: int | None = None) -> plt.Figure:
    """Lesson 10: the loss per epoch of a one-process job and of every process of another; images/s, peak memory."""
    fig, (ax_loss, ax_speed) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [3, 2]})
    for losses in single.losses():
        ax_loss.plot(range(1, len(losses) + 1), losses, "o-", color="tab:gray", label="1 process")
    for i, losses in enumerate(multi.losses()):
        ax_loss.plot(range(1, len(losses) + 1), losses, ["x--", "+:", "1-.", "2--"][i % 4], markersize=10,
                     label=f"process {i} of {multi.num_processes}")
    if crashed_in_epoch is not None:
        ax_loss.axvline(crashed_in_epoch + 1, color="tab:red", alpha=0.4)
        ax_loss.annotate(f"process {multi.num_processes - 1} died in epoch {crashed_in_epoch + 1}:\nall restarted "
                         "from process 0's checkpoint", (crashed_in_epoch + 1, ax_loss.get_ylim()[1]),
                         xytext=(-4, -4), textcoords="offset points", va="top", ha="right", fontsize=8,
                         color="tab:red")
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="Every process reports the same loss")
    ax_loss.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_loss.legend(fontsize=8, loc="lower left")
    ax_loss.grid(alpha=0.3)
    jobs = [("1 process", single), (f"{multi.num_processes} processes", multi)]
    speeds = [job.images_per_second(global_batch) for _, job in jobs]
    names = [name + "\n(peak " + ", ".join(f"{s.get('peak_rss_mb', float('nan')):.0f}" for s in job.summaries)
             + " MB)" for name, job in jobs]
    bars = ax_speed.bar(names, speeds, color=["tab:gray", "tab:blue"])
    ax_speed.bar_label(bars, [f"{s:.0f} images/s" for s in speeds], fontsize=9)
    ax_speed.set_ylim(0, max(speeds) * 1.2)
    ax_speed.set(ylabel="training images per second", title=f"Speed on this machine ({os.cpu_count()} CPU cores)")
    fig.tight_layout()
    return fig


def plot_traces(traces: Iterable, title: str = "Loaders side by side") -> plt.Figure:
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


def plot_wait_shares(results: Mapping[str, dict], title: str = "Share of each training step spent waiting for data",
                     target: float | None = TARGET, ax=None) -> plt.Figure:
    """Horizontal bars at the median share per loader, whiskers from the min to the max run, the target dashed."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(9, 1.4 + 0.6 * len(results)))
    else:
        fig = ax.figure
    names = list(results)
    medians = np.array([100 * results[n]["median"] for n in names])
    low = medians - np.array([100 * results[n]["min"] for n in names])
    high = np.array([100 * results[n]["max"] for n in names]) - medians
    ax.barh(names, medians, xerr=[low, high], color="tab:orange", capsize=4, ecolor="k")
    ax.axvline(0, color="k", lw=0.8)
    if target is not None:
        ax.axvline(100 * target, color="k", ls="--", lw=1)
        ax.text(100 * target, -0.55, f" target: under {100 * target:.0f} %", fontsize=8, va="bottom")
    for y, name in enumerate(names):
        r = results[name]
        ax.text(max(medians[y] + high[y], 0) + 1, y, f"{medians[y]:.0f} % ({100 * r['min']:.0f}..{100 * r['max']:.0f})",
                va="center", fontsize=8)
    repeats = {len(r["runs"]) for r in results.values()}
    ax.set(xlabel=f"% of each step waiting for data (median of {'/'.join(map(str, sorted(repeats)))} runs,\n"
                  "whiskers: min to max)", title=title)
    ax.set_ylim(len(names) - 0.5, -0.75)
    ax.set_xlim(min(-5, float((medians - low).min()) - 5), max(105, float((medians + high).max()) + 25))
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig
