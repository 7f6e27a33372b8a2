"""The wait-for-data measurement (seedlings_utils.waiting), shared by lesson 09 and ``make bench``: a loader
with a known delay per batch must show that delay as waiting, a faster loader less of it, and nothing is clipped."""

from __future__ import annotations

import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from seedlings_utils import plots, waiting

SIZE, BATCH, BATCHES = 8, 8, 6


class Sleepy(keras.utils.PyDataset):
    """Batches from memory, each after sleeping ``delay`` seconds: a loader whose cost is known."""

    def __init__(self, delay: float):
        super().__init__()  # one worker: Keras reads the batches in its own input thread, one ahead
        rng = np.random.default_rng(0)
        self.delay = delay
        self.x = rng.random((BATCH * BATCHES, SIZE, SIZE, 3), dtype=np.float32)
        self.y = np.arange(BATCH * BATCHES) % 3

    def __len__(self):
        return BATCHES

    def __getitem__(self, index):
        time.sleep(self.delay)
        return self.x[index * BATCH:(index + 1) * BATCH], self.y[index * BATCH:(index + 1) * BATCH]


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    tiny = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Flatten(), keras.layers.Dense(3, "softmax")])
    tiny.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return tiny


def test_a_delay_per_batch_is_measured_as_that_much_waiting(model):
    delay = 0.06
    r = waiting.wait_share(model, Sleepy(delay), repeats=3)
    assert r["steps"] == BATCHES and r["batch_size"] == BATCH and len(r["runs"]) == 3
    assert r["min"] <= r["median"] <= r["max"]
    # the tiny model computes in a few ms: nearly all of each step is the sleep
    assert r["median"] > 0.6, r
    assert 0.5 * 1000 * delay < r["wait_ms_per_step"] < 2.5 * 1000 * delay, r


def test_a_faster_loader_measures_less_waiting(model):
    fast = waiting.wait_share(model, Sleepy(0.01), repeats=3)
    slow = waiting.wait_share(model, Sleepy(0.06), repeats=3)
    assert slow["median"] > fast["median"], (fast, slow)
    # 50 ms more sleep per batch shows as (roughly) 50 ms more waiting per step
    assert 25 < slow["wait_ms_per_step"] - fast["wait_ms_per_step"] < 120, (fast, slow)


def test_a_loader_that_costs_nothing_measures_next_to_no_waiting(model):
    batch = waiting.first_batch(Sleepy(0.0))
    free = tf.data.Dataset.from_tensors(batch).repeat()
    r = waiting.wait_share(model, free, steps=BATCHES, repeats=3)
    # the same input on both sides: only noise is left, around zero, and a negative figure is kept as it is
    assert abs(r["median"]) < 0.5, r


def test_shares_are_not_clipped_at_zero(model, monkeypatch):
    times = iter([1.0, 1.0] + [1.0, 0.8] * 3)  # warm-up, then the loader runs are faster than the free ones
    monkeypatch.setattr(waiting, "timed_fit", lambda model, data, steps: next(times))
    r = waiting.wait_share(model, Sleepy(0.0), repeats=3)
    assert r["median"] == pytest.approx(1 - 1.0 / 0.8) and r["median"] < 0 and r["max"] < 0


def test_the_free_input_repeats_one_batch_from_memory():
    loader = Sleepy(0.0)
    batch = waiting.first_batch(loader)
    free = waiting.free_input(batch)
    assert int(free.cardinality()) == int(tf.data.INFINITE_CARDINALITY)
    for x, y in free.take(3).as_numpy_iterator():
        assert np.array_equal(x, loader.x[:BATCH]) and np.array_equal(y, loader.y[:BATCH])
    tf_loader = tf.data.Dataset.from_tensor_slices((loader.x, loader.y)).batch(BATCH)
    assert all(np.array_equal(a, b) for a, b in zip(waiting.first_batch(tf_loader), batch, strict=True))
    assert waiting.batches_in(tf_loader) == BATCHES and waiting.batches_in(free) is None


def test_weights_are_put_back_and_bad_arguments_are_refused(model):
    before = [w.numpy() for w in model.weights]
    waiting.wait_share(model, Sleepy(0.0), repeats=1, warmup=False)
    assert all(np.array_equal(w.numpy(), b) for w, b in zip(model.weights, before, strict=True))
    with pytest.raises(ValueError, match="only 6 batches"):
        waiting.wait_share(model, Sleepy(0.0), steps=7)
    with pytest.raises(ValueError, match="give steps"):
        waiting.wait_share(model, waiting.free_input(waiting.first_batch(Sleepy(0.0))))


def test_course_loaders_and_the_summary_and_plot(tmp_path, model):
    from seedlings_utils.exercises import tiny_image_folder

    names = tiny_image_folder(tmp_path / "images", count=16)
    labels = np.arange(16) % 3
    loaders = waiting.course_loaders(tmp_path / "images", names, labels, SIZE, BATCH, tmp_path / "cache")
    assert list(loaders) == ["PyDataset, 2 threads", "cache (.npy memmap)", "tf.data"]
    firsts = [waiting.first_batch(loader) for loader in loaders.values()]
    for x, y in firsts:
        assert x.shape == (BATCH, SIZE, SIZE, 3) and np.array_equal(y, labels[:BATCH])
    assert np.allclose(firsts[0][0], firsts[1][0]) and np.abs(firsts[0][0] - firsts[2][0]).max() <= 2 / 255
    results = waiting.wait_shares(model, {"cache (.npy memmap)": loaders["cache (.npy memmap)"]}, repeats=1,
                                  progress=False)
    table = waiting.format_wait_shares(results)
    assert "cache (.npy memmap)" in table and "%" in table
    fig = plots.plot_wait_shares(results)
    assert fig.axes[0].get_title()
