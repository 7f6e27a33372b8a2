"""Lesson 10's exercises: shards as contiguous blocks; the ``keras.distribution`` plan of a job with several devices
per process."""

from __future__ import annotations

import numpy as np

from . import Exercise, Incorrect

#: (images, processes) the shard check tries: even and odd splits, more processes than a remainder, and
#: fewer images than processes (some shards are then empty, which must still be an even split).
SPLITS = ((10, 2), (11, 2), (10, 4), (9, 4), (3, 4))


def _shards(block_shard, count: int, processes: int) -> list[tuple[list[int], list[int]]]:
    """Call the learner's function for every process; image ``i`` is ``img_00i.png`` with label ``100 + i``."""
    names = np.array([f"img_{i:03d}.png" for i in range(count)])
    labels = np.arange(count) + 100
    out = []
    for p in range(processes):
        result = block_shard(names, labels, p, processes)
        if not isinstance(result, tuple) or len(result) != 2:
            raise Incorrect(f"block_shard returned {type(result).__name__}; return a pair (names, labels), as "
                            "process_shard does")
        shard_names, shard_labels = (np.asarray(part).tolist() for part in result)
        if len(shard_names) != len(shard_labels):
            raise Incorrect(f"process {p} of {processes} got {len(shard_names)} names but {len(shard_labels)} "
                            "labels: cut both arrays with the same slice")
        numbers = []
        for name in shard_names:
            if not (isinstance(name, str) and name.startswith("img_")):
                raise Incorrect(f"process {p}'s names contain {name!r}, which is not one of the file names given")
            numbers.append(int(name[4:7]))
        if [label - 100 for label in shard_labels] != numbers:
            raise Incorrect(f"process {p} of {processes} got names {shard_names} but labels {shard_labels}: each "
                            "label must stay with its own image (labels[i] belongs to filenames[i])")
        out.append((numbers, shard_labels))
    return out


def _check_block_shard(block_shard) -> str:
    for count, processes in SPLITS:
        numbers = [n for n, _ in _shards(block_shard, count, processes)]
        where: dict[int, list[int]] = {}
        for p, shard in enumerate(numbers):
            for n in shard:
                where.setdefault(n, []).append(p)
        twice = {n: ps for n, ps in where.items() if len(ps) > 1}
        if twice:
            n, ps = next(iter(sorted(twice.items())))
            raise Incorrect(f"with {count} images and {processes} processes, image {n} is in the shards of processes "
                            f"{ps}: the blocks overlap, so that image is trained on twice per epoch. Process p's block "
                            "must end exactly where process p + 1's starts")
        missing = sorted(set(range(count)) - set(where))
        if missing:
            raise Incorrect(f"with {count} images and {processes} processes, images {missing} are in no shard: "
                            f"{len(missing)} of {count} never reach training. A block size of count // processes "
                            "drops the remainder; put the boundaries at process_id * count // num_processes instead")
        sizes = [len(shard) for shard in numbers]
        if max(sizes) - min(sizes) > 1:
            raise Incorrect(f"with {count} images and {processes} processes the shards hold {sizes} images: they must "
                            "differ by at most one, or one process needs more batches than the others and waits "
                            "forever for them at its last step. Spread the remainder: boundaries at "
                            "process_id * count // num_processes")
        for p, shard in enumerate(numbers):
            if shard and shard != list(range(shard[0], shard[0] + len(shard))):
                raise Incorrect(f"process {p} of {processes} got images {shard}: that is not one block of consecutive "
                                "images in their order (the lesson's process_shard takes every n-th image; this "
                                "exercise wants filenames[start:end])")
        if [shard[0] for shard in numbers if shard] != sorted(shard[0] for shard in numbers if shard):
            raise Incorrect(f"with {count} images and {processes} processes the blocks are not in process order: "
                            "process 0 should get the first block, process 1 the next, and so on")
    return ("every split covers each image exactly once, in blocks of consecutive images whose sizes differ by at "
            "most one (also with more processes than images).")


q1 = Exercise(
    name="q1",
    task="Write block_shard(filenames, labels, process_id, num_processes): one contiguous block per process.",
    checker=_check_block_shard,
    hint_text=("Process p's block is filenames[start:end] with start = p * n // num_processes and "
               "end = (p + 1) * n // num_processes, n = len(filenames): integer division spreads the remainder, "
               "the end of one block is the start of the next, and the last block ends at n. Cut labels the same way."),
    solution_code='''
def block_shard(filenames, labels, process_id, num_processes):
    n = len(filenames)
    start, end = process_id * n // num_processes, (process_id + 1) * n // num_processes
    return filenames[start:end], labels[start:end]
''',
    answer_name="block_shard",
)


#: (processes, devices per process, global batch) the plan check tries: the exercise's cluster, more processes with
#: fewer devices each, and the lesson's own job (one device per process).
CLUSTERS = ((2, 4, 256), (4, 2, 64), (3, 1, 48))
#: (processes, devices per process, global batch) that cannot be split: 36 and 30 images over 8 devices (30 splits
#: over the 2 processes, not over their 8 devices).
UNEVEN = ((2, 4, 36), (2, 4, 30))


def _devices(processes: int, per_process: int) -> list[str]:
    """What ``keras.distribution.list_devices()`` gives in every process of such a job: all devices of all hosts."""
    return [f"gpu:{i}" for i in range(processes * per_process)]


def _check_plan(plan) -> str:
    import keras

    for processes, per_process, global_batch in CLUSTERS:
        devices = _devices(processes, per_process)
        what = f"{processes} processes with {per_process} device(s) each, global batch {global_batch}"
        result = plan(list(devices), processes, global_batch)
        if not isinstance(result, tuple) or len(result) != 2:
            raise Incorrect(f"{what}: plan returned {type(result).__name__}; return a pair (distribution, local_batch)")
        distribution, local_batch = result
        if not isinstance(distribution, keras.distribution.DataParallel):
            raise Incorrect(f"{what}: the distribution is {type(distribution).__name__}, not a "
                            "keras.distribution.DataParallel (one copy of the model per device, each batch split)")
        used = [str(d) for d in np.asarray(distribution.device_mesh.devices).ravel()]
        if sorted(used) != sorted(devices):
            raise Incorrect(f"{what}: the mesh holds {len(used)} device(s), {used}, of the job's {len(devices)}: it "
                            "must hold the devices of all processes, or each host's copies sum their gradients "
                            "only among themselves and the hosts train models of their own")
        if getattr(distribution, "_auto_shard_dataset", True):
            raise Incorrect(f"{what}: auto_shard_dataset is True, so Keras would split the data itself and accepts "
                            "only a tf.data.Dataset there; each process's loader already reads its own shard: pass "
                            "auto_shard_dataset=False")
        if local_batch != global_batch // processes:
            if local_batch == global_batch // len(devices) and per_process > 1:
                why = ("that is one device's share; a process's loader feeds all the devices of its host, which "
                       "split its batch among them")
            elif local_batch == global_batch and processes > 1:
                why = (f"every process would load the whole global batch: each step would train on {processes} "
                       "times the images you asked for")
            else:
                why = "each process loads its share of the global batch"
            raise Incorrect(f"{what}: local batch {local_batch}, expected {global_batch // processes}: {why}")
    for processes, per_process, global_batch in UNEVEN:
        devices = _devices(processes, per_process)
        try:
            plan(list(devices), processes, global_batch)
        except ValueError:
            continue
        raise Incorrect(f"{global_batch} images cannot be split evenly over {len(devices)} devices "
                        f"({processes} processes with {per_process} each), yet plan raised no ValueError: DataParallel "
                        "splits the global batch over every device, not only over the processes")
    return ("every process sets one DataParallel over the devices of all processes, without auto-sharding, and loads "
            "global_batch // num_processes images a step; uneven splits are refused.")


q2 = Exercise(
    name="q2",
    task="Write plan(devices, num_processes, global_batch): the DataParallel every process sets and its local batch.",
    checker=_check_plan,
    hint_text=("keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False) spreads each batch over "
               "all the devices given, those of every process. Each process's loader gives global_batch // "
               "num_processes images, which its own devices share. The global batch must split over "
               "len(devices): check global_batch % len(devices) first."),
    solution_code='''
import keras


def plan(devices, num_processes, global_batch):
    if global_batch % len(devices):
        raise ValueError(f"a global batch of {global_batch} does not split evenly over {len(devices)} devices")
    distribution = keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)
    return distribution, global_batch // num_processes
''',
    answer_name="plan",
)
