"""Lesson 10's jobs on this machine: start N training processes that form one job, stop them, read what they wrote.

A launcher that starts N processes on this machine as a cluster launcher (Slurm, Kubernetes, a shell loop over
ssh) would start one per machine: a free port, a log per process, a timeout, every process stopped when one
fails or when the launcher itself dies. Each process runs ``python -m seedlings_utils.jobs.worker``
(:mod:`seedlings_utils.jobs.worker`). Then :class:`Job` reads back what the processes wrote, :func:`read_problems`
checks their reads, and :func:`tensorflow_attempt` runs the TensorFlow route
(``tf.distribute.MultiWorkerMirroredStrategy``) again to see whether it still fails as recorded.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from ..dataset import SeedlingsDataset
from ..platform_info import is_noise
from ..split import load_split

WORKER_MODULE = "seedlings_utils.jobs.worker"  # what every process runs: python -m seedlings_utils.jobs.worker

#: The environment variables ``keras.distribution.initialize`` reads (a cluster launcher sets them).
ADDRESS_VAR, COUNT_VAR, INDEX_VAR = (
    "KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES", "KERAS_DISTRIBUTION_PROCESS_ID")


# ----------------------------------------------------------------------------------------------------------------
# Starting the processes on this machine.


#: The line a process prints just before it kills itself on purpose (``--fail-process``, ``--fail-in-epoch``): with
#: the SIGKILL that follows, what tells the planted crash of lesson 10's demonstration from any real failure.
PLANTED_CRASH = re.compile(r"^process (\d+): dying on purpose in epoch \d+ \(SIGKILL\)$", flags=re.M)


class WorkerFailed(RuntimeError):
    """A training process exited with an error, died, or the job ran past its time limit; the others were stopped.

    ``process``: the index of the process that failed (after a timeout: the first one still running);
    ``returncode``: how it ended (negative: killed by that signal; ``None`` after a timeout); ``timed_out``;
    ``log``: its log file; ``planted``: True only for the crash that ``--fail-process`` plants (the process
    printed :data:`PLANTED_CRASH`'s line, then died of SIGKILL), False for every real failure.
    """

    def __init__(self, message: str, process: int | None = None, returncode: int | None = None,
                 timed_out: bool = False, log: Path | None = None, planted: bool = False):
        super().__init__(message)
        self.process, self.returncode, self.timed_out, self.log = process, returncode, timed_out, log
        self.planted = planted


def _planted_crash(log: Path, process: int, returncode: int) -> bool:
    """Did process ``process`` die of the crash planted by ``--fail-process`` (its line in its log, then SIGKILL)?"""
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return returncode == -signal.SIGKILL and any(int(m[1]) == process for m in PLANTED_CRASH.finditer(text))


def _ended(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by signal {-returncode} ({signal.Signals(-returncode).name})"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now, for process 0 to coordinate the job on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def worker_command(**options) -> list[str]:
    """``python -m seedlings_utils.jobs.worker --data-dir ... --epochs ...`` for these options (``True``: a bare
    flag; ``None`` and ``False``: left out)."""
    command = [sys.executable, "-m", WORKER_MODULE]
    for name, value in options.items():
        flag = f"--{name.replace('_', '-')}"
        if value is True:
            command.append(flag)
        elif value is not None and value is not False:
            command += [flag, str(value)]
    return command


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:]) or "(empty log)"


def _stop(processes: list[subprocess.Popen], grace: float = 5.0) -> None:
    """Stop every process still running (and anything it started): SIGTERM, then SIGKILL after ``grace`` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = [p for p in processes if p.poll() is None]
        for p in alive:
            try:
                os.killpg(p.pid, sig)  # the process's own group: its loader workers too, nothing else
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while any(p.poll() is None for p in alive) and time.monotonic() < deadline:
            time.sleep(0.1)


# Stopping with the launcher. Each process runs in a session of its own (so that _stop can signal it and whatever it
# started, and nothing else), which also shields it from the terminal's Ctrl-C and hang-up: without the guard below, a
# process whose launcher (a notebook's kernel, say) was killed would be adopted by init and train on, into a folder
# the next run deletes and reuses.

#: The launcher's process id, which :func:`launch` gives every process it starts, for :func:`stop_with_launcher`.
LAUNCHER_VAR = "SEEDLINGS_LAUNCHER_PID"


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _kill_me_when_parent_ends() -> bool:
    """Linux: ask the kernel to SIGKILL this process as soon as the thread that started it ends, however it ends.

    That thread is the one in :func:`launch`, which returns only once all its processes have ended. False where
    there is no ``prctl`` (macOS, Windows): the watchdog alone stops the process there.
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _stop_orphan(launcher: int, when: str) -> None:
    """Write why into this process's log (fd 2: no lock another thread could hold) and end the process at once."""
    index = os.environ.get(INDEX_VAR, "?")
    os.write(2, f"process {index}: its launcher (process {launcher}) ended {when}, so this process stops too: "
                "nobody is left to wait for it, and the next job may reuse its folder\n".encode())
    os._exit(1)


def _watch_launcher(launcher: int, poll: float) -> None:
    """Start a daemon thread that ends this process once it is no longer the launcher's child (the launcher died)."""
    def watch() -> None:
        while os.getppid() == launcher:  # an orphan is adopted by init (or a subreaper): its parent's id changes
            time.sleep(poll)
        _stop_orphan(launcher, "while this process ran")

    threading.Thread(target=watch, name="launcher-watchdog", daemon=True).start()


def stop_with_launcher(poll: float = 1.0) -> None:
    """Make this process end when the process that launched it ends, however that ends (``kill -9`` included).

    Does nothing unless :func:`launch` started this process (it names itself in ``SEEDLINGS_LAUNCHER_PID``). On
    Linux the kernel kills this process together with its launcher; everywhere, a watchdog thread checks every
    ``poll`` seconds that the launcher is still its parent, and ends the process with a line in its log if not.
    A launcher that ended before this call (while this process was still importing, say) ends it here.
    """
    value = os.environ.get(LAUNCHER_VAR)
    if not value:
        return  # started by hand or by a cluster's launcher: their business
    launcher = int(value)
    _kill_me_when_parent_ends()
    if os.getppid() != launcher:  # checked after prctl: a launcher that died before it sends no signal
        _stop_orphan(launcher, "before this process was ready")
    _watch_launcher(launcher, poll)


def default_compile_cache() -> Path:
    """Where the processes keep JAX's compiled programs: ``~/.cache/seedlings-course/jax`` (or under XDG_CACHE_HOME)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "seedlings-course" / "jax"


def launch(command: list[str], num_processes: int, log_dir: str | Path, timeout: float = 600.0,
           show: str = "all", poll: float = 0.5, env: dict | None = None,
           process_env: Callable[[int], dict] | None = None, compile_cache: str | Path | None = "default",
           timeout_name: str = "timeout") -> list[Path]:
    """Run ``command`` as ``num_processes`` processes on 127.0.0.1 that form one job; returns their log files.

    Each process gets the job's address (a free port on this machine), the process count and its index in
    the ``KERAS_DISTRIBUTION_*`` variables, Keras's backend (JAX) and its own log file ``process_<i>.log``.
    Log lines are printed as they come (``show``: ``"all"``, ``"first"`` for process 0's only, ``"none"``).
    ``env`` (for all) and ``process_env(i)`` (for process ``i``) add or override variables.
    ``compile_cache``: a folder where JAX keeps every program it compiles, so that the next job, or the same
    job restarted, skips compiling them (``"default"``: :func:`default_compile_cache`; ``None``: no cache).
    If a process fails or dies, the others are stopped at once (they would wait for it forever) and
    :class:`WorkerFailed` names it and shows the end of its log; so it does after ``timeout`` seconds (its message
    names the setting ``timeout_name`` that gave that limit). Each process learns this process's id
    (``SEEDLINGS_LAUNCHER_PID``): a process that calls :func:`stop_with_launcher`, as the course's does, ends
    when this one ends, even killed.
    """
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    address = f"127.0.0.1:{free_port()}"
    logs = [log_dir / f"process_{i}.log" for i in range(num_processes)]
    processes, files, offsets = [], [], [0] * num_processes
    try:
        for i, log in enumerate(logs):
            variables = {**os.environ, "KERAS_BACKEND": "jax", ADDRESS_VAR: address,
                         COUNT_VAR: str(num_processes), INDEX_VAR: str(i),
                         "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu"),  # processes share this CPU
                         "XLA_PYTHON_CLIENT_PREALLOCATE": "false", "TF_CPP_MIN_LOG_LEVEL": "3",
                         "PYTHONUNBUFFERED": "1", LAUNCHER_VAR: str(os.getpid())}
            if compile_cache is not None:  # JAX's persistent cache; a JAX_COMPILATION_CACHE_DIR already set wins
                folder = default_compile_cache() if compile_cache == "default" else Path(compile_cache)
                variables.setdefault("JAX_COMPILATION_CACHE_DIR", str(folder))
                variables.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")  # small programs too
                variables.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
            variables.update({**(env or {}), **(process_env(i) if process_env else {})})
            files.append(open(log, "w", encoding="utf-8"))  # closed in finally
            # A session of its own: _stop signals the process's group, which holds what it started and nothing else.
            # This thread stays in this function until every process has ended: Linux's "kill me when my parent
            # ends" (stop_with_launcher) watches the thread that started the process, not the whole launcher.
            processes.append(subprocess.Popen(command, stdout=files[-1], stderr=subprocess.STDOUT, env=variables,
                                              stdin=subprocess.DEVNULL, start_new_session=True))
        deadline = time.monotonic() + timeout
        while True:
            if show != "none":
                for i, log in enumerate(logs[: 1 if show == "first" else None]):
                    offsets[i] = _print_new_lines(log, offsets[i], f"[{i}] " if num_processes > 1 else "")
            codes = [p.poll() for p in processes]
            failed = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                # The cause first: a process killed from outside (SIGKILL), then by another signal, then one that
                # exited with an error (the peers of a process that vanished fail too, a moment later).
                i, code = min(failed, key=lambda f: (f[1] != -signal.SIGKILL, f[1] > 0, f[0]))
                planted = _planted_crash(logs[i], i, code)
                _stop(processes)
                also = "".join(f"; process {k} {_ended(c)} too" for k, c in failed if k != i)
                raise WorkerFailed(f"process {i} of {num_processes} {_ended(code)}{also}; the other processes were "
                                   f"stopped (they would have waited for it forever). The end of its log ({logs[i]}):"
                                   "\n" + _tail(logs[i]), process=i, returncode=code, log=logs[i], planted=planted)
            if all(c == 0 for c in codes):
                return logs
            if time.monotonic() > deadline:
                running = [i for i, c in enumerate(codes) if c is None]
                _stop(processes)
                raise WorkerFailed(f"the job ran past its time limit ({timeout_name} = {timeout:g} s): processes "
                                   f"{running} were still running and have been stopped. If the log below shows it "
                                   f"still training, it needed more time: raise {timeout_name}, or train fewer "
                                   "epochs. If it shows a process waiting for a peer that died or never started, "
                                   f"more time will not help: read that peer's log in {log_dir}. The end of process "
                                   f"{running[0]}'s log ({logs[running[0]]}):\n" + _tail(logs[running[0]]),
                                   process=running[0], timed_out=True, log=logs[running[0]])
            time.sleep(poll)
    finally:
        _stop(processes)  # also on KeyboardInterrupt: no process outlives the cell that started it
        for f in files:
            f.close()


def _print_new_lines(log: Path, offset: int, prefix: str) -> int:
    """Print the complete lines added to ``log`` since ``offset``; returns the new offset."""
    try:
        with open(log, "rb") as f:
            f.seek(offset)
            data = f.read()
    except OSError:
        return offset
    end = data.rfind(b"\n") + 1
    for line in data[:end].decode(errors="replace").splitlines():
        if line.strip() and not is_noise(line):
            print(prefix + line, flush=True)
    return offset + end


# ----------------------------------------------------------------------------------------------------------------
# One job from start to finish, and what its processes wrote.


def _json_lines(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@dataclass
class Job:
    """What the processes of one job wrote into ``run_dir`` (a restarted job's records included)."""

    run_dir: Path
    num_processes: int
    summaries: list[dict] = field(default_factory=list)  # process_<i>.json, written when a process finished
    epochs: list[dict[int, dict]] = field(default_factory=list)  # per process: epoch -> its record (the last one)
    reads: list[dict[int, list[str]]] = field(default_factory=list)  # per process: epoch -> names read from disk

    @classmethod
    def read(cls, run_dir: str | Path, num_processes: int) -> Job:
        run_dir = Path(run_dir)
        job = cls(run_dir, num_processes)
        for i in range(num_processes):
            summary = run_dir / f"process_{i}.json"
            job.summaries.append(json.loads(summary.read_text()) if summary.is_file() else {})
            job.epochs.append({r["epoch"]: r for r in _json_lines(run_dir / f"epochs_{i}.jsonl")})
            job.reads.append({r["epoch"]: r["names"] for r in _json_lines(run_dir / f"reads_{i}.jsonl")})
        return job

    def losses(self) -> list[list[float]]:
        """Each process's training loss per epoch (every process reports the loss of the whole global batch)."""
        return [[records[e]["loss"] for e in sorted(records)] for records in self.epochs]

    def images_per_second(self, global_batch: int) -> float:
        """Images per second that the whole job trained on (blank padding rows included), after the first step
        of each epoch: the first step of each start of the job also compiles the training step."""
        steps = sum(r["steps"] - 1 for r in self.epochs[0].values())
        seconds = sum(r["seconds_after_first_step"] for r in self.epochs[0].values())
        return steps * global_batch / seconds if seconds > 0 else float("nan")

    def final_weights(self, process_id: int) -> list[np.ndarray]:
        with np.load(self.run_dir / f"weights_{process_id}.npz") as saved:
            return [saved[f"arr_{k}"] for k in range(len(saved.files))]

    def weights_identical(self) -> bool:
        """True when every process ended with bit-for-bit the same weights as process 0."""
        first = self.final_weights(0)
        return all(len(w) == len(first) and all(np.array_equal(a, b) for a, b in zip(first, w, strict=True))
                   for w in (self.final_weights(i) for i in range(1, self.num_processes)))


def read_problems(reads: list[dict[int, list[str]]], train_names) -> list[str]:
    """What is wrong with the processes' reads, epoch by epoch: empty when, in every epoch, the processes
    together read every training image exactly once, and no image outside the training set."""
    train = Counter(str(n) for n in train_names)
    epochs = sorted(set().union(*(set(r) for r in reads))) if reads else []
    problems = []
    for epoch in epochs:
        missing_log = [i for i, r in enumerate(reads) if epoch not in r]
        if missing_log:
            problems.append(f"epoch {epoch + 1}: no record from process(es) {missing_log}")
            continue
        counts = Counter(name for r in reads for name in r[epoch])
        twice = sorted(n for n, c in counts.items() if c > 1)
        shared = sorted(n for n in twice if sum(n in set(r[epoch]) for r in reads) > 1)
        missing = sorted(set(train) - set(counts))
        foreign = sorted(set(counts) - set(train))
        for what, names in (("read by more than one process", shared), ("read more than once", twice),
                            ("never read", missing), ("not in the training set", foreign)):
            if names:
                problems.append(f"epoch {epoch + 1}: {len(names)} image(s) {what}, e.g. {names[:3]}")
    return problems


def run_job(data_dir: str | Path, run_dir: str | Path, num_processes: int, timeout: float = 900.0,
            show: str = "all", fresh: bool = True, compile_cache: str | Path | None = "default",
            timeout_name: str = "timeout", script: str | Path | None = None, env: dict | None = None,
            **options) -> Job:
    """Run a training job of ``num_processes`` processes on this machine and read back what they wrote.

    ``options`` are the command line's (``epochs``, ``global_batch``, ``image_size``, ...). ``script``: a Python
    file whose ``train_process`` the processes run (lesson 10's cell writes it); without it, this module's copy.
    ``fresh`` starts in an empty ``run_dir``, moving an earlier run's to ``<run_dir>.previous`` (so a new run that
    fails has destroyed nothing); ``fresh=False`` keeps it, so the job resumes from its checkpoint.
    ``compile_cache`` and ``timeout_name`` (the setting a timeout's message names: lesson 10 passes
    ``"JOB_TIMEOUT"``) and ``env`` (variables every process gets: lesson 12 passes its bucket's address) as for
    :func:`launch`. Raises :class:`WorkerFailed` when a process fails or dies or the
    job runs past ``timeout`` seconds.
    """
    run_dir = Path(run_dir)
    if fresh and run_dir.exists():
        previous = run_dir.with_name(run_dir.name + ".previous")
        shutil.rmtree(previous, ignore_errors=True)
        os.replace(run_dir, previous)
    command = worker_command(data_dir=Path(data_dir).resolve(), out_dir=run_dir.resolve(),
                             script=script and Path(script).resolve(), **options)
    launch(command, num_processes, run_dir, timeout=timeout, show=show, env=env, compile_cache=compile_cache,
           timeout_name=timeout_name)
    return Job.read(run_dir, num_processes)


def validation_accuracy(model_path: str | Path, data_dir: str | Path, image_size: int, batch_size: int = 32) -> float:
    """Accuracy on lesson 04's validation images of the model saved at ``model_path`` (read batch by batch)."""
    _, x_val, _, y_val = load_split(data_dir)
    model = keras.models.load_model(model_path)
    images = SeedlingsDataset(Path(data_dir) / "all_images", x_val, y_val, batch_size=batch_size,
                              image_size=image_size)
    predicted = np.argmax(model.predict(images, verbose=0), axis=1)
    return float(np.mean(predicted == np.asarray(y_val)))


# ----------------------------------------------------------------------------------------------------------------
# The TensorFlow route: tf.distribute.MultiWorkerMirroredStrategy with Keras 3's model.fit.


#: Where and how the failure below was reproduced (lesson 10 shows it; ``tensorflow_attempt()`` runs it again).
TF_ATTEMPT_RECORDED = {
    "versions": "TensorFlow 2.21.0, Keras 3.15.1, Python 3.11, CPU",
    "where": "two worker processes on 127.0.0.1 (TF_CONFIG)",
    "error": "ValueError: Attempt to convert a value (PerReplica:{\n  0: <tf.Tensor: shape=(8, 8), dtype=float32, "
             "numpy=array([[0.7533075 , 0.29476172, ...]], dtype=float32)>\n}) with an unsupported type "
             "(<class 'tensorflow.python.distribute.values.PerReplica'>) to a Tensor.",
}


def tensorflow_attempt(log_dir: str | Path, timeout: float = 300.0) -> str:
    """Run the TensorFlow route with two workers on 127.0.0.1; returns the error they stop with (or success)."""
    ports = [free_port(), free_port()]
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}

    def tf_config(i: int) -> dict:
        return {"KERAS_BACKEND": "tensorflow", "TF_CONFIG": json.dumps({"cluster": cluster,
                                                                        "task": {"type": "worker", "index": i}})}

    command = [sys.executable, "-m", WORKER_MODULE, "--tensorflow-attempt"]
    try:
        launch(command, 2, log_dir, timeout=timeout, show="none", process_env=tf_config)
    except WorkerFailed:
        text = (Path(log_dir) / "process_0.log").read_text(encoding="utf-8", errors="replace")
        errors = [line for line in text.splitlines() if re.match(r"^[A-Za-z.]*(Error|Exception)\b", line)]
        start = text.find(errors[-1]) if errors else -1
        return text[start:] if start >= 0 else _tail(Path(log_dir) / "process_0.log")
    return "model.fit finished on both workers: the TensorFlow route works with these versions"
