"""``make bench``: loader speed, memory against data set size, and the share of training spent waiting for data.

    python -m tools.bench                      # the full run: 2k, 20k and 100k images
    python -m tools.bench --quick              # a tiny run (what the tests do), about two minutes
    python -m tools.bench --scales 2000 20000 --image-size 96

Everything is measured in one run, on the same files and cores, and written to ``<out>/bench.json`` and
``<out>/bench.png``; a table is printed. Larger scales are made by hard-linking the base set's images
under new names: the loaders read k times as many files, at no cost in generation time or disk (the
caches of lessons 07 and 08 at each scale are real files: 50x at 64 px is about 1.2 GB each).

Waiting for data: the share of each training step of lesson 09's model spent waiting for each loader,
measured by :mod:`seedlings_utils.waiting` (the function lesson 09 uses): against one batch repeated from
memory, the median of ``--wait-repeats`` runs with their min and max, never clipped.

Memory (:mod:`tools.bench_memory`, whose docstring argues the method): for every loader the course teaches
(lesson 05's ``PyDataset``, lesson 07's cache, lesson 08's ``tf.data`` chain with its name shuffle, with a cache
file, and with shuffled positions, lesson 11's Grain loader with 1 and 2 worker processes, lesson 12's bucket
loader) and Keras' own ``image_dataset_from_directory``, at every scale, ``model.fit`` in a fresh process reading
as many images at every scale (``--memory-read`` times the base set: several passes at the small scales, part of
an epoch at the large ones), with a tiny model, and one loader training lesson 06's model as a cross-check; its
peak *anonymous* memory (what the process holds) and its peak resident memory (which also counts file pages the
kernel can drop: memory-mapped shards, libraries). The caches and the bucket's shards are built before, so the
process only reads them.

The memory rule has two parts, each a target. Pixels are never held: the memory for decoded images
(peak minus the memory once the loader has read its first batch, when ``tf.data`` has filled its shuffle
buffer) stays flat from the smallest scale to the largest. What a loader holds per image is bookkeeping (a
name, a label, a position, a place in a shuffle buffer): the memory once the loader has started grows by at
most 1 KB per extra image (one decoded image at 64 px is 12,288 bytes).
``--quick`` adds only a couple of hundred images between its scales: too few to resolve bytes per image
(a megabyte of allocator noise is thousands of bytes an image there), and a cache file's shuffle buffer of
1,000 images is not yet full at its scales; its memory verdicts check the plumbing, not the course, and it
measures one loader of each kind of plumbing only (``QUICK_MEMORY_LOADERS``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from seedlings_utils.files import write_text_atomically
from seedlings_utils.profiling import pydataset_batches, trace_loader

from .bench_ceilings import measure_ceilings, speed_results
from .bench_memory import (
    MEMORY_LOADERS,
    QUICK_MEMORY_LOADERS,
    RSS_NOTE,
    bookkeeping_bytes_per_image,
    epoch_memory,
    image_memory_growth,
    memory_by_scale,
    memory_growth,
)
from .bench_page import run_stamp
from .paths import BENCH_DIR

DEFAULT_OUT = BENCH_DIR
TARGETS = {
    "pydataset_vs_tfdata": ("lesson 05's PyDataset, best settings, vs tf.data (images/s)", ">=", 0.9),
    "cache_vs_2019": ("lesson 07's cache vs the 2019 loader (images/s)", ">=", 20.0),
    "image_memory_flat": ("memory for decoded images in an epoch (peak minus the memory once the loader has "
                          "started), 50x vs 1x, worst loader (relative growth)", "<=", 0.05),
    "bookkeeping_per_image": ("bookkeeping held per extra image once the loader has started (names, labels, order, "
                              "shuffle buffer), worst loader (bytes)", "<=", 1024),
    "cache_wait_share": ("share of each step of lesson 09's model waiting for data, with the cache (median)", "<",
                         0.05),
}


def base_data(work_dir: Path, images: int, seed: int, progress: bool) -> tuple[Path, np.ndarray, np.ndarray]:
    """A synthetic set of about ``images`` images, flattened and indexed: ``(all_images, filenames, labels)``."""
    from seedlings_utils.earlier_lessons import ensure_index

    per_class = max(2, math.ceil(images / 12))
    data_dir = work_dir / f"base-{per_class}"
    filenames, labels, _ = ensure_index(data_dir, source="synthetic", synthetic_per_class=per_class, seed=seed,
                                        progress=progress)
    return data_dir / "all_images", filenames, labels


def species_folders(image_dir, names, labels, folder: Path) -> Path:
    """``folder/<label>/<name>``: the images ``names`` as hard links (copies where linking fails), one folder per
    label, what ``keras.utils.image_dataset_from_directory`` reads (lesson 05's ``by_species/``, for these names)."""
    import shutil

    width = len(str(int(np.max(labels))))  # zero-padded: Keras sorts the folders, the labels keep their order
    for name, label in zip(np.asarray(names).tolist(), np.asarray(labels).tolist(), strict=True):
        target = folder / f"{int(label):0{width}d}" / name
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(Path(image_dir) / name, target)
        except OSError:
            shutil.copy2(Path(image_dir) / name, target)
    return folder


def keras_from_directory(folder: Path, image_size: int, batch_size: int, batches: int, seed: int = 0):
    """Keras' own loader on ``folder`` (shuffle on, as a learner trains), scaled to [0, 1] as lesson 05 scales it."""
    import keras
    import tensorflow as tf

    ds = keras.utils.image_dataset_from_directory(str(folder), image_size=(image_size, image_size),
                                                  batch_size=batch_size, shuffle=True, seed=seed, verbose=False)
    return ds.map(lambda x, y: (x / 255.0, y), num_parallel_calls=tf.data.AUTOTUNE).take(batches).as_numpy_iterator()


def loader_speeds(image_dir, filenames, labels, image_size, batch_size, batches, work_dir,
                  extras: dict | None = None) -> tuple[dict, dict]:
    """Traces of every loader on the same files, and the seconds spent building the caches.

    ``extras`` (a dict), when given, gets what the speed side measures besides the traces: ``cache_dir``,
    ``tf_cache_files`` (for the ceilings) and ``bucket`` (lesson 12's requests and bytes).
    """
    from seedlings_utils.cache import CachedDataset, build_image_cache
    from seedlings_utils.dataset import SeedlingsDataset
    from seedlings_utils.recipe2019 import Recipe2019Generator
    from seedlings_utils.tfdata import make_tf_dataset

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
    from seedlings_utils.killed_runs import grain_training_batches

    for workers in (1, 2):  # lesson 11: Grain over the same cache, a global shuffle, worker processes
        add(f"Grain, {workers} worker process{'es' if workers > 1 else ''}",
            lambda workers=workers: iter(grain_training_batches(cache_dir, ys, batch_size, workers=workers)))
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
    folder = species_folders(image_dir, names, ys, work_dir / f"by-label-{n}")  # a peer: Keras' own loader
    add("Keras image_dataset_from_directory", lambda: keras_from_directory(folder, image_size, batch_size, batches))
    from .bench_bucket import bucket_loaders

    bucket = bucket_loaders(image_dir, names, ys, image_size, batch_size, work_dir)  # lesson 12: S3 vs local disk
    for name, figures in bucket.items():
        traces[name] = figures.pop("trace")
    if extras is not None:
        extras.update(cache_dir=cache_dir, bucket=bucket, names=names, labels=ys,
                      tf_cache_files=sorted(p for p in cache_file.parent.iterdir() if p.name.startswith("data.data")))
    return traces, build


def evaluate_targets(speeds: dict[str, float], memory: list[dict], shares: dict[str, float],
                     image_size: int = 64) -> dict:
    """Each target of the course, with the measured figure and whether it is met.

    The memory targets take the worst loader: ``image_memory_flat`` the growth of its memory for decoded images
    (:func:`image_memory_growth`), ``bookkeeping_per_image`` the bytes it holds per extra image
    (:func:`bookkeeping_bytes_per_image`).
    """
    best_pydataset = max(v for k, v in speeds.items() if k.startswith("PyDataset"))
    image_bytes = image_size * image_size * 3
    worst_of = {"image_memory_flat": image_memory_growth(memory),
                "bookkeeping_per_image": bookkeeping_bytes_per_image(memory)}
    worst = {key: max(values, key=values.get) if values else None for key, values in worst_of.items()}
    figures = {
        "pydataset_vs_tfdata": best_pydataset / speeds["tf.data"],
        "cache_vs_2019": speeds["cache (.npy memmap)"] / speeds["2019 recipe (skimage)"],
        **{key: worst_of[key].get(worst[key]) for key in worst_of},
        "cache_wait_share": shares.get("cache (.npy memmap)"),
    }
    factors = sorted({row["factor"] for row in memory})
    out = {}
    for key, (what, op, limit) in TARGETS.items():
        if key == "image_memory_flat" and worst[key] is not None:
            what = (f"memory for decoded images at {factors[-1]}x the data vs {factors[0]}x, as many images read, "
                    f"worst loader ({worst[key]}; relative growth)")
        elif key == "bookkeeping_per_image" and worst[key] is not None:
            what = (f"bookkeeping per extra image, worst loader ({worst[key]}; bytes; one decoded {image_size} px "
                    f"image is {image_bytes:,})")
        value = figures[key]
        met = None if value is None else (value >= limit if op == ">=" else value <= limit if op == "<=" else
                                          value < limit)
        out[key] = {"what": what, "target": f"{op} {limit}", "measured": value, "met": met}
    return out


def format_table(results: dict) -> str:
    """The printed summary."""
    lines = ["Loader speed (images/s, same files and cores):"]
    lines += [f"  {name:<28} {value:10.0f}" for name, value in results["images_per_second"].items()]
    memory, growth = results["memory"], results["memory_growth"]
    factors = sorted({m["factor"] for m in memory})
    images = {m["factor"]: m["images"] for m in memory}
    lines.append("Peak memory of model.fit reading a loader (shuffle on; a fresh process per loader and scale, each "
                 "reading as many images), MB:")
    header = "".join(f"{f'{images[f]:,} ({f}x)':>18}" for f in factors)
    for figure, title in (("peak_anon_mb", "anonymous (RssAnon), growth"), ("peak_rss_mb", "resident (RSS)")):
        lines.append(f"  {title:<38}{header}")
        for loader, lesson in MEMORY_LOADERS.items():
            cells = {m["factor"]: m[figure] for m in memory if m["loader"] == loader}
            if not cells:
                continue
            row = "".join(f"{cells[f]:>18.0f}" if f in cells else f"{'-':>18}" for f in factors)
            change = f"  {100 * growth[loader]:+6.1f} %" if figure == "peak_anon_mb" and loader in growth else ""
            lines.append(f"    {f'{loader} ({lesson})':<36}{row}{change}")
    lines.append(f"  ({RSS_NOTE}.)")
    epoch, held = results.get("image_memory_growth", {}), results.get("bookkeeping_bytes_per_image", {})
    if epoch or held:
        lines.append(f"  What grows, {factors[0]}x -> {factors[-1]}x: memory for decoded images (peak minus the "
                     "memory once the loader has started), and bookkeeping per extra image (names, labels, order):")
        for loader, lesson in MEMORY_LOADERS.items():
            if loader in epoch or loader in held:
                lines.append(f"    {f'{loader} ({lesson})':<36}{100 * epoch.get(loader, math.nan):+6.1f} %"
                             f"{held.get(loader, math.nan):>10.0f} bytes/image")
    seconds = {m["loader"]: m["epoch_seconds"] for m in memory if m["factor"] == factors[-1]}
    lines.append(f"  Reading seconds at {factors[-1]}x: " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()))
    runs = results.get("wait_share_runs", {})
    lines.append("Share of each step of lesson 09's model waiting for data (median of the runs, min .. max):")
    lines += [f"  {name:<28} {100 * value:9.1f} %" + (f"   ({100 * runs[name]['min']:.1f} .. "
                                                       f"{100 * runs[name]['max']:.1f} %)" if name in runs else "")
              for name, value in results["wait_share"].items()]
    lines.append("Targets:")
    for target in results["targets"].values():
        value = target["measured"]
        shown = "n/a" if value is None else f"{value:.3f}"
        verdict = {True: "met", False: "MISSED", None: "not measured"}[target["met"]]
        lines.append(f"  {target['what']:<62} {target['target']:>7}  measured {shown:>8}  {verdict}")
    return "\n".join(lines)


def run_bench(out_dir: Path, scales: list[int], image_size: int, batch_size: int, speed_batches: int,
              wait_images: int, seed: int = 42, progress: bool = True, memory_jobs: int = 1,
              memory_repeats: int = 1, wait_repeats: int = 3, memory_read: int = 10,
              memory_loaders: tuple[str, ...] = tuple(MEMORY_LOADERS), ceiling_processes: bool = True) -> dict:
    """The whole benchmark; returns what it writes to ``out_dir/bench.json``."""
    import keras
    import tensorflow as tf

    run_start = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    work_dir = out_dir / "work"
    print(f"Building a synthetic set of about {scales[0]} images ...", flush=True)
    image_dir, filenames, labels = base_data(work_dir, scales[0], seed, progress)
    print("Loader speed:", flush=True)
    extras = {}  # what the ceilings need: the files read, the caches
    traces, build = loader_speeds(image_dir, filenames, labels, image_size, batch_size, speed_batches, work_dir,
                                  extras)
    phases = {"base data and speed": time.perf_counter() - run_start}
    print("What the machine allows each loader (ceilings):", flush=True)
    ceilings = measure_ceilings(image_dir, extras["names"], image_size, extras["cache_dir"], extras["tf_cache_files"],
                                processes=ceiling_processes)
    phases["ceilings"] = time.perf_counter() - run_start - sum(phases.values())
    print("Memory against data set size:", flush=True)
    factors = sorted({max(1, round(s / len(filenames))) for s in scales})
    memory, memory_builds = memory_by_scale(image_dir, filenames, labels, factors, image_size, batch_size, work_dir,
                                            jobs=memory_jobs, repeats=memory_repeats, read_factor=memory_read,
                                            loaders=memory_loaders)
    phases["memory"] = time.perf_counter() - run_start - sum(phases.values())
    print("Waiting for data (lesson 09's model):", flush=True)
    from seedlings_utils.waiting import loader_wait_shares

    wait_runs = loader_wait_shares(image_dir, filenames, labels, image_size, batch_size, wait_images, work_dir,
                                   repeats=wait_repeats)
    phases["waiting"] = time.perf_counter() - run_start - sum(phases.values())
    print("Seconds per phase: " + ", ".join(f"{k} {v:.0f}" for k, v in phases.items()), flush=True)
    shares = {name: figures["median"] for name, figures in wait_runs.items()}
    speeds = {name: trace.images_per_second for name, trace in traces.items()}
    results = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "tensorflow": tf.__version__,
                    "keras": keras.__version__, "numpy": np.__version__, "platform": platform.platform(),
                    **run_stamp()},  # the commit measured and the date: docs/benchmark.md shows them
        "settings": {"scales": scales, "base_images": int(len(filenames)), "image_size": image_size,
                     "batch_size": batch_size, "speed_batches": speed_batches, "wait_images": wait_images,
                     "memory_jobs": memory_jobs, "memory_repeats": memory_repeats, "wait_repeats": wait_repeats,
                     "memory_images_read": len(filenames) * min(memory_read, max(factors))},
        "images_per_second": speeds,
        "build_seconds": build,
        "memory": memory,
        "memory_note": RSS_NOTE,
        "memory_growth": memory_growth(memory),
        "image_memory_growth": image_memory_growth(memory),
        "bookkeeping_bytes_per_image": bookkeeping_bytes_per_image(memory),
        "memory_build_seconds": memory_builds,
        "wait_share": shares,  # the medians; the runs, min and max in wait_share_runs
        "wait_share_runs": wait_runs,
        "targets": evaluate_targets(speeds, memory, shares, image_size),
        "traces": {name: trace.as_dict() for name, trace in traces.items()},
        "memory_loaders": {loader: MEMORY_LOADERS[loader] for loader in memory_loaders},  # their lessons, for plots
        "run_seconds": time.perf_counter() - run_start,  # the whole run, the page says it
        "phase_seconds": phases,
    }
    warmup = max(1, speed_batches // 5)  # the first batch and a few more: start-up, not steady speed
    results["settings"]["warmup_batches"] = warmup
    stages_start = time.perf_counter()
    results.update(speed_results(traces, ceilings, extras, wait_runs, batch_size, speed_batches, warmup))
    phases["Grain's stages"] = time.perf_counter() - stages_start  # phases is results["phase_seconds"]
    results["run_seconds"] += phases["Grain's stages"]
    write_text_atomically(out_dir / "bench.json", json.dumps(results, indent=2))
    # here: the fresh processes that measure memory never load matplotlib
    from .bench_plots import save_bench_plot, save_ceiling_plot

    save_bench_plot(results, out_dir / "bench.png")
    save_ceiling_plot(results, out_dir / "ceilings.png")
    return results


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["epoch-memory"]:  # the child process of memory_by_scale
        job = json.loads(argv[1])
        print(json.dumps(epoch_memory(job["loader"], job["scale"], job["image_size"], job["batch_size"],
                                      job["read_images"])))
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny data set and few batches (for tests)")
    parser.add_argument("--scales", type=int, nargs="+", help="data set sizes (default 2000 20000 100000)")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--speed-batches", type=int, help="batches read per loader (default 40)")
    parser.add_argument("--wait-images", type=int, help="images per epoch when timing waits (default 1024)")
    parser.add_argument("--memory-jobs", type=int, help="memory epochs run at a time (default 1; --quick: 2)")
    parser.add_argument("--memory-repeats", type=int, default=1,
                        help="epochs (processes) per loader and scale; the median peak is kept (default 1)")
    parser.add_argument("--memory-read", type=int, default=10,
                        help="images each memory process reads, in base sets (capped at the largest scale; default 10)")
    parser.add_argument("--wait-repeats", type=int, help="timed runs per loader for waiting (default 3; --quick: 2)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    quick = args.quick
    scales = args.scales or ([48, 240] if quick else [2000, 20000, 100000])
    results = run_bench(args.out, sorted(scales), args.image_size if not quick else 32, args.batch_size,
                        args.speed_batches or (2 if quick else 40), args.wait_images or (64 if quick else 1024),
                        progress=not quick, memory_jobs=args.memory_jobs or (2 if quick else 1),
                        memory_repeats=args.memory_repeats, wait_repeats=args.wait_repeats or (2 if quick else 3),
                        memory_read=args.memory_read,
                        memory_loaders=QUICK_MEMORY_LOADERS if quick else tuple(MEMORY_LOADERS),
                        ceiling_processes=not quick)  # --quick: decoding in threads only, no process pool to start
    print()
    print(format_table(results))
    print(f"\nWrote {args.out / 'bench.json'} and {args.out / 'bench.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
