"""Lesson 10's exercises reject the typical wrong answers, each with a message naming the problem."""

import math

import numpy as np
import pytest

from seedlings_utils.exercises import CORRECT, INCORRECT
from seedlings_utils.exercises import lesson10 as ex

from .helpers import define as define_answer
from .helpers import rejected


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


PLAN = """
def plan(devices, num_processes, global_batch):
    if global_batch % {split_over}:
        raise ValueError("uneven")
    return {distribution}, {local_batch}
"""
RIGHT_PLAN = dict(split_over="len(devices)", distribution="keras.distribution.DataParallel(devices=devices, "
                  "auto_shard_dataset=False)", local_batch="global_batch // num_processes")
MODEL_PARALLEL = ("keras.distribution.ModelParallel(layout_map=keras.distribution.LayoutMap("
                  'keras.distribution.DeviceMesh((len(devices),), ["model"], devices)))')

#: Each wrong plan: the part of the right one it changes, and what its check must say.
WRONG_PLANS = {
    "this host's devices only": (dict(distribution="keras.distribution.DataParallel("
                                      "devices=devices[:len(devices) // num_processes], auto_shard_dataset=False)"),
                                 "devices of all processes"),
    "auto-sharding left on": (dict(distribution="keras.distribution.DataParallel(devices=devices)"),
                              "auto_shard_dataset=False"),
    "one device's batch": (dict(local_batch="global_batch // len(devices)"), "one device's share"),
    "the whole global batch in every process": (dict(local_batch="global_batch"), "whole global batch"),
    "split checked over the processes only": (dict(split_over="num_processes"), "not only over the processes"),
    "a model-parallel distribution": (dict(distribution=MODEL_PARALLEL), "not a keras.distribution.DataParallel"),
}


@pytest.mark.parametrize("case", sorted(WRONG_PLANS))
def test_q2_rejects_wrong_plans(case):
    import keras

    changes, expected = WRONG_PLANS[case]
    rejected(ex.q2, define_answer(PLAN.format(**{**RIGHT_PLAN, **changes}), "plan", keras=keras), expected)


def test_q2_rejects_a_plan_that_returns_only_the_distribution():
    import keras

    only = define_answer(PLAN.format(**RIGHT_PLAN).replace(", global_batch // num_processes\n", "\n"), "plan",
                         keras=keras)
    rejected(ex.q2, only, "return a pair")


def test_q2_the_template_is_right():
    import keras

    assert ex.q2.evaluate(define_answer(PLAN.format(**RIGHT_PLAN), "plan", keras=keras)).status == CORRECT

