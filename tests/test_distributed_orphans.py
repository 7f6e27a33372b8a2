"""Lesson 10: no process started by ``launch()`` outlives its launcher, even when the launcher is killed (``kill -9``).

A launcher process (the stand-in for a notebook's kernel) runs the real :func:`launch`; the test SIGKILLs it and
checks, by process id, that every process it started is gone within seconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seedlings_utils.jobs import launcher as processes
from seedlings_utils.jobs import worker

from .test_distributed import TINY
from .test_distributed import tiny_data_dir as tiny_data_dir_fixture

tiny_data_dir = tiny_data_dir_fixture  # lesson 10's tiny DATA_DIR, shared with test_distributed.py

PY = sys.executable
REPO = Path(__file__).resolve().parents[1]

#: Run by the test as the launcher: the real launch() of ``argv[1]`` (a JSON command) as ``argv[2]`` processes.
LAUNCHER = """
import json, sys
from seedlings_utils.jobs.launcher import launch
launch(json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3], timeout=300, show="none", compile_cache=None)
"""

#: Every process writes its pid first, protects itself the way the course's processes do (process 1 with the
#: kernel's signal alone, process 2 with the watchdog alone, as where there is no prctl; process 3 only after its
#: launcher was killed), says it is ready, then would work for five minutes.
WORKER = """
import os, sys, time
from pathlib import Path
here, i = Path(sys.argv[1]), int(os.environ["KERAS_DISTRIBUTION_PROCESS_ID"])
(here / f"pid{i}").write_text(str(os.getpid()))
from seedlings_utils.jobs import launcher as processes
if i == 1:
    processes._watch_launcher = lambda launcher, poll: None
if i == 2:
    processes._kill_me_when_parent_ends = lambda: False
if i == 3:
    deadline = time.monotonic() + 120
    while not (here / "launcher_killed").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
processes.stop_with_launcher(poll=0.2)
(here / f"ready{i}").write_text("")
time.sleep(300)
"""


def running(pid: int) -> bool:
    """True while ``pid`` runs: not gone, and not a zombie that nobody has collected yet (Linux's /proc)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):  # PermissionError: someone else's process holds the id now
        return False
    if not Path("/proc").is_dir():  # macOS: os.kill's answer
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux: from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            pass
    return found


def wait_for(condition, seconds: float, what: str, launcher: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if launcher is not None and launcher.poll() is not None:
            pytest.fail(f"the launcher ended early ({launcher.returncode}) while waiting for {what}:\n"
                        + launcher.stdout.read())
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {seconds} s")
        time.sleep(0.05)


def kill_leftovers(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def start_launcher(command: list[str], count: int, log_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.Popen([PY, "-c", LAUNCHER, json.dumps(command), str(count), str(log_dir)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


@pytest.mark.slow
def test_no_process_outlives_a_launcher_killed_with_sigkill(tmp_path):
    launcher = start_launcher([PY, "-c", WORKER, str(tmp_path)], 4, tmp_path / "logs")
    pids: list[int] = []
    try:
        wait_for(lambda: all((tmp_path / f"pid{i}").exists() for i in range(4))
                 and all((tmp_path / f"ready{i}").exists() for i in range(3)), 120, "every process ready", launcher)
        pids = [int((tmp_path / f"pid{i}").read_text()) for i in range(4)]
        assert all(running(pid) for pid in pids)
        os.kill(launcher.pid, signal.SIGKILL)  # what a kernel's "kill -9" does: no clean-up, no finally
        launcher.wait(10)
        (tmp_path / "launcher_killed").write_text("")
        deadline = time.monotonic() + 15
        while any(running(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [i for i, pid in enumerate(pids) if running(pid)]
        logs = {i: (tmp_path / "logs" / f"process_{i}.log").read_text() for i in range(4)}
        if not sys.platform.startswith("linux"):  # no kernel signal there: process 1 has nothing to stop it
            left = [i for i in left if i != 1]
        assert left == [], f"processes {left} outlived their launcher by 15 s; their logs: {logs}"
        for i, when in ((2, "while this process ran"), (3, "before this process was ready")):
            assert f"process {i}: its launcher (process {launcher.pid}) ended {when}, so this process stops" in logs[i]
        assert not (tmp_path / "ready3").exists(), "a process whose launcher is already gone must not go on working"
    finally:
        kill_leftovers([pid for pid in pids if running(pid)])
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()


def test_a_process_started_by_hand_is_not_guarded(monkeypatch):
    """Outside launch() (started by hand, or by a cluster's own launcher) the guard does nothing."""
    monkeypatch.delenv(processes.LAUNCHER_VAR, raising=False)
    started = []
    monkeypatch.setattr(processes, "_watch_launcher", lambda launcher, poll: started.append(launcher))
    processes.stop_with_launcher()
    assert started == []
    monkeypatch.setenv(processes.LAUNCHER_VAR, str(os.getppid()))
    processes.stop_with_launcher()
    assert started == [os.getppid()], "launched by its parent: watched"


def test_the_worker_entry_guards_itself_before_anything_else(monkeypatch):
    """``python -m seedlings_utils.jobs.worker`` (training and the TensorFlow attempt) calls the guard first."""
    calls = []
    monkeypatch.setattr(worker, "stop_with_launcher", lambda: calls.append("guard"))
    monkeypatch.setattr(worker, "_tensorflow_worker", lambda: calls.append("tensorflow"))
    assert worker.main(["--tensorflow-attempt"]) == 0
    assert calls == ["guard", "tensorflow"]
    with pytest.raises(SystemExit):  # no --data-dir: stops in parsing its arguments, guarded already
        worker.main([])
    assert calls == ["guard", "tensorflow", "guard"]


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the launcher's processes in /proc")
def test_real_training_processes_stop_when_their_launcher_is_killed(tiny_data_dir, tmp_path):
    """The issue's reproduction: a job of two real training processes, its launcher killed while they train."""
    run_dir = tmp_path / "job"
    options = {**TINY, "epochs": 100_000}  # would train for hours
    script = ("import sys\nfrom seedlings_utils.jobs.launcher import run_job\n"
              f"run_job(sys.argv[1], sys.argv[2], 2, timeout=3600, show='none', **{options!r})")
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3"}
    launcher = subprocess.Popen([PY, "-c", script, str(tiny_data_dir), str(run_dir)], env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    pids: list[int] = []
    try:
        wait_for(lambda: (run_dir / "epochs_1.jsonl").is_file(), 600, "both processes training", launcher)
        pids = children(launcher.pid)
        assert len(pids) == 2 and all(running(pid) for pid in pids)
        os.kill(launcher.pid, signal.SIGKILL)
        launcher.wait(10)
        deadline = time.monotonic() + 15
        while any(running(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in pids if running(pid)], "training processes outlived their launcher by 15 s"
    finally:
        kill_leftovers([pid for pid in pids if running(pid)])
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
