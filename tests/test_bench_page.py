"""The benchmark page is generated from the benchmark's JSON: every figure, verdict and the stamp come from it."""

import json
import re

import pytest

from tools import bench_page

MACHINE = {"cpus": 3, "python": "3.11.9", "tensorflow": "2.21.0", "keras": "3.15.1", "numpy": "2.4.0",
           "platform": "Linux-test-x86_64", "commit": "0123456789abcdef0123456789abcdef01234567",
           "uncommitted_changes": False, "date": "2030-01-02 03:04 UTC"}


def memory_row(loader: str, factor: int, anon: float, rss: float) -> dict:
    return {"factor": factor, "loader": loader, "images": 100 * factor, "peak_anon_mb": anon, "peak_rss_mb": rss}


def small_bench() -> dict:
    """A bench.json as tools/bench.py writes it, with two loaders, two scales and two targets (one missed)."""
    return {
        "machine": dict(MACHINE),
        "settings": {"scales": [100, 500], "base_images": 100, "image_size": 32, "batch_size": 8, "speed_batches": 4,
                     "wait_images": 64, "wait_repeats": 2},
        "images_per_second": {"PyDataset, 2 threads": 1234.4, "cache (.npy memmap)": 56789.0},
        "build_seconds": {"cache (.npy memmap)": 1.25},
        "memory": [memory_row("PyDataset, 2 threads", 1, 401.0, 902.0),
                   memory_row("PyDataset, 2 threads", 5, 409.0, 911.0),
                   memory_row("cache (.npy memmap)", 1, 388.0, 950.0),
                   memory_row("cache (.npy memmap)", 5, 380.0, 1977.0)],
        "memory_note": "resident memory also counts file pages",
        "memory_growth": {"PyDataset, 2 threads": 0.02, "cache (.npy memmap)": -0.0206},
        "image_memory_growth": {"PyDataset, 2 threads": 0.031, "cache (.npy memmap)": -0.05},
        "bookkeeping_bytes_per_image": {"PyDataset, 2 threads": 12.0, "cache (.npy memmap)": 777.0},
        "wait_share": {"PyDataset, 2 threads": 0.42, "cache (.npy memmap)": 0.07},
        "wait_share_runs": {"PyDataset, 2 threads": {"median": 0.42, "min": 0.40, "max": 0.44,
                                                     "wait_ms_per_step": 30.0, "compute_ms_per_step": 41.0},
                            "cache (.npy memmap)": {"median": 0.07, "min": 0.05, "max": 0.09,
                                                    "wait_ms_per_step": 3.0, "compute_ms_per_step": 40.0}},
        "targets": {"cache_vs_2019": {"what": "cache vs 2019", "target": ">= 20.0", "measured": 46.0, "met": True},
                    "cache_wait_share": {"what": "waiting with the cache", "target": "< 0.05", "measured": 0.07,
                                         "met": False}},
    }


def small_distributed() -> dict:
    return {"machine": {"cpus": 3, "python": "3.11.9", "system": "Linux x86_64", "jax": "0.10.2", "keras": "3.15.1",
                        "commit": "fedcba9876543210fedcba9876543210fedcba98", "date": "2030-01-02 04:00 UTC"},
            "settings": {"base_images": 96, "image_size": 24, "global_batch": 8, "base_filters": 4, "epochs": 2},
            "jobs": [{"scale": 1, "processes": 1, "train_images": 77, "images_per_second": 88.4,
                      "peak_rss_mb": [801.0], "startup_peak_rss_mb": [790.0]},
                     {"scale": 1, "processes": 2, "train_images": 77, "images_per_second": 71.0,
                      "peak_rss_mb": [700.0, 702.0], "startup_peak_rss_mb": [690.0, None]}],
            "memory_growth": {"1": -0.018}}


def row(page: str, first_cell: str) -> list[str]:
    """The cells of the table row that starts with ``first_cell``."""
    line = next(line for line in page.splitlines() if line.startswith(f"| {first_cell} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_page_shows_each_loaders_figures_the_targets_and_the_stamp():
    page = bench_page.render(small_bench())
    assert row(page, "PyDataset, 2 threads")[:2] == ["PyDataset, 2 threads", "1,234"]  # the speed table comes first
    assert row(page, "cache (.npy memmap)")[:3] == ["cache (.npy memmap)", "56,789", "1.2"]
    memory = [line for line in page.splitlines() if line.startswith("| PyDataset, 2 threads |")][1]
    assert "401 / 902 MB" in memory and "409 / 911 MB" in memory and "+2.0 %" in memory and "+3.1 %" in memory
    assert "| 1x (100 images) | 5x (500 images) |" in page
    cache_memory = [line for line in page.splitlines() if line.startswith("| cache (.npy memmap) |")][1]
    assert "380 / 1,977 MB" in cache_memory and "-2.1 %" in cache_memory and "777 bytes" in cache_memory
    assert row(page, "`cache_vs_2019`")[3:] == ["46.000", "met"]
    assert row(page, "`cache_wait_share`")[2:] == ["< 0.05", "0.070", "**missed**"]
    assert "1 of 2 met" in page
    waiting = [line for line in page.splitlines() if line.startswith("| PyDataset, 2 threads |")][2]
    assert "42 % (40 .. 44)" in waiting and "30 ms" in waiting and "41 ms" in waiting
    stamp = next(line for line in page.splitlines() if line.startswith("**Measured**"))
    for fact in ("2030-01-02 03:04 UTC", MACHINE["commit"], "3 CPU cores", "Linux-test-x86_64", "Python 3.11.9",
                 "TensorFlow 2.21.0", "Keras 3.15.1", "NumPy 2.4.0"):
        assert fact in stamp, fact
    assert "Lesson 10" not in page  # no distributed.json: no section


def test_a_json_without_a_stamp_says_so_and_the_distributed_section_has_its_own():
    bench = small_bench()
    del bench["machine"]["commit"], bench["machine"]["date"]
    page = bench_page.render(bench, small_distributed(), {"distributed": "benchmark/distributed.png"})
    assert re.search(r"\*\*Measured\*\* on a date not recorded, commit not recorded", page)
    assert row(page, "2")[1:] == ["77 (1x)", "71", "700 MB (690), 702 MB (0)"]
    assert "fedcba9876543210fedcba9876543210fedcba98" in page and "1 process(es) -1.8 %" in page
    assert "](benchmark/distributed.png)" in page


def test_write_page_reads_the_json_files_and_refuses_a_missing_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="make bench"):
        bench_page.write_page(tmp_path, tmp_path / "docs" / "benchmark.md", draw=False)
    (tmp_path / "bench.json").write_text(json.dumps(small_bench()))
    (tmp_path / "distributed.json").write_text(json.dumps(small_distributed()))
    page = bench_page.write_page(tmp_path, tmp_path / "docs" / "benchmark.md", draw=False).read_text()
    assert page == bench_page.render(small_bench(), small_distributed())
    assert sorted(p.name for p in (tmp_path / "docs").iterdir()) == ["benchmark", "benchmark.md"]  # no temporary file
    copied = tmp_path / "docs" / "benchmark"  # the page's source, committed beside it
    assert json.loads((copied / "bench.json").read_text()) == small_bench()
    assert json.loads((copied / "distributed.json").read_text()) == small_distributed()


def test_the_committed_page_is_what_its_committed_json_renders_to():
    assert bench_page.stale_page() is None, bench_page.stale_page()
    bench, _ = bench_page.read_results(bench_page.DEFAULT_OUT.parent / "benchmark")
    assert bench["machine"].get("commit"), "the committed run names the commit it measured"
    loaders = set(bench["images_per_second"]) | {row["loader"] for row in bench["memory"]}
    assert any("Grain" in name for name in loaders), f"no Grain row in the committed run: {sorted(loaders)}"


def test_a_page_that_differs_from_its_json_is_stale(tmp_path):
    bench_dir = tmp_path / "runs"
    bench_dir.mkdir()
    (bench_dir / "bench.json").write_text(json.dumps(small_bench()))
    out = bench_page.write_page(bench_dir, tmp_path / "docs" / "benchmark.md", draw=False)
    assert "is not what" in bench_page.stale_page(out)  # written without its plots: not the page make bench writes
    out.write_text(bench_page.render(small_bench(), None, bench_page.plot_paths(out, None)))
    assert bench_page.stale_page(out) is None
    out.write_text(out.read_text().replace("Measured", "Measured by hand"))
    assert "is not what" in bench_page.stale_page(out)
    (out.parent / "benchmark" / "bench.json").unlink()
    assert "has no JSON beside it" in bench_page.stale_page(out)


def test_run_stamp_names_this_checkouts_commit_and_a_date():
    stamp = bench_page.run_stamp()
    assert re.fullmatch(r"[0-9a-f]{40}", stamp["commit"]) and isinstance(stamp["uncommitted_changes"], bool)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", stamp["date"])


def bench_with_ceilings() -> dict:
    """small_bench() with what the speed side adds: start-up, steady speed, ceilings, shares, Grain's stages, the
    bucket loader."""
    bench = small_bench()
    bench["settings"]["warmup_batches"] = 1
    bench["images_per_second"]["Grain, 2 worker processes"] = 300.0
    bench["first_batch_seconds"] = {"PyDataset, 2 threads": 0.25, "cache (.npy memmap)": 0.01,
                                    "Grain, 2 worker processes": 3.5}
    bench["steady_images_per_second"] = {"PyDataset, 2 threads": 1300.0, "cache (.npy memmap)": 60000.0,
                                         "Grain, 2 worker processes": 3000.0}
    bench["ceilings"] = {
        "pil_decode": {"one_core": 800.0, "cores": 2, "images_per_second": 1600.0, "threads": 1500.0,
                       "threads_count": 2, "processes": None},
        "memory_copy": {"images_per_second": 400000.0, "gb_per_second": 1.2, "bytes_per_image": 3072,
                        "copy_and_scale_images_per_second": 100000.0},
        "cache_disk": {"bytes": 307200, "bytes_per_image": 3072.0, "cold_images_per_second": 50000.0,
                       "warm_images_per_second": 200000.0, "cold_gb_per_second": 0.15, "warm_gb_per_second": 0.6,
                       "cold_dropped": True, "how": "posix_fadvise"},
        "training": {"images_per_second": 200.0, "compute_ms_per_step": 40.0,
                     "loaders": {"cache (.npy memmap)": {"images_per_second": 186.0, "share": 0.93}}},
    }
    bench["ceiling_share"] = {
        "PyDataset, 2 threads": {"ceiling": "pil_decode", "ceiling_images_per_second": 1600.0,
                                 "steady_images_per_second": 1300.0, "share": 0.8125},
        "cache (.npy memmap)": {"ceiling": "memory_copy", "ceiling_images_per_second": 400000.0,
                                "steady_images_per_second": 60000.0, "share": 0.15},
        "Grain, 2 worker processes": {"ceiling": "memory_copy", "ceiling_images_per_second": 400000.0,
                                      "steady_images_per_second": 3000.0, "share": 0.0075}}
    bench["grain_stages"] = {"images": 128, "cache_whole_batches": 90000.0, "record_reads": 9000.0, "batching": 1e6,
                             "grain_in_process": 4500.0, "grain_whole_batches_in_process": 45000.0,
                             "grain_read_threads": 16, "grain_one_read_thread_in_process": 6750.0,
                             "stage_timing": [{"stage": "MapMapDataset", "elements": 128, "us_per_element": 110.0}]}
    bench["bucket"] = {"bucket (S3 shards, shard cache)": {"requests": 4, "bytes": 40000, "images": 100, "shards": 4,
                                                         "shard_size": 25, "requests_per_image": 0.04,
                                                         "bytes_per_image": 400.0}}
    return bench


def test_every_loader_has_its_ceiling_and_share_on_the_page():
    bench = bench_with_ceilings()
    page = bench_page.render(bench, None, {"bench": "b.png", "ceilings": "benchmark/ceilings.png"})
    speed = row(page, "PyDataset, 2 threads")  # the speed table: first batch, steady, whole run, share
    assert speed[1:5] == ["0.25", "1,300", "1,234", "81.2 %"]
    for loader, share in bench["ceiling_share"].items():
        cells = [line for line in page.splitlines() if line.startswith(f"| {loader} |")]
        against = next(c for c in cells if f"`{share['ceiling']}`" in c)  # the ceiling table names its ceiling
        assert f"{share['ceiling_images_per_second']:,.0f}" in against and _pct(share["share"]) in against
    assert "`memory_copy`" in page and "400,000" in page and "](benchmark/ceilings.png)" in page
    assert "Lesson 07's cache reads 15.0 % of a memory copy" in page  # the relation, generated from the run
    assert "PyDataset, 2 threads: 81 % of 2 cores' decoding" in page
    assert "2 threads of the decoder alone reach 94 %" in page
    assert "with cache (.npy memmap) 93 %" in page
    assert row(page, "bucket (S3 shards, shard cache)")[3:5] == ["0.0400", "400"]
    assert "10.0x what the same image costs" in page  # Grain: record reads against whole-batch reads
    assert "puts `MapMapDataset` first, with 100 %" in page  # Grain's own stage timing, its largest stage
    assert "runs at 10.0x the record-by-record pipeline" in page
    assert "in 16 threads by default, on 3 cores: with one reader thread the same pipeline runs at 1.5x" in page


def _pct(share: float) -> str:
    return f"{100 * share:.1f} %"


def test_a_loader_without_a_ceiling_says_so_and_an_old_json_renders_as_before():
    bench = bench_with_ceilings()
    bench["images_per_second"]["a loader of tomorrow"] = 10.0
    page = bench_page.render(bench)
    assert row(page, "a loader of tomorrow")[4] == bench_page.NOT_MEASURED
    old = bench_page.render(small_bench())  # a run before ceilings: no ceiling section, the old speed table
    assert "against its ceiling" not in old and row(old, "PyDataset, 2 threads")[1:] == ["1,234", ""]
    assert bench_page.plot_paths(bench_page.DEFAULT_OUT, None, small_bench()) == {"bench": "benchmark/bench.png"}
    assert bench_page.plot_paths(bench_page.DEFAULT_OUT, None, bench)["ceilings"] == "benchmark/ceilings.png"


def with_peers() -> dict:
    """small_bench as the benchmark writes it now: Keras' loader and lesson 12's bucket in the memory and waiting
    tables, each process reading as many images, the cross-check trained with lesson 06's model."""
    bench = small_bench()
    bench["settings"]["memory_images_read"] = 500
    bucket = {"shards": 8, "cache_shards": 4, "downloads": 30, "bytes": 3_000_000, "hits": 2, "evicted": 26}
    bench["memory"] += [memory_row("Keras image_dataset_from_directory", 1, 402.0, 903.0),
                        memory_row("Keras image_dataset_from_directory", 5, 404.0, 905.0),
                        {**memory_row("bucket (S3 shards, shard cache)", 1, 420.0, 930.0), "bucket": bucket},
                        {**memory_row("bucket (S3 shards, shard cache)", 5, 421.0, 931.0),
                         "bucket": {**bucket, "shards": 40, "downloads": 20, "hits": 0}},
                        {**memory_row("cache (.npy memmap), training lesson 06's model", 1, 600.0, 1200.0),
                         "model": "lesson 06's CNN"},
                        {**memory_row("cache (.npy memmap), training lesson 06's model", 5, 601.0, 1201.0),
                         "model": "lesson 06's CNN"}]
    bench["memory_growth"].update({"Keras image_dataset_from_directory": 0.005, "bucket (S3 shards, shard cache)": 0.0})
    bench["wait_share"]["Keras image_dataset_from_directory"] = 0.33
    bench["wait_share_runs"]["Keras image_dataset_from_directory"] = {
        "median": 0.33, "min": 0.30, "max": 0.36, "wait_ms_per_step": 20.0, "compute_ms_per_step": 40.0,
        "skip_steps": 2}
    bench["wait_share_runs"]["cache (.npy memmap)"]["skip_steps"] = 2
    bench["wait_share_runs"]["PyDataset, 2 threads"]["skip_steps"] = 2
    return bench


def rows(page: str, first_cell: str) -> list[list[str]]:
    """The cells of every table row that starts with ``first_cell`` (speed, memory, waiting: in that order)."""
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in page.splitlines()
            if line.startswith(f"| {first_cell} |")]


def test_the_peers_have_their_rows_and_a_run_without_them_says_so():
    page = bench_page.render(with_peers())
    keras_memory, keras_wait = rows(page, "Keras image_dataset_from_directory")
    assert keras_memory[2:5] == ["402 / 903 MB", "404 / 905 MB", "+0.5 %"] and "shuffle buffer" in keras_memory[1]
    assert keras_wait[1:] == ["33 % (30 .. 36)", "20 ms", "40 ms"]
    (bucket,) = rows(page, "bucket (S3 shards, shard cache)")
    assert bucket[2:4] == ["420 / 930 MB", "421 / 931 MB"]
    assert "1x: 8 shards, 30 downloads (3 MB), 2 cache hits; 5x: 40 shards, 20 downloads (3 MB), 0 cache hits" in page
    assert "reads 500 images at every scale" in page and "after the first 2 steps" in page
    assert "*cache (.npy memmap), training lesson 06's model* trains lesson 06's CNN" in page
    for loader in ("Grain, 1 worker process", "Grain, 2 worker processes"):  # in neither table of this run
        assert [row[2 if len(row) > 4 else 1] for row in rows(page, loader)] == [bench_page.NOT_MEASURED] * 2
    old = bench_page.render(small_bench())  # a run from before the peers, and measured the old way
    assert [row[1] for row in rows(old, "Keras image_dataset_from_directory")] == [
        bench_page.MEMORY_LOADERS["Keras image_dataset_from_directory"], bench_page.NOT_MEASURED]
    assert rows(old, "bucket (S3 shards, shard cache)")[0][2] == bench_page.NOT_MEASURED
    assert "reads 500 images" not in old and "as many images as the largest scale's epoch" in old
    assert "timed whole" in old and "bucket loader's shard cache" not in old
