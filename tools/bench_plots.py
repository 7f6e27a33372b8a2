"""The benchmark's plots, drawn from its JSON: ``make bench`` saves them beside it; the page generator redraws them."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

from seedlings_utils.files import replaced_when_done
from seedlings_utils.plots import plot_wait_shares

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend that needs no display)


def plot_bench(results: dict):
    """Three panels: images/s per loader, peak memory against data set size per loader, waiting share per loader."""
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    speeds = results["images_per_second"]
    axes[0].barh(list(speeds), list(speeds.values()), color="tab:blue")
    axes[0].invert_yaxis()
    axes[0].set(xlabel="images / second (log scale)", xscale="log",
                title=f"Loaders, {results['settings']['image_size']} px")
    for y, value in enumerate(speeds.values()):
        axes[0].text(value, y, f" {value:,.0f}", va="center", fontsize=8)
    axes[0].set_xlim(right=max(speeds.values()) * 8)
    memory, growth = results["memory"], results["memory_growth"]
    loaders = results.get("memory_loaders") or {m["loader"]: "" for m in memory}  # older JSON: no lessons named
    styles = zip(("tab:blue", "tab:green", "tab:red", "tab:purple", "tab:orange", "tab:brown", "tab:pink", "tab:olive",
                  "tab:cyan", "tab:gray", "black", "gold"), "osD^vP*Xhp<>", strict=False)  # 12 loaders, each its own
    for (loader, lesson), (color, marker) in zip(loaders.items(), styles, strict=False):
        rows = sorted((m for m in memory if m["loader"] == loader), key=lambda m: m["factor"])
        if not rows:
            continue
        change = f"{100 * growth[loader]:+.1f} %" if loader in growth else ""
        change = ", ".join(part for part in (lesson, change) if part)
        images = [m["images"] for m in rows]
        axes[1].plot(images, [m["peak_anon_mb"] for m in rows], marker=marker, color=color,
                     label=f"{loader} ({change})" if change else loader)
        axes[1].plot(images, [m["peak_rss_mb"] for m in rows], ls="--", lw=1, marker=marker, mfc="none", color=color,
                     alpha=0.6)
    axes[1].plot([], [], "k-", label="solid: peak anonymous memory (held)")
    axes[1].plot([], [], "k--", lw=1, alpha=0.6, label="dashed: peak resident (incl. file pages)")
    axes[1].set(xlabel="images in the data set (log scale)", ylabel="peak memory of the process (MB)", xscale="log",
                title="Memory vs data size, as many images read at every scale")
    axes[1].set_ylim(0, max(m["peak_rss_mb"] for m in memory) * 1.45)
    scales = sorted({(m["images"], m["factor"]) for m in memory})
    axes[1].set_xticks([n for n, _ in scales], [f"{n:,}\n({f}x)" for n, f in scales])
    axes[1].minorticks_off()
    axes[1].legend(fontsize=7, loc="upper left")
    for ax in axes[:2]:
        ax.grid(alpha=0.3)
    plot_wait_shares(results["wait_share_runs"], title="Waiting for data (lesson 09's model)", ax=axes[2])
    fig.tight_layout()
    return fig


def plot_ceiling_shares(results: dict):
    """Every loader's steady speed as a share of its ceiling (what the machine allows it, measured in the same run);
    beside it, when the run timed waiting, training with each loader as a share of training from memory."""
    shares = results["ceiling_share"]
    training = ((results.get("ceilings") or {}).get("training") or {}).get("loaders") or {}
    fig, axes = plt.subplots(1, 2 if training else 1, figsize=(14 if training else 8, 0.5 + 0.42 * len(shares)),
                             squeeze=False, gridspec_kw={"width_ratios": [1.6, 1]} if training else None)
    short = {"pil_decode": "Pillow decoding", "skimage_decode": "skimage decoding", "tf_decode": "TF decoding",
             "memory_copy": "memory copy"}
    colors = {"pil_decode": "tab:blue", "skimage_decode": "tab:gray", "tf_decode": "tab:orange",
              "memory_copy": "tab:green"}
    ax = axes[0][0]
    names = list(shares)
    values = [100 * shares[n]["share"] for n in names]
    ax.barh(names, values, color=[colors.get(shares[n]["ceiling"], "tab:purple") for n in names])
    ax.invert_yaxis()
    for y, name in enumerate(names):
        figures = shares[name]
        ax.text(values[y], y, f" {values[y]:.1f} % of {short.get(figures['ceiling'], figures['ceiling'])} "
                f"({figures['steady_images_per_second']:,.0f} of {figures['ceiling_images_per_second']:,.0f}/s)",
                va="center", fontsize=8)
    ax.set_xlim(0, max(100, max(values)) * 1.75)
    ax.axvline(100, color="k", lw=0.8, ls=":")
    ax.set(xlabel="steady images/s as a share of the loader's ceiling (%)",
           title=f"Each loader against its ceiling ({results['machine'].get('cpus', '?')} cores, "
                 f"{results['settings']['image_size']} px)")
    ax.grid(alpha=0.3, axis="x")
    if training:
        ax = axes[0][1]
        names = list(training)
        values = [100 * training[n]["share"] for n in names]
        ax.barh(names, values, color="tab:red")
        ax.invert_yaxis()
        for y, value in enumerate(values):
            ax.text(value, y, f" {value:.0f} %", va="center", fontsize=8)
        ax.set_xlim(0, 125)
        ax.axvline(100, color="k", lw=0.8, ls=":")
        ax.set(xlabel="training speed as a share of training from memory (%)", title="Training (lesson 09's model)")
        ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig


def plot_distributed(results: dict):
    """Lesson 10's jobs: training speed per process count, and each process's peak memory as the data grows."""
    jobs = results["jobs"]
    scales = sorted({j["scale"] for j in jobs})
    counts = sorted({j["processes"] for j in jobs})
    fig, (ax_speed, ax_memory) = plt.subplots(1, 2, figsize=(10, 3.6))
    speed = [next(j for j in jobs if j["scale"] == scales[0] and j["processes"] == c)["images_per_second"]
             for c in counts]
    bars = ax_speed.bar([f"{c} process{'es' if c > 1 else ''}" for c in counts], speed, color=["tab:gray", "tab:blue"])
    ax_speed.bar_label(bars, [f"{s:.0f} images/s" for s in speed], fontsize=9)
    ax_speed.set(ylabel="training images per second", title=f"Speed ({results['machine']['cpus']} CPU cores)")
    width = 0.8 / len(scales)
    for k, scale in enumerate(scales):
        labels, values = [], []
        for c in counts:
            job = next(j for j in jobs if j["scale"] == scale and j["processes"] == c)
            for p, mb in enumerate(job["peak_rss_mb"]):
                labels.append(f"{c}p: process {p}")
                values.append(mb)
        ax_memory.bar(np.arange(len(values)) + k * width, values, width, label=f"{scale}x the data")
    ax_memory.set_xticks(np.arange(len(labels)) + width * (len(scales) - 1) / 2, labels, fontsize=8)
    ax_memory.set(ylabel="peak memory while training (MB)", title="Each process's memory as the data grows")
    ax_memory.set_ylim(0, max(m for j in jobs for m in j["peak_rss_mb"]) * 1.3)
    ax_memory.legend(fontsize=8, loc="upper center", ncol=len(scales))
    fig.tight_layout()
    return fig


def save_figure(figure, path: str | Path, dpi: int = 100) -> Path:
    """``figure`` as a PNG at ``path`` (written, then renamed into place), then closed."""
    with replaced_when_done(path) as partial:
        figure.savefig(partial, dpi=dpi, format="png")
    plt.close(figure)
    return Path(path)


def save_bench_plot(results: dict, path: str | Path) -> Path:
    """:func:`plot_bench` of ``bench.json``'s results, saved at ``path``."""
    return save_figure(plot_bench(results), path, dpi=110)


def save_ceiling_plot(results: dict, path: str | Path) -> Path | None:
    """:func:`plot_ceiling_shares` saved at ``path``; None (nothing drawn) for a run that measured no ceilings."""
    return save_figure(plot_ceiling_shares(results), path) if results.get("ceiling_share") else None


def save_distributed_plot(results: dict, path: str | Path) -> Path:
    """:func:`plot_distributed` of ``distributed.json``'s results, saved at ``path``."""
    return save_figure(plot_distributed(results), path)
