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
    shape = {shape}
    mesh = keras.distribution.DeviceMesh(shape, {axes}, devices=np.array(devices).reshape({grid}))
    layout_map = keras.distribution.LayoutMap(mesh)
    layout_map[".*dense.*kernel"] = {kernel}
    layout_map[".*dense.*bias"] = ("model",)
    return {distribution}, {local_batch}
"""
RIGHT_PLAN = dict(split_over="num_processes", shape="(num_processes, len(devices) // num_processes)",
                  axes='["batch", "model"]', grid="shape", kernel='(None, "model")',
                  distribution='keras.distribution.ModelParallel(layout_map=layout_map, batch_dim_name="batch", '
                               'auto_shard_dataset=False)',
                  local_batch="global_batch // num_processes")

#: Each wrong plan: the part of the right one it changes, and what its check must say.
WRONG_PLANS = {
    "data parallel: a whole model per GPU": (
        dict(distribution="keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)"),
        "DataParallel keeps a whole copy"),
    "the model axis across hosts (shape swapped)": (
        dict(shape="(len(devices) // num_processes, num_processes)"), "wrong mesh axis", "across hosts"),
    "the model axis across hosts (devices dealt out column-wise)": (
        dict(grid="shape[::-1]).T.reshape(shape"), "wrong mesh axis", "across hosts"),
    "the batch split along the model axis": (
        dict(distribution='keras.distribution.ModelParallel(layout_map=layout_map, batch_dim_name="model", '
                          'auto_shard_dataset=False)'), "batch_dim_name is 'model'", "wrong mesh axis"),
    "the kernel split along the batch axis": (dict(kernel='(None, "batch")'), "'batch' axis", "wrong mesh axis"),
    "the kernel left whole": (dict(kernel="(None, None)"), "split it over the 'model' axis"),
    "axes named otherwise": (dict(axes='["data", "model"]'), "name them ['batch', 'model']"),
    "auto-sharding left on": (
        dict(distribution='keras.distribution.ModelParallel(layout_map=layout_map, batch_dim_name="batch")'),
        "auto_shard_dataset=False"),
    "one GPU's batch": (dict(local_batch="global_batch // len(devices)"), "one GPU's share"),
    "the whole global batch in every process": (dict(local_batch="global_batch"), "expected"),
    "split checked over every device": (dict(split_over="len(devices)"), "split evenly over the 2 hosts"),
    "split never checked": (dict(split_over="1"), "plan raised no ValueError"),
}


def plan_answer(**changes):
    import keras

    return define_answer(PLAN.format(**{**RIGHT_PLAN, **changes}), "plan", keras=keras, np=np)


@pytest.mark.parametrize("case", sorted(WRONG_PLANS))
def test_q2_rejects_wrong_plans(case):
    changes, *expected = WRONG_PLANS[case]
    rejected(ex.q2, plan_answer(**changes), *expected)


def test_q2_the_template_is_right_and_a_pair_is_needed():
    assert ex.q2.evaluate(plan_answer()).status == CORRECT
    import keras

    only = define_answer(PLAN.format(**RIGHT_PLAN).replace(", global_batch // num_processes\n", "\n"), "plan",
                         keras=keras, np=np)
    rejected(ex.q2, only, "return a pair")


# ---- q3: a PyDataset over a block, the same number of steps in every process ----

LOADER = '''
import math

import keras
import numpy as np


class BlockShardDataset(keras.utils.PyDataset):
    def __init__(self, image_dir, filenames, labels, process_id, num_processes, batch_size, image_size, **kwargs):
        super().__init__(**kwargs)
        n = len(filenames)
        start, end = process_id * n // num_processes, (process_id + 1) * n // num_processes
        self.image_dir, self.filenames, self.labels = image_dir, filenames[start:end], np.asarray(labels[start:end])
        self.batch_size, self.image_size = batch_size, image_size
        self.steps = math.ceil(math.ceil(n / num_processes) / batch_size)
        self.kept = {}

    def __len__(self):
        return self.steps

    def image(self, k):
        image = keras.utils.load_img(f"{self.image_dir}/{self.filenames[k]}",
                                     target_size=(self.image_size, self.image_size))
        return np.asarray(image, dtype=np.float32) / 255

    def __getitem__(self, index):
        images = np.zeros((self.batch_size, self.image_size, self.image_size, 3), dtype=np.float32)
        labels = np.zeros(self.batch_size, dtype=self.labels.dtype)
        weights = np.zeros(self.batch_size, dtype=np.float32)
        rows = range(index * self.batch_size, min((index + 1) * self.batch_size, len(self.filenames)))
        for row, k in enumerate(rows):
            images[row] = self.image(k)
            labels[row], weights[row] = self.labels[k], 1.0
        return images, labels, weights
'''


def loader(*replacements: tuple[str, str]):
    source = LOADER
    for old, new in replacements:
        assert source.count(old) == 1, old
        source = source.replace(old, new)
    return define_answer(source, "BlockShardDataset")


WRONG_LOADERS = {
    "steps of its own block: unequal steps hang": (
        [("self.steps = math.ceil(math.ceil(n / num_processes) / batch_size)",
          "self.steps = math.ceil((end - start) / batch_size)")], "unequal steps", "hangs"),
    "the short batch not padded": (
        [("        return images, labels, weights", "        return images[:len(rows)], labels[:len(rows)], "
          "weights[:len(rows)]")], "same shape", "weight 0"),
    "blocks that overlap": ([("end = process_id * n // num_processes, (process_id + 1) * n // num_processes",
                              "end = process_id * n // num_processes, (process_id + 1) * n // num_processes + 1")],
                            "in two shards"),
    "the remainder dropped": ([("start, end = process_id * n // num_processes, (process_id + 1) * n // num_processes",
                                "start, end = process_id * (n // num_processes), (process_id + 1) * "
                                "(n // num_processes)")], "in no shard"),
    "kwargs never reach Keras": ([("super().__init__(**kwargs)", "super().__init__()")], "never reach Keras"),
    "no **kwargs at all": ([("image_size, **kwargs):", "image_size):"), ("super().__init__(**kwargs)",
                                                                         "super().__init__()")], "accept **kwargs"),
    "pixels not scaled": ([("dtype=np.float32) / 255", "dtype=np.float32)")], "into [0, 1]"),
    "images as uint8": ([("images = np.zeros((self.batch_size, self.image_size, self.image_size, 3), "
                          "dtype=np.float32)", "images = np.zeros((self.batch_size, self.image_size, "
                          "self.image_size, 3), dtype=np.uint8)"),
                         ("dtype=np.float32) / 255", "dtype=np.uint8)")], "dtype uint8", "float32"),
    "padding rows of weight 1": ([("weights = np.zeros(self.batch_size, dtype=np.float32)",
                                   "weights = np.ones(self.batch_size, dtype=np.float32)")],
                                 "blank padding row has weight 1"),
    "every image decoded in __init__": (
        [("        self.kept = {}", "        self.kept = [self.image(k) for k in range(len(self.filenames))]"),
         ("images[row] = self.image(k)", "images[row] = self.kept[k]")], "kept alive"),
    "batches remembered after they were served": (
        [("images[row] = self.image(k)", "images[row] = self.kept.setdefault(k, self.image(k))")], "kept alive"),
}


@pytest.mark.parametrize("case", sorted(WRONG_LOADERS))
def test_q3_rejects_wrong_loaders(case):
    replacements, *expected = WRONG_LOADERS[case]
    rejected(ex.q3, loader(*replacements), *expected)


def test_q3_accepts_the_template_and_its_own_solution():
    assert ex.q3.evaluate(loader()).status == CORRECT
    namespace = ex.q3.solution_namespace()
    assert ex.q3.evaluate(namespace["BlockShardDataset"]).status == CORRECT
    rejected(ex.q3, lambda: None, "pass the class itself")
