"""The ceilings' arithmetic: start-up apart from steady speed, and each loader's share of its ceiling (cheap)."""

import math

import numpy as np
import pytest

from tools import bench_ceilings


def test_split_trace_keeps_the_first_batches_out_of_the_steady_speed():
    trace = {"seconds": [0.0, 5.0, 5.1, 5.2, 5.3], "images": [0, 32, 64, 96, 128]}  # 5 s to start, then 320/s
    split = bench_ceilings.split_trace(trace, warmup_batches=1)
    assert split["first_batch_seconds"] == 5.0 and split["steady_batches"] == 3
    assert split["steady_images_per_second"] == pytest.approx(320.0)
    assert bench_ceilings.split_trace(trace, 2)["steady_batches"] == 2
    assert bench_ceilings.split_trace(trace, 99)["steady_batches"] == 1  # at least one batch stays steady
    one = bench_ceilings.split_trace({"seconds": [0.0, 1.0], "images": [0, 32]}, 1)
    assert one["first_batch_seconds"] == 1.0 and math.isnan(one["steady_images_per_second"])


def test_each_loader_is_compared_with_its_own_ceiling():
    ceilings = {"pil_decode": {"images_per_second": 1000.0}, "memory_copy": {"images_per_second": 1e5},
                "tf_decode": None}
    steady = {"PyDataset, 2 threads": 800.0, "cache (.npy memmap)": 5e4, "tf.data": 700.0, "unknown": 1.0}
    shares = bench_ceilings.ceiling_shares(steady, ceilings)
    assert set(shares) == {"PyDataset, 2 threads", "cache (.npy memmap)"}  # no ceiling measured: left out
    assert shares["PyDataset, 2 threads"]["share"] == pytest.approx(0.8)
    assert shares["cache (.npy memmap)"]["ceiling"] == "memory_copy" and shares["cache (.npy memmap)"]["share"] == 0.5


def test_training_ceiling_is_the_free_inputs_step_time():
    runs = {"cache (.npy memmap)": {"compute_ms_per_step": 40.0, "wait_ms_per_step": 10.0},
            "tf.data": {"compute_ms_per_step": 40.0, "wait_ms_per_step": 40.0}}
    training = bench_ceilings.training_ceiling(runs, batch_size=32)
    assert training["images_per_second"] == pytest.approx(800.0)
    assert training["loaders"]["cache (.npy memmap)"]["share"] == pytest.approx(0.8)
    assert training["loaders"]["tf.data"]["images_per_second"] == pytest.approx(400.0)
    assert bench_ceilings.training_ceiling({}, 32) is None


def test_memory_ceiling_copies_the_bytes_and_counts_images(tmp_path):
    images = np.random.default_rng(0).integers(0, 255, (64, 8, 8, 3), dtype=np.uint8)
    memory = bench_ceilings.memory_ceiling(images, repeats=2)
    assert memory["bytes_per_image"] == 192 and memory["images_per_second"] > 0
    files = [tmp_path / f"{i}.bin" for i in range(2)]
    for f in files:
        f.write_bytes(images.tobytes())
    disk = bench_ceilings.disk_read(files, image_count=128)
    assert disk["bytes"] == 2 * images.nbytes and disk["bytes_per_image"] == 192
    assert isinstance(disk["cold_dropped"], bool) and disk["warm_images_per_second"] > 0
