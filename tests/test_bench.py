import contextlib
import itertools
import json
import os
import sys
import time

import numpy as np
import pytest

from seedlings_utils import waiting
from seedlings_utils.plots import plot_traces
from seedlings_utils.profiling import (
    LoaderTrace,
    MemorySampler,
    anon_mb,
    peak_rss_mb,
    proc_status_mb,
    reset_peak_rss,
    trace_loader,
)
from tools import bench, bench_memory, bench_page

pytestmark = pytest.mark.long_file(5)  # tests/conftest.py: long files start first

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads Linux's /proc/self/status")


def test_trace_loader_counts_images_and_memory():
    batches = [np.zeros((4, 2)), (np.zeros((3, 2)), np.zeros(3))]
    trace = trace_loader("list", lambda: iter(batches))
    assert trace.images == [0, 4, 7] and len(trace.seconds) == len(trace.rss_mb) == 3
    assert trace.seconds == sorted(trace.seconds) and trace.images_per_second > 0
    fig = plot_traces([trace, LoaderTrace("other", [0, 1], [0, 10], [50, 60])])
    assert len(fig.axes[0].lines) == 2 and fig.axes[1].get_ylim()[0] == 0


def _hold(mb: int, sampler: MemorySampler | None = None) -> None:
    """Allocate ``mb`` MB, write every page (untouched pages are never resident), free it once ``sampler`` has
    read memory twice meanwhile (a loaded machine can delay its thread) or after 50 ms without one."""
    block = np.ones(mb * 2**20, dtype=np.uint8)
    _wait_for_samples(sampler)
    del block


def _wait_for_samples(sampler: MemorySampler | None, count: int = 2, timeout: float = 10.0) -> None:
    if sampler is None:
        time.sleep(0.05)
        return
    start, deadline = sampler.samples, time.monotonic() + timeout
    while sampler.samples < start + count and time.monotonic() < deadline:
        time.sleep(0.005)


@linux
def test_proc_status_reads_the_kernels_memory_lines():
    values = proc_status_mb("VmRSS", "RssAnon", "RssFile", "NoSuchLine")
    assert set(values) == {"VmRSS", "RssAnon", "RssFile"}
    assert values["RssAnon"] + values["RssFile"] == pytest.approx(values["VmRSS"], abs=values["VmRSS"] * 0.2)
    assert anon_mb() == pytest.approx(values["RssAnon"], abs=20)


@linux
def test_peak_rss_sees_a_200_mb_array_and_resets():
    reset_peak_rss()
    before = peak_rss_mb()
    _hold(200)
    assert peak_rss_mb() >= before + 190
    assert reset_peak_rss() and peak_rss_mb() < before + 100  # the array is gone: the peak restarts below it


@linux
def test_sampler_peak_anon_rises_with_a_200_mb_array_and_not_otherwise():
    with MemorySampler() as quiet:
        _wait_for_samples(quiet, 5)
    assert quiet.samples >= 5 and quiet.peak_anon_mb - quiet.start_anon_mb < 50
    with MemorySampler() as busy:
        _hold(200, busy)
    assert busy.peak_anon_mb - busy.start_anon_mb >= 190
    assert busy.peak_rss_mb - busy.start_rss_mb >= 190


@linux
def test_memory_mapped_pages_count_in_rss_but_not_in_anonymous_memory(tmp_path):
    np.save(tmp_path / "shard.npy", np.ones(100 * 2**20, dtype=np.uint8))
    with MemorySampler() as memory:
        shard = np.load(tmp_path / "shard.npy", mmap_mode="r")
        total = int(shard[::4096].sum())  # one byte per page: every page of the file is mapped in
        _wait_for_samples(memory)
        del shard
    assert total == 100 * 2**20 // 4096
    assert memory.peak_rss_mb - memory.start_rss_mb >= 90
    assert memory.peak_anon_mb - memory.start_anon_mb < 30


def test_read_one_pass_reads_every_image_of_a_pydataset_and_of_a_tf_dataset_once():
    import keras
    import tensorflow as tf

    class Counted(keras.utils.PyDataset):
        def __init__(self, n, batch_size, **kwargs):
            super().__init__(**kwargs)
            self.n, self.batch_size, self.seen = n, batch_size, []

        def __len__(self):
            return -(-self.n // self.batch_size)

        def __getitem__(self, index):
            ids = np.arange(index * self.batch_size, min(self.n, (index + 1) * self.batch_size))
            self.seen.extend(ids.tolist())
            return np.zeros((len(ids), 2), "float32"), ids

    counted = Counted(10, 4, workers=2)
    assert bench_memory.read_one_pass(counted) == 10 and sorted(counted.seen) == list(range(10))
    data = tf.data.Dataset.from_tensor_slices((np.zeros((10, 2), "float32"), np.arange(10))).batch(4)
    assert bench_memory.read_one_pass(data) == 10
    assert bench_memory.read_one_pass(data) == 10  # a second pass reads it all again


def test_replicate_makes_k_times_the_files_as_links(tmp_path):
    (tmp_path / "src").mkdir()
    for name in ("a.png", "b.png"):
        (tmp_path / "src" / name).write_bytes(b"x")
    folder, names, labels = bench_memory.replicate(tmp_path / "src", np.array(["a.png", "b.png"]), np.array([0, 1]), 3,
                                            tmp_path / "x3")
    assert len(names) == 6 and len(set(names)) == 6 and labels.tolist() == [0, 1] * 3
    assert (folder / names[4]).samefile(tmp_path / "src" / "a.png")
    again = bench_memory.replicate(tmp_path / "src", np.array(["a.png", "b.png"]), np.array([0, 1]), 3, tmp_path / "x3")
    assert (again[1] == names).all() and len(os.listdir(folder)) == 6


def test_memory_by_scale_runs_every_loader_at_every_scale_and_keeps_the_median_of_repeats(monkeypatch, tmp_path):
    peaks = itertools.cycle([500.0, 530.0, 510.0])  # three runs per loader and scale: median 510
    calls, reads, servers = [], {}, []

    def fake_prepare(image_dir, filenames, labels, factor, image_size, batch_size, work_dir, loaders, endpoint_url):
        # the bucket's server runs while the scales are prepared and read, when the bucket loader is measured
        assert endpoint_url == (servers[-1] if "bucket (S3 shards, shard cache)" in loaders else None)
        np.save(tmp_path / f"x{factor}.npy", np.repeat(filenames, factor))
        return {"filenames": str(tmp_path / f"x{factor}.npy")}, {"cache (.npy memmap)": 1.0}

    def fake_epoch(loader, scale, factor, image_size, batch_size, read_images):
        calls.append((loader, factor))
        reads[factor] = read_images
        return {"factor": factor, "loader": loader, "images": 2 * factor, "peak_anon_mb": next(peaks)}

    @contextlib.contextmanager
    def fake_server():
        servers.append(f"http://127.0.0.1:{len(servers)}")
        yield servers[-1]

    monkeypatch.setattr(bench_memory, "prepare_scale", fake_prepare)
    monkeypatch.setattr(bench_memory, "_epoch_memory_in_a_fresh_process", fake_epoch)
    monkeypatch.setattr(bench_memory, "bucket_server_process", fake_server)
    rows, builds = bench_memory.memory_by_scale(tmp_path, np.array(["a", "b"]), np.array([0, 1]), [1, 50], 32, 4,
                                                tmp_path, jobs=1, repeats=3)
    assert sorted(set(calls)) == sorted((loader, f) for loader in bench.MEMORY_LOADERS for f in (1, 50))
    assert len(calls) == 3 * 2 * len(bench.MEMORY_LOADERS) and set(builds) == {"1x", "50x"} and len(servers) == 1
    assert reads == {1: 20, 50: 20}  # every scale reads 10 base sets: 10 passes at 1x, a fifth of an epoch at 50x
    assert [(row["loader"], row["factor"]) for row in rows] == [(loader, f) for f in (1, 50)
                                                                for loader in bench.MEMORY_LOADERS]
    assert all(row["peak_anon_mb"] == 510 and row["peak_anon_mb_runs"] == [500, 510, 530] for row in rows)
    bench_memory.memory_by_scale(tmp_path, np.array(["a", "b"]), np.array([0, 1]), [1, 5], 32, 4, tmp_path,
                                 loaders=["tf.data"], read_factor=10)
    assert reads == {1: 10, 5: 10, 50: 20} and len(servers) == 1  # capped at the largest scale; no bucket, no server


def test_read_plan_reads_as_many_images_at_every_scale():
    assert bench_memory.read_plan(2000, 20000, 32) == (10, None)  # ten whole passes
    assert bench_memory.read_plan(20000, 20000, 32) == (1, None)
    assert bench_memory.read_plan(100000, 20000, 32) == (1, 625)  # the first 625 batches of one epoch


SPEEDS = {"2019 recipe (skimage)": 100.0, "PyDataset, 1 worker": 500.0, "PyDataset, 2 threads": 850.0,
          "cache (.npy memmap)": 1500.0, "tf.data": 1000.0}


def _memory(growth_by_loader: dict[str, float], base: float = 1000.0, before: float = 400.0,
            held: dict[str, float] | None = None) -> list[dict]:
    """Rows as memory_by_scale writes them: 1x at ``base`` MB, 10x in between, 50x at ``base * (1 + growth)``.

    Memory before reading, and once the loader has started, is ``before`` MB at 1x and grows by ``held[loader]``
    bytes per extra image (default 0), which the peak carries on top."""
    rows = []
    for loader, growth in growth_by_loader.items():
        for factor, peak in ((1, base), (10, base * (1 + growth / 2)), (50, base * (1 + growth))):
            extra = (held or {}).get(loader, 0.0) * 2000 * (factor - 1) / 2**20
            rows.append({"loader": loader, "factor": factor, "images": 2000 * factor, "peak_anon_mb": peak + extra,
                         "anon_before_reading_mb": before + extra, "anon_loader_started_mb": before + extra,
                         "peak_rss_mb": peak + extra + 300,
                         "epoch_seconds": 1.0})
    return rows


@pytest.mark.parametrize(("key", "low", "high", "met_low", "met_high"), [
    ("pydataset_vs_tfdata", 0.89, 0.91, False, True),
    ("cache_vs_2019", 19.0, 21.0, False, True),
    ("cache_wait_share", 0.04, 0.06, True, False),
    ("image_memory_flat", 0.04, 0.06, True, False),
    ("bookkeeping_per_image", 1000.0, 1050.0, True, False),
])
def test_each_target_is_met_on_one_side_of_its_threshold_and_missed_on_the_other(key, low, high, met_low,
                                                                                  met_high):
    def verdict(value):
        speeds, memory, shares = dict(SPEEDS), _memory({"tf.data": 0.0}), {"cache (.npy memmap)": 0.0}
        if key == "pydataset_vs_tfdata":
            speeds["PyDataset, 2 threads"] = value * speeds["tf.data"]
        elif key == "cache_vs_2019":
            speeds["cache (.npy memmap)"] = value * speeds["2019 recipe (skimage)"]
        elif key == "image_memory_flat":  # decoded images take 600 MB at 1x: value x 600 more at 50x
            memory = _memory({"PyDataset, 2 threads": 0.0, "tf.data": value * 600 / 1000})
        elif key == "bookkeeping_per_image":  # bytes per extra image
            memory = _memory({"PyDataset, 2 threads": 0.0, "tf.data": 0.0},
                             held={"PyDataset, 2 threads": 10.0, "tf.data": value})
        else:
            shares["cache (.npy memmap)"] = value
        target = bench.evaluate_targets(speeds, memory, shares, image_size=64)[key]
        assert target["measured"] == pytest.approx(value)
        return target["met"]

    assert verdict(low) is met_low and verdict(high) is met_high


def test_memory_target_is_the_worst_loaders_growth():
    memory = _memory({"PyDataset, 2 threads": 0.01, "cache (.npy memmap)": -0.02, "tf.data": 0.30,
                      "tf.data + cache file": 0.03})
    growth = bench_memory.memory_growth(memory)
    assert growth == pytest.approx({"PyDataset, 2 threads": 0.01, "cache (.npy memmap)": -0.02, "tf.data": 0.30,
                                    "tf.data + cache file": 0.03})
    target = bench.evaluate_targets(SPEEDS, memory, {})["image_memory_flat"]
    assert target["measured"] == pytest.approx(0.30 * 1000 / 600) and target["met"] is False
    assert "50x" in target["what"] and "1x" in target["what"] and "tf.data;" in target["what"]
    assert bench.evaluate_targets(SPEEDS, [r for r in memory if r["factor"] == 1], {})["image_memory_flat"][
        "met"] is None
    table = bench.format_table({"images_per_second": SPEEDS, "memory": memory, "memory_growth": growth,
                                "wait_share": {}, "targets": {}})
    assert "+30.0 %" in table and "-2.0 %" in table and "100,000 (50x)" in table
    held = _memory({"tf.data": 0.0}, held={"tf.data": 250.0})
    assert bench_memory.bookkeeping_bytes_per_image(held) == pytest.approx({"tf.data": 250.0})
    assert bench_memory.image_memory_growth(held) == pytest.approx({"tf.data": 0.0})  # the names are bookkeeping
    table = bench.format_table({"images_per_second": SPEEDS, "memory": held, "memory_growth": {},
                                "image_memory_growth": bench_memory.image_memory_growth(held),
                                "bookkeeping_bytes_per_image": bench_memory.bookkeeping_bytes_per_image(held),
                                "wait_share": {}, "targets": {}})
    assert "What grows" in table and "250 bytes/image" in table
    # a loader that held its decoded images would fail the bookkeeping target by far
    pixels = _memory({"PyDataset, 2 threads": 0.0}, held={"PyDataset, 2 threads": 64 * 64 * 3})
    target = bench.evaluate_targets(SPEEDS, pixels, {})["bookkeeping_per_image"]
    assert target["measured"] == pytest.approx(12288) and target["met"] is False


@pytest.mark.slow
def test_quick_bench_writes_its_figures(tmp_path, capsys):
    assert bench.main(["--quick", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "bench.json").read_text())
    assert set(results["images_per_second"]) == {
        "2019 recipe (skimage)", "PyDataset, 1 worker", "PyDataset, 2 threads", "PyDataset, 2 processes",
        "cache (.npy memmap)", "tf.data", "tf.data + cache file", "Grain, 1 worker process",
        "Grain, 2 worker processes", "Keras image_dataset_from_directory", "bucket (S3 shards, shard cache)",
        "bucket (local shards, shard cache)"}
    assert all(v > 0 for v in results["images_per_second"].values())
    # start-up apart from steady speed, and every loader against its ceiling, measured in the same run
    loaders = set(results["images_per_second"])
    assert set(results["first_batch_seconds"]) == set(results["steady_images_per_second"]) == loaders
    assert all(v > 0 for v in results["first_batch_seconds"].values())
    assert set(results["ceiling_share"]) == loaders
    assert all(s["share"] > 0 and s["ceiling"] in results["ceilings"] for s in results["ceiling_share"].values())
    ceilings = results["ceilings"]
    assert ceilings["pil_decode"]["threads"] > 0 and ceilings["pil_decode"]["processes"] is None  # --quick: threads
    assert ceilings["memory_copy"]["bytes_per_image"] == 32 * 32 * 3 and ceilings["cache_disk"]["bytes"] > 0
    assert set(ceilings["training"]["loaders"]) == set(results["wait_share"])
    assert results["grain_stages"]["record_reads"] > 0 and results["grain_stages"]["stage_timing"]
    bucket = results["bucket"]["bucket (S3 shards, shard cache)"]
    assert bucket["requests"] == bucket["shards"] >= 2 and bucket["bytes_per_image"] > 32 * 32 * 3 / 10
    assert results["bucket"]["bucket (local shards, shard cache)"]["bytes"] == bucket["bytes"]  # the same shards
    assert (tmp_path / "ceilings.png").stat().st_size > 10_000
    base = results["settings"]["base_images"]
    rows = {(m["loader"], m["factor"]): m for m in results["memory"]}
    assert sorted(rows) == sorted((loader, f) for loader in bench.QUICK_MEMORY_LOADERS for f in (1, 5))
    assert results["settings"]["memory_images_read"] == 5 * base
    for (loader, factor), row in rows.items():
        assert row["images"] == base * factor and row["samples"] >= 10  # the sampler ran while reading
        # every scale reads the 5x scale's number of images: 1x passes over its loader five times
        assert (row["epochs"], row["steps_per_epoch"], row["images_read"]) == (5 // factor, None, 5 * base)
        assert row["model"] == ("lesson 06's CNN" if loader == bench_memory.TRAINED_LOADER else "tiny")
        assert row["peak_anon_mb_runs"] == [row["peak_anon_mb"]]
        assert 100 < row["peak_anon_mb"] < row["peak_rss_mb"] < 8000
    assert all(row["read_from_cache_file"] for (loader, _), row in rows.items() if loader == "tf.data + cache file")
    for factor in (1, 5):  # lesson 12's loader read its shards from the server, its cache below one epoch's shards
        shards = rows["bucket (S3 shards, shard cache)", factor]["bucket"]
        assert shards["shards"] > shards["cache_shards"]
        assert shards["downloads"] + shards.get("hits", 0) >= shards["shards"]
        assert shards["evicted"] > 0 and shards.get("corrupt", 0) == 0  # evicted: what it read did not stay
    assert set(results["memory_growth"]) == set(bench.QUICK_MEMORY_LOADERS)
    assert set(results["image_memory_growth"]) == set(results["bookkeeping_bytes_per_image"]) \
        == set(bench.QUICK_MEMORY_LOADERS)
    assert "tf.data" in bench.MEMORY_LOADERS  # lesson 08's first chain: the canonical name shuffle
    assert results["targets"]["image_memory_flat"]["measured"] == max(results["image_memory_growth"].values())
    assert results["targets"]["bookkeeping_per_image"]["measured"] == max(
        results["bookkeeping_bytes_per_image"].values())
    assert all(row["anon_loader_started_mb"] >= row["anon_before_reading_mb"] - 5 for row in rows.values())
    assert set(results["wait_share"]) == {"PyDataset, 2 threads", "cache (.npy memmap)", "tf.data",
                                          *waiting.PEER_LOADERS}  # Keras' own loader, Grain with 1 and 2 workers
    runs = results["wait_share_runs"]  # never clipped: noise may push a share below zero, never to 1 or past
    # 48 images make one batch of 32: one step, none left to skip (make bench's 1,024 images: the first 2 skipped)
    assert all(r["skip_steps"] == 0 and r["steps"] == 1 for r in runs.values())
    assert results["settings"]["wait_repeats"] == 2  # --quick; 3 by default
    assert set(runs) == set(results["wait_share"]) and all(len(r["runs"]) == 2 for r in runs.values())
    assert all(r["median"] == results["wait_share"][name] and r["min"] <= r["median"] <= r["max"]
               for name, r in runs.items())
    assert all(-1 < v < 1 for v in results["wait_share"].values())
    assert all(t["measured"] is not None and t["met"] in (True, False) for t in results["targets"].values())
    assert (tmp_path / "bench.png").stat().st_size > 10_000
    out = capsys.readouterr().out
    assert "Targets:" in out and "images/s" in out and str(tmp_path / "bench.json") in out
    # the page make bench writes next, from this JSON: stamped with this checkout's commit, a row per loader
    assert {"commit", "date", "cpus", "tensorflow"} <= set(results["machine"])
    page = bench_page.write_page(tmp_path, tmp_path / "benchmark.md").read_text()
    assert all(f"| {loader} |" in page for loader in results["images_per_second"])
    assert all(f"| {loader} | {bench.MEMORY_LOADERS[loader]} |" in page for loader in bench.QUICK_MEMORY_LOADERS)
    assert page.count(f"| {bench_page.NOT_MEASURED} |") == len(bench.MEMORY_LOADERS) - len(bench.QUICK_MEMORY_LOADERS)
    assert str(results["machine"]["commit"]) in page and (tmp_path / "benchmark" / "bench.png").is_file()
    assert (tmp_path / "benchmark" / "ceilings.png").is_file() and "](benchmark/ceilings.png)" in page
