"""Lesson 12's exercises: the reference solutions pass, and the typical wrong answers are rejected, each with a
message naming its mistake."""

import hashlib

import pytest

from seedlings_utils.exercises import CORRECT, NOT_ATTEMPTED
from seedlings_utils.exercises import lesson12 as ex

from .helpers import WrongAnswers, define, rejected

WRONG = WrongAnswers()


@pytest.mark.parametrize("q", [ex.q1, ex.q2, ex.q3])
def test_reference_solutions_pass_and_untouched_answers_are_not_attempted(q):
    assert q.evaluate(define(q.solution_code, q.answer_name)).status == CORRECT
    assert q.evaluate(None).status == NOT_ATTEMPTED


@WRONG(ex.q1, "counts shards, not images")
def round_robin(counts, num_processes):
    return [list(range(p, len(counts), num_processes)) for p in range(num_processes)]


@WRONG(ex.q1, "go to no process", "never trained")
def cut_to_a_multiple(counts, num_processes):
    usable = len(counts) - len(counts) % num_processes
    return [list(range(p, usable, num_processes)) for p in range(num_processes)]


@WRONG(ex.q1, "one list of shard indices for each")
def only_processes_with_shards(counts, num_processes):
    shards = [list(range(p, len(counts), num_processes)) for p in range(num_processes)]
    return [mine for mine in shards if mine]


@WRONG(ex.q1, "more than one process")
def everyone_reads_everything(counts, num_processes):
    return [list(range(len(counts))) for _ in range(num_processes)]


@WRONG(ex.q1, "shard indices")
def image_counts_instead_of_indices(counts, num_processes):
    shards, load = [[] for _ in range(num_processes)], [0] * num_processes
    for i in sorted(range(len(counts)), key=lambda i: -counts[i]):
        p = load.index(min(load))
        shards[p].append(counts[i] + len(counts))  # the count, not the index
        load[p] += counts[i]
    return shards


@WRONG(ex.q2, "keeps the", "used last")
def capacity_arithmetic(order_1, order_2, capacity):
    return max(0, len(order_2) - capacity)


@WRONG(ex.q2, "most recently used")
def first_in_first_out(order_1, order_2, capacity):
    kept, downloads = [], 0
    for epoch, order in enumerate((order_1, order_2)):
        for shard in order:
            if shard in kept:
                continue
            downloads += epoch == 1
            if len(kept) >= capacity:
                kept.pop(0)
            kept.append(shard)
    return downloads


@WRONG(ex.q2, "exactly")
def one_too_many(order_1, order_2, capacity):
    from collections import OrderedDict

    kept, downloads = OrderedDict(), 0
    for epoch, order in enumerate((order_1, order_2)):
        for shard in order:
            if shard in kept:
                kept.move_to_end(shard)
                continue
            downloads += epoch == 1
            kept[shard] = True
            if len(kept) > capacity + 1:  # evicts one shard too late
                kept.popitem(last=False)
    return downloads


@WRONG(ex.q3, "Checking the size alone", "SHA-256")
def size_only(data, entry):
    return len(data) == entry["bytes"]


@WRONG(ex.q3, "Checking the size alone")
def or_instead_of_and(data, entry):
    return len(data) == entry["bytes"] or hashlib.sha256(data).hexdigest() == entry["sha256"].lower()


@WRONG(ex.q3, "capitals")
def case_sensitive(data, entry):
    return len(data) == entry["bytes"] and hashlib.sha256(data).hexdigest() == entry["sha256"]


@WRONG(ex.q3, "the very bytes")
def md5_like_an_etag(data, entry):
    return hashlib.md5(data).hexdigest() == entry["sha256"]


@pytest.mark.parametrize("q, answer, phrases", WRONG.cases)
def test_typical_mistakes_are_rejected(q, answer, phrases):
    rejected(q, answer, *phrases)
