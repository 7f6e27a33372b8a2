"""The benchmark's page, ``docs/benchmark.md``: generated from what ``make bench`` wrote, never typed.

    python -m tools.bench_page                              # runs/bench/*.json -> docs/benchmark.md
    python -m tools.bench_page --bench runs/bench --out docs/benchmark.md
    python -m tools.bench_page --check                      # exit 1 when the page is not what its JSON renders to

It reads ``bench.json`` (``python -m tools.bench``) and, when present, ``distributed.json``
(``python -m tools.bench_distributed``), and writes the page: the stamp (machine, versions, commit, date, all
from the JSON), a table per measurement, the targets met or missed, and the plots drawn again from the same
JSON into ``docs/benchmark/``, beside a copy of the JSON it rendered. ``make bench`` runs it after the benchmark;
commit the page, its plots and its JSON together: a test renders the page again from the committed JSON and fails
when the two differ.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import subprocess
import sys
from pathlib import Path

from seedlings_utils.files import write_text_atomically

from .bench_memory import MEMORY_LOADERS
from .bench_plots import save_bench_plot, save_ceiling_plot, save_distributed_plot
from .paths import BENCH_DIR, REPO_ROOT

DEFAULT_OUT = REPO_ROOT / "docs" / "benchmark.md"
NOT_RECORDED = "not recorded"


def run_stamp(repo: Path = REPO_ROOT) -> dict:
    """What the benchmark's JSON records besides the machine: the commit measured and the date (UTC)."""
    commit, dirty = None, None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                                    capture_output=True, text=True, check=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):  # not a git checkout, or no git: the page says so
        pass
    now = datetime.datetime.now(datetime.UTC)
    return {"commit": commit, "uncommitted_changes": dirty, "date": now.strftime("%Y-%m-%d %H:%M UTC")}


def _number(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:,.{digits}f}"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:+.1f} %"


def _table(header: list[str], rows: list[list[str]], align: str = "") -> list[str]:
    """A markdown table; ``align`` has an ``l`` or ``r`` per column (default: the first left, figures right)."""
    align = align or "l" + "r" * (len(header) - 1)
    rule = "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"
    return ["| " + " | ".join(header) + " |", rule] + ["| " + " | ".join(r) + " |" for r in rows]


def stamp_lines(machine: dict, title: str) -> list[str]:
    """One line saying where, with what and when the figures were measured (from the JSON's ``machine``)."""
    versions = ", ".join(f"{name} {machine[key]}" for key, name in (
        ("python", "Python"), ("tensorflow", "TensorFlow"), ("keras", "Keras"), ("numpy", "NumPy"), ("jax", "JAX"),
        ("jaxlib", "jaxlib")) if machine.get(key))
    where = machine.get("platform") or machine.get("system") or NOT_RECORDED
    commit = machine.get("commit") or NOT_RECORDED
    if machine.get("commit") and machine.get("uncommitted_changes"):
        commit += " (with uncommitted changes)"
    return [f"**{title}** on {machine.get('date') or f'a date {NOT_RECORDED}'}, commit {commit}; "
            f"{machine.get('cpus', NOT_RECORDED)} CPU cores, {where}; {versions or 'versions ' + NOT_RECORDED}."]


NOT_MEASURED = "not measured in this run"


def _share(value: float | None) -> str:
    return NOT_MEASURED if value is None or math.isnan(value) else f"{100 * value:.1f} %"


def speed_section(bench: dict) -> list[str]:
    build = bench.get("build_seconds", {})
    settings = bench["settings"]
    if "steady_images_per_second" not in bench:  # a run before start-up and steady speed were measured apart
        rows = [[loader, _number(speed), _number(build.get(loader), 1) if loader in build else ""]
                for loader, speed in bench["images_per_second"].items()]
        return ["## Loader speed", "",
                f"Images per second of each loader on the same {settings['base_images']:,} images, "
                f"{settings['image_size']} px, batch {settings['batch_size']}, {settings['speed_batches']} batches "
                "each; a cache's build time is apart.", "",
                *_table(["loader", "images/s", "building its cache (s)"], rows), ""]
    first, steady = bench.get("first_batch_seconds", {}), bench["steady_images_per_second"]
    shares = bench.get("ceiling_share", {})
    rows = []
    for loader, speed in bench["images_per_second"].items():
        share = shares.get(loader)
        rows.append([loader, _number(first.get(loader), 2), _number(steady.get(loader)), _number(speed),
                     _share(share["share"]) if share else NOT_MEASURED,
                     _number(build.get(loader), 1) if loader in build else ""])
    warmup = settings.get("warmup_batches", 1)
    return ["## Loader speed", "",
            f"Each loader on the same images, {settings['image_size']} px, batch {settings['batch_size']}, "
            f"{settings['speed_batches']} batches each, from a cold start: the seconds to its first batch (threads, "
            f"processes and pipelines starting), its *steady* speed (the images after its first {warmup} "
            f"batch{'es' if warmup > 1 else ''} over the seconds they took), and the whole run's images per second "
            "(start-up included, as in a short epoch). The share is the steady speed's share of the loader's "
            "ceiling (next section). A cache's build time is apart.", "",
            *_table(["loader", "first batch (s)", "steady images/s", "images/s, whole run", "share of its ceiling",
                     "building its cache (s)"], rows), ""]


def _ceiling_detail(key: str, ceiling: dict) -> str:
    """How a ceiling was measured, from its figures: one core, and what threads or processes actually reached."""
    parts = []
    if "one_core" in ceiling:
        parts.append(f"one core {_number(ceiling['one_core'])}/s x {ceiling['cores']} cores")
    cores = ceiling.get("cores")
    for figure, what in (("threads", "threads"), ("processes", "processes"), ("parallel", "parallel calls")):
        if ceiling.get(figure):
            ideal = ceiling["images_per_second"]
            parts.append(f"{cores} {what} measured: {_number(ceiling[figure])}/s ({100 * ceiling[figure] / ideal:.0f} "
                         f"% of one core x {cores})")
    if key == "memory_copy":
        parts.append(f"{ceiling['gb_per_second']:.1f} GB/s of {ceiling['bytes_per_image']:,} bytes an image; copied "
                     f"and scaled to float32: {_number(ceiling['copy_and_scale_images_per_second'])}/s")
    if key == "training":
        parts.append(f"{ceiling['compute_ms_per_step']:.1f} ms per step")
    return "; ".join(parts)


def _disk_line(what: str, disk: dict | None) -> str:
    if not disk:
        return ""
    cold = (f"cold {_number(disk['cold_images_per_second'])} images/s ({disk['cold_gb_per_second']:.2f} GB/s)"
            if disk.get("cold_dropped") else
            f"cold not measured: after dropping its pages the read ran at {_number(disk['cold_images_per_second'])} "
            f"images/s, not clearly slower than warm, so the pages were probably still cached")
    return (f"- {what} read from disk ({disk['bytes_per_image']:,.0f} bytes an image): {cold}, warm (page cache) "
            f"{_number(disk['warm_images_per_second'])} images/s ({disk['warm_gb_per_second']:.2f} GB/s). "
            f"How: {disk['how']}.")


def relations(bench: dict) -> list[str]:
    """The sentences the page draws from the run: each loader's share of its ceiling in words, generated."""
    shares, ceilings = bench.get("ceiling_share", {}), bench.get("ceilings", {})
    lines = []
    copy = ceilings.get("memory_copy")
    if "cache (.npy memmap)" in shares and copy:
        share = shares["cache (.npy memmap)"]["share"]
        scaled = copy["copy_and_scale_images_per_second"]
        lines.append(f"- Lesson 07's cache reads {100 * share:.1f} % of a memory copy of the same bytes; copying and "
                     f"scaling them to float32, which every cache loader here returns, alone runs at "
                     f"{100 * scaled / copy['images_per_second']:.0f} % of the copy, and the cache reads "
                     f"{100 * shares['cache (.npy memmap)']['steady_images_per_second'] / scaled:.0f} % of that.")
    grain = [name for name in shares if name.startswith("Grain")]
    if grain and "cache (.npy memmap)" in shares:
        cache = shares["cache (.npy memmap)"]["steady_images_per_second"]
        lines.append("- Grain over the same cache: " + ", ".join(
            f"{name.removeprefix('Grain, ')} {100 * shares[name]['share']:.2f} % of a memory copy "
            f"(the cache loader reads {cache / shares[name]['steady_images_per_second']:.1f}x as many images a second)"
            for name in grain) + " (why: below).")
    pil = ceilings.get("pil_decode")
    for name in ("PyDataset, 1 worker", "PyDataset, 2 threads", "PyDataset, 2 processes"):
        if name in shares and pil:
            lines.append(f"- {name}: {100 * shares[name]['share']:.0f} % of {pil['cores']} cores' decoding "
                         f"(Pillow, one core x {pil['cores']}).")
    if pil and pil.get("threads"):
        measured = [f"{pil['cores']} threads of the decoder alone reach "
                    f"{100 * pil['threads'] / pil['images_per_second']:.0f} %"]
        if pil.get("processes"):
            measured.append(f"{pil['cores']} processes {100 * pil['processes'] / pil['images_per_second']:.0f} %")
        lines.append(f"- The real scaling: {' and '.join(measured)} of one core x {pil['cores']}.")
    for name in ("tf.data", "Keras image_dataset_from_directory"):
        if name in shares:
            lines.append(f"- {name}: {100 * shares[name]['share']:.0f} % of {ceilings['tf_decode']['cores']} cores' "
                         "decoding with TensorFlow's operations.")
    if "tf.data + cache file" in shares:
        lines.append(f"- tf.data + cache file: {100 * shares['tf.data + cache file']['share']:.1f} % of a memory "
                     "copy of the same decoded bytes.")
    for name in [n for n in shares if n.startswith("bucket")]:
        lines.append(f"- {name}: {100 * shares[name]['share']:.0f} % of {ceilings['pil_decode']['cores']} cores' "
                     "decoding (it decodes in one thread).")
    training = (ceilings.get("training") or {}).get("loaders", {})
    if training:
        lines.append("- Training lesson 09's model: " + ", ".join(
            f"with {name} {100 * figures['share']:.0f} %" for name, figures in training.items())
            + " of training from memory.")
    return lines


def ceiling_section(bench: dict, plot: str | None = None) -> list[str]:
    ceilings = bench.get("ceilings")
    if not ceilings:
        return []
    rows = [[f"`{key}`", what, _number(ceilings[key]["images_per_second"]), _ceiling_detail(key, ceilings[key])]
            for key, what in _ceiling_names().items() if ceilings.get(key)]
    shares = bench.get("ceiling_share", {})
    share_rows = [[loader, _number(bench["steady_images_per_second"].get(loader)),
                   f"`{shares[loader]['ceiling']}`" if loader in shares else NOT_MEASURED,
                   _number(shares[loader]["ceiling_images_per_second"]) if loader in shares else "",
                   _share(shares[loader]["share"]) if loader in shares else NOT_MEASURED]
                  for loader in bench["images_per_second"]]
    disks = [_disk_line("Lesson 07's cache files", ceilings.get("cache_disk")),
             _disk_line("tf.data's cache file", ceilings.get("tf_cache_file_disk"))]
    return ["## How close to the limit: each loader against its ceiling", "",
            "Each ceiling is what the machine allows a loader, measured in the same run on the same files and cores: "
            "a loader that decodes every epoch against the same decoder on one core times the cores (and what as "
            "many threads or processes actually reach), a loader that reads decoded pixels against a copy of the "
            "same bytes in memory, training against the same steps fed one batch from memory.", "",
            *_table(["ceiling", "what", "images/s", "measured"], rows, "llrl"), "",
            *[line for line in disks if line], "",
            *_table(["loader", "steady images/s", "its ceiling", "ceiling images/s", "share"], share_rows), "",
            *relations(bench), "",
            *([f"![Each loader as a share of its ceiling]({plot})", ""] if plot else [])]


def _ceiling_names() -> dict[str, str]:
    from .bench_ceilings import CEILING_WHAT

    return CEILING_WHAT


def grain_section(bench: dict) -> list[str]:
    stages = bench.get("grain_stages")
    if not stages:
        return []
    rows = [["lesson 07's cache, whole batches (`load_batch` of 32 positions)", _number(stages["cache_whole_batches"])],
            ["Grain's source, one record at a time (`CacheSource[i]`)", _number(stages["record_reads"])],
            ["batching records already read (`np.stack`)", _number(stages["batching"])],
            ["the whole Grain pipeline in this process (no worker)", _number(stages["grain_in_process"])]]
    if stages.get("grain_one_read_thread_in_process"):
        rows.append([f"the same pipeline with 1 reader thread instead of Grain's {stages['grain_read_threads']}, in "
                     "this process", _number(stages["grain_one_read_thread_in_process"])])
    if stages.get("grain_whole_batches_in_process"):
        rows.append(["the same Grain shuffle reading each batch at once (`load_batch` of its positions), in this "
                     "process", _number(stages["grain_whole_batches_in_process"])])
    steady = bench.get("steady_images_per_second", {})
    rows += [[f"{name} (steady, speed table)", _number(value)] for name, value in steady.items()
             if name.startswith("Grain")]
    timed = [stage for stage in stages.get("stage_timing", []) if stage["us_per_element"] is not None]
    total = sum(stage["us_per_element"] * stage["elements"] for stage in timed)
    timing = [[f"`{stage['stage']}`", f"{stage['elements']:,}", _number(stage["us_per_element"], 1),
               f"{100 * stage['us_per_element'] * stage['elements'] / total:.0f} %" if total else "n/a"]
              for stage in timed]
    ratio = stages["cache_whole_batches"] / stages["record_reads"]
    first = max(timed, key=lambda stage: stage["us_per_element"] * stage["elements"]) if total else None
    verdict = (f" Grain's own timing puts `{first['stage']}` first, with "
               f"{100 * first['us_per_element'] * first['elements'] / total:.0f} % of the time it measured." if first
               else "")
    threads = (f" Grain reads records in {stages['grain_read_threads']} threads by default, on "
               f"{bench['machine'].get('cpus', '?')} cores: with one reader thread the same pipeline runs at "
               f"{stages['grain_one_read_thread_in_process'] / stages['grain_in_process']:.1f}x its default speed."
               if stages.get("grain_one_read_thread_in_process") else "")
    fix = threads + (f" Reading each batch at once in the same Grain shuffle runs at "
           f"{stages['grain_whole_batches_in_process'] / stages['grain_in_process']:.1f}x the record-by-record "
           "pipeline." if stages.get("grain_whole_batches_in_process") else "")
    return ["## Why Grain over the cache is far below its ceiling", "",
            f"Measured stage by stage on {stages['images']:,} images of the same cache, in one process: a record "
            f"read one at a time costs {ratio:.1f}x what the same image costs in a whole-batch read (lesson 07's "
            f"way); the whole Grain pipeline in this process runs at "
            f"{100 * stages['grain_in_process'] / stages['cache_whole_batches']:.0f} % of whole-batch reads and "
            f"{100 * stages['grain_in_process'] / stages['record_reads']:.0f} % of its record reads alone."
            f"{verdict}{fix} The rows with worker processes add starting them and moving each batch between "
            "processes.", "",
            *_table(["stage", "images/s"], rows), "",
            *(["Grain's own stage timing (`ExecutionTrackingMode.STAGE_TIMING`, in this process): each stage's own "
               "time per element it produced.", "",
               *_table(["stage", "elements", "µs per element", "share of the measured time"], timing), ""]
              if timing else [])]


def bucket_section(bench: dict) -> list[str]:
    bucket = bench.get("bucket")
    if not bucket:
        return []
    steady, first = bench.get("steady_images_per_second", {}), bench.get("first_batch_seconds", {})
    rows = [[name, _number(steady.get(name)), _number(first.get(name), 2), f"{figures['requests_per_image']:.4f}",
             f"{figures['bytes_per_image']:,.0f}", f"{figures['shards']} of {figures['shard_size']}"]
            for name, figures in bucket.items()]
    return ["## Lesson 12: the same shards from a bucket and from the local disk", "",
            "Lesson 12's reader (`ShardCache`, `read_epoch`) over the same TFRecord shards of the same images: from "
            "moto's S3 server on 127.0.0.1, started in a process of its own, and from a folder on the local disk "
            "through the same cache and reader. Requests and bytes are what the shard cache counted in one epoch.", "",
            *_table(["loader", "steady images/s", "first batch (s)", "requests per image", "bytes per image",
                     "shards (images each)"], rows), ""]



def memory_method(bench: dict) -> str:
    """How the memory rows were measured, from the run's own settings (older runs read differently)."""
    settings = bench["settings"]
    read = settings.get("memory_images_read")
    if read is None:  # the benchmark's first design
        return ("One training epoch of lesson 06's model (`model.fit`, shuffling on) per loader and scale, each in a "
                "fresh process; the smaller scales first pass over their loader until every process has read as many "
                "images as the largest scale's epoch, so the scales differ in the size of the data set only.")
    trained = [m["loader"] for m in bench["memory"] if m.get("model", "tiny") != "tiny"]
    cross_check = (f" The row *{trained[0]}* trains lesson 06's CNN instead, as a cross-check: the model adds the "
                   "same memory at every scale." if trained else "")
    return (f"Per loader and scale, a fresh process builds the loader over the whole data set (shuffling on) and reads "
            "one batch: every piece of per-image bookkeeping is built then (names, labels, the order, a shuffle buffer "
            f"of names, an index of shards). Then `model.fit` reads {read:,} images at every scale (whole passes at "
            "the smaller scales, the first part of one epoch at the larger ones), so the scales differ in the size of "
            "the data set only; as that is several times the smallest data set, a loader that kept what it read would "
            "hold several times more at the largest scale. The model is a tiny one (a pooling and a dense layer), so "
            f"that the time is the loader's.{cross_check} The bucket loader's server (lesson 12's, moto) runs in a "
            "process of its own: what the bucket holds is not the loader's memory.")


def memory_section(bench: dict) -> list[str]:
    memory = bench["memory"]
    factors = sorted({m["factor"] for m in memory})
    images = {m["factor"]: m["images"] for m in memory}
    loaders = list(dict.fromkeys(m["loader"] for m in memory))
    loaders += [loader for loader in MEMORY_LOADERS if loader not in loaders]  # newer loaders: said, not hidden
    lessons = {**MEMORY_LOADERS, **bench.get("memory_loaders", {})}
    cell = {(m["loader"], m["factor"]): m for m in memory}
    growth, image_growth = bench.get("memory_growth", {}), bench.get("image_memory_growth", {})
    bookkeeping = bench.get("bookkeeping_bytes_per_image", {})
    header = (["loader", "lesson"] + [f"{f}x ({images[f]:,} images)" for f in factors]
              + [f"peak growth {factors[0]}x → {factors[-1]}x", "decoded-image memory growth",
                 "bookkeeping per extra image"])
    rows = []
    for loader in loaders:
        row = [loader, lessons.get(loader, "")]
        if not any((loader, f) in cell for f in factors):
            rows.append(row + [NOT_MEASURED] + [""] * (len(header) - 3))
            continue
        for f in factors:
            m = cell.get((loader, f))
            row.append(f"{_number(m['peak_anon_mb'])} / {_number(m['peak_rss_mb'])} MB" if m else "")
        held = bookkeeping.get(loader)
        row += [_percent(growth.get(loader)), _percent(image_growth.get(loader)),
                "n/a" if held is None else f"{held:,.0f} bytes"]
        rows.append(row)
    bucket = [m for m in memory if "bucket" in m]
    bucket_line = ""
    if bucket:
        stats = "; ".join(f"{m['factor']}x: {m['bucket']['shards']:,} shards, {m['bucket'].get('downloads', 0):,} "
                          f"downloads ({m['bucket'].get('bytes', 0) / 1e6:,.0f} MB), {m['bucket'].get('hits', 0):,} "
                          "cache hits" for m in sorted(bucket, key=lambda m: m["factor"]))
        bucket_line = (f"The bucket loader's shard cache holds {bucket[0]['bucket']['cache_shards']} shards, below one "
                       f"epoch's at every scale: {stats}.")
    return ["## Memory against the size of the data set", "", memory_method(bench),
            "The larger scales are the same images hard-linked under new names. Each cell: peak anonymous memory (what "
            "the process holds) / peak resident memory (which also counts file pages the kernel can drop). "
            "*Decoded-image memory* is the peak minus the memory once the loader has started; *bookkeeping* is what "
            "the started loader holds for each image more (names, labels, order).", "",
            *_table(header, rows, "ll" + "r" * (len(header) - 2)), "", bucket_line, "",
            f"Note: {bench['memory_note']}." if bench.get("memory_note") else "", ""]


def wait_section(bench: dict) -> list[str]:
    from seedlings_utils.waiting import PEER_LOADERS

    runs = bench.get("wait_share_runs", {})
    shares = bench.get("wait_share", {})
    if not shares:
        return []
    rows = []
    for loader, share in shares.items():
        detail = runs.get(loader, {})
        spread = (f" ({100 * detail['min']:.0f} .. {100 * detail['max']:.0f})" if "min" in detail else "")
        rows.append([loader, f"{100 * share:.0f} %{spread}", f"{_number(detail.get('wait_ms_per_step'))} ms",
                     f"{_number(detail.get('compute_ms_per_step'))} ms"])
    rows += [[loader, NOT_MEASURED, "", ""] for loader in PEER_LOADERS if loader not in shares]
    settings = bench["settings"]
    repeats = settings.get("wait_repeats")
    skipped = {detail.get("skip_steps", 0) for detail in runs.values()}
    timed = ("the first step" if skipped == {1} else f"the first {min(skipped)} steps" if len(skipped) == 1 else
             "the first steps")
    start_up = (f" The clock starts after {timed} of each run, in both: a loader's start-up (its threads, Grain's "
                "worker processes) is not its steady reading." if any(skipped) else
                " Each run is timed whole: a loader's start-up in every epoch is counted.")
    return ["## Is the model waiting for data?", "",
            "The seconds of one pass of training steps of lesson 09's model reading from a loader, against the same "
            "steps reading one batch kept in memory and repeated (an input that costs nothing): share = 1 − t(free) / "
            f"t(loader), the median of {repeats or 'the'} runs with their min .. max, never clipped "
            f"({settings.get('wait_images', 'n/a'):,} images, batch {settings['batch_size']}).{start_up}", "",
            *_table(["loader", "waiting share, median (min .. max)", "waiting per step", "compute per step"], rows), ""]


def targets_section(bench: dict) -> list[str]:
    rows = []
    for name, target in bench.get("targets", {}).items():
        value = target["measured"]
        shown = "n/a" if value is None else f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
        verdict = {True: "met", False: "**missed**", None: "not measured"}[target["met"]]
        rows.append([f"`{name}`", target["what"], f"{target['target']}", shown, verdict])
    if not rows:
        return []
    met = sum(t["met"] is True for t in bench["targets"].values())
    return ["## Targets", "", f"{met} of {len(rows)} met.", "",
            *_table(["target", "what", "wanted", "measured", "verdict"], rows, "lllrl"), ""]


def distributed_section(distributed: dict, plot: str | None) -> list[str]:
    rows = []
    for job in distributed["jobs"]:
        memory = ", ".join(f"{m:,.0f} MB ({s or 0:,.0f})"
                           for m, s in zip(job["peak_rss_mb"], job["startup_peak_rss_mb"], strict=True))
        rows.append([str(job["processes"]), f"{job['train_images']:,} ({job['scale']}x)",
                     _number(job["images_per_second"]), memory])
    settings = distributed["settings"]
    growth = ", ".join(f"{count} process(es) {_percent(value)}"
                       for count, value in distributed.get("memory_growth", {}).items())
    return ["## Lesson 10: several processes", "", *stamp_lines(distributed["machine"], "Measured"), "",
            f"Real jobs of JAX processes on 127.0.0.1 training lesson 06's CNN ({settings['base_filters']} filters, "
            f"{settings['image_size']} px, global batch {settings['global_batch']}) on the synthetic set and on more "
            "files (hard links). Memory: each process's peak resident memory while training, its start-up and "
            "compiling peak in brackets.", "",
            *_table(["processes", "training images", "training images/s", "peak memory per process"], rows, "lrrl"),
            "", f"Largest peak per process, smallest to largest scale: {growth}." if growth else "",
            *(["", f"![Lesson 10's jobs: speed and memory]({plot})"] if plot else []), ""]


def render(bench: dict, distributed: dict | None = None, plots: dict[str, str] | None = None) -> str:
    """The page's markdown; ``plots`` maps ``"bench"``/``"distributed"`` to image paths relative to the page."""
    plots = plots or {}
    settings = bench["settings"]
    lines = ["# How fast, and how much memory: `make bench`", "",
             "This page is generated by `python -m tools.bench_page` (which `make bench` runs) from the benchmark's "
             "JSON: do not edit it by hand. Every figure below is from one run, on the same files and cores.", "",
             *stamp_lines(bench["machine"], "Measured"), "",
             f"Synthetic images in Kaggle's layout: {settings['base_images']:,} at the first scale, "
             f"scales {', '.join(f'{s:,}' for s in settings['scales'])}; {settings['image_size']} px, "
             f"batch {settings['batch_size']}.", ""]
    if "bench" in plots:
        lines += [f"![Loader speed, memory against data size, waiting for data]({plots['bench']})", ""]
    lines += targets_section(bench) + speed_section(bench)
    lines += ceiling_section(bench, plots.get("ceilings")) + grain_section(bench) + bucket_section(bench)
    lines += memory_section(bench) + wait_section(bench)
    if distributed:
        lines += distributed_section(distributed, plots.get("distributed"))
    lines += ["## Run it again", "",
              "`make bench` writes `runs/bench/bench.json` and `runs/bench/distributed.json`, then this page and its "
              "plots (`python -m tools.bench_page`); commit them together. "
              + (f"This run took {bench['run_seconds'] / 60:.0f} minutes; " if bench.get("run_seconds") else
                 "The full run, with its largest scale, takes most of an hour; ")
              + "the full run needs a few GB of disk under `runs/bench/` (the caches, and lesson 12's shards of "
              "every scale). `make bench BENCH_ARGS=--quick` is a minutes-long version (its figures check the "
              "plumbing, not the course: do not commit its page).", ""]
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.rstrip("\n") + "\n"


def read_results(bench_dir: str | Path) -> tuple[dict, dict | None]:
    """``bench.json`` and, when there, ``distributed.json`` of ``bench_dir``."""
    bench_dir = Path(bench_dir)
    source = bench_dir / "bench.json"
    if not source.is_file():
        raise FileNotFoundError(f"{source} is missing: run `make bench` (or `python -m tools.bench`) first.")
    distributed_file = bench_dir / "distributed.json"
    return (json.loads(source.read_text()),
            json.loads(distributed_file.read_text()) if distributed_file.is_file() else None)


def plot_paths(out: Path, distributed: dict | None, bench: dict | None = None) -> dict[str, str]:
    """Where the page's plots are, relative to the page: its folder ``<stem>/``."""
    return {"bench": f"{out.stem}/bench.png", **({"distributed": f"{out.stem}/distributed.png"} if distributed else {}),
            **({"ceilings": f"{out.stem}/ceilings.png"} if bench and bench.get("ceiling_share") else {})}


def write_page(bench_dir: str | Path = BENCH_DIR, out: str | Path = DEFAULT_OUT, draw: bool = True) -> Path:
    """Read ``bench_dir/bench.json`` (and ``distributed.json`` when there), write the page to ``out``, a copy of
    that JSON to ``out``'s folder ``<stem>/`` (the page's source, committed beside it) and, with ``draw``, its plots
    there too; returns the page's path."""
    out = Path(out)
    bench, distributed = read_results(bench_dir)
    figure_dir = out.parent / out.stem
    figure_dir.mkdir(parents=True, exist_ok=True)
    plots = {}
    if draw:
        plots = plot_paths(out, distributed, bench)
        save_bench_plot(bench, figure_dir / "bench.png")
        save_ceiling_plot(bench, figure_dir / "ceilings.png")
        if distributed:
            save_distributed_plot(distributed, figure_dir / "distributed.png")
    for name, result in (("bench.json", bench), ("distributed.json", distributed)):
        if result is not None and (Path(bench_dir) / name).resolve() != (figure_dir / name).resolve():
            write_text_atomically(figure_dir / name, json.dumps(result, indent=1) + "\n")
    write_text_atomically(out, render(bench, distributed, plots))
    return out


def stale_page(out: str | Path = DEFAULT_OUT) -> str | None:
    """None when the page ``out`` is what its committed JSON (``<stem>/*.json`` beside it) renders to; else why."""
    out = Path(out)
    try:
        bench, distributed = read_results(out.parent / out.stem)
    except FileNotFoundError as error:
        return f"{out} has no JSON beside it ({error})"
    wanted = render(bench, distributed, plot_paths(out, distributed, bench))
    if not out.is_file() or out.read_text() != wanted:
        return f"{out} is not what {out.parent / out.stem}/bench.json renders to: run python -m tools.bench_page"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bench", default=str(BENCH_DIR), help="the folder of bench.json (default: runs/bench)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="the page (default: docs/benchmark.md)")
    parser.add_argument("--no-plots", action="store_true", help="tables only")
    parser.add_argument("--check", action="store_true", help="only compare the page with its committed JSON")
    args = parser.parse_args(argv)
    if args.check:
        problem = stale_page(args.out)
        print(problem or f"OK: {args.out} is what its JSON renders to", file=sys.stderr if problem else sys.stdout)
        return 1 if problem else 0
    try:
        page = write_page(args.bench, args.out, draw=not args.no_plots)
    except FileNotFoundError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"Wrote {page}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
