"""Is the GPU waiting? The share of each training step spent waiting for data (lesson 09 and ``make bench``).

    from seedlings_utils.waiting import wait_share
    figures = wait_share(model, loader, repeats=3)   # {"median": 0.31, "min": 0.28, "max": 0.35, "runs": [...]}

How it is measured (the usual test for an input bottleneck, turned into a number): time ``steps`` training
steps of ``model`` reading from ``loader``, then the same steps reading an input that costs nothing, one
batch of that loader kept in memory and repeated (``tf.data.Dataset.from_tensors(batch).repeat()``). The
difference is what the loader adds, the waiting:

    share = 1 - t(free input) / t(loader)

Both runs are one-epoch ``model.fit`` calls of the same number of steps on the same compiled model, each
timed from the start of its epoch to its end: what an epoch of ``fit`` itself costs (callbacks, the step
function) is in both and cancels; what the loader costs to start (its threads, its pipeline, its first
batch) is in the loader's run, as it is in every epoch of training.
Each repeat times the two back to back, so a change in the machine's load hits both alike; the median of
the repeats is the figure and their min and max its spread. Nothing is clipped: a share below zero means
the loader's run happened to be faster than the free one, i.e. noise, and is reported as it is.

(The benchmark's earlier figure, ``1 - t(fit on NumPy arrays) / t(fit on the loader)`` clipped at zero,
was noise: ``fit`` on NumPy arrays is not free, it slices, converts and shuffles the arrays every epoch,
and one run of each was compared.)
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

TARGET = 0.05  # the course's target: with lesson 07's cache, under 5 % of each step waiting for data


def first_batch(loader):
    """The first batch of ``loader`` (a ``keras.utils.PyDataset``, a ``tf.data.Dataset`` or any iterable) as NumPy."""
    import keras

    if isinstance(loader, keras.utils.PyDataset):
        batch = loader[0]
    else:
        batch = next(iter(loader))
    return tuple(np.asarray(part) for part in batch) if isinstance(batch, (tuple, list)) else np.asarray(batch)


def free_input(batch):
    """An input that costs nothing: ``batch`` (images, labels) kept in memory and repeated for ever."""
    import tensorflow as tf

    return tf.data.Dataset.from_tensors(batch).repeat()


def batches_in(loader) -> int | None:
    """Batches in one pass over ``loader``; ``None`` when it does not say (an endless or unknown ``tf.data``)."""
    try:
        return len(loader)
    except TypeError:
        pass
    import tensorflow as tf

    if isinstance(loader, tf.data.Dataset):
        count = int(loader.cardinality())
        return count if count >= 0 else None
    return None


def _epoch_clock(skip_steps: int = 0):
    """A Keras callback that times each epoch, from ``on_epoch_begin`` (or the end of its first ``skip_steps``
    steps) to ``on_epoch_end``."""
    import keras

    class EpochClock(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            if batch == skip_steps - 1:
                float((logs or {}).get("loss", 0.0))  # that step has finished: the clock starts again here
                self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            float((logs or {}).get("loss", 0.0))  # the last step's result is there: nothing is still running
            self.seconds.append(time.perf_counter() - self._start)

    return EpochClock()


def timed_fit(model, data, steps: int | None, skip_steps: int = 0) -> float:
    """Seconds of one training epoch of ``model`` over ``data``: ``steps`` steps, or all of ``data`` when ``None``.

    The clock runs from the epoch's start to its end: it counts what the loader costs to start in every epoch
    (threads, pipeline, first batch) and leaves out what ``fit`` does once per call before the first epoch
    (for a ``PyDataset``, reading its first batches to learn their shapes). ``skip_steps``: start the clock
    after the epoch's first ``skip_steps`` steps instead, so that a loader's start-up is left out too (its
    steady reading only). ``shuffle=False`` so that every run does the same work (a shuffling loader shuffles
    itself anyway).
    """
    clock = _epoch_clock(skip_steps)
    model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False, callbacks=[clock])
    return clock.seconds[0]


def summarize(runs: list[dict], steps: int, batch_size: int | None = None) -> dict:
    """The median, min and max of the runs' shares (not clipped), and the median milliseconds per step."""
    shares = [run["share"] for run in runs]
    free_ms = statistics.median(1000 * run["free_s"] / steps for run in runs)
    wait_ms = statistics.median(1000 * (run["loader_s"] - run["free_s"]) / steps for run in runs)
    return {"median": statistics.median(shares), "min": min(shares), "max": max(shares), "runs": runs,
            "steps": steps, "batch_size": batch_size, "compute_ms_per_step": free_ms, "wait_ms_per_step": wait_ms}


def wait_share(model, loader, steps: int | None = None, repeats: int = 3, warmup: bool = True,
               skip_steps: int = 0) -> dict:
    """Share of each training step of ``model`` spent waiting for ``loader``, measured ``repeats`` times.

    model: a compiled ``keras.Model`` (or a function of no arguments that returns one); its weights are
        put back afterwards (its optimizer's state is not: the timed steps do train it).
    loader: a ``keras.utils.PyDataset`` or a ``tf.data.Dataset`` of (images, labels) batches the model takes.
    steps: training steps per timed run; ``None``: one whole pass over ``loader``.
    warmup: first run both once untimed, so that tracing the step function is not counted.
    skip_steps: leave the first steps of every run out of its time, in both runs (:func:`timed_fit`): the
        share of the loader's steady reading, without its start-up (0: what one epoch costs, start-up included).

    Returns ``{"median", "min", "max", "runs": [{"loader_s", "free_s", "share"}, ...], "steps", "batch_size",
    "compute_ms_per_step", "wait_ms_per_step"}``; shares are fractions (0.31 is 31 %), never clipped.
    """
    import keras

    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    if not isinstance(model, keras.Model):
        model = model()
    available = batches_in(loader)
    if steps is None and available is None:
        raise ValueError("the loader does not say how many batches it has: give steps")
    if steps is not None and available is not None and steps > available:
        raise ValueError(f"steps={steps} but the loader has only {available} batches: give a larger loader or fewer "
                         "steps (a run must not wrap around the end of the loader)")
    batch = first_batch(loader)
    free = free_input(batch)
    n = steps if steps is not None else available
    if not 0 <= skip_steps < n:
        raise ValueError(f"skip_steps={skip_steps} leaves none of the {n} steps to time")
    loader_steps = None if n == available else n  # a whole pass: let fit end the epoch at the loader's end
    skip = {"skip_steps": skip_steps} if skip_steps else {}
    saved = model.get_weights()
    try:
        if warmup:
            timed_fit(model, free, n)
            timed_fit(model, loader, loader_steps)
        runs = []
        for _ in range(repeats):
            free_s = timed_fit(model, free, n, **skip)
            loader_s = timed_fit(model, loader, loader_steps, **skip)
            runs.append({"loader_s": loader_s, "free_s": free_s, "share": 1.0 - free_s / loader_s})
    finally:
        model.set_weights(saved)
    images = batch[0] if isinstance(batch, tuple) else batch
    return {**summarize(runs, n - skip_steps, int(len(images))), "skip_steps": skip_steps}


def verdict(figures: Mapping, target: float = TARGET) -> str:
    """One line a learner reads: input-bound or not, and how much of each step the model waits.

    ``figures`` is what :func:`wait_share` returns; a median share at or above ``target`` (5 %) is input-bound.
    """
    share, low, high = (100 * figures[key] for key in ("median", "min", "max"))
    several = len(figures.get("runs", ())) > 1
    spread = f" (runs: {low:.0f} to {high:.0f} %)" if several else ""
    if figures["median"] >= target:
        wait_ms, compute_ms = figures["wait_ms_per_step"], figures["compute_ms_per_step"]
        return (f"input-bound: the model waits {share:.1f} % of each step{spread}, {wait_ms:.0f} ms of waiting per "
                f"step against {compute_ms:.0f} ms of compute")
    if figures["median"] < 0:
        runs = f", runs {low:.0f} to {high:.0f} %" if several else ""
        return (f"not input-bound: no waiting measured (median {share:.0f} %{runs}: below 0 is noise, the loader's "
                "runs happened to be quicker than the free input's)")
    return (f"not input-bound: the model waits {share:.1f} % of each step{spread}, under the course's "
            f"{100 * target:.0f} % target")


def step_seconds(model, batch, steps: int, repeats: int = 3) -> dict:
    """Seconds per training step of ``model`` on the free input made of ``batch``: pure compute, no loader.

    Returns ``{"median", "min", "max", "runs"}`` (seconds per step), after one untimed warm-up run; the
    model's weights are put back afterwards. Lesson 09 compares float32 and mixed precision with it.
    """
    free = free_input(batch)
    saved = model.get_weights()
    try:
        timed_fit(model, free, steps)
        runs = [timed_fit(model, free, steps) / steps for _ in range(repeats)]
    finally:
        model.set_weights(saved)
    return {"median": statistics.median(runs), "min": min(runs), "max": max(runs), "runs": runs}


def course_loaders(image_dir, filenames, labels, image_size: int, batch_size: int, cache_dir, workers: int = 2,
                   progress: bool = False) -> dict:
    """The three loaders of lessons 05, 07 and 08 over the same files, in the same order (no shuffling).

    Lesson 07's cache of these files is built in ``cache_dir`` first (or reused when it is current). Both
    ``PyDataset``s load with ``workers`` threads, as lessons 05-09 train; ``tf.data`` tunes its own threads.
    Keys are the names ``make bench`` uses: "PyDataset, 2 threads" (with ``workers=2``), "cache (.npy memmap)",
    "tf.data".
    """
    from .cache import CachedDataset, build_image_cache
    from .dataset import SeedlingsDataset
    from .tfdata import make_tf_dataset

    labels = np.asarray(labels)
    cache = build_image_cache(image_dir, filenames, image_size, Path(cache_dir), progress=progress)
    return {
        f"PyDataset, {workers} {'threads' if workers > 1 else 'worker'}": SeedlingsDataset(
            image_dir, filenames, labels, batch_size=batch_size, image_size=image_size, workers=workers),
        "cache (.npy memmap)": CachedDataset(cache, labels, batch_size=batch_size, workers=workers),
        "tf.data": make_tf_dataset(image_dir, filenames, labels, batch_size=batch_size, image_size=image_size),
    }


def wait_shares(model, loaders: Mapping, steps: int | None = None, repeats: int = 3, progress: bool = True) -> dict:
    """:func:`wait_share` for each loader in ``loaders`` (name -> loader), on the same model: name -> figures."""
    import keras

    if not isinstance(model, keras.Model):
        model = model()
    results = {}
    for name, loader in loaders.items():
        if progress:
            print(f"  {name} ...", flush=True)
        results[name] = wait_share(model, loader, steps=steps, repeats=repeats)
    return results


def class_folders(image_dir, filenames, labels, out_dir) -> Path:
    """``out_dir/class_<label>/<name>``: hard links to ``image_dir``'s files (copies where links are impossible), one
    folder per label, as lesson 05's ``by_species/`` gives ``keras.utils.image_dataset_from_directory`` its classes
    (the folders sort in the labels' order). Links already there are kept."""
    import os
    import shutil

    image_dir, out_dir, labels = Path(image_dir), Path(out_dir), np.asarray(labels)
    width = len(str(int(np.max(labels))))
    for label in np.unique(labels):
        (out_dir / f"class_{int(label):0{width}d}").mkdir(parents=True, exist_ok=True)
    for name, label in zip(np.asarray(filenames).tolist(), labels.tolist(), strict=True):
        target = out_dir / f"class_{int(label):0{width}d}" / name
        if not target.exists():
            try:
                os.link(image_dir / name, target)
            except OSError:
                shutil.copy2(image_dir / name, target)
    return out_dir


#: The loaders ``make bench`` times besides the course's: Keras' own, and lesson 11's Grain over the cache
PEER_LOADERS = ("Keras image_dataset_from_directory", "Grain, 1 worker process", "Grain, 2 worker processes")


def loader_wait_shares(image_dir, filenames, labels, image_size: int, batch_size: int, images: int, work_dir,
                       repeats: int = 3, seed: int = 0, progress: bool = True, skip_steps: int = 2) -> dict:
    """What ``make bench`` reports: :func:`wait_share` of lesson 09's model for lesson 05's, 07's and 08's loaders,
    and for the peers (:data:`PEER_LOADERS`): Keras' ``image_dataset_from_directory`` over class folders of the
    same files (hard links, shuffle on, its buffer of 8 batches of names) and lesson 11's Grain over the same
    cache with 1 and 2 worker processes.

    The model is lesson 09's as phase 2 trains it (:func:`~seedlings_utils.backbone_views.fine_tuned_model`: the
    backbone's top unfrozen, augmentation inside), with random weights (timing does not depend on them, and
    the benchmark needs no network). The loaders read the first ``images`` files, rounded down to whole
    batches; one timed run is one pass over them, its first ``skip_steps`` steps untimed in both runs (a loader's
    start-up, e.g. Grain's worker processes starting in every run, is not its steady reading). Returns loader
    name -> :func:`wait_share`'s figures.
    """
    import keras

    from .backbone_views import fine_tuned_model
    from .killed_runs import grain_training_batches

    n = min(len(filenames), images) // batch_size * batch_size
    if n == 0:
        raise ValueError(f"{min(len(filenames), images)} images make no whole batch of {batch_size}")
    names, ys = np.asarray(filenames)[:n], np.asarray(labels)[:n].astype(np.int64)
    keras.utils.set_random_seed(seed)
    model = fine_tuned_model(int(np.max(labels)) + 1, image_size, weights=None, seed=seed)
    cache_dir = Path(work_dir) / f"wait-cache-{n}-{image_size}"
    loaders = dict(course_loaders(image_dir, names, ys, image_size, batch_size, cache_dir))
    classes = class_folders(image_dir, names, ys, Path(work_dir) / f"wait-classes-{n}")
    loaders["Keras image_dataset_from_directory"] = keras.utils.image_dataset_from_directory(
        classes, image_size=(image_size, image_size), batch_size=batch_size, shuffle=True, seed=seed, verbose=False)
    for workers in (1, 2):  # one iterator, its worker processes started once, as in training
        epochs = 2 * (repeats + 2)  # enough for every run
        loaders[PEER_LOADERS[workers]] = _batches(iter(grain_training_batches(cache_dir, ys, batch_size, seed=seed,
                                                                              epochs=epochs, workers=workers)))
    steps = n // batch_size
    results = {}
    for name, loader in loaders.items():
        if progress:
            print(f"  {name} ...", flush=True)
        results[name] = wait_share(model, loader, steps=steps, repeats=repeats, skip_steps=min(skip_steps, steps // 2))
    return results


def _batches(iterator):
    """A generator over ``iterator`` (``fit`` takes a generator, and reads on where the last ``fit`` stopped)."""
    yield from iterator


def format_wait_shares(results: Mapping[str, dict]) -> str:
    """One line per loader: the median share, its spread, and the milliseconds of waiting and compute per step."""
    lines = [f"{'loader':<24}{'waiting (median)':>17}{'min .. max':>18}{'wait ms/step':>14}{'compute ms/step':>17}"]
    for name, r in results.items():
        spread = f"{100 * r['min']:.1f} .. {100 * r['max']:.1f} %"
        lines.append(f"{name:<24}{100 * r['median']:>15.1f} %{spread:>18}{r['wait_ms_per_step']:>14.1f}"
                     f"{r['compute_ms_per_step']:>17.1f}")
    return "\n".join(lines)
