"""Lesson 11's exercises reject the typical wrong answers, each with a message naming the problem."""

import json

import numpy as np
import pytest

from seedlings_utils.exercises import CORRECT, INCORRECT, NOT_ATTEMPTED
from seedlings_utils.exercises import lesson11 as ex

from .helpers import REPO
from .helpers import define as define_answer


def define(source: str, name: str):
    return define_answer(source, name, np=np)


WRONG_ORDERS = {
    "NumPy's global generator": ('''
        def order_of_epoch(seed, epoch, count):
            return np.random.permutation(count)
        ''', "depends on what ran before"),
    "one generator for all calls": ('''
        rng = np.random.default_rng(0)
        def order_of_epoch(seed, epoch, count):
            return rng.permutation(count)
        ''', "depends on what ran before"),
    "the epoch left out": ('''
        def order_of_epoch(seed, epoch, count):
            return np.random.default_rng(seed).permutation(count)
        ''', "several epochs have the same order"),
    "the seed left out": ('''
        def order_of_epoch(seed, epoch, count):
            return np.random.default_rng(epoch).permutation(count)
        ''', "the seed must choose"),
    "draws with replacement": ('''
        def order_of_epoch(seed, epoch, count):
            return np.random.default_rng([seed, epoch]).integers(0, count, count)
        ''', "not a permutation"),
}


@pytest.mark.parametrize("case", sorted(WRONG_ORDERS))
def test_q1_rejects_wrong_orders(case):
    source, expected = WRONG_ORDERS[case]
    outcome = ex.q1.evaluate(define(source, "order_of_epoch"))
    assert outcome.status == INCORRECT and expected in outcome.message, (case, outcome)


WRONG_POSITIONS = {
    "past the last batch": ('''
        def next_position(epoch, done, batches_per_epoch):
            return epoch, done
        ''', "has no batch"),
    "the last batch done, not the next": ('''
        def next_position(epoch, done, batches_per_epoch):
            return (epoch + 1, 0) if done == batches_per_epoch else (epoch, done - 1)
        ''', "trained twice"),
    "one batch too far": ('''
        def next_position(epoch, done, batches_per_epoch):
            return (epoch + 1, 0) if done == batches_per_epoch else (epoch, done + 1)
        ''', "skip it"),
    "a list, not a pair": ('''
        def next_position(epoch, done, batches_per_epoch):
            return [epoch, done]
        ''', "return a pair"),
}


@pytest.mark.parametrize("case", sorted(WRONG_POSITIONS))
def test_q2_rejects_wrong_positions(case):
    source, expected = WRONG_POSITIONS[case]
    outcome = ex.q2.evaluate(define(source, "next_position"))
    assert outcome.status == INCORRECT and expected in outcome.message, (case, outcome)


WRONG_REPEATS = {
    "counted over the whole run": ('''
        from collections import Counter
        def repeated_ids(steps):
            count = Counter(i for _, _, ids in steps for i in ids)
            return {e: sorted(i for i, n in count.items() if n > 1) for e in {s[0] for s in steps}}
        ''', "count the ids within each epoch"),
    "every repeat listed": ('''
        def repeated_ids(steps):
            out = {}
            for epoch in sorted({s[0] for s in steps}):
                ids = [i for e, _, batch in steps if e == epoch for i in batch]
                out[epoch] = sorted(i for i in ids if ids.count(i) > 1)
            return out
        ''', "list each repeated id once"),
    "not sorted": ('''
        from collections import Counter
        def repeated_ids(steps):
            counts = {}
            for epoch, _, ids in steps:
                counts.setdefault(epoch, Counter()).update(ids)
            return {e: sorted((i for i, n in c.items() if n > 1), reverse=True) for e, c in counts.items()}
        ''', "not sorted"),
    "a set, not a dict": ('''
        def repeated_ids(steps):
            return set()
        ''', "return a dict"),
}


@pytest.mark.parametrize("case", sorted(WRONG_REPEATS))
def test_q3_rejects_wrong_counts(case):
    source, expected = WRONG_REPEATS[case]
    outcome = ex.q3.evaluate(define(source, "repeated_ids"))
    assert outcome.status == INCORRECT and expected in outcome.message, (case, outcome)


def test_solutions_pass_and_the_notebooks_starters_are_not_attempted():
    for q in (ex.q1, ex.q2, ex.q3):
        assert q.evaluate(q.solution_namespace()[q.answer_name]).status == CORRECT, q.name
    cells = json.loads((REPO / "notebooks" / "11_resume_a_long_epoch_exactly.ipynb").read_text())["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    for q in (ex.q1, ex.q2, ex.q3):
        starter = next(c for c in code if f"ex.{q.name}.check(" in c)
        namespace: dict = {"ex": ex}
        exec(starter.replace(f"ex.{q.name}.check({q.answer_name})", ""), namespace)
        assert q.evaluate(namespace[q.answer_name]).status == NOT_ATTEMPTED
