"""Lesson 10: shards, padding, the launcher (failures, hangs), and real jobs of two JAX processes on 127.0.0.1."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from seedlings_utils import train_job
from seedlings_utils.distributed import ShardDataset, process_shard
from seedlings_utils.exercises import image_number, tiny_image_folder
from seedlings_utils.jobs import launcher as processes
from seedlings_utils.jobs import worker
from seedlings_utils.jobs.launcher import Job, WorkerFailed, launch, read_problems
from tools.paths import NOTEBOOKS_DIR

pytestmark = pytest.mark.long_file(7)  # tests/conftest.py: long files start first

LESSON = NOTEBOOKS_DIR / "10_beyond_one_machine.ipynb"


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


def test_worker_command():
    command = processes.worker_command(data_dir="d", epochs=2, augment=True, workers=None, fail_process=False)
    assert command[1:] == ["-m", "seedlings_utils.jobs.worker", "--data-dir", "d", "--epochs", "2", "--augment"]


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


@pytest.mark.slow
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


@pytest.mark.slow
def test_a_failing_process_stops_the_others_and_says_which(tmp_path, monkeypatch):
    body = ("open(f'pid{pid}', 'w').write(str(os.getpid()))\n"
            "if pid == 1:\n    time.sleep(1); print('loss went nan, giving up'); sys.exit(3)\ntime.sleep(300)")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(WorkerFailed) as failure:
        launch(fake(body), 2, tmp_path / "logs", timeout=120, show="none")
    message = str(failure.value)
    # process 0 sleeps past the time limit: a launcher that waited for it would end with the time limit's message
    assert "time limit" not in message, "the failure must end the job at once, not at its time limit"
    assert "process 1 of 2 exited with code 3" in message and "loss went nan, giving up" in message
    assert "other processes were stopped" in message
    assert not alive(int((tmp_path / "pid0").read_text())), "process 0 must not outlive the job"


@pytest.mark.slow
def test_a_killed_process_is_reported_as_killed(tmp_path):
    body = "if pid == 0:\n    os.kill(os.getpid(), 9)\ntime.sleep(300)"
    with pytest.raises(WorkerFailed, match=r"process 0 of 2 was killed by signal 9"):
        launch(fake(body), 2, tmp_path, timeout=120, show="none")


@pytest.mark.slow
def test_a_hung_job_is_stopped_at_its_time_limit(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    body = "open(f'pid{pid}', 'w').write(str(os.getpid())); print('waiting for a peer', flush=True); time.sleep(300)"
    with pytest.raises(WorkerFailed, match=r"ran past its time limit \(timeout = 3 s\): processes \[0, 1\]"):
        launch(fake(body), 2, tmp_path / "logs", timeout=3, show="none")
    assert not any(alive(int((tmp_path / f"pid{k}").read_text())) for k in (0, 1)), "both were stopped"


@pytest.mark.slow
def test_a_timeout_names_the_setting_its_value_and_what_to_do(tmp_path):
    with pytest.raises(WorkerFailed) as failure:
        launch(fake("print('Epoch 1/5', flush=True); time.sleep(300)"), 1, tmp_path, timeout=1, show="none",
               timeout_name="JOB_TIMEOUT")
    message = str(failure.value)
    assert "JOB_TIMEOUT = 1 s" in message and "raise JOB_TIMEOUT" in message and "fewer epochs" in message
    assert "Epoch 1/5" in message, "the end of the log, to tell training from waiting"
    assert failure.value.timed_out and failure.value.returncode is None and not failure.value.planted


def test_run_job_passes_the_timeouts_name_on(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(processes, "launch", lambda command, count, run_dir, **kwargs: seen.update(kwargs))
    processes.run_job(tmp_path, tmp_path / "job", 1, timeout=7, timeout_name="JOB_TIMEOUT", show="none", epochs=1)
    assert seen["timeout"] == 7 and seen["timeout_name"] == "JOB_TIMEOUT"


def test_a_fresh_job_that_fails_leaves_the_last_runs_results_aside(tmp_path, monkeypatch):
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "model.keras").write_text("the last run's model")

    def fails(command, count, run_dir, **kwargs):
        raise WorkerFailed("planted for the test")

    monkeypatch.setattr(processes, "launch", fails)
    with pytest.raises(WorkerFailed):
        processes.run_job(tmp_path, tmp_path / "job", 1, show="none", epochs=1)
    assert (tmp_path / "job.previous" / "model.keras").read_text() == "the last run's model"


# ---- the crash that lesson 10 plants, told from real failures ----

PLANTED = "print(f'process {pid}: dying on purpose in epoch 2 (SIGKILL)', flush=True); os.kill(os.getpid(), 9)"


def failure_of(body: str, count: int, log_dir: Path, **options) -> WorkerFailed:
    """The WorkerFailed that launch raises for ``count`` stand-in processes running ``body``."""
    with pytest.raises(WorkerFailed) as failure:
        launch(fake(body), count, log_dir, timeout=options.pop("timeout", 60), show="none", **options)
    return failure.value


@pytest.mark.slow
def test_the_planted_crash_is_recognised_even_when_a_peer_stopped_too(tmp_path):
    """Process 1 dies as planted; process 0 stops with an error of its own (a peer that vanished): with both gone by
    the time the launcher looks, the killed one is the cause it reports, and the crash is the planted one."""
    body = ("if pid == 0:\n    time.sleep(0.2); print('Gloo all-reduce failed: connection reset'); sys.exit(1)\n"
            "time.sleep(0.6)\n" + PLANTED)
    failure = failure_of(body, 2, tmp_path, poll=5)  # the launcher looks at once (nothing yet), then after 5 s
    assert (failure.process, failure.returncode, failure.timed_out) == (1, -9, False)
    assert failure.planted and failure.log == tmp_path / "process_1.log"
    message = str(failure)
    assert message.startswith("process 1 of 2 was killed by signal 9 (SIGKILL); process 0 exited with code 1 too")
    assert "dying on purpose in epoch 2" in message


ERROR = "print('ValueError: the global batch (32) must split evenly over 3 processes', flush=True); sys.exit(1)"


REAL_FAILURES = {  # case: (what every process runs, how many, what the message says)
    "an error in every process": (ERROR, 3, "process 0 of 3 exited with code 1"),
    "killed without the planted line (the OOM killer, say)": ("os.kill(os.getpid(), 9)", 1, "killed by signal 9"),
    "the planted line, then an error": (PLANTED.replace("os.kill(os.getpid(), 9)", "sys.exit(1)"), 1, "code 1"),
    "another process's planted line": (PLANTED.replace("process {pid}", "process {pid + 1}"), 1, "signal 9"),
    "a timeout": ("time.sleep(300)", 2, "ran past its time limit"),
}


@pytest.mark.parametrize("case", sorted(REAL_FAILURES))
@pytest.mark.slow
def test_real_failures_are_not_the_planted_crash(tmp_path, case):
    body, count, expected = REAL_FAILURES[case]
    failure = failure_of(body, count, tmp_path, timeout=2 if case == "a timeout" else 60)
    assert expected in str(failure) and not failure.planted


def crash_demo_cell() -> str:
    cells = json.loads((NOTEBOOKS_DIR / "10_beyond_one_machine.ipynb")
                       .read_text(encoding="utf-8"))["cells"]
    return "".join(next(c for c in cells if c.get("id") == "10-21")["source"])


def run_crash_demo(tmp_path: Path, first_run: WorkerFailed) -> tuple[dict, list[dict]]:
    """Lesson 10's crash-demo cell with NUM_PROCESSES = 3, its first job ending in ``first_run``."""
    calls = []

    class Restarted:
        reads: list = []

        def weights_identical(self):
            return True

    def run_job(data_dir, run_dir, count, **kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise first_run
        (run_dir / "checkpoint.json").write_text('{"epochs_done": 2}')
        return Restarted()

    stub = type("jobs", (), {"run_job": staticmethod(run_job), "WorkerFailed": WorkerFailed,
                                    "read_problems": staticmethod(lambda reads, names: [])})
    (tmp_path / "runs" / "crash_demo").mkdir(parents=True)
    (tmp_path / "runs" / "crash_demo" / "checkpoint.json").write_text('{"epochs_done": 1}')
    namespace = dict(jobs=stub, json=json, runs=tmp_path / "runs", DATA_DIR=tmp_path, NUM_PROCESSES=3,
                     GOING_DEEPER=True, DISTRIBUTED_EPOCHS=2, JOB_TIMEOUT=60, options={}, X_train=[])
    exec(crash_demo_cell(), namespace)
    return namespace, calls


def test_the_crash_demo_goes_on_after_the_planted_crash_only(tmp_path, capsys):
    planted = failure_of("if pid == 2:\n    " + PLANTED + "\ntime.sleep(300)", 3, tmp_path / "planted")
    namespace, calls = run_crash_demo(tmp_path, planted)
    assert "resumed" in namespace and calls[0]["fail_process"] == 2
    assert calls[0]["timeout_name"] == calls[1]["timeout_name"] == "JOB_TIMEOUT" and calls[1]["fresh"] is False
    out = capsys.readouterr().out
    assert "WorkerFailed: process 2 of 3 was killed by signal 9" in out and "resumed: 2 epochs done" in out
    assert calls[0]["script"] == calls[1]["script"] == tmp_path / "train_job.py", "both runs run the lesson's script"

    error = failure_of(ERROR, 3, tmp_path / "error")
    timeout = failure_of("time.sleep(300)", 1, tmp_path / "hung", timeout=1, timeout_name="JOB_TIMEOUT")
    for name, real, says in (("error", error, "must split evenly over 3 processes"),
                             ("timeout", timeout, "JOB_TIMEOUT = 1 s")):
        with pytest.raises(WorkerFailed) as raised:
            run_crash_demo(tmp_path / name, real)
        assert raised.value is real and says in str(raised.value), f"the demo must re-raise the {name}, not go on"


def test_the_going_deeper_jobs_start_nothing_unless_asked(tmp_path, capsys):
    """GOING_DEEPER = False: the crash demo and the one-process job say what they would run and start no process."""
    cells = {c.get("id"): "".join(c["source"]) for c in json.loads(LESSON.read_text(encoding="utf-8"))["cells"]}

    def refuse(*args, **kwargs):
        raise AssertionError("a job was started with GOING_DEEPER = False")

    stub = type("jobs", (), {"run_job": staticmethod(refuse), "tensorflow_attempt": staticmethod(refuse),
                                    "TF_ATTEMPT_RECORDED": processes.TF_ATTEMPT_RECORDED})
    for cell in ("10-21", "10-e15", "10-e17"):
        exec(cells[cell], dict(jobs=stub, runs=tmp_path, GOING_DEEPER=False, RUN_TF_ATTEMPT=True,
                               NUM_PROCESSES=2, DISTRIBUTED_EPOCHS=2))
        assert "GOING_DEEPER = True" in capsys.readouterr().out, cell


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
    with pytest.raises(WorkerFailed) as failure:
        processes.run_job(tiny_data_dir, run_dir, 2, timeout=300, show="none", fail_process=1, fail_in_epoch=1,
                            **TINY)
    assert "process 1 of 2 was killed by signal 9" in str(failure.value)
    assert "dying on purpose in epoch 2" in str(failure.value) and failure.value.planted
    assert json.loads((run_dir / "checkpoint.json").read_text()) == {"epochs_done": 1}
    job = processes.run_job(tiny_data_dir, run_dir, 2, timeout=300, show="none", fresh=False, **TINY)
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
              "sys.argv = ['worker'] + sys.argv[1:]\n"
              "runpy.run_module('seedlings_utils.jobs.worker', run_name='__main__')")
    command = [PY, "-c", script] + processes.worker_command(
        data_dir=tiny_data_dir, out_dir=tmp_path / "job", **TINY)[3:]
    with pytest.raises(WorkerFailed, match=r"ran past its time limit \(timeout = 20 s\)"):
        launch(command, 2, tmp_path / "job", timeout=20, show="none")


# ---- lesson 10's script: what the processes run is the notebook's cell ----


def lesson_script() -> str:
    """The training script of lesson 10: its cell tagged first-version, without the ``%%writefile`` line."""
    cells = json.loads(LESSON.read_text())["cells"]
    cell = next(c for c in cells if "first-version" in c["metadata"].get("tags", []))
    first, _, body = "".join(cell["source"]).partition("\n")
    assert first.startswith("%%writefile ") and first.endswith("/train_job.py"), first
    return body


def test_the_packages_training_script_is_generated_from_the_lessons_cell():
    """What the benchmark and the tests run without ``--script`` is seedlings_utils.train_job, written by
    ``tools.export`` from the cell that writes train_job.py (not a hand-kept twin): the same code, and the worker's
    default."""
    from tools import export

    text = Path(train_job.__file__).read_text(encoding="utf-8")
    assert export.is_generated(text) and not export.edited_on_package_side(text)
    body = lesson_script()
    assert body.startswith("#| export train_job\n")
    code = body.split("\n", 1)[1].strip("\n")
    assert code.split("\nfrom pathlib import Path\n", 1)[1] in text, "the module holds the cell's code"
    assert worker.train_process is train_job.train_process
    assert "# notebooks/10_beyond_one_machine.ipynb, cell 10-e03" in text


def test_an_edit_of_the_generated_training_script_is_refused_and_names_the_cell(tmp_path):
    """As for every generated module: an edit on the package side is refused, naming lesson 10's cell."""
    from tools import export

    package = tmp_path / "seedlings_utils"
    package.mkdir()
    written = export.export(NOTEBOOKS_DIR, package)
    assert package / "train_job.py" in written
    module = package / "train_job.py"
    module.write_text(module.read_text().replace("verbose=2 if process_id == 0 else 0", "verbose=0"))
    assert "-" in export.differences(NOTEBOOKS_DIR, package)
    with pytest.raises(export.PackageSideEdit, match=r"train_job\.py was edited on the package side.*"
                       r"notebooks/10_beyond_one_machine\.ipynb, cell 10-e03"):
        export.export(NOTEBOOKS_DIR, package)


def test_the_generated_training_script_runs_as_the_lessons_file(tmp_path):
    """The cell's file (absolute imports from seedlings_utils) and the generated module define the same function."""
    script = tmp_path / "train_job.py"
    script.write_text(lesson_script())
    from_file = worker.script_train_process(script)
    assert from_file.__code__.co_code == train_job.train_process.__code__.co_code


def test_script_train_process_loads_the_files_function(tmp_path):
    script = tmp_path / "train_job.py"
    script.write_text("SEEN = []\n\ndef train_process(*args, **kwargs):\n    return 'from the file', args\n")
    assert worker.script_train_process(script)(1, 2) == ("from the file", (1, 2))
    script.write_text("def train(*args):\n    pass\n")
    with pytest.raises(SystemExit, match="defines no function train_process"):
        worker.script_train_process(script)


@pytest.mark.slow
def test_the_processes_run_the_notebooks_training_function_as_edited(tiny_data_dir, tmp_path):
    """Edit lesson 10's training function as a learner would (a marker after training, a tenth of the learning rate),
    write the cell's file, run it with two processes: both ran the edited code."""
    script = lesson_script()
    fit_end = "    return model, history, train"
    assert script.count(fit_end) == 1 and script.count("learning_rate=learning_rate, seed=seed)") == 1
    edited = script.replace("learning_rate=learning_rate, seed=seed)", "learning_rate=learning_rate / 10, seed=seed)")
    edited = edited.replace(fit_end, "    lr = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))\n"
                            "    (out_dir / f'edited_{process_id}.json').write_text(json.dumps(\n"
                            "        {'epochs': len(history.history['loss']), 'learning_rate': lr}))\n" + fit_end)
    (tmp_path / "train_job.py").write_text("import json\n" + edited)  # the marker is written as JSON
    run_dir = tmp_path / "job"
    job = processes.run_job(tiny_data_dir, run_dir, 2, timeout=300, show="none", script=tmp_path / "train_job.py",
                              **{**TINY, "epochs": 1, "learning_rate": 0.01})
    for p in range(2):
        marker = json.loads((run_dir / f"edited_{p}.json").read_text())
        assert marker["epochs"] == 1 and marker["learning_rate"] == pytest.approx(0.001), marker
    assert job.weights_identical()


@pytest.mark.slow
def test_the_lessons_script_trains_on_a_learners_own_two_class_folder(tmp_path):
    """A learner's folder (2 classes, JPEGs of mixed sizes, no test/): the script's model has 2 outputs, the two
    processes' shards differ in size (an odd count), and they still read every image once, in step."""
    from seedlings_utils.image_scan import flatten_images
    from seedlings_utils.index import build_index, save_index
    from seedlings_utils.split import save_split, split_train_val

    from .helpers import make_photo_folder

    folder = make_photo_folder(tmp_path / "mine", classes=("cats", "dogs"), per_class=14, val_per_class=0)
    data_dir = tmp_path / "data"
    flatten_images(folder / "train", data_dir / "all_images", progress=False)
    filenames, labels, classes = build_index(data_dir / "all_images")
    save_index(data_dir, filenames, labels, classes)
    split = split_train_val(filenames, labels, 0.25, 3)
    save_split(data_dir, *split)
    x_train = split[0]
    assert len(classes) == 2 and len(x_train) % 2 == 1, "an odd count: shards of unequal size"
    (tmp_path / "train_job.py").write_text(lesson_script())
    job = processes.run_job(data_dir, tmp_path / "job", 2, timeout=300, show="none", script=tmp_path / "train_job.py",
                            **TINY)
    assert job.weights_identical() and read_problems(job.reads, x_train) == []
    assert sorted(s["shard_images"] for s in job.summaries) == [len(x_train) // 2, len(x_train) // 2 + 1]
    assert job.final_weights(0)[-1].shape == (2,), "the last layer has one output per class of the data"


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
    from tools import bench_distributed

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
