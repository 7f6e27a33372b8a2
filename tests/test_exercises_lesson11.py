"""Lesson 11's exercises reject the typical wrong answers, each with a message naming its mistake."""

import json
import math

import numpy as np
import pytest

from seedlings_utils.dataset import SeedlingsDataset, load_image_uint8
from seedlings_utils.exercises import CORRECT, NOT_ATTEMPTED
from seedlings_utils.exercises import lesson11 as ex

from .helpers import REPO, WrongAnswers, rejected

WRONG = WrongAnswers()

# ---- q1: the order of epoch e ----


@WRONG(ex.q1, "depends on what ran before")
def global_generator(seed, epoch, count):
    return np.random.permutation(count)  # noqa: NPY002 - the mistake


_shared = np.random.default_rng(0)


@WRONG(ex.q1, "depends on what ran before")
def one_generator_for_all_calls(seed, epoch, count):
    return _shared.permutation(count)


@WRONG(ex.q1, "several epochs have the same order")
def epoch_left_out(seed, epoch, count):
    return np.random.default_rng(seed).permutation(count)


@WRONG(ex.q1, "the seed must choose")
def seed_left_out(seed, epoch, count):
    return np.random.default_rng(epoch).permutation(count)


@WRONG(ex.q1, "not a permutation")
def draws_with_replacement(seed, epoch, count):
    return np.random.default_rng([seed, epoch]).integers(0, count, count)


@WRONG(ex.q1, "epoch 0 of seed 1 has the order of epoch 1 of seed 0", "seed + epoch is the same")
def seed_plus_epoch(seed, epoch, count):
    return np.random.default_rng(seed + epoch).permutation(count)


@WRONG(ex.q1, "epoch 0 of seed 1 has the order of epoch 2 of seed 0", "one number made of both")
def seed_times_two_plus_epoch(seed, epoch, count):
    return np.random.default_rng(seed * 2 + epoch).permutation(count)


# ---- q2: a position in samples ----


class Reference(SeedlingsDataset):
    """The reference solution, for the wrong answers to change one thing each."""

    def __init__(self, image_dir, filenames, labels, batch_size=32, image_size=128, seed=0, **kwargs):
        super().__init__(image_dir, filenames, labels, batch_size, image_size, **kwargs)
        self.seed = seed
        self.start(0, 0)

    def draw(self, epoch):
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.filenames))

    def start(self, epoch, sample=0):
        self.epoch, self.first_sample = epoch, sample
        self.order = self.draw(epoch)

    def __len__(self):
        return math.ceil((len(self.filenames) - self.first_sample) / self.batch_size)

    def __getitem__(self, index):
        begin = self.first_sample + index * self.batch_size
        picked = self.order[begin : begin + self.batch_size]
        return self.load_batch(picked), self.labels[picked]


@WRONG(ex.q2, "you took 12 as a batch number")
class CountsBatches(Reference):  # the lesson's position, (epoch, next batch), under another name
    def __len__(self):
        return math.ceil(len(self.filenames) / self.batch_size) - self.first_sample

    def __getitem__(self, index):
        batch = self.first_sample + index
        picked = self.order[batch * self.batch_size : (batch + 1) * self.batch_size]
        return self.load_batch(picked), self.labels[picked]


@WRONG(ex.q2, "the order depends on what ran before", "default_rng([seed, epoch])")
class OneGeneratorForTheRun(Reference):
    def draw(self, epoch):
        if not hasattr(self, "rng"):
            self.rng = np.random.default_rng(self.seed)
        return self.rng.permutation(len(self.filenames))


@WRONG(ex.q2, "epoch 0 of seed 6 has the order of epoch 1 of seed 5", "seed + epoch")
class SeedPlusEpoch(Reference):
    def draw(self, epoch):
        return np.random.default_rng(self.seed + epoch).permutation(len(self.filenames))


@WRONG(ex.q2, "the right samples in another order")
class NewOrderOfTheSamplesLeft(Reference):
    def start(self, epoch, sample=0):
        super().start(epoch, sample)
        if not sample:
            return
        left = np.random.default_rng([self.seed, epoch, sample]).permutation(self.order[sample:])
        self.order = np.concatenate([self.order[:sample], left])


@WRONG(ex.q2, "__len__ counts the batches left")
class WholeEpochLength(Reference):
    def __len__(self):
        return math.ceil(len(self.filenames) / self.batch_size)


@WRONG(ex.q2, "right after __init__", "the data set in memory")
class DecodesEverythingInInit(Reference):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.images = [self.load_batch(np.array([i]))[0] for i in range(len(self.filenames))]


@WRONG(ex.q2, "keeps batches it already served")
class RemembersServedBatches(Reference):
    def __getitem__(self, index):
        batch = super().__getitem__(index)
        self.__dict__.setdefault("seen", []).append(batch)
        return batch


@WRONG(ex.q2, "keeps batches it already served")
class CachesDecodedImages(Reference):
    def load_batch(self, picked):
        cache = self.__dict__.setdefault("cache", {})
        for i in picked:
            if i not in cache:
                cache[i] = super().load_batch(np.array([i]))[0]
        return np.stack([cache[i] for i in picked])


@WRONG(ex.q2, "never reached keras.utils.PyDataset")
class KwargsLost(Reference):
    def __init__(self, image_dir, filenames, labels, batch_size=32, image_size=128, seed=0, **kwargs):
        super().__init__(image_dir, filenames, labels, batch_size, image_size, seed)


@WRONG(ex.q2, "float32 in [0, 1]")
class Uint8Images(Reference):
    def load_batch(self, picked):
        return np.stack([load_image_uint8(self.image_dir / name, self.image_size) for name in self.filenames[picked]])


@WRONG(ex.q2, "float32 in [0, 1]")
class ScaledTwice(Reference):
    def load_batch(self, picked):
        return super().load_batch(picked) / 255


# ---- q3: Grain's state after the batch that was trained ----


class Keeper:
    def __init__(self, iterator):
        self.iterator, self.read, self.states = iterator, 0, {}

    def __iter__(self):
        return self

    def __next__(self):
        batch = next(self.iterator)
        self.read += 1
        self.states[self.read] = self.iterator.get_state()
        return batch

    def state_after(self, n):
        return self.states.pop(n)


@WRONG(ex.q3, "it is the iterator's state now", "read ahead")
class StateNow(Keeper):
    def state_after(self, n):
        return self.iterator.get_state()


@WRONG(ex.q3, "would be trained twice")
class StateBeforeTheBatch(Keeper):
    def __next__(self):
        self.read += 1
        self.states[self.read] = self.iterator.get_state()
        return next(self.iterator)


@WRONG(ex.q3, "remembers batches it already handed on")
class KeepsBatchesWithTheirStates(Keeper):
    def __next__(self):
        batch = super().__next__()
        self.__dict__.setdefault("history", []).append((batch, self.states[self.read]))
        return batch


@WRONG(ex.q3, "it must give the iterator's batch itself")
class ReturnsTheStateToo(Keeper):
    def __next__(self):
        batch = super().__next__()
        return batch, self.states[self.read]


@pytest.mark.parametrize("q, answer, phrases", WRONG.cases, ids=lambda case: getattr(case, "__name__", ""))
def test_typical_mistakes_are_rejected_naming_them(q, answer, phrases):
    rejected(q, answer, *phrases)


def test_every_exercise_has_its_wrong_answers():
    assert {case.values[0].name for case in WRONG.cases} == {"q1", "q2", "q3"}


def test_solutions_and_the_tests_references_pass_and_the_notebooks_starters_are_not_attempted():
    for q in (ex.q1, ex.q2, ex.q3):
        assert q.evaluate(q.solution_namespace()[q.answer_name]).status == CORRECT, q.name
    assert ex.q2.evaluate(Reference).status == CORRECT and ex.q3.evaluate(Keeper).status == CORRECT
    cells = json.loads((REPO / "notebooks" / "11_resume_a_long_epoch_exactly.ipynb").read_text())["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    for q in (ex.q1, ex.q2, ex.q3):
        starter = next(c for c in code if f"ex.{q.name}.check(" in c)
        namespace: dict = {"ex": ex}
        exec(starter.replace(f"ex.{q.name}.check({q.answer_name})", ""), namespace)
        answer = namespace[q.answer_name]
        if q.name != "q1":  # a class: the check builds it, and its __init__ raises NotImplementedError
            assert q.evaluate(answer).status == NOT_ATTEMPTED, q.name
        else:
            assert q.evaluate(answer).status == NOT_ATTEMPTED
