"""Lesson 11: resume a long epoch exactly: the data position is part of the checkpoint.

An epoch's order is a pure function of ``(seed, epoch)``, so ``(epoch, next batch)`` saved beside the
weights and the optimizer state is enough to go on exactly where a killed run stopped: with lesson
05's ``PyDataset`` (:class:`ResumableDataset`), or with a Grain iterator over lesson 07's cache, whose
``get_state()`` is saved instead (:class:`GrainLoader`). The lesson's technique is written in notebook
11's cells and exported below. After it, the plumbing: running a training process and killing it for
real in the middle of an epoch (:func:`run_training`), and reading back what each step trained on.
"""


from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grain
import keras
import numpy as np
from absl import flags
from tqdm.auto import tqdm

from .cache import CachedDataset, build_image_cache
from .dataset import SeedlingsDataset
from .index import load_classes
from .model import build_cnn
from .pipeline import ALL_IMAGES_DIR
from .split import load_split


# ---- BEGIN notebooks/11_resume_a_long_epoch_exactly.ipynb: edit the notebook, then `make export` ----
class LoggedDataset(SeedlingsDataset):
    """Lesson 05's loader, unchanged, noting the sample ids of each batch it serves (for the log of training)."""

    first_batch = 0  # fit always starts its epochs at batch 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.epoch, self.served = 0, {}

    def begin_epoch(self, epoch):
        self.epoch = epoch

    def __getitem__(self, index):
        self.served[(self.epoch, index)] = self.order[index * self.batch_size : (index + 1) * self.batch_size].tolist()
        return super().__getitem__(index)


class IdLog(keras.callbacks.Callback):
    """After every training step, one JSON line: its epoch, its batch and the ids of the samples it trained on."""

    def __init__(self, loader, path):
        super().__init__()
        self.loader, self.path = loader, Path(path)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        batch += self.loader.first_batch if self.epoch == self.loader.epoch else 0  # fit counts from its own start
        ids = self.loader.served.pop((self.epoch, batch))
        with open(self.path, "a", encoding="utf-8") as log:  # closed at once: a killed process loses no line
            log.write(json.dumps({"epoch": self.epoch, "batch": batch, "ids": ids}) + "\n")


def epoch_order(seed, epoch, count):
    """The order of the samples in epoch ``epoch``: a pure function of (seed, epoch), the same in every process."""
    return np.random.default_rng([seed, epoch]).permutation(count)  # a generator of its own for each epoch


class ResumableDataset(SeedlingsDataset):
    """Lesson 05's loader whose epochs can start at any batch: ``start(epoch, batch)`` before ``fit``.

    The order of an epoch comes from :func:`epoch_order`, never from how many epochs this process has run, so a
    new process that is told ``(epoch, next batch)`` serves exactly the batches the old one had left.
    ``served`` maps ``(epoch, batch)`` to the sample ids of each batch handed out, for the log of what was trained.
    """

    def __init__(self, image_dir, filenames, labels, batch_size=32, image_size=128, seed=0, **kwargs):
        super().__init__(image_dir, filenames, labels, batch_size, image_size, shuffle=False, **kwargs)
        self.seed, self.served = seed, {}
        self.batches_per_epoch = super().__len__()  # a whole epoch's batches, the last one maybe short
        self.start(0)

    def start(self, epoch, batch=0):
        """Serve epoch ``epoch`` from its batch ``batch`` on (0: the whole epoch)."""
        if not 0 <= batch < self.batches_per_epoch:
            raise ValueError(f"batch {batch} is not in an epoch of {self.batches_per_epoch} batches")
        self.epoch, self.first_batch = epoch, batch
        self.order = epoch_order(self.seed, epoch, len(self.filenames))

    def __len__(self):
        return self.batches_per_epoch - self.first_batch  # what fit sees: the batches left in this epoch

    def __getitem__(self, index):
        batch = self.first_batch + index  # skipped batches are never read: nothing decoded for them
        picked = self.order[batch * self.batch_size : (batch + 1) * self.batch_size]
        self.served[(self.epoch, batch)] = picked.tolist()
        return self.load_batch(picked), self.labels[picked]

    def begin_epoch(self, epoch):
        if epoch != self.epoch:  # the next epoch, from its first batch
            self.start(epoch)

    def on_epoch_end(self):
        pass  # no draw from a generator here: the next epoch's order comes from start()

    def state_after(self, epoch, done):
        return None  # (seed, epoch, next batch) say everything: no state of the loader's own

    def for_fit(self, steps_per_epoch, epochs):
        return self, None  # fit reads len(self) batches per epoch


POSITION_FILE = "position.json"  # the commit record: written last, it names the weights it belongs to


def order_fingerprint(image_dir, filenames, labels, batch_size, seed):
    """What an epoch's order depends on: the seed, the split, the batch size, the number and the files."""
    split = hashlib.sha256("\n".join(map(str, filenames)).encode() + np.asarray(labels, np.int64).tobytes())
    files = hashlib.sha256()
    for name in filenames:  # stat only: a rewritten or replaced image changes its size or its time
        stat = (Path(image_dir) / str(name)).stat()
        files.update(f"{stat.st_size}/{stat.st_mtime_ns}\n".encode())
    return {"seed": int(seed), "batch_size": int(batch_size), "images": len(filenames),
            "split": split.hexdigest()[:16], "file_list": files.hexdigest()[:16]}


def write_atomically(path, text):
    """Write ``text`` to ``path`` so that a reader sees the old file or the new one, never half of one."""
    partial = Path(path).with_name(Path(path).name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)  # a rename: all at once, even if the process dies right after


def save_checkpoint(model, run_dir, epoch, next_batch, fingerprint, loader_state=None):
    """Weights and optimizer state, then the position naming them: a crash in between leaves the old pair."""
    run_dir = Path(run_dir)
    weights = f"checkpoint_e{epoch}_b{next_batch}.keras"
    model.save(run_dir / f"partial_{weights}")  # model.save writes weights and optimizer state
    os.replace(run_dir / f"partial_{weights}", run_dir / weights)
    position = {"epoch": epoch, "next_batch": next_batch, "weights": weights, "fingerprint": fingerprint,
                "loader_state": loader_state}
    write_atomically(run_dir / POSITION_FILE, json.dumps(position, indent=1))
    for old in run_dir.glob("checkpoint_e*.keras"):  # only now is the previous pair no longer needed
        if old.name != weights:
            old.unlink()


class SavePosition(keras.callbacks.Callback):
    """Every ``every`` batches and at each epoch's end: the weights, the optimizer state and ``(epoch, next batch)``."""

    def __init__(self, loader, run_dir, fingerprint, every):
        super().__init__()
        self.loader, self.run_dir, self.fingerprint, self.every = loader, Path(run_dir), fingerprint, every

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        done = batch + 1 + (self.loader.first_batch if self.epoch == self.loader.epoch else 0)
        if done % self.every and done < self.loader.batches_per_epoch:
            return
        epoch, next_batch = (self.epoch, done) if done < self.loader.batches_per_epoch else (self.epoch + 1, 0)
        save_checkpoint(self.model, self.run_dir, epoch, next_batch, self.fingerprint,
                        self.loader.state_after(self.epoch, done))


WHAT_CHANGED = {"seed": "the seed", "split": "the split (other training images, labels or order)",
                "batch_size": "the batch size", "images": "the number of training images",
                "file_list": "the file list (an image was added, removed or rewritten)"}


class ResumeRefused(ValueError):
    """A saved position that belongs to another order: resuming from it would train on the wrong samples."""


def read_position(run_dir, fingerprint):
    """The saved position in ``run_dir`` (None: start afresh); refused if its order is not this run's order."""
    path = Path(run_dir) / POSITION_FILE
    if not path.is_file():
        return None  # a position.json.partial alone is a write that never finished: not a position
    position = json.loads(path.read_text(encoding="utf-8"))
    changed = [key for key in WHAT_CHANGED if position["fingerprint"].get(key) != fingerprint[key]]
    if changed:
        details = "; ".join(f"{WHAT_CHANGED[key]} changed: {position['fingerprint'].get(key)!r} when saved, "
                            f"{fingerprint[key]!r} now" for key in changed)
        raise ResumeRefused(f"Not resuming from {path}: {details}. Its position (epoch {position['epoch']}, batch "
                            f"{position['next_batch']}) belongs to an order this run does not have. Put the old "
                            "setting back, or start afresh in an empty folder.")
    return position


class FollowEpochs(keras.callbacks.Callback):
    """Tells the loader which epoch begins: its order (or its iterator's place) follows."""

    def __init__(self, loader):
        super().__init__()
        self.loader = loader

    def on_epoch_begin(self, epoch, logs=None):
        self.loader.begin_epoch(epoch)


def fit_from(model, loader, position, epochs, callbacks=()):
    """Train up to ``epochs`` from a saved ``position`` (None: from the start), exactly as if never stopped.

    ``fit`` cannot start an epoch in its middle, so one ``fit`` finishes the cut epoch, a second one the rest.
    ``shuffle=False``: the order is the loader's alone (``fit``'s default, True, also reorders a ``PyDataset``'s
    batches, with Python's ``random``, whose state no checkpoint holds).
    """
    epoch, batch = (position["epoch"], position["next_batch"]) if position else (0, 0)
    callbacks = [FollowEpochs(loader), *callbacks]
    if batch:  # the rest of the epoch that was cut: its batches from `batch` on
        loader.start(epoch, batch)
        data, steps = loader.for_fit(loader.batches_per_epoch - batch, 1)
        model.fit(data, steps_per_epoch=steps, initial_epoch=epoch, epochs=epoch + 1, callbacks=callbacks,
                  shuffle=False, verbose=0)
        epoch += 1
    if epoch < epochs:  # the whole epochs left
        loader.start(epoch)
        data, steps = loader.for_fit(loader.batches_per_epoch, epochs - epoch)
        model.fit(data, steps_per_epoch=steps, initial_epoch=epoch, epochs=epochs, callbacks=callbacks,
                  shuffle=False, verbose=0)


class CacheSource:
    """Lesson 07's memory-mapped cache as a Grain data source: record ``i`` is (image ``i``, its label, ``i``).

    Random access by index is all Grain asks of a source (``len`` and ``[i]``); reading record ``i`` copies
    one image's bytes from a memory-mapped shard, so a global shuffle needs no buffer.
    """

    def __init__(self, cache_dir, labels):
        self.cache = CachedDataset(cache_dir, labels, batch_size=1)  # lesson 07's reader, for its shards

    def __len__(self):
        return len(self.cache.labels)

    def __getitem__(self, index):
        return self.cache.load_batch(np.array([index]))[0], self.cache.labels[index], index


def grain_epochs(cache_dir, labels, batch_size, seed, epochs):
    """Every epoch's batches as one Grain ``MapDataset``: epoch ``e`` is a global shuffle of its own, and no
    batch mixes two epochs (the last batch of an epoch may be short)."""
    source = grain.MapDataset.source(CacheSource(cache_dir, labels))
    count = len(source)
    # shuffle, then repeat: Grain shuffles epoch e with the seed seed + e (index e * count + i is in epoch e)
    shuffled = source.shuffle(seed=seed).repeat(epochs)
    return grain.MapDataset.concatenate([shuffled[e * count : (e + 1) * count].batch(batch_size)
                                         for e in range(epochs)])


class GrainLoader:
    """A Grain iterator over :func:`grain_epochs`, handed to ``fit`` as a generator, with its state after each batch.

    ``workers`` processes read and batch the records (Grain's ``mp_prefetch``; 0 reads in this process).
    ``state`` is what :meth:`state_after` returned when the position was saved: the iterator goes on from there.
    """

    def __init__(self, dataset, batches_per_epoch, workers=0, state=None):
        iterable = dataset.to_iter_dataset()
        if workers:
            if not flags.FLAGS.is_parsed():  # Grain 0.2.18 with JAX installed reads an absl flag that a script not
                flags.FLAGS.mark_as_parsed()  # started by absl.app never parsed (google/grain#1355)
            iterable = iterable.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
        self.iterator = iter(iterable)
        self.batches_per_epoch, self.served, self.states = batches_per_epoch, {}, {}
        self.next = 0  # batches given out, all epochs together
        if state is not None:
            self.iterator.set_state(state["grain"])  # Grain's own record of where the iterator stood
            self.next = state["next"]
        self.epoch, self.first_batch = divmod(self.next, batches_per_epoch)

    def start(self, epoch, batch=0):
        if epoch * self.batches_per_epoch + batch != self.next:
            raise ValueError(f"the iterator stands at batch {self.next}, not at epoch {epoch} batch {batch}")
        self.epoch, self.first_batch = epoch, batch

    def begin_epoch(self, epoch):  # no check here: by now fit has read ahead
        self.epoch, self.first_batch = epoch, self.first_batch if epoch == self.epoch else 0

    def for_fit(self, steps_per_epoch, epochs):
        def batches():  # fit reads ahead of training: each batch's state is kept under its number
            for _ in range(steps_per_epoch * epochs):
                images, labels, ids = next(self.iterator)
                epoch, batch = divmod(self.next, self.batches_per_epoch)
                self.next += 1
                self.served[(epoch, batch)] = ids.tolist()
                self.states[self.next] = self.iterator.get_state()  # the state after this batch
                self.states.pop(self.next - 4 * self.batches_per_epoch, None)  # keep a few epochs' worth
                yield images, labels

        return batches(), steps_per_epoch

    def state_after(self, epoch, done):
        done_all = epoch * self.batches_per_epoch + done
        return {"grain": self.states[done_all], "next": done_all}


ID_LOG = "ids.jsonl"  # one line per training step, and one per start of a process
FINAL_WEIGHTS = "final_weights.npz"
ROUTES = ("backup", "position", "grain")


def backup_position(backup_dir):
    """Where Keras' BackupAndRestore saved, as (epoch, next batch); on resume it restarts that epoch at batch 0."""
    path = Path(backup_dir) / "training_metadata.json"
    if not path.is_file():
        return 0, 0
    saved = json.loads(path.read_text())  # {"epoch": e, "batch": b}: the weights hold batches 0..b of epoch e
    return saved["epoch"], saved["batch"] + 1


def train_run(route, data_dir, run_dir, epochs=2, batch_size=16, image_size=32, seed=42, save_every=4, workers=0,
              base_filters=8, callbacks=()):
    """One training run, resumed from ``run_dir`` if a checkpoint is there. ``route``: "backup" (Keras'
    ``BackupAndRestore(save_freq=save_every)`` alone), "position" (:class:`ResumableDataset` and
    :class:`SavePosition`) or "grain" (:class:`GrainLoader` over lesson 07's cache, and :class:`SavePosition`)."""
    keras.utils.set_random_seed(seed)  # the same starting weights in every run
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    x_train, _, y_train, _ = load_split(data_dir)
    image_dir = Path(data_dir) / ALL_IMAGES_DIR
    # no augmentation, no dropout: their random draws come from generators whose state the checkpoint lacks
    model = build_cnn(len(load_classes(data_dir)), image_size, base_filters=base_filters, dropout=0.0, augment=False,
                      seed=seed)
    log = run_dir / ID_LOG
    if route == "backup":
        loader = LoggedDataset(image_dir, x_train, y_train, batch_size, image_size, shuffle=True, seed=seed)
        with open(log, "a") as f:
            f.write(json.dumps({"start": backup_position(run_dir / "backup")}) + "\n")
        model.fit(loader, epochs=epochs, shuffle=False, verbose=0,
                  callbacks=[FollowEpochs(loader), IdLog(loader, log),
                             keras.callbacks.BackupAndRestore(run_dir / "backup", save_freq=save_every), *callbacks])
    else:
        fingerprint = order_fingerprint(image_dir, x_train, y_train, batch_size, seed)
        position = read_position(run_dir, fingerprint)  # refused if the order it belongs to has changed
        if position:
            model = keras.models.load_model(run_dir / position["weights"])  # weights and optimizer state
        if route == "position":
            loader = ResumableDataset(image_dir, x_train, y_train, batch_size, image_size, seed)
        else:
            cache = build_image_cache(image_dir, x_train, image_size, Path(data_dir) / f"resume_cache_{image_size}px",
                                      progress=False)  # lesson 07's cache: built once, reused after
            loader = GrainLoader(grain_epochs(cache, y_train, batch_size, seed, epochs),
                                 math.ceil(len(x_train) / batch_size), workers,
                                 position["loader_state"] if position else None)
        with open(log, "a") as f:
            f.write(json.dumps({"start": [position["epoch"], position["next_batch"]] if position else [0, 0]}) + "\n")
        fit_from(model, loader, position, epochs,
                 [IdLog(loader, log), SavePosition(loader, run_dir, fingerprint, save_every), *callbacks])
    np.savez(run_dir / FINAL_WEIGHTS, *model.get_weights())
    return model
# ---- END notebooks/11_resume_a_long_epoch_exactly.ipynb ----


HOLDING_FILE = "holding"  # written by a process that waits to be killed


class HoldAt(keras.callbacks.Callback):
    """Once the id log in ``run_dir`` shows step ``batch`` of epoch ``epoch`` (and its save is done), the process
    waits, as if that long epoch went on, until it is killed: the kill lands at a known step on any machine."""

    def __init__(self, run_dir: str | Path, epoch: int, batch: int, seconds: float = 600.0):
        super().__init__()
        self.log, self.at, self.seconds = Path(run_dir) / ID_LOG, [epoch, batch], seconds
        self.holding = Path(run_dir) / HOLDING_FILE

    def on_train_batch_end(self, batch, logs=None):
        last = json.loads(self.log.read_text(encoding="utf-8").splitlines()[-1])
        if [last.get("epoch"), last.get("batch")] == self.at:
            print(f"holding after epoch {self.at[0]} batch {self.at[1]}: waiting to be killed", flush=True)
            self.holding.write_text(f"{self.at[0]} {self.at[1]}")  # every callback of the step is done
            time.sleep(self.seconds)
            raise SystemExit(f"nobody killed this process within {self.seconds:.0f} s")


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


def final_weights(run_dir: str | Path) -> list[np.ndarray]:
    """The weights a finished run of :func:`train_run` saved, in ``model.get_weights()`` order."""
    with np.load(Path(run_dir) / FINAL_WEIGHTS) as saved:
        return [saved[f"arr_{i}"] for i in range(len(saved.files))]


def _images_and_labels(batch: tuple) -> tuple:
    return batch[0], batch[1]


def grain_training_batches(cache_dir: str | Path, labels, batch_size: int, seed: int = 0, epochs: int = 1,
                           workers: int = 0) -> grain.IterDataset:
    """:func:`grain_epochs` as ``fit`` takes it, ``(images, labels)`` batches, read by ``workers`` processes (the
    benchmark's Grain loader)."""
    dataset = grain_epochs(cache_dir, labels, batch_size, seed, epochs).map(_images_and_labels).to_iter_dataset()
    if not workers:
        return dataset
    if not flags.FLAGS.is_parsed():  # google/grain#1355, as in GrainLoader
        flags.FLAGS.mark_as_parsed()
    return dataset.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))


def _tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.is_file() else ""


def run_training(route: str, data_dir: str | Path, run_dir: str | Path, kill_after: tuple[int, int] | None = None,
                 timeout: float = 600.0, progress: bool = True, **options) -> str:
    """Run :func:`train_run` in a new process (``python -m seedlings_utils.resume``), on the JAX backend, on the CPU.

    With ``kill_after=(epoch, batch)`` the process waits after that step and its saves (:class:`HoldAt`), and is
    killed with SIGKILL as soon as it says so: no clean-up, no last save, as when a machine is lost. Its whole
    process group goes (Grain's worker processes too). Returns "finished" or "killed"; raises ``RuntimeError``
    with the end of the process's output when it fails, or runs past ``timeout`` seconds. With ``progress``, a bar
    counts the steps the process has logged.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "seedlings_utils.resume", "--route", route, "--data-dir", str(data_dir),
               "--run-dir", str(run_dir)]
    for name, value in options.items():
        command += [f"--{name.replace('_', '-')}", str(value)]
    if kill_after is not None:
        command += ["--hold-at", f"{kill_after[0]},{kill_after[1]}"]
    console, holding = run_dir / "console.txt", run_dir / HOLDING_FILE
    holding.unlink(missing_ok=True)
    from .distributed import default_compile_cache

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="One training run of lesson 11, resumed from --run-dir if possible.")
    parser.add_argument("--route", choices=ROUTES, required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--run-dir", required=True)
    for name, default in (("epochs", 2), ("batch-size", 16), ("image-size", 32), ("seed", 42), ("save-every", 4),
                          ("workers", 0), ("base-filters", 8)):
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--hold-at", help="EPOCH,BATCH: wait after that step until killed")
    args = parser.parse_args(argv)
    if keras.config.backend() != "jax":
        raise SystemExit(f"Keras runs on {keras.config.backend()!r} here: set KERAS_BACKEND=jax before Python starts")
    callbacks = []
    if args.hold_at:
        epoch, batch = (int(part) for part in args.hold_at.split(","))
        callbacks.append(HoldAt(args.run_dir, epoch, batch))
    options = {k: v for k, v in vars(args).items() if k not in ("route", "data_dir", "run_dir", "hold_at")}
    train_run(args.route, args.data_dir, args.run_dir, callbacks=callbacks, **options)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
