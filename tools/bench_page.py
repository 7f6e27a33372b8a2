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
from .bench_plots import save_bench_plot, save_distributed_plot
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


def speed_section(bench: dict) -> list[str]:
    build = bench.get("build_seconds", {})
    rows = [[loader, _number(speed), _number(build.get(loader), 1) if loader in build else ""]
            for loader, speed in bench["images_per_second"].items()]
    settings = bench["settings"]
    return ["## Loader speed", "",
            f"Images per second of each loader on the same {settings['base_images']:,} images, "
            f"{settings['image_size']} px, batch {settings['batch_size']}, {settings['speed_batches']} batches each; "
            "a cache's build time is apart.", "",
            *_table(["loader", "images/s", "building its cache (s)"], rows), ""]


NOT_MEASURED = "not measured in this run"


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
    lines += targets_section(bench) + speed_section(bench) + memory_section(bench) + wait_section(bench)
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


def plot_paths(out: Path, distributed: dict | None) -> dict[str, str]:
    """Where the page's plots are, relative to the page: its folder ``<stem>/``."""
    return {"bench": f"{out.stem}/bench.png", **({"distributed": f"{out.stem}/distributed.png"} if distributed else {})}


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
        plots = plot_paths(out, distributed)
        save_bench_plot(bench, figure_dir / "bench.png")
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
    wanted = render(bench, distributed, plot_paths(out, distributed))
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
