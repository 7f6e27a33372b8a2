"""``make bench``: loader speed, memory against data set size, and the share of training spent waiting for data.

    python -m seedlings_utils.bench                      # the full run: 2k, 20k and 100k images
    python -m seedlings_utils.bench --quick              # a tiny run (what the tests do), a minute or two
    python -m seedlings_utils.bench --scales 2000 20000 --image-size 96

Everything is measured in one run, on the same files and cores, and written to ``<out>/bench.json`` and
``<out>/bench.png``; a table is printed. Larger scales are made by hard-linking the base set's images
under new names: the loaders read k times as many files, at no cost in generation time or disk.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .env import PACKAGE_ROOT
from .profiling import peak_rss_mb, pydataset_batches, trace_loader

DEFAULT_OUT = PACKAGE_ROOT.parent / "runs" / "bench"
TARGETS = {
    "pydataset_vs_tfdata": ("lesson 05's PyDataset, best settings, vs tf.data (images/s)", ">=", 0.9),
    "cache_vs_2019": ("lesson 07's cache vs the 2019 loader (images/s)", ">=", 20.0),
    "memory_growth_50x": ("peak memory at 50x the data vs 1x (relative growth)", "<=", 0.05),
    "cache_wait_share": ("share of each step waiting for data, with the cache", "<", 0.05),
}


def base_data(work_dir: Path, images: int, seed: int, progress: bool) -> tuple[Path, np.ndarray, np.ndarray]:
    """A synthetic set of about ``images`` images, flattened and indexed: ``(all_images, filenames, labels)``."""
    from .pipeline import ensure_index

    per_class = max(2, math.ceil(images / 12))
    data_dir = work_dir / f"base-{per_class}"
    filenames, labels, _ = ensure_index(data_dir, source="synthetic", synthetic_per_class=per_class, seed=seed,
                                        progress=progress)
    return data_dir / "all_images", filenames, labels


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


def loader_speeds(image_dir, filenames, labels, image_size, batch_size, batches, work_dir) -> tuple[dict, dict]:
    """Traces of every loader on the same files, and the seconds spent building the caches."""
    from .cache import CachedDataset, build_image_cache
    from .dataset import SeedlingsDataset
    from .recipe2019 import Recipe2019Generator
    from .tfdata import make_tf_dataset

    n = min(len(filenames), batches * batch_size)
    names, ys = filenames[:n], labels[:n]
    common = dict(batch_size=batch_size, image_size=image_size)
    traces, build = {}, {}

    def add(name, make_batches):
        print(f"  {name} ...", flush=True)
        traces[name] = trace_loader(name, make_batches)

    add("2019 recipe (skimage)", lambda: pydataset_batches(Recipe2019Generator(names, ys, batch_size, image_dir,
                                                                               image_size)))
    for workers, processes in ((1, False), (2, False), (2, True)):
        kind = "processes" if processes else "threads"
        name = f"PyDataset, {workers} {kind if workers > 1 else 'worker'}"
        ds = SeedlingsDataset(image_dir, names, ys, workers=workers, use_multiprocessing=processes, **common)
        add(name, lambda ds=ds: pydataset_batches(ds))
    start = time.perf_counter()
    cache_dir = build_image_cache(image_dir, names, image_size, work_dir / f"cache-{n}-{image_size}", progress=False)
    build["cache (.npy memmap)"] = time.perf_counter() - start
    add("cache (.npy memmap)", lambda: pydataset_batches(CachedDataset(cache_dir, ys, batch_size=batch_size)))
    add("tf.data", lambda: make_tf_dataset(image_dir, names, ys, **common).as_numpy_iterator())
    cache_file = work_dir / f"tfcache-{n}-{image_size}" / "data"
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    for leftover in cache_file.parent.iterdir():
        leftover.unlink()
    start = time.perf_counter()
    for _ in make_tf_dataset(image_dir, names, ys, cache_file=cache_file, **common):
        pass
    build["tf.data + cache file"] = time.perf_counter() - start
    add("tf.data + cache file", lambda: make_tf_dataset(image_dir, names, ys, cache_file=cache_file,
                                                       **common).as_numpy_iterator())
    return traces, build


def wait_shares(image_dir, filenames, labels, image_size, batch_size, images, work_dir) -> dict[str, float]:
    """Share of an epoch of lesson 06's model spent waiting for data, per loader: 1 - (compute time / epoch time).

    Compute time is the same epoch on the same images already in memory; both are timed after a warm-up
    epoch, so graph tracing is not counted.
    """
    import keras

    from .cache import CachedDataset, build_image_cache
    from .dataset import SeedlingsDataset, load_image
    from .model import build_cnn
    from .tfdata import make_tf_dataset

    n = min(len(filenames), images)
    names, ys = filenames[:n], labels[:n].astype(np.int64)
    keras.utils.set_random_seed(0)
    model = build_cnn(int(labels.max()) + 1, image_size, base_filters=16)

    def epoch_seconds(data, **fit_kwargs) -> float:  # shuffle=False: same work for every loader
        model.fit(data, epochs=1, verbose=0, shuffle=False, **fit_kwargs)
        start = time.perf_counter()
        model.fit(data, epochs=1, verbose=0, shuffle=False, **fit_kwargs)
        return time.perf_counter() - start

    x = np.stack([load_image(image_dir / name, image_size) for name in names])
    compute = epoch_seconds(x, y=ys, batch_size=batch_size)
    cache_dir = build_image_cache(image_dir, names, image_size, work_dir / f"cache-{n}-{image_size}", progress=False)
    loaders = {
        "PyDataset, 2 threads": SeedlingsDataset(image_dir, names, ys, batch_size=batch_size, image_size=image_size,
                                                 workers=2),
        "cache (.npy memmap)": CachedDataset(cache_dir, ys, batch_size=batch_size),
        "tf.data": make_tf_dataset(image_dir, names, ys, batch_size=batch_size, image_size=image_size),
    }
    shares = {}
    for name, data in loaders.items():
        print(f"  {name} ...", flush=True)
        shares[name] = max(0.0, 1.0 - compute / epoch_seconds(data))
    return shares


def epoch_memory(image_dir: Path, filenames_file: Path, image_size: int, batch_size: int) -> dict:
    """One training epoch of lesson 06's model over every file, reading with lesson 05's loader; peak memory."""
    import keras

    from .dataset import SeedlingsDataset
    from .model import build_cnn

    names = np.load(filenames_file)
    labels = np.load(filenames_file.with_name("labels.npy"))
    keras.utils.set_random_seed(0)
    model = build_cnn(int(labels.max()) + 1, image_size, base_filters=8)
    dataset = SeedlingsDataset(image_dir, names, labels, batch_size=batch_size, image_size=image_size, shuffle=True,
                               seed=0, workers=2)
    before = peak_rss_mb()
    start = time.perf_counter()
    model.fit(dataset, epochs=1, verbose=0)
    return {"images": int(len(names)), "peak_rss_mb": peak_rss_mb(), "peak_rss_mb_before_fit": before,
            "epoch_seconds": time.perf_counter() - start}


def memory_by_scale(image_dir, filenames, labels, factors, image_size, batch_size, work_dir) -> list[dict]:
    """:func:`epoch_memory` at each scale, each in a fresh Python process so that peaks do not mix."""
    rows = []
    for factor in factors:
        folder, names, ys = replicate(image_dir, filenames, labels, factor, work_dir / f"x{factor}")
        files = work_dir / f"x{factor}-index" / "filenames.npy"
        files.parent.mkdir(parents=True, exist_ok=True)
        np.save(files, names)
        np.save(files.with_name("labels.npy"), ys)
        print(f"  {len(names)} images ({factor}x) ...", flush=True)
        out = subprocess.run(
            [sys.executable, "-m", "seedlings_utils.bench", "epoch-memory", str(folder), str(files),
             str(image_size), str(batch_size)],
            check=True, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
        rows.append({"factor": factor, **json.loads(out.stdout.strip().splitlines()[-1])})
    return rows


def evaluate_targets(speeds: dict[str, float], memory: list[dict], shares: dict[str, float]) -> dict:
    """Each target of the course, with the measured figure and whether it is met."""
    best_pydataset = max(v for k, v in speeds.items() if k.startswith("PyDataset"))
    figures = {
        "pydataset_vs_tfdata": best_pydataset / speeds["tf.data"],
        "cache_vs_2019": speeds["cache (.npy memmap)"] / speeds["2019 recipe (skimage)"],
        "memory_growth_50x": None,
        "cache_wait_share": shares.get("cache (.npy memmap)"),
    }
    out = {}
    if len(memory) > 1:
        figures["memory_growth_50x"] = memory[-1]["peak_rss_mb"] / memory[0]["peak_rss_mb"] - 1
    for key, (what, op, limit) in TARGETS.items():
        if key == "memory_growth_50x" and memory:
            what = f"peak memory at {memory[-1]['factor']}x the data vs {memory[0]['factor']}x (relative growth)"
        value = figures[key]
        met = None if value is None else (value >= limit if op == ">=" else value <= limit if op == "<=" else
                                          value < limit)
        out[key] = {"what": what, "target": f"{op} {limit}", "measured": value, "met": met}
    return out


def plot_bench(results: dict):
    """Three panels: images/s per loader, peak memory against data set size, waiting share per loader."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    speeds = results["images_per_second"]
    axes[0].barh(list(speeds), list(speeds.values()), color="tab:blue")
    axes[0].invert_yaxis()
    axes[0].set(xlabel="images / second (log scale)", xscale="log",
                title=f"Loaders, {results['settings']['image_size']} px")
    for y, value in enumerate(speeds.values()):
        axes[0].text(value, y, f" {value:,.0f}", va="center", fontsize=8)
    axes[0].set_xlim(right=max(speeds.values()) * 8)
    memory = results["memory"]
    axes[1].plot([m["images"] for m in memory], [m["peak_rss_mb"] for m in memory], "o-", color="tab:green")
    axes[1].set(xlabel="images in the data set", ylabel="peak resident memory (MB)", xscale="log",
                title="One training epoch: memory vs data size")
    axes[1].set_ylim(0, max(m["peak_rss_mb"] for m in memory) * 1.2)
    shares = results["wait_share"]
    axes[2].barh(list(shares), [100 * v for v in shares.values()], color="tab:orange")
    axes[2].invert_yaxis()
    axes[2].axvline(5, color="k", ls="--", lw=1)
    axes[2].set(xlabel="% of each step waiting for data", title="Waiting for data (lesson 06's model)")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def format_table(results: dict) -> str:
    """The printed summary."""
    lines = ["Loader speed (images/s, same files and cores):"]
    lines += [f"  {name:<28} {value:10.0f}" for name, value in results["images_per_second"].items()]
    lines.append("Peak memory of one training epoch (lesson 05's loader, 2 threads):")
    lines += [f"  {m['images']:>8} images ({m['factor']:>2}x)  {m['peak_rss_mb']:8.0f} MB  {m['epoch_seconds']:6.1f} s"
              for m in results["memory"]]
    lines.append("Share of each step waiting for data:")
    lines += [f"  {name:<28} {100 * value:9.1f} %" for name, value in results["wait_share"].items()]
    lines.append("Targets:")
    for target in results["targets"].values():
        value = target["measured"]
        shown = "n/a" if value is None else f"{value:.3f}"
        verdict = {True: "met", False: "MISSED", None: "not measured"}[target["met"]]
        lines.append(f"  {target['what']:<62} {target['target']:>7}  measured {shown:>8}  {verdict}")
    return "\n".join(lines)


def run_bench(out_dir: Path, scales: list[int], image_size: int, batch_size: int, speed_batches: int,
              wait_images: int, seed: int = 42, progress: bool = True) -> dict:
    """The whole benchmark; returns what it writes to ``out_dir/bench.json``."""
    import keras
    import tensorflow as tf

    out_dir.mkdir(parents=True, exist_ok=True)
    work_dir = out_dir / "work"
    print(f"Building a synthetic set of about {scales[0]} images ...", flush=True)
    image_dir, filenames, labels = base_data(work_dir, scales[0], seed, progress)
    print("Loader speed:", flush=True)
    traces, build = loader_speeds(image_dir, filenames, labels, image_size, batch_size, speed_batches, work_dir)
    print("Memory against data set size:", flush=True)
    factors = sorted({max(1, round(s / len(filenames))) for s in scales})
    memory = memory_by_scale(image_dir, filenames, labels, factors, image_size, batch_size, work_dir)
    print("Waiting for data:", flush=True)
    shares = wait_shares(image_dir, filenames, labels, image_size, batch_size, wait_images, work_dir)
    speeds = {name: trace.images_per_second for name, trace in traces.items()}
    results = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "tensorflow": tf.__version__,
                    "keras": keras.__version__, "platform": platform.platform()},
        "settings": {"scales": scales, "base_images": int(len(filenames)), "image_size": image_size,
                     "batch_size": batch_size, "speed_batches": speed_batches, "wait_images": wait_images},
        "images_per_second": speeds,
        "build_seconds": build,
        "memory": memory,
        "wait_share": shares,
        "targets": evaluate_targets(speeds, memory, shares),
        "traces": {name: trace.as_dict() for name, trace in traces.items()},
    }
    (out_dir / "bench.json").write_text(json.dumps(results, indent=2))
    plot_bench(results).savefig(out_dir / "bench.png", dpi=110)
    return results


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["epoch-memory"]:  # the child process of memory_by_scale
        image_dir, files, image_size, batch_size = argv[1:5]
        print(json.dumps(epoch_memory(Path(image_dir), Path(files), int(image_size), int(batch_size))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny data set and few batches (for tests)")
    parser.add_argument("--scales", type=int, nargs="+", help="data set sizes (default 2000 20000 100000)")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--speed-batches", type=int, help="batches read per loader (default 40)")
    parser.add_argument("--wait-images", type=int, help="images per epoch when timing waits (default 1024)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    quick = args.quick
    scales = args.scales or ([48, 96, 240] if quick else [2000, 20000, 100000])
    results = run_bench(args.out, sorted(scales), args.image_size if not quick else 32, args.batch_size,
                        args.speed_batches or (2 if quick else 40), args.wait_images or (64 if quick else 1024),
                        progress=not quick)
    print()
    print(format_table(results))
    print(f"\nWrote {args.out / 'bench.json'} and {args.out / 'bench.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
