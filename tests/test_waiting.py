"""The wait-for-data measurement (seedlings_utils.waiting), shared by lesson 09 and ``make bench``: a loader
with a known cost per batch must show that cost as waiting, a cheaper loader less of it, and nothing is clipped.

The measurement's clock is a virtual one here: it moves only when a loader reads a batch (by that batch's cost)
and each time it is read (by a fixed cost: an epoch, timed between two readings, costs that much on its own).
So every figure is known exactly, and the tests assert what was counted, not how fast this machine was."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from seedlings_utils import plots, waiting

SIZE, BATCH, BATCHES = 8, 8, 6
EPOCH_COST = 0.03  # virtual seconds an epoch costs on its own: the clock moves by that much at each reading


class VirtualClock:
    """``perf_counter`` for the measurement: the time moves only by ``spend`` (a loader's reading, each reading)."""

    def __init__(self):
        self.now = 0.0

    def spend(self, seconds: float) -> None:
        self.now += seconds

    def perf_counter(self) -> float:
        self.spend(EPOCH_COST)
        return self.now


@pytest.fixture
def clock(monkeypatch) -> VirtualClock:
    clock = VirtualClock()
    monkeypatch.setattr(waiting, "time", clock)
    return clock


class Sleepy(keras.utils.PyDataset):
    """Batches from memory, each costing ``delay`` seconds of ``clock``: a loader whose cost is known."""

    def __init__(self, delay: float, clock: VirtualClock | None = None):
        super().__init__()  # one worker: Keras reads the batches in its own input thread, one ahead
        rng = np.random.default_rng(0)
        self.delay, self.clock = delay, clock
        self.x = rng.random((BATCH * BATCHES, SIZE, SIZE, 3), dtype=np.float32)
        self.y = np.arange(BATCH * BATCHES) % 3

    def __len__(self):
        return BATCHES

    def __getitem__(self, index):
        if self.clock is not None:
            self.clock.spend(self.delay)
        return self.x[index * BATCH:(index + 1) * BATCH], self.y[index * BATCH:(index + 1) * BATCH]


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    tiny = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Flatten(), keras.layers.Dense(3, "softmax")])
    tiny.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return tiny


@pytest.mark.slow
def test_a_cost_per_batch_is_measured_as_that_much_waiting(model, clock):
    delay = 0.06
    r = waiting.wait_share(model, Sleepy(delay, clock), repeats=3)
    assert r["steps"] == BATCHES and r["batch_size"] == BATCH and len(r["runs"]) == 3
    # each timed loader epoch counts its six readings and nothing else (not fit's look at the first batches
    # before the epoch); each free epoch only the epoch's own cost
    for run in r["runs"]:
        assert run["free_s"] == pytest.approx(EPOCH_COST) and run["loader_s"] == pytest.approx(EPOCH_COST + 6 * delay)
    share = 1 - EPOCH_COST / (EPOCH_COST + 6 * delay)
    assert r["median"] == pytest.approx(share) and r["min"] == pytest.approx(share) == r["max"]
    assert r["wait_ms_per_step"] == pytest.approx(1000 * delay), r
    assert r["compute_ms_per_step"] == pytest.approx(1000 * EPOCH_COST / BATCHES), r


@pytest.mark.slow
def test_a_cheaper_loader_measures_less_waiting(model, clock):
    fast = waiting.wait_share(model, Sleepy(0.01, clock), repeats=3)
    slow = waiting.wait_share(model, Sleepy(0.06, clock), repeats=3)
    assert slow["median"] > fast["median"], (fast, slow)
    # 50 ms more per batch is 50 ms more waiting per step
    assert slow["wait_ms_per_step"] - fast["wait_ms_per_step"] == pytest.approx(50), (fast, slow)


@pytest.mark.slow
def test_a_loader_that_costs_nothing_measures_no_waiting(model, clock):
    batch = waiting.first_batch(Sleepy(0.0))
    free = tf.data.Dataset.from_tensors(batch).repeat()
    r = waiting.wait_share(model, free, steps=BATCHES, repeats=3)
    assert r["median"] == pytest.approx(0) and r["wait_ms_per_step"] == pytest.approx(0), r


def test_shares_are_not_clipped_at_zero(model, monkeypatch):
    times = iter([1.0, 1.0] + [1.0, 0.8] * 3)  # warm-up, then the loader runs are faster than the free ones
    monkeypatch.setattr(waiting, "timed_fit", lambda model, data, steps, skip_steps=0: next(times))
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


@pytest.mark.slow
def test_weights_are_put_back_and_bad_arguments_are_refused(model):
    before = [w.numpy() for w in model.weights]
    waiting.wait_share(model, Sleepy(0.0), repeats=1, warmup=False)
    assert all(np.array_equal(w.numpy(), b) for w, b in zip(model.weights, before, strict=True))
    with pytest.raises(ValueError, match="only 6 batches"):
        waiting.wait_share(model, Sleepy(0.0), steps=7)
    with pytest.raises(ValueError, match="give steps"):
        waiting.wait_share(model, waiting.free_input(waiting.first_batch(Sleepy(0.0))))


@pytest.mark.slow
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


def test_the_verdict_says_input_bound_from_the_target_up():
    def figures(*shares):
        runs = [{"share": s, "loader_s": 1.0, "free_s": 1.0 - s} for s in shares]
        return waiting.summarize(runs, steps=10)

    bound = waiting.verdict(figures(0.62, 0.70, 0.55))
    assert bound.startswith("input-bound: the model waits 62.0 % of each step (runs: 55 to 70 %)"), bound
    assert "62 ms of waiting per step against 38 ms of compute" in bound, bound
    assert waiting.verdict(figures(0.05)).startswith("input-bound")  # the target itself is not met
    free = waiting.verdict(figures(0.01, -0.3, 0.04))
    assert free.startswith("not input-bound: the model waits 1.0 % of each step (runs: -30 to 4 %)"), free
    noise = waiting.verdict(figures(-0.12, -0.16, 0.26))
    assert noise.startswith("not input-bound: no waiting measured (median -12 %, runs -16 to 26 %: below 0 is "
                            "noise"), noise
