"""Lesson 10: shards, padding, the launcher (failures, hangs), and real jobs of two JAX processes on 127.0.0.1."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from seedlings_utils import distributed
from seedlings_utils.distributed import Job, ShardDataset, WorkerFailed, launch, process_shard, read_problems
from seedlings_utils.exercises import image_number, tiny_image_folder


@pytest.mark.parametrize("count, processes", [(10, 2), (11, 2), (10, 3), (9, 4), (3, 4), (1, 1)])
def test_shards_cover_every_image_once_and_differ_by_at_most_one(count, processes):
    names, labels = np.array([f"n{i}" for i in range(count)]), np.arange(count) * 10
    shards = [process_shard(names, labels, p, processes) for p in range(processes)]
    together = [n for shard_names, _ in shards for n in shard_names]
    assert sorted(together) == sorted(names.tolist())
    sizes = [len(shard_names) for shard_names, _ in shards]
    assert max(sizes) - min(sizes) <= 1
    for shard_names, shard_labels in shards:
        assert [int(n[1:]) * 10 for n in shard_names] == shard_labels.tolist()


def read_epoch(dataset: ShardDataset) -> list:
    """Every batch of one epoch, the way fit reads them."""
    return [dataset[i] for i in range(len(dataset))]


@pytest.mark.parametrize("count", [13, 12, 9])
def test_every_process_gets_the_same_batches_and_blanks_weigh_nothing(tmp_path, count):
    names = np.array(tiny_image_folder(tmp_path, count=count))
    labels = np.arange(count) % 3
    shards = [ShardDataset(tmp_path, names, labels, p, 2, batch_size=4, image_size=8, seed=1) for p in range(2)]
    assert len(shards[0]) == len(shards[1]) == int(np.ceil(np.ceil(count / 2) / 4))
    seen = []
    for shard in shards:
        for images, batch_labels, weights in read_epoch(shard):
            assert images.shape == (4, 8, 8, 3) and images.dtype == np.float32
            assert batch_labels.shape == weights.shape == (4,)
            for image, label, weight in zip(images, batch_labels, weights, strict=True):
                if weight == 1:
                    seen.append(image_number(image))
                    assert label == image_number(image) % 3, "a label left its image"
                else:
                    assert weight == 0 and not image.any(), "padding must be blank with weight 0"
        assert sorted(shard.names_read) == sorted(shard.filenames.tolist()), "names_read lists what was read"
    assert sorted(seen) == list(range(count)), "together the processes read every image exactly once"
    shards[0].on_epoch_end()
    assert sorted(image_number(im) for b in read_epoch(shards[0]) for im, w in zip(b[0], b[2], strict=True)
                  if w) == sorted(range(0, count, 2)), "a new epoch reads the same shard again, reshuffled"


def test_read_problems_names_each_mistake():
    train = [f"i{k}" for k in range(6)]
    good = [{0: ["i0", "i2", "i4"], 1: ["i4", "i0", "i2"]}, {0: ["i1", "i3", "i5"], 1: ["i5", "i3", "i1"]}]
    assert read_problems(good, train) == []
    shared = [{0: ["i0", "i1", "i2"]}, {0: ["i1", "i3", "i4", "i5"]}]
    assert any("read by more than one process" in p and "i1" in p for p in read_problems(shared, train))
    twice = [{0: ["i0", "i0", "i2"]}, {0: ["i1", "i3", "i4", "i5"]}]
    assert any("read more than once" in p for p in read_problems(twice, train))
    assert not any("more than one process" in p for p in read_problems(twice, train))
    missing = [{0: ["i0", "i2"]}, {0: ["i1", "i3", "i5"]}]
    assert any("never read" in p and "i4" in p for p in read_problems(missing, train))
    foreign = [{0: ["i0", "i2", "i4", "x"]}, {0: ["i1", "i3", "i5"]}]
    assert any("not in the training set" in p for p in read_problems(foreign, train))
    unlogged = [{0: ["i0", "i2", "i4"], 1: ["i0", "i2", "i4"]}, {0: ["i1", "i3", "i5"]}]
    assert any("epoch 2: no record from process(es) [1]" in p for p in read_problems(unlogged, train))


def test_worker_command_and_keras_check(monkeypatch):
    command = distributed.worker_command(data_dir="d", epochs=2, augment=True, workers=None, fail_process=False)
    assert command[1:] == ["-m", "seedlings_utils.distributed", "--data-dir", "d", "--epochs", "2", "--augment"]
    distributed.check_keras_for_processes(2)  # the pinned Keras can
    monkeypatch.setattr(distributed.keras, "__version__", "3.10.0")
    distributed.check_keras_for_processes(1)
    with pytest.raises(RuntimeError, match="needs Keras 3.11 or newer; this is Keras 3.10.0"):
        distributed.check_keras_for_processes(2)


# ---- the launcher, with stand-in processes (no JAX: seconds) ----

PY = sys.executable


def fake(body: str) -> list[str]:
    return [PY, "-c", "import os, sys, time\npid = int(os.environ['KERAS_DISTRIBUTION_PROCESS_ID'])\n" + body]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_launcher_gives_each_process_its_variables_and_a_log(tmp_path, capsys):
    body = ("print(pid, os.environ['KERAS_DISTRIBUTION_NUM_PROCESSES'], os.environ['KERAS_DISTRIBUTION_JOB_ADDRESSES'],"
            " os.environ['KERAS_BACKEND'], os.environ['JAX_PLATFORMS'])")
    logs = launch(fake(body), 3, tmp_path, timeout=60)
    lines = [log.read_text().split() for log in logs]
    assert [line[0] for line in lines] == ["0", "1", "2"] and {line[1] for line in lines} == {"3"}
    assert len({line[2] for line in lines}) == 1 and lines[0][2].startswith("127.0.0.1:")
    assert {line[3] for line in lines} == {"jax"} and {line[4] for line in lines} == {"cpu"}
    out = capsys.readouterr().out
    assert "[0] 0 3 127.0.0.1:" in out and "[2] 2 3" in out, "log lines are shown as they come, prefixed"


def test_a_failing_process_stops_the_others_and_says_which(tmp_path, monkeypatch):
    body = ("open(f'pid{pid}', 'w').write(str(os.getpid()))\n"
            "if pid == 1:\n    time.sleep(1); print('loss went nan, giving up'); sys.exit(3)\ntime.sleep(300)")
    start = time.monotonic()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(WorkerFailed) as failure:
        launch(fake(body), 2, tmp_path / "logs", timeout=120, show="none")
    assert time.monotonic() - start < 30, "the failure must end the job at once, not at its time limit"
    message = str(failure.value)
    assert "process 1 of 2 exited with code 3" in message and "loss went nan, giving up" in message
    assert "other processes were stopped" in message
    assert not alive(int((tmp_path / "pid0").read_text())), "process 0 must not outlive the job"


def test_a_killed_process_is_reported_as_killed(tmp_path):
    body = "if pid == 0:\n    os.kill(os.getpid(), 9)\ntime.sleep(300)"
    with pytest.raises(WorkerFailed, match=r"process 0 of 2 was killed by signal 9"):
        launch(fake(body), 2, tmp_path, timeout=120, show="none")


def test_a_hung_job_is_stopped_at_its_time_limit(tmp_path):
    start = time.monotonic()
    with pytest.raises(WorkerFailed, match=r"ran past its time limit \(3 s\): processes \[0, 1\]"):
        launch(fake("print('waiting for a peer'); time.sleep(300)"), 2, tmp_path, timeout=3, show="none")
    assert time.monotonic() - start < 15


# ---- real jobs: two JAX processes on 127.0.0.1, a tiny data set and model ----


@pytest.fixture
def tiny_data_dir(indexed, tmp_path) -> Path:
    """A DATA_DIR as lessons 02-04 leave it: the conftest's 12 tiny images of 3 species, 9 for training."""
    from seedlings_utils.index import save_index
    from seedlings_utils.split import save_split, split_train_val

    all_images, filenames, labels = indexed
    data_dir = all_images.parent
    save_index(data_dir, filenames, labels, ["Charlock", "Common wheat", "Maize"])
    save_split(data_dir, *split_train_val(filenames, labels, 0.25, 3))
    return data_dir


TINY = dict(epochs=2, global_batch=4, image_size=16, base_filters=4, seed=3)


@pytest.mark.slow
def test_a_killed_worker_fails_the_job_clearly_and_it_resumes_in_step(tiny_data_dir, tmp_path):
    """Two real processes; process 1 dies in epoch 2; the restarted job ends with identical weights and every
    image read once per epoch (9 training images: shards of 5 and 4, so process 1 pads)."""
    from seedlings_utils.split import load_split

    run_dir = tmp_path / "job"
    start = time.monotonic()
    with pytest.raises(WorkerFailed) as failure:
        distributed.run_job(tiny_data_dir, run_dir, 2, timeout=300, show="none", fail_process=1, fail_in_epoch=1,
                            **TINY)
    assert time.monotonic() - start < 300
    assert "process 1 of 2 was killed by signal 9" in str(failure.value)
    assert "dying on purpose in epoch 2" in str(failure.value)
    assert json.loads((run_dir / "checkpoint.json").read_text()) == {"epochs_done": 1}
    job = distributed.run_job(tiny_data_dir, run_dir, 2, timeout=300, show="none", fresh=False, **TINY)
    assert "Epoch 2/2" in (run_dir / "process_0.log").read_text() and "Epoch 1/2" not in (
        run_dir / "process_0.log").read_text(), "the restarted job goes on from epoch 2"
    x_train = load_split(tiny_data_dir)[0]
    assert len(x_train) == 9
    assert job.weights_identical()
    assert read_problems(job.reads, x_train) == [] and sorted(job.reads[0]) == [0, 1]
    assert [len(job.reads[p][1]) for p in range(2)] == [5, 4]
    assert job.losses()[0] == job.losses()[1] and len(job.losses()[0]) == 2
    assert [s["batches_per_epoch"] for s in job.summaries] == [3, 3]
    assert json.loads((run_dir / "checkpoint.json").read_text()) == {"epochs_done": 2}
    assert not list(run_dir.glob("*tmp*")), "no half-written checkpoint left"
    assert job.images_per_second(TINY["global_batch"]) > 0


@pytest.mark.slow
def test_a_process_waiting_for_a_peer_that_never_comes_is_stopped(tiny_data_dir, tmp_path):
    """Process 0 is a real worker; process 1 never starts training: process 0 waits in the job's start-up."""
    script = ("import os, runpy, sys, time\n"
              "if os.environ['KERAS_DISTRIBUTION_PROCESS_ID'] == '1':\n    time.sleep(300)\n"
              "sys.argv = ['distributed'] + sys.argv[1:]\n"
              "runpy.run_module('seedlings_utils.distributed', run_name='__main__')")
    command = [PY, "-c", script] + distributed.worker_command(
        data_dir=tiny_data_dir, out_dir=tmp_path / "job", **TINY)[3:]
    start = time.monotonic()
    with pytest.raises(WorkerFailed, match=r"ran past its time limit \(20 s\)"):
        launch(command, 2, tmp_path / "job", timeout=20, show="none")
    assert time.monotonic() - start < 40


def test_job_reads_back_a_restarted_jobs_records(tmp_path):
    for p in range(2):
        lines = [{"epoch": 0, "seconds": 9, "steps": 3, "seconds_after_first_step": 2, "loss": 2.0},
                 {"epoch": 1, "seconds": 9, "steps": 3, "seconds_after_first_step": 2, "loss": 1.5},
                 {"epoch": 1, "seconds": 8, "steps": 3, "seconds_after_first_step": 2, "loss": 1.0}]
        (tmp_path / f"epochs_{p}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
        np.savez(tmp_path / f"weights_{p}.npz", np.ones(3), np.zeros((2, 2)) + p)
    job = Job.read(tmp_path, 2)
    assert job.losses() == [[2.0, 1.0], [2.0, 1.0]], "a re-run epoch counts once, with its last record"
    assert job.images_per_second(4) == pytest.approx(2 * 2 * 4 / 4)
    assert not job.weights_identical()


def test_benchmark_runs_every_job_and_reports_memory_growth_per_process_count(tmp_path, monkeypatch):
    """``make bench``'s lesson 10 part, with a fake job: the data at each scale, one job per process count."""
    from seedlings_utils import bench_distributed

    started = []

    class FakeJob:
        def __init__(self, data_dir, count, scale):
            self.count, self.scale = count, scale
            self.summaries = [{"peak_rss_mb": 500.0 * (1.02 if scale > 1 else 1) + p, "startup_peak_rss_mb": 480.0}
                              for p in range(count)]

        def images_per_second(self, global_batch):
            return 100.0 / self.count

        def weights_identical(self):
            return True

    def fake_run_job(data_dir, run_dir, count, **options):
        scale = 1 if "-x1-" in Path(run_dir).name else 3
        started.append((scale, count, options["epochs"], len(np.load(Path(data_dir) / "X_train_filenames.npy"))))
        return FakeJob(data_dir, count, scale)

    monkeypatch.setattr(bench_distributed, "run_job", fake_run_job)
    results = bench_distributed.run(tmp_path, base_images=72, image_size=8, global_batch=4, base_filters=2, epochs=2,
                                    scales=(1, 3))
    base = started[0][3]
    assert started == [(1, 1, 2, base), (1, 2, 2, base), (3, 1, 1, 3 * base), (3, 2, 1, 3 * base)]
    assert results["memory_growth"] == pytest.approx({"1": 510 / 500 - 1, "2": 511 / 501 - 1})
    assert json.loads((tmp_path / "distributed.json").read_text())["jobs"][1]["images_per_second"] == 50.0
    assert (tmp_path / "distributed.png").stat().st_size > 5_000
    assert "| 2 | " in bench_distributed.table(results) and "3x" in bench_distributed.table(results)
