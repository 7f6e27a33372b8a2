"""Lesson 10: one model trained by several processes, each reading only its own part of the images.

Data parallelism with Keras 3's ``keras.distribution`` on the JAX backend: every process holds a copy of
the model, reads its own *shard* of the training images, computes gradients on its part of each global
batch, and the gradients are averaged across processes before every update, so all copies stay identical.

The pieces of the technique (the shard split, the loader over one shard, joining the job, the checkpoint) are
written in notebook 10's cells and exported below; the training function every process runs is the notebook's
script (``--script train_job.py``), with a copy here for the benchmark and the tests. This module's own code is
the plumbing around it: the command line every process runs (``python -m seedlings_utils.distributed``),
a launcher that starts N such processes on this machine (free port, logs, a timeout, every process
stopped when one fails or when the launcher itself dies), reading back what the processes wrote, and the
record of what the TensorFlow route (``tf.distribute.MultiWorkerMirroredStrategy``) does today.

On N machines, run on each (one process per machine; the address is machine 0's)::

    KERAS_BACKEND=jax KERAS_DISTRIBUTION_JOB_ADDRESSES=10.0.0.1:1234 KERAS_DISTRIBUTION_NUM_PROCESSES=N \\
    KERAS_DISTRIBUTION_PROCESS_ID=<0..N-1> python -m seedlings_utils.distributed --script train_job.py \\
    --data-dir ... --out-dir ...
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import runpy
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import jax
import keras
import numpy as np

from .dataset import SeedlingsDataset
from .index import load_classes
from .model import build_cnn
from .profiling import peak_rss_mb, reset_peak_rss
from .split import load_split

#: The environment variables ``keras.distribution.initialize`` reads (a cluster launcher sets them).
ADDRESS_VAR, COUNT_VAR, INDEX_VAR = (
    "KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES", "KERAS_DISTRIBUTION_PROCESS_ID")
#: Keras 3.8-3.10 accept only a tf.data.Dataset when several processes train together; 3.11 added
#: ``DataParallel(auto_shard_dataset=False)`` for loaders that read their own process's shard.
MIN_KERAS_FOR_PROCESSES = "3.11"


def check_keras_for_processes(num_processes: int) -> None:
    """Raise a clear error when this Keras cannot train from a ``PyDataset`` in several processes."""
    from packaging.version import Version

    if num_processes > 1 and Version(keras.__version__) < Version(MIN_KERAS_FOR_PROCESSES):
        raise RuntimeError(f"Training in {num_processes} processes from a PyDataset needs Keras "
                           f"{MIN_KERAS_FOR_PROCESSES} or newer; this is Keras {keras.__version__}, which accepts "
                           "only a tf.data.Dataset there. Upgrade Keras (pip install -U keras) or use one process.")

# ---- BEGIN notebooks/10_beyond_one_machine.ipynb: edit the notebook, then `make export` ----
def process_shard(filenames, labels, process_id, num_processes):
    """This process's part of the training set: images ``process_id``, ``process_id + num_processes``, ...

    A fixed split: every image belongs to exactly one process, and the shards differ in size by at most one.
    """
    return filenames[process_id::num_processes], labels[process_id::num_processes]


class ShardDataset(SeedlingsDataset):
    """Lesson 05's loader over this process's shard only, with as many batches of the same shapes as the others.

    Every training step is one step of *all* processes together (the gradients are summed across them), so a
    process with one batch more than the others would wait forever for them. Shards differ by at most one image:
    batches are counted on the largest shard, and a short batch is filled up with blank images of weight 0, so
    every batch of every process has the same shape (and JAX compiles the training step once).
    ``names_read`` lists the images read from disk (for checking the split; :class:`ReadLog` empties it).
    """

    def __init__(self, image_dir, filenames, labels, process_id, num_processes, batch_size=32, image_size=128,
                 seed=None, **kwargs):
        names, shard_labels = process_shard(np.asarray(filenames), np.asarray(labels), process_id, num_processes)
        # shuffled every epoch within the shard; each process draws its own order
        super().__init__(image_dir, names, shard_labels, batch_size, image_size, shuffle=True,
                         seed=None if seed is None else seed + process_id, **kwargs)
        self.largest_shard = math.ceil(len(filenames) / num_processes)  # every process computes the same number
        self.names_read = []

    def __len__(self):
        return math.ceil(self.largest_shard / self.batch_size)

    def __getitem__(self, index):
        picked = self.order[index * self.batch_size : (index + 1) * self.batch_size]  # may be short, even empty
        images = np.zeros((self.batch_size, self.image_size, self.image_size, 3), dtype=np.float32)
        labels = np.zeros(self.batch_size, dtype=self.labels.dtype)
        weights = np.zeros(self.batch_size, dtype=np.float32)  # weight 0: a blank row adds nothing to the loss
        if len(picked):
            images[: len(picked)] = self.load_batch(picked)
            labels[: len(picked)], weights[: len(picked)] = self.labels[picked], 1.0
            self.names_read.extend(self.filenames[picked].tolist())
        return images, labels, weights


class ReadLog(keras.callbacks.Callback):
    """After every epoch, appends the names ``loader`` read from disk in it to ``path``: one JSON line per epoch."""

    def __init__(self, loader, path):
        super().__init__()
        self.loader, self.path = loader, Path(path)

    def on_epoch_begin(self, epoch, logs=None):
        self.loader.names_read.clear()  # before the first epoch, Keras reads one batch to learn the shapes: not counted

    def on_epoch_end(self, epoch, logs=None):
        with open(self.path, "a", encoding="utf-8") as log:
            log.write(json.dumps({"epoch": epoch, "names": self.loader.names_read}) + "\n")
        self.loader.names_read.clear()


def join_job():
    """Join the training job; returns ``(process_id, num_processes)``.

    The coordinator's address (process 0's ``host:port``), the number of processes and this process's index
    come from the environment, as a cluster launcher sets them. One process alone joins nothing.
    """
    num_processes = int(os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "1"))
    process_id = int(os.environ.get("KERAS_DISTRIBUTION_PROCESS_ID", "0"))
    if num_processes > 1:
        # processes on CPUs exchange gradients over TCP with Gloo (GPUs use NCCL, TPUs their own links)
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        keras.distribution.initialize(os.environ["KERAS_DISTRIBUTION_JOB_ADDRESSES"], num_processes, process_id)
    return process_id, num_processes


class SaveOnProcessZero(keras.callbacks.Callback):
    """After every epoch, the model and the number of epochs done, kept by process 0 only.

    Every process holds the same weights, so one file is enough, and two processes writing one file would
    corrupt it. Yet every process must *call* ``save``: Keras 3.15 creates a variable while saving, and under a
    multi-process distribution creating a variable is a step all processes take together. If process 0 alone
    saved, the processes would fall out of step ("... passed to device_put is not the same on each process").
    """

    def __init__(self, folder, process_id):
        super().__init__()
        self.folder, self.process_id = Path(folder), process_id

    def on_epoch_end(self, epoch, logs=None):
        if self.process_id == 0:  # written under another name, then renamed: a crash never leaves half a file
            self.model.save(self.folder / "checkpoint.tmp.keras")
            os.replace(self.folder / "checkpoint.tmp.keras", self.folder / "checkpoint.keras")
            (self.folder / "checkpoint.json").write_text(json.dumps({"epochs_done": epoch + 1}))
        else:  # the same steps, into a file thrown away at once
            throwaway = Path(tempfile.gettempdir()) / f"checkpoint_process_{self.process_id}_{os.getpid()}.keras"
            self.model.save(throwaway)
            throwaway.unlink()
# ---- END notebooks/10_beyond_one_machine.ipynb ----


# ----------------------------------------------------------------------------------------------------------------
# The command line every process runs, and what it writes besides the checkpoint (for the lesson's checks).


# What every process runs: lesson 10's script (the notebook's cell tagged first-version writes it to train_job.py),
# kept here for the benchmark and the tests; tests/test_distributed.py checks that the two say the same.
# Join the job, spread the model over all processes' devices, train on this process's shard in step with the others,
# resume from process 0's last checkpoint when there is one.
def train_process(data_dir, out_dir, epochs, global_batch, image_size, base_filters=16, learning_rate=1e-3, seed=42,
                  augment=False, workers=1, callbacks=(), read_log=None):
    process_id, num_processes = join_job()  # this process's index and the job's size, from the environment
    if global_batch % num_processes:
        raise ValueError(f"the global batch ({global_batch}) must split evenly over {num_processes} processes")
    devices = keras.distribution.list_devices()  # the devices of every process in the job
    data_parallel = keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)
    keras.distribution.set_distribution(data_parallel)
    keras.utils.set_random_seed(seed)  # the same seed everywhere: the same starting weights in every process

    x_train, _, y_train, _ = load_split(data_dir)
    train = ShardDataset(Path(data_dir) / "all_images", x_train, y_train, process_id, num_processes,
                         batch_size=global_batch // num_processes, image_size=image_size, seed=seed, workers=workers)
    out_dir = Path(out_dir)
    checkpoint = out_dir / "checkpoint.json"
    done = json.loads(checkpoint.read_text())["epochs_done"] if checkpoint.is_file() else 0
    with jax.set_mesh(data_parallel.device_mesh.backend_mesh):  # the model built and trained inside the mesh
        if done:  # a restarted job: every process goes on from process 0's checkpoint
            model = keras.models.load_model(out_dir / "checkpoint.keras")
        else:
            model = build_cnn(len(load_classes(data_dir)), image_size, base_filters=base_filters, augment=augment,
                              learning_rate=learning_rate, seed=seed)
        history = model.fit(train, epochs=epochs, initial_epoch=done, verbose=2 if process_id == 0 else 0,
                            callbacks=[*([ReadLog(train, read_log)] if read_log else []),
                                       SaveOnProcessZero(out_dir, process_id), *callbacks])
    return model, history, train


class EpochRecorder(keras.callbacks.Callback):
    """Appends each epoch's number, seconds and loss to ``path`` (one JSON line per epoch).

    ``fail_in_epoch``: the lesson's demonstration of a machine dying. This process kills itself (SIGKILL: no
    clean-up, no message) right after the first step of that epoch (counted from 0). The step before it was
    taken by all processes together, so process 0 had finished saving the previous epoch's checkpoint.
    """

    def __init__(self, path, process_id, fail_in_epoch=None):
        super().__init__()
        self.path, self.process_id, self.fail_in_epoch = Path(path), process_id, fail_in_epoch
        self.started, self.after_first_step, self.steps, self.epoch = 0.0, 0.0, 0, 0
        self.startup_peak_mb = None  # peak memory until the first step was done (start-up and compiling)

    def on_epoch_begin(self, epoch, logs=None):
        self.started, self.steps, self.epoch = time.perf_counter(), 0, epoch

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if batch == 0:  # the first step of each start of the job also compiles it: the clock for speed starts here
            self.after_first_step = time.perf_counter()
            if self.startup_peak_mb is None:  # from here on the kernel's peak counts training only
                self.startup_peak_mb = peak_rss_mb()
                reset_peak_rss()
            if self.epoch == self.fail_in_epoch:  # the line PLANTED_CRASH recognises, then the death itself
                print(f"process {self.process_id}: dying on purpose in epoch {self.epoch + 1} (SIGKILL)", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        record = {"epoch": epoch, "seconds": now - self.started, "steps": self.steps,
                  "seconds_after_first_step": now - self.after_first_step,
                  "loss": float((logs or {}).get("loss", float("nan")))}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


# ----------------------------------------------------------------------------------------------------------------
# Starting the processes on this machine, as a cluster launcher (Slurm, Kubernetes, a shell loop over ssh) would
# start one per machine.


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
    """``python -m seedlings_utils.distributed --data-dir ... --epochs ...`` for these options (``True``: a bare
    flag; ``None`` and ``False``: left out)."""
    command = [sys.executable, "-m", "seedlings_utils.distributed"]
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
        if line.strip() and not _NOISE.search(line):
            print(prefix + line, flush=True)
    return offset + end


#: Start-up lines of XLA and TensorFlow's C++ runtime that say nothing to a learner.
_NOISE = re.compile(r"^(E|W|I)\d{4} |cuInit|absl::InitializeLog|oneDNN custom operations")


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
            timeout_name: str = "timeout", script: str | Path | None = None, **options) -> Job:
    """Run a training job of ``num_processes`` processes on this machine and read back what they wrote.

    ``options`` are the command line's (``epochs``, ``global_batch``, ``image_size``, ...). ``script``: a Python
    file whose ``train_process`` the processes run (lesson 10's cell writes it); without it, this module's copy.
    ``fresh`` starts in an empty ``run_dir``, moving an earlier run's to ``<run_dir>.previous`` (so a new run that
    fails has destroyed nothing); ``fresh=False`` keeps it, so the job resumes from its checkpoint.
    ``compile_cache`` and ``timeout_name`` (the setting a timeout's message names: lesson 10 passes
    ``"JOB_TIMEOUT"``) as for :func:`launch`. Raises :class:`WorkerFailed` when a process fails or dies or the
    job runs past ``timeout`` seconds.
    """
    check_keras_for_processes(num_processes)
    run_dir = Path(run_dir)
    if fresh and run_dir.exists():
        previous = run_dir.with_name(run_dir.name + ".previous")
        shutil.rmtree(previous, ignore_errors=True)
        os.replace(run_dir, previous)
    command = worker_command(data_dir=Path(data_dir).resolve(), out_dir=run_dir.resolve(),
                             script=script and Path(script).resolve(), **options)
    launch(command, num_processes, run_dir, timeout=timeout, show=show, compile_cache=compile_cache,
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


def plot_jobs(single: Job, multi: Job, global_batch: int, crashed_in_epoch: int | None = None):
    """Loss per epoch of the one-process job and of every process of the other; images/s and peak memory of both."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, (ax_loss, ax_speed) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [3, 2]})
    for losses in single.losses():
        ax_loss.plot(range(1, len(losses) + 1), losses, "o-", color="tab:gray", label="1 process")
    for i, losses in enumerate(multi.losses()):
        ax_loss.plot(range(1, len(losses) + 1), losses, ["x--", "+:", "1-.", "2--"][i % 4], markersize=10,
                     label=f"process {i} of {multi.num_processes}")
    if crashed_in_epoch is not None:
        ax_loss.axvline(crashed_in_epoch + 1, color="tab:red", alpha=0.4)
        ax_loss.annotate(f"process {multi.num_processes - 1} died in epoch {crashed_in_epoch + 1}:\nall restarted "
                         "from process 0's checkpoint", (crashed_in_epoch + 1, ax_loss.get_ylim()[1]),
                         xytext=(-4, -4), textcoords="offset points", va="top", ha="right", fontsize=8,
                         color="tab:red")
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="Every process reports the same loss")
    ax_loss.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_loss.legend(fontsize=8, loc="lower left")
    ax_loss.grid(alpha=0.3)
    jobs = [("1 process", single), (f"{multi.num_processes} processes", multi)]
    speeds = [job.images_per_second(global_batch) for _, job in jobs]
    names = [name + "\n(peak " + ", ".join(f"{s.get('peak_rss_mb', float('nan')):.0f}" for s in job.summaries)
             + " MB)" for name, job in jobs]
    bars = ax_speed.bar(names, speeds, color=["tab:gray", "tab:blue"])
    ax_speed.bar_label(bars, [f"{s:.0f} images/s" for s in speeds], fontsize=9)
    ax_speed.set_ylim(0, max(speeds) * 1.2)
    ax_speed.set(ylabel="training images per second", title=f"Speed on this machine ({os.cpu_count()} CPU cores)")
    fig.tight_layout()
    return fig


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


def _tensorflow_worker() -> None:
    """One worker of the TensorFlow attempt: the smallest model, the strategy's usual recipe, ``model.fit``."""
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()  # reads TF_CONFIG: the cluster and this worker's index
    with strategy.scope():
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(2)])
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    data = tf.data.Dataset.from_tensor_slices((rng.random((64, 8), dtype=np.float32), rng.integers(0, 2, 64)))
    model.fit(data.batch(16), epochs=1, verbose=2)
    print("model.fit finished", flush=True)


def tensorflow_attempt(log_dir: str | Path, timeout: float = 300.0) -> str:
    """Run the TensorFlow route with two workers on 127.0.0.1; returns the error they stop with (or success)."""
    ports = [free_port(), free_port()]
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}

    def tf_config(i: int) -> dict:
        return {"KERAS_BACKEND": "tensorflow", "TF_CONFIG": json.dumps({"cluster": cluster,
                                                                        "task": {"type": "worker", "index": i}})}

    command = [sys.executable, "-m", "seedlings_utils.distributed", "--tensorflow-attempt"]
    try:
        launch(command, 2, log_dir, timeout=timeout, show="none", process_env=tf_config)
    except WorkerFailed:
        text = (Path(log_dir) / "process_0.log").read_text(encoding="utf-8", errors="replace")
        errors = [line for line in text.splitlines() if re.match(r"^[A-Za-z.]*(Error|Exception)\b", line)]
        start = text.find(errors[-1]) if errors else -1
        return text[start:] if start >= 0 else _tail(Path(log_dir) / "process_0.log")
    return "model.fit finished on both workers: the TensorFlow route works with these versions"


def script_train_process(script: str | Path) -> Callable:
    """The ``train_process`` that the Python file ``script`` defines (lesson 10's cell writes that file).

    The file runs as a module of its own (``runpy``), so it sees only what it imports, never a notebook's names.
    """
    namespace = runpy.run_path(str(script), run_name="lesson_script")
    if not callable(namespace.get("train_process")):
        raise SystemExit(f"{script} defines no function train_process(data_dir, out_dir, epochs, ...)")
    return namespace["train_process"]


def main(argv: list[str] | None = None) -> int:
    """One process of a job (``python -m seedlings_utils.distributed``); returns its exit status."""
    stop_with_launcher()  # first: a process started by launch() must never outlive it
    parser = argparse.ArgumentParser(description="Train lesson 06's CNN as one of several processes (lesson 10).")
    parser.add_argument("--data-dir", help="DATA_DIR with all_images/ and lesson 04's split (required)")
    parser.add_argument("--out-dir", help="where this job writes its checkpoint and records (required)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--global-batch", type=int, default=32, help="images per step, all processes together")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--base-filters", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--augment", action="store_true", help="random flips and rotations (slow on a CPU with JAX)")
    parser.add_argument("--workers", type=int, default=1, help="loader threads per process")
    parser.add_argument("--fail-process", type=int, default=None, help="(demonstration) this process dies ...")
    parser.add_argument("--fail-in-epoch", type=int, default=None, help="... in this epoch (from 0), after one step")
    parser.add_argument("--tensorflow-attempt", action="store_true", help="run the TensorFlow route instead")
    parser.add_argument("--script", help="a Python file defining train_process (lesson 10's cell writes one): it "
                        "trains instead of this module's copy")
    args = parser.parse_args(argv)
    if args.tensorflow_attempt:
        _tensorflow_worker()
        return 0
    if not (args.data_dir and args.out_dir):  # exits with the usage and this message
        parser.error("--data-dir and --out-dir are required (all but --tensorflow-attempt train)")
    if keras.config.backend() != "jax":
        raise SystemExit(f"Keras runs on {keras.config.backend()!r} here: set KERAS_BACKEND=jax before Python starts")
    # The processes train with JAX alone. keras.utils.set_random_seed would import TensorFlow only to seed it too:
    # seconds of start-up and hundreds of MB per process. Mark it as absent (this process only).
    sys.modules.setdefault("tensorflow", None)
    check_keras_for_processes(int(os.environ.get(COUNT_VAR, "1")))
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    process_id = int(os.environ.get(INDEX_VAR, "0"))
    fail = args.fail_in_epoch if args.fail_process == process_id else None
    recorder = EpochRecorder(out_dir / f"epochs_{process_id}.jsonl", process_id, fail)
    start = time.perf_counter()
    train = script_train_process(args.script) if args.script else train_process
    model, _, train = train(
        args.data_dir, out_dir, args.epochs, args.global_batch, args.image_size, args.base_filters,
        args.learning_rate, args.seed, args.augment, args.workers, callbacks=[recorder],
        read_log=out_dir / f"reads_{process_id}.jsonl")
    np.savez(out_dir / f"weights_{process_id}.npz", *model.get_weights())
    summary = {"process_id": process_id, "num_processes": int(os.environ.get(COUNT_VAR, "1")),
               "shard_images": len(train.filenames), "batches_per_epoch": len(train), "local_batch": train.batch_size,
               "seconds": time.perf_counter() - start, "peak_rss_mb": peak_rss_mb(),
               "startup_peak_rss_mb": recorder.startup_peak_mb,
               "devices": [str(d) for d in keras.distribution.list_devices()]}
    (out_dir / f"process_{process_id}.json").write_text(json.dumps(summary, indent=1))
    print(f"process {process_id}: done, {summary['shard_images']} images in its shard, peak memory "
          f"{summary['peak_rss_mb']:.0f} MB while training ({summary['startup_peak_rss_mb'] or 0:.0f} MB while "
          "starting and compiling)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
