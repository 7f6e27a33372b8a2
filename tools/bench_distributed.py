"""Lesson 10's benchmark: training images per second with 1 and 2 processes, and each process's peak memory
at 1x and 10x the data (it must stay flat: no process holds the data set, or its shard, in memory).

    python -m tools.bench_distributed              # about 10 minutes on a 2-core laptop
    python -m tools.bench_distributed --quick      # a minute or two: tiny images, for the tests

The data set is the course's synthetic one, built by lessons 01-04's own code; the 10x scale is the same
images hard-linked under new names (copied where links are impossible), so the processes read ten times
as many files. Every job is a real job of ``python -m tools.distributed`` processes on 127.0.0.1,
started by :func:`seedlings_utils.jobs.launcher.run_job`. Speed is measured after the first step of each
epoch (which compiles); peak memory is each process's peak resident memory (``VmHWM``) while training,
counted from the end of its first step (start-up and compiling, reported apart, depend on whether JAX's
compilation cache already holds the programs, not on the data). Results go to
``<out>/distributed.json`` and ``<out>/distributed.png``; a table is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path

import numpy as np

from seedlings_utils.earlier_lessons import ALL_IMAGES_DIR, ensure_split
from seedlings_utils.files import write_text_atomically
from seedlings_utils.index import CLASSES_FILE
from seedlings_utils.jobs.launcher import run_job
from seedlings_utils.platform_info import installed_version
from seedlings_utils.split import load_split, save_split

from .bench_page import run_stamp
from .bench_plots import save_distributed_plot

FULL = dict(base_images=2000, image_size=64, global_batch=32, base_filters=16, epochs=2, scales=(1, 10))
QUICK = dict(base_images=96, image_size=24, global_batch=8, base_filters=4, epochs=2, scales=(1, 3))


def scaled_data(base_dir: Path, factor: int, out_dir: Path) -> Path:
    """A DATA_DIR holding ``factor`` times the base set's images (hard links under new names) and its split."""
    x_train, x_val, y_train, y_val = load_split(base_dir)
    if factor == 1:
        return base_dir
    done = out_dir / "complete"
    if done.is_file():
        return out_dir
    if out_dir.exists():
        shutil.rmtree(out_dir)
    (out_dir / ALL_IMAGES_DIR).mkdir(parents=True)
    names = {}
    for copy in range(factor):
        for name in np.concatenate([x_train, x_val]) if copy == 0 else x_train:
            new = f"x{copy}_{name}"
            try:
                os.link(base_dir / ALL_IMAGES_DIR / name, out_dir / ALL_IMAGES_DIR / new)
            except OSError:
                shutil.copy2(base_dir / ALL_IMAGES_DIR / name, out_dir / ALL_IMAGES_DIR / new)
            names[(copy, name)] = new
    save_split(out_dir, np.array([names[(c, n)] for c in range(factor) for n in x_train]),
               np.array([names[(0, n)] for n in x_val]), np.tile(y_train, factor), y_val)
    shutil.copy2(base_dir / CLASSES_FILE, out_dir / CLASSES_FILE)
    done.write_text("ok")
    return out_dir


def versions() -> dict:
    return {name: installed_version(name) for name in ("jax", "jaxlib", "keras", "numpy")}


def run(out: Path, base_images: int, image_size: int, global_batch: int, base_filters: int, epochs: int,
        scales: tuple[int, ...], processes: tuple[int, ...] = (1, 2), seed: int = 42, timeout: float = 1800) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    work = out / "distributed"
    base = work / f"data-{base_images}"
    ensure_split(base, 0.2, seed, progress=False, source="synthetic",
                 synthetic_per_class=max(1, round(base_images / 12)))
    results = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                           "system": f"{platform.system()} {platform.machine()}", **versions(), **run_stamp()},
               "settings": dict(base_images=base_images, image_size=image_size, global_batch=global_batch,
                                base_filters=base_filters, epochs=epochs), "jobs": []}
    for scale in scales:
        data_dir = scaled_data(base, scale, work / f"data-{base_images}-x{scale}")
        train_images = len(load_split(data_dir)[0])
        for count in processes:
            # the larger scales only show memory: one epoch is enough to read every image once
            job_epochs = epochs if scale == scales[0] else 1
            print(f"{count} process(es), {train_images} training images ({scale}x), {job_epochs} epoch(s) ...",
                  flush=True)
            start = time.perf_counter()
            # no compilation cache: every job compiles, so the memory of every job is measured alike
            job = run_job(data_dir, work / f"job-x{scale}-{count}p", count, timeout=timeout, show="none",
                          compile_cache=None,
                          epochs=job_epochs, global_batch=global_batch, image_size=image_size,
                          base_filters=base_filters, seed=seed)
            row = {"scale": scale, "processes": count, "train_images": train_images, "epochs": job_epochs,
                   "images_per_second": job.images_per_second(global_batch),
                   "peak_rss_mb": [s["peak_rss_mb"] for s in job.summaries],  # while training (after step 1)
                   "startup_peak_rss_mb": [s["startup_peak_rss_mb"] for s in job.summaries],
                   "seconds": time.perf_counter() - start, "weights_identical": job.weights_identical()}
            results["jobs"].append(row)
            print(f"   {row['images_per_second']:.0f} images/s, peak memory per process while training "
                  f"{[round(m) for m in row['peak_rss_mb']]} MB (starting and compiling: "
                  f"{[round(m or 0) for m in row['startup_peak_rss_mb']]} MB), {row['seconds']:.0f} s", flush=True)
    first, last = scales[0], scales[-1]
    results["memory_growth"] = {
        str(count): max(m for j in results["jobs"] if j["scale"] == last and j["processes"] == count
                        for m in j["peak_rss_mb"])
        / max(m for j in results["jobs"] if j["scale"] == first and j["processes"] == count for m in j["peak_rss_mb"])
        - 1 for count in processes}
    write_text_atomically(out / "distributed.json", json.dumps(results, indent=1))
    save_distributed_plot(results, out / "distributed.png")
    return results


def table(results: dict) -> str:
    settings = results["settings"]
    lines = ["| processes | training images | images/s | peak memory per process, training (start-up) |",
             "|---|---:|---:|---|"]
    for job in results["jobs"]:
        memory = ", ".join(f"{m:,.0f} MB ({s or 0:,.0f})"
                           for m, s in zip(job["peak_rss_mb"], job["startup_peak_rss_mb"], strict=True))
        lines.append(f"| {job['processes']} | {job['train_images']:,} ({job['scale']}x) | "
                     f"{job['images_per_second']:,.0f} | {memory} |")
    machine = results["machine"]
    growth = ", ".join(f"{k} process(es): {v:+.1%}" for k, v in results["memory_growth"].items())
    return "\n".join(lines) + (
        f"\n\n{machine['cpus']} CPU cores, {machine['system']}, Python {machine['python']}, JAX {machine['jax']}, "
        f"Keras {machine['keras']}; {settings['image_size']} px, global batch {settings['global_batch']}, "
        f"lesson 06's CNN with {settings['base_filters']} filters. Peak memory while training, from the smallest to "
        f"the largest scale: {growth}.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/bench", help="folder for distributed.json/png and the work files")
    parser.add_argument("--quick", action="store_true", help="tiny images and data: a minute or two")
    args = parser.parse_args(argv)
    results = run(Path(args.out), **(QUICK if args.quick else FULL))
    print(table(results))
    print(f"\nwritten: {Path(args.out) / 'distributed.json'}, {Path(args.out) / 'distributed.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
