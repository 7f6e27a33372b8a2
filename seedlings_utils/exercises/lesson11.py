"""Lesson 11's exercises: the order of an epoch from (seed, epoch); where a resume goes on; which images a resume
trained on twice."""

from __future__ import annotations

import numpy as np

from . import Exercise, Incorrect

#: (seed, count) the order check tries, over epochs 0-3.
ORDERS = ((42, 10), (7, 25), (0, 3))


def _check_order(order_of_epoch) -> str:
    for seed, count in ORDERS:
        forward = {epoch: np.asarray(order_of_epoch(seed, epoch, count)).tolist() for epoch in range(4)}
        for epoch, order in forward.items():
            if sorted(order) != list(range(count)):
                raise Incorrect(f"order_of_epoch({seed}, {epoch}, {count}) gave {order[:12]}: not a permutation of "
                                f"range({count}); every sample must come exactly once per epoch")
        backward = {epoch: np.asarray(order_of_epoch(seed, epoch, count)).tolist() for epoch in (3, 2, 1, 0)}
        np.random.seed(seed + 1)  # noqa: NPY002 - the global generator, moved on purpose
        again = np.asarray(order_of_epoch(seed, 2, count)).tolist()
        if backward != forward or again != forward[2]:
            raise Incorrect("asked again for the same epoch, order_of_epoch gave another order: it depends on what ran "
                            "before (a generator shared between calls, or NumPy's global one). A resumed process has "
                            "another history: make a new generator from (seed, epoch) inside the function")
        if count > 3 and len({tuple(order) for order in forward.values()}) < 4:
            raise Incorrect(f"with seed {seed}, several epochs have the same order: put the epoch into the seed, e.g. "
                            "np.random.default_rng([seed, epoch])")
    if np.asarray(order_of_epoch(1, 0, 25)).tolist() == np.asarray(order_of_epoch(2, 0, 25)).tolist():
        raise Incorrect("seeds 1 and 2 give the same order: the seed must choose the orders")
    return "the order of an epoch depends on (seed, epoch) alone: any process, any history of calls, gives it again."


q1 = Exercise(
    name="q1",
    task="Write order_of_epoch(seed, epoch, count): a permutation of range(count) from (seed, epoch) alone.",
    checker=_check_order,
    hint_text=("np.random.default_rng accepts a list of numbers as its seed: np.random.default_rng([seed, epoch]) "
               "is a generator of its own for each epoch; its .permutation(count) is the order."),
    solution_code='''
import numpy as np


def order_of_epoch(seed, epoch, count):
    return np.random.default_rng([seed, epoch]).permutation(count)
''',
    answer_name="order_of_epoch",
)

#: (epoch, done, batches_per_epoch) -> the position an exact resume starts from.
POSITIONS = {(1, 3, 10): (1, 3), (0, 1, 5): (0, 1), (2, 9, 10): (2, 9), (1, 10, 10): (2, 0), (0, 5, 5): (1, 0)}


def _check_next_position(next_position) -> str:
    for (epoch, done, per_epoch), expected in POSITIONS.items():
        got = next_position(epoch, done, per_epoch)
        if not isinstance(got, tuple) or len(got) != 2:
            raise Incorrect(f"next_position({epoch}, {done}, {per_epoch}) returned {got!r}: return a pair "
                            "(epoch, next batch)")
        got = tuple(int(part) for part in got)
        if got == expected:
            continue
        what = f"after {done} batches of epoch {epoch} (of {per_epoch}), you said {got}, not {expected}"
        if done == per_epoch and got == (epoch, per_epoch):
            raise Incorrect(f"{what}: an epoch of {per_epoch} batches has no batch {per_epoch} (they count from 0); "
                            "a finished epoch goes on at the next epoch's batch 0")
        if got == (epoch, done - 1):
            raise Incorrect(f"{what}: batches 0 to {done - 1} are trained, so batch {done - 1} would be trained twice; "
                            f"the next one is batch {done}")
        if got == (epoch, done + 1):
            raise Incorrect(f"{what}: batch {done} was never trained, and a resume there would skip it")
        raise Incorrect(what)
    return "the next batch is the number of batches done; a finished epoch goes on at the next epoch's batch 0."


q2 = Exercise(
    name="q2",
    task="Write next_position(epoch, done, batches_per_epoch): the (epoch, next batch) a resume starts from.",
    checker=_check_next_position,
    hint_text=("Batches count from 0: after `done` of them the next one is batch `done`, unless the epoch is "
               "over (done == batches_per_epoch): then it is batch 0 of epoch + 1."),
    solution_code='''
def next_position(epoch, done, batches_per_epoch):
    if done == batches_per_epoch:
        return epoch + 1, 0
    return epoch, done
''',
    answer_name="next_position",
)


def _logs() -> dict[str, tuple[list, dict[int, list[int]]]]:
    """Two runs over 12 samples in batches of 3, epochs 0 and 1: resumed exactly, and restarted at batch 0 after a
    save after batch 1 of epoch 1 (as BackupAndRestore does): (steps, the expected answer)."""
    orders = {epoch: np.random.default_rng([5, epoch]).permutation(12).tolist() for epoch in (0, 1)}
    batches = {epoch: [orders[epoch][b * 3:(b + 1) * 3] for b in range(4)] for epoch in (0, 1)}
    exact = [(e, b, batches[e][b]) for e in (0, 1) for b in range(4)]
    other = np.random.default_rng(99).permutation(12).tolist()  # the order a fresh generator gives the cut epoch
    restarted = exact[:6] + [(1, b, other[b * 3:(b + 1) * 3]) for b in range(4)]
    twice = sorted(set(batches[1][0] + batches[1][1]))
    return {"exact": (exact, {0: [], 1: []}), "restarted": (restarted, {0: [], 1: twice})}


def _check_repeated(repeated_ids) -> str:
    for name, (steps, expected) in _logs().items():
        got = repeated_ids([(e, b, list(ids)) for e, b, ids in steps])
        if not isinstance(got, dict):
            raise Incorrect(f"repeated_ids returned {type(got).__name__}: return a dict {{epoch: sorted ids}}")
        got = {int(e): [int(i) for i in ids] for e, ids in got.items()}
        if got == expected:
            continue
        if any(len(ids) != len(set(ids)) for ids in got.values()):
            raise Incorrect(f"on the {name} log an id is listed more than once: list each repeated id once")
        if any(len(set(ids)) == 12 for ids in got.values()):
            raise Incorrect(f"on the {name} log you found every sample repeated: each sample comes once in every "
                            "epoch, so count the ids within each epoch, not over the whole run")
        if {e: sorted(ids) for e, ids in got.items()} == expected:
            raise Incorrect(f"on the {name} log the ids are right but not sorted: sort them")
        raise Incorrect(f"on the {name} log you found {got}; the ids trained twice are {expected}")
    return ("the exact resume repeats nothing; the restarted epoch repeats the 6 samples of the 2 batches saved before "
            "the kill: the cause is a resume that started the cut epoch again at batch 0, in a new order.")


q3 = Exercise(
    name="q3",
    task="Write repeated_ids(steps): {epoch: the sorted ids trained more than once in that epoch}.",
    checker=_check_repeated,
    hint_text=("Group the ids by epoch (a dict of collections.Counter), then keep the ids whose count is above 1. "
               "Every epoch of the log gets a key, with an empty list when nothing repeats."),
    solution_code='''
from collections import Counter


def repeated_ids(steps):
    counts = {}
    for epoch, batch, ids in steps:
        counts.setdefault(epoch, Counter()).update(ids)
    return {epoch: sorted(i for i, n in count.items() if n > 1) for epoch, count in counts.items()}
''',
    answer_name="repeated_ids",
)
