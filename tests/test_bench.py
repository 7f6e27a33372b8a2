import json
import os

import numpy as np
import pytest

from seedlings_utils import bench
from seedlings_utils.profiling import LoaderTrace, peak_rss_mb, plot_traces, rss_mb, trace_loader


def test_trace_loader_counts_images_and_memory():
    batches = [np.zeros((4, 2)), (np.zeros((3, 2)), np.zeros(3))]
    trace = trace_loader("list", lambda: iter(batches))
    assert trace.images == [0, 4, 7] and len(trace.seconds) == len(trace.rss_mb) == 3
    assert trace.seconds == sorted(trace.seconds) and trace.images_per_second > 0
    assert 0 < rss_mb() <= peak_rss_mb()
    fig = plot_traces([trace, LoaderTrace("other", [0, 1], [0, 10], [50, 60])])
    assert len(fig.axes[0].lines) == 2 and fig.axes[1].get_ylim()[0] == 0


def test_replicate_makes_k_times_the_files_as_links(tmp_path):
    (tmp_path / "src").mkdir()
    for name in ("a.png", "b.png"):
        (tmp_path / "src" / name).write_bytes(b"x")
    folder, names, labels = bench.replicate(tmp_path / "src", np.array(["a.png", "b.png"]), np.array([0, 1]), 3,
                                            tmp_path / "x3")
    assert len(names) == 6 and len(set(names)) == 6 and labels.tolist() == [0, 1] * 3
    assert (folder / names[4]).samefile(tmp_path / "src" / "a.png")
    again = bench.replicate(tmp_path / "src", np.array(["a.png", "b.png"]), np.array([0, 1]), 3, tmp_path / "x3")
    assert (again[1] == names).all() and len(os.listdir(folder)) == 6


def test_targets_say_met_or_missed():
    speeds = {"2019 recipe (skimage)": 100.0, "PyDataset, 1 worker": 500.0, "PyDataset, 2 threads": 850.0,
              "cache (.npy memmap)": 1500.0, "tf.data": 1000.0}
    memory = [{"factor": 1, "peak_rss_mb": 1000.0}, {"factor": 50, "peak_rss_mb": 1040.0}]
    targets = bench.evaluate_targets(speeds, memory, {"cache (.npy memmap)": 0.08})
    assert targets["pydataset_vs_tfdata"]["measured"] == pytest.approx(0.85)
    assert targets["pydataset_vs_tfdata"]["met"] is False
    assert targets["cache_vs_2019"]["measured"] == pytest.approx(15) and targets["cache_vs_2019"]["met"] is False
    assert targets["memory_growth_50x"]["measured"] == pytest.approx(0.04) and targets["memory_growth_50x"]["met"]
    assert "50x" in targets["memory_growth_50x"]["what"]
    assert targets["cache_wait_share"]["met"] is False
    assert bench.evaluate_targets(speeds, memory[:1], {})["memory_growth_50x"]["met"] is None


def test_quick_bench_writes_its_figures(tmp_path, capsys):
    assert bench.main(["--quick", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "bench.json").read_text())
    assert set(results["images_per_second"]) == {
        "2019 recipe (skimage)", "PyDataset, 1 worker", "PyDataset, 2 threads", "PyDataset, 2 processes",
        "cache (.npy memmap)", "tf.data", "tf.data + cache file"}
    assert all(v > 0 for v in results["images_per_second"].values())
    assert [m["factor"] for m in results["memory"]] == [1, 2, 5]
    assert all(m["peak_rss_mb"] >= m["peak_rss_mb_before_fit"] > 0 for m in results["memory"])
    assert [m["images"] for m in results["memory"]] == [results["settings"]["base_images"] * f for f in (1, 2, 5)]
    assert set(results["wait_share"]) == {"PyDataset, 2 threads", "cache (.npy memmap)", "tf.data"}
    assert all(0 <= v <= 1 for v in results["wait_share"].values())
    assert all(t["measured"] is not None and t["met"] in (True, False) for t in results["targets"].values())
    assert (tmp_path / "bench.png").stat().st_size > 10_000
    out = capsys.readouterr().out
    assert "Targets:" in out and "images/s" in out and str(tmp_path / "bench.json") in out
