"""Lesson 10's exercises reject the typical wrong answers, each with a message naming the problem."""

import json
import math

import numpy as np
import pytest

from seedlings_utils.exercises import CORRECT, INCORRECT, NOT_ATTEMPTED
from seedlings_utils.exercises import lesson10 as ex

from .conftest import REPO
from .conftest import define as define_answer


def define(source: str, name: str):
    return define_answer(source, name, np=np, math=math)


WRONG_SHARDS = {
    "drops the remainder": ('''
        def block_shard(filenames, labels, process_id, num_processes):
            size = len(filenames) // num_processes
            start, end = process_id * size, (process_id + 1) * size
            return filenames[start:end], labels[start:end]
        ''', "in no shard"),
    "overlapping blocks": ('''
        def block_shard(filenames, labels, process_id, num_processes):
            size = math.ceil(len(filenames) / num_processes)
            start, end = process_id * size, (process_id + 1) * size + 1
            return filenames[start:end], labels[start:end]
        ''', "blocks overlap"),
    "ceil blocks, last one short": ('''
        def block_shard(filenames, labels, process_id, num_processes):
            size = math.ceil(len(filenames) / num_processes)
            start, end = process_id * size, (process_id + 1) * size
            return filenames[start:end], labels[start:end]
        ''', "differ by at most one"),
    "last process takes the rest": ('''
        def block_shard(filenames, labels, process_id, num_processes):
            size = len(filenames) // num_processes
            end = len(filenames) if process_id == num_processes - 1 else (process_id + 1) * size
            return filenames[process_id * size:end], labels[process_id * size:end]
        ''', "differ by at most one"),
    "strided, not a block": ('''
        def block_shard(filenames, labels, process_id, num_processes):
            return filenames[process_id::num_processes], labels[process_id::num_processes]
        ''', "consecutive"),
    "labels cut differently": ('''
        def block_shard(filenames, labels, process_id, num_processes):
            n = len(filenames)
            start, end = process_id * n // num_processes, (process_id + 1) * n // num_processes
            return filenames[start:end], labels[start + 1:end + 1]
        ''', "label"),
    "only names": ('''
        def block_shard(filenames, labels, process_id, num_processes):
            n = len(filenames)
            return filenames[process_id * n // num_processes:(process_id + 1) * n // num_processes]
        ''', "return a pair"),
}


@pytest.mark.parametrize("case", sorted(WRONG_SHARDS))
def test_q1_rejects_wrong_shards(case):
    source, expected = WRONG_SHARDS[case]
    outcome = ex.q1.evaluate(define(source, "block_shard"))
    assert outcome.status == INCORRECT and expected in outcome.message, (case, outcome)


WRONG_PADDING = {
    "padding counted in the loss": ('''
        def pad_batch(images, labels, rows):
            count = len(images)
            out = np.zeros((rows, *images.shape[1:]), np.float32)
            out[:count] = images
            y = np.zeros(rows, labels.dtype)
            y[:count] = labels
            return out, y, np.ones(rows, np.float32)
        ''', "count in the loss as real images"),
    "repeats the last image": ('''
        def pad_batch(images, labels, rows):
            extra = rows - len(images)
            return (np.concatenate([images, np.repeat(images[-1:], extra, axis=0)]),
                    np.concatenate([labels, np.repeat(labels[-1:], extra)]), np.ones(rows, np.float32))
        ''', "count twice"),
    "no padding at all": ('''
        def pad_batch(images, labels, rows):
            return images, labels, np.ones(len(images), np.float32)
        ''', "the same shape everywhere"),
    "labels become floats": ('''
        def pad_batch(images, labels, rows):
            count = len(images)
            out = np.zeros((rows, *images.shape[1:]), np.float32)
            y, w = np.zeros(rows), np.zeros(rows, np.float32)
            out[:count], y[:count], w[:count] = images, labels, 1
            return out, y, w
        ''', "keep them integers"),
    "padding is not blank": ('''
        def pad_batch(images, labels, rows):
            count = len(images)
            out = np.full((rows, *images.shape[1:]), 0.5, np.float32)
            y, w = np.zeros(rows, labels.dtype), np.zeros(rows, np.float32)
            out[:count], y[:count], w[:count] = images, labels, 1
            return out, y, w
        ''', "not blank"),
    "fails on an empty batch": ('''
        def pad_batch(images, labels, rows):
            extra = rows - len(images)
            blank = np.zeros((extra, *images.shape[1:]), np.float32)
            weights = np.concatenate([np.ones(len(images)), np.zeros(extra)]).astype(np.float32)
            return np.concatenate([images, blank]), np.concatenate([labels, np.full(extra, labels[0])]), weights
        ''', "IndexError"),
}


@pytest.mark.parametrize("case", sorted(WRONG_PADDING))
def test_q2_rejects_wrong_padding(case):
    source, expected = WRONG_PADDING[case]
    outcome = ex.q2.evaluate(define(source, "pad_batch"))
    assert outcome.status == INCORRECT and expected in outcome.message, (case, outcome)


def test_solutions_pass_and_the_notebooks_starters_are_not_attempted():
    for q in (ex.q1, ex.q2):
        assert ex.q1.evaluate(ex.q1.solution_namespace()["block_shard"]).status == CORRECT
        assert q.evaluate(q.solution_namespace()[q.answer_name]).status == CORRECT
    cells = json.loads((REPO / "notebooks" / "10_beyond_one_machine.ipynb").read_text())["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    for q in (ex.q1, ex.q2):
        starter = next(c for c in code if f"ex.{q.name}.check(" in c)
        namespace: dict = {"ex": ex}
        exec(starter.replace(f"ex.{q.name}.check({q.answer_name})", ""), namespace)
        assert q.evaluate(namespace[q.answer_name]).status == NOT_ATTEMPTED
