"""Lesson 11's runs, killed and read back: its Going deeper runs as separate processes (start one, kill it for real
in the middle of an epoch), what each step trained on read back from the id log with the weights it ended with,
and what the notebook's own runs leave for the tests and ``make lessons`` (:func:`record_run`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grain
import numpy as np
from tqdm.auto import tqdm

from .cache import CachedDataset
from .jobs.launcher import default_compile_cache
from .resume import FINAL_WEIGHTS, ID_LOG, grain_epochs, with_workers

#: What :func:`record_run` writes in a run folder of the notebook's own runs.
STEPS_FILE, REFERENCE_WEIGHTS = "steps.json", "reference_weights.npz"

#: Written by a process that waits to be killed (seedlings_utils.jobs.resume_worker's HoldAt).
HOLDING_FILE = "holding"


def read_id_log(run_dir: str | Path) -> list[dict]:
    """The id log of ``run_dir``, a dict per process: ``{"start": (epoch, batch), "steps": [(epoch, batch, ids)]}``."""
    runs: list[dict] = []
    path = Path(run_dir) / ID_LOG
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    for line in lines:
        if not line.endswith("}"):
            continue  # the last line of a killed process may be cut short: it was never a whole step
        record = json.loads(line)
        if "start" in record:
            runs.append({"start": tuple(record["start"]), "steps": []})
        else:
            runs[-1]["steps"].append((record["epoch"], record["batch"], record["ids"]))
    return runs


def trained_steps(run_dir: str | Path) -> list[tuple[int, int, list[int]]]:
    """The steps whose updates are in the final weights, in order: each process's steps, less those after the
    checkpoint the next process started from (they were lost with the process that took them)."""
    steps: list[tuple[int, int, list[int]]] = []
    for run in read_id_log(run_dir):
        steps = [step for step in steps if (step[0], step[1]) < run["start"]] + run["steps"]
    return steps


def once_per_epoch(steps: list[tuple[int, int, list[int]]], count: int) -> dict[int, str]:
    """For each epoch of ``steps``: what is wrong with its samples ("" when each of ``count`` came exactly once)."""
    problems = {}
    for epoch in sorted({step[0] for step in steps}):
        ids = [i for e, _, batch in steps if e == epoch for i in batch]
        twice, missing = len(ids) - len(set(ids)), count - len(set(ids))
        problems[epoch] = ", ".join(part for part in (f"{twice} trained twice" if twice else "",
                                                      f"{missing} never" if missing else "") if part)
    return problems


def final_weights(run_dir: str | Path, name: str = FINAL_WEIGHTS) -> list[np.ndarray]:
    """The weights a finished run saved (``train_run``, or :func:`record_run`), in ``model.get_weights()`` order."""
    with np.load(Path(run_dir) / name) as saved:
        return [saved[f"arr_{i}"] for i in range(len(saved.files))]


def record_run(run_dir: str | Path, position: dict, steps: list, model, reference: list, reference_model) -> None:
    """Write what a resumed run of the notebook and its uninterrupted reference trained on, and their weights:
    ``steps.json`` ({"resumed_from": [epoch, next batch], "resumed": steps, "reference": steps}: the resumed run's
    steps are those in its final weights), ``final_weights.npz``, ``reference_weights.npz``."""
    run_dir = Path(run_dir)
    record = {"resumed_from": [position["epoch"], position["next_batch"]], "resumed": steps, "reference": reference}
    (run_dir / STEPS_FILE).write_text(json.dumps(record), encoding="utf-8")
    np.savez(run_dir / FINAL_WEIGHTS, *model.get_weights())
    np.savez(run_dir / REFERENCE_WEIGHTS, *reference_model.get_weights())


class CacheSource:
    """Lesson 07's memory-mapped cache as a Grain data source: record ``i`` is (image ``i``, its label, ``i``) (the
    benchmark's Grain loader; the lesson reads the image files, :class:`seedlings_utils.resume.ImageFiles`)."""

    def __init__(self, cache_dir, labels):
        self.cache = CachedDataset(cache_dir, labels, batch_size=1)  # lesson 07's reader, for its shards

    def __len__(self):
        return len(self.cache.labels)

    def __getitem__(self, index):
        return self.cache.load_batch(np.array([index]))[0], self.cache.labels[index], index


def _images_and_labels(batch: tuple) -> tuple:
    return batch[0], batch[1]


def grain_training_batches(cache_dir: str | Path, labels, batch_size: int, seed: int = 0, epochs: int = 1,
                           workers: int = 0) -> grain.IterDataset:
    """:func:`grain_epochs` as ``fit`` takes it, ``(images, labels)`` batches, read by ``workers`` processes (the
    benchmark's Grain loader)."""
    dataset = grain_epochs(CacheSource(cache_dir, labels), batch_size, seed, epochs).map(_images_and_labels)
    return with_workers(dataset.to_iter_dataset(), workers)


def _tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.is_file() else ""


def run_training(route: str, data_dir: str | Path, run_dir: str | Path, kill_after: tuple[int, int] | None = None,
                 timeout: float = 600.0, progress: bool = True, **options) -> str:
    """Run :func:`train_run` in a new process (``python -m seedlings_utils.jobs.resume_worker``), on JAX, on the CPU.

    With ``kill_after=(epoch, batch)`` the process waits after that step and its saves (:class:`HoldAt`), and is
    killed with SIGKILL as soon as it says so: no clean-up, no last save, as when a machine is lost. Its whole
    process group goes (Grain's worker processes too). Returns "finished" or "killed"; raises ``RuntimeError``
    with the end of the process's output when it fails, or runs past ``timeout`` seconds. With ``progress``, a bar
    counts the steps the process has logged.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "seedlings_utils.jobs.resume_worker", "--route", route,
               "--data-dir", str(data_dir), "--run-dir", str(run_dir)]
    for name, value in options.items():
        command += [f"--{name.replace('_', '-')}", str(value)]
    if kill_after is not None:
        command += ["--hold-at", f"{kill_after[0]},{kill_after[1]}"]
    console, holding = run_dir / "console.txt", run_dir / HOLDING_FILE
    holding.unlink(missing_ok=True)
    # JAX starts faster than TensorFlow and keeps what it compiles on disk, for the next process (as in lesson 10)
    variables = {"JAX_COMPILATION_CACHE_DIR": str(default_compile_cache()),
                 "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
                 **os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1",
                 "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}  # the CPU: the same update, bit for bit
    with open(console, "ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=variables,
                                   start_new_session=True)  # its own process group: one kill takes its workers
    deadline = time.monotonic() + timeout
    log = run_dir / ID_LOG
    offset = log.stat().st_size if log.is_file() else 0  # this process's lines come after
    bar = tqdm(desc=f"{route}{' (to be killed)' if kill_after else ''}", unit=" steps", disable=not progress)
    try:
        while process.poll() is None:
            if log.is_file():
                steps = log.read_bytes()[offset:].count(b'"ids"')
                bar.update(steps - bar.n)
            if kill_after is not None and holding.is_file():
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                holding.unlink()
                return "killed"
            if time.monotonic() > deadline:
                raise RuntimeError(f"{route} run in {run_dir} still running after {timeout:.0f} s; its output:\n"
                                   + _tail(console))
            time.sleep(0.1)
    finally:
        bar.close()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    if process.returncode != 0:
        raise RuntimeError(f"the {route} run in {run_dir} failed (exit status {process.returncode}); the end of its "
                           f"output ({console}):\n{_tail(console)}")
    if kill_after is not None:
        raise RuntimeError(f"the {route} run in {run_dir} finished before epoch {kill_after[0]} batch "
                           f"{kill_after[1]}: nothing to kill (an epoch has fewer batches?)")
    return "finished"


