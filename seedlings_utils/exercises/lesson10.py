"""Lesson 10's exercises: shards as contiguous blocks; padding a short batch so every process steps together."""

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


def _batch(count: int, size: int = 4, first: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``count`` images whose pixels all equal ``(first + k + 1) / 100`` and labels ``first + k + 1``."""
    values = (np.arange(count, dtype=np.float32) + first + 1) / 100
    images = np.ones((count, size, size, 3), dtype=np.float32) * values[:, None, None, None]
    return images, np.arange(count, dtype=np.int64) + first + 1


def _check_pad_batch(pad_batch) -> str:
    for count, rows in ((3, 8), (8, 8), (0, 4), (1, 2)):
        images, labels = _batch(count)
        result = pad_batch(images.copy(), labels.copy(), rows)
        if not isinstance(result, tuple) or len(result) != 3:
            raise Incorrect(f"pad_batch returned {type(result).__name__}; return three arrays: "
                            "(images, labels, weights), as ShardDataset.__getitem__ does")
        out_images, out_labels, weights = (np.asarray(part) for part in result)
        what = f"{count} images padded to {rows} rows"
        if len(out_images) != rows or len(out_labels) != rows or len(weights) != rows:
            raise Incorrect(f"{what}: got {len(out_images)} images, {len(out_labels)} labels, {len(weights)} weights; "
                            f"every process needs batches of exactly {rows} rows, the same shape everywhere")
        if out_images.shape[1:] != images.shape[1:] or out_images.dtype != np.float32:
            raise Incorrect(f"{what}: images came back as {out_images.dtype} {out_images.shape}, expected float32 "
                            f"{(rows, *images.shape[1:])}")
        if not np.array_equal(out_images[:count], images) or not np.array_equal(out_labels[:count], labels):
            raise Incorrect(f"{what}: the first {count} rows must be the real images and labels, unchanged, in order")
        if not np.issubdtype(out_labels.dtype, np.integer):
            raise Incorrect(f"{what}: labels became {out_labels.dtype}; keep them integers (class ids), also the "
                            "padding ones (0 is fine: their weight makes them count for nothing)")
        if not np.array_equal(weights[:count], np.ones(count)):
            raise Incorrect(f"{what}: the real rows have weights {weights[:count].tolist()}; each real image counts "
                            "fully: weight 1")
        if not np.array_equal(weights[count:], np.zeros(rows - count)):
            pad = out_images[count:]
            copies = bool(count) and any(np.allclose(p, images[-1]) or np.allclose(p, images[0]) for p in pad)
            raise Incorrect(f"{what}: the padding rows have weights {weights[count:].tolist()}; give them weight 0, "
                            + ("or the copied images count twice in the loss" if copies else
                               "or the blank images count in the loss as real images of class "
                               f"{out_labels[count:][0] if rows > count else 0}"))
        if np.any(out_images[count:] != 0):
            raise Incorrect(f"{what}: the padding rows are not blank (all zeros); their weight is 0, so nothing needs "
                            "reading for them: np.zeros is enough, and no image is read twice")
    return ("short batches come back full size, real rows untouched with weight 1, blank padding with weight 0, "
            "and an empty batch becomes all padding.")


q2 = Exercise(
    name="q2",
    task="Write pad_batch(images, labels, rows): fill a short batch up to rows with blank images of weight 0.",
    checker=_check_pad_batch,
    hint_text=("Start from np.zeros((rows, *images.shape[1:]), np.float32), np.zeros(rows, labels.dtype) and "
               "np.zeros(rows, np.float32); copy the real images and labels into the first len(images) rows and "
               "set their weights to 1. This is what ShardDataset.__getitem__ does."),
    solution_code='''
import numpy as np


def pad_batch(images, labels, rows):
    count = len(images)
    padded_images = np.zeros((rows, *images.shape[1:]), dtype=np.float32)
    padded_labels = np.zeros(rows, dtype=labels.dtype)
    weights = np.zeros(rows, dtype=np.float32)
    padded_images[:count], padded_labels[:count], weights[:count] = images, labels, 1.0
    return padded_images, padded_labels, weights
''',
    answer_name="pad_batch",
)
