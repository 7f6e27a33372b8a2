"""The command line every process of a lesson 10 job runs: ``python -m seedlings_utils.jobs.worker``.

:func:`~seedlings_utils.jobs.launcher.launch` starts it N times on this machine; on N machines, run on each (one
process per machine; the address is machine 0's)::

    KERAS_BACKEND=jax KERAS_DISTRIBUTION_JOB_ADDRESSES=10.0.0.1:1234 KERAS_DISTRIBUTION_NUM_PROCESSES=N \\
    KERAS_DISTRIBUTION_PROCESS_ID=<0..N-1> python -m seedlings_utils.jobs.worker --script train_job.py \\
    --data-dir ... --out-dir ...

Besides the checkpoint, each process writes what the lesson's checks read back: its epochs' times and losses,
the names it read, its final weights and a summary.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from ..profiling import peak_rss_mb, reset_peak_rss
from ..train_job import train_process
from .launcher import COUNT_VAR, INDEX_VAR, stop_with_launcher


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


def script_train_process(script: str | Path) -> Callable:
    """The ``train_process`` that the Python file ``script`` defines (lesson 10's cell writes that file).

    The file runs as a module of its own (``runpy``), so it sees only what it imports, never a notebook's names.
    """
    namespace = runpy.run_path(str(script), run_name="lesson_script")
    if not callable(namespace.get("train_process")):
        raise SystemExit(f"{script} defines no function train_process(data_dir, out_dir, epochs, ...)")
    return namespace["train_process"]


def main(argv: list[str] | None = None) -> int:
    """One process of a job (``python -m seedlings_utils.jobs.worker``); returns its exit status."""
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
    num_processes = int(os.environ.get(COUNT_VAR, "1"))
    if args.global_batch % num_processes:  # each process loads global_batch // num_processes images a step
        raise SystemExit(f"the global batch ({args.global_batch}) must split evenly over {num_processes} processes")
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
    # lesson 12's loader counts the images of its shards; lesson 10's lists its files
    images = train.images if hasattr(train, "images") else len(train.filenames)
    summary = {"process_id": process_id, "num_processes": num_processes,
               "shard_images": images, "batches_per_epoch": len(train), "local_batch": train.batch_size,
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
