"""Lesson 12's exercises: shards shared fairly between processes; what a second epoch downloads through a cache
with least-recently-used eviction; whether downloaded bytes are the shard an index describes."""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from . import Exercise, Incorrect

#: (shard counts, processes) the split check tries: uneven shards, an odd number, more processes than shards.
SPLITS = (([100, 100, 100], 2), ([256, 256, 256, 256, 65], 2), ([500, 20, 20, 20, 20, 20], 2),
          ([64, 64, 10], 4), ([30, 50, 40, 10, 70, 20, 60], 3), ([10, 1, 10, 1, 10, 1], 2))


def _check_split(split_shards) -> str:
    for counts, processes in SPLITS:
        got = split_shards(list(counts), processes)
        where = f"split_shards({counts}, {processes}) gave {got!r}"
        if not isinstance(got, (list, tuple)) or len(got) != processes:
            raise Incorrect(f"{where}: return one list of shard indices for each of the {processes} processes, even "
                            "for a process that gets no shard (an empty list)")
        given = [int(i) for mine in got for i in mine]
        if sorted(given) != list(range(len(counts))):
            missing = sorted(set(range(len(counts))) - set(given))
            twice = sorted({i for i in given if given.count(i) > 1})
            if any(i not in range(len(counts)) for i in given):
                raise Incorrect(f"{where}: give shard indices (0 to {len(counts) - 1}), not image counts")
            if twice:
                raise Incorrect(f"{where}: shard(s) {twice} go to more than one process, so their images are trained "
                                "more than once an epoch; give every shard to exactly one process")
            raise Incorrect(f"{where}: shard(s) {missing} go to no process, so their images are never trained (cutting "
                            "the shards to a multiple of the number of processes drops them); give out every shard")
        loads = [sum(counts[int(i)] for i in mine) for mine in got]
        if max(loads) - min(loads) > max(counts):
            raise Incorrect(f"{where}: the processes get {loads} images, a gap larger than the largest shard "
                            f"({max(counts)}). Dealing shards round-robin counts shards, not images: give the "
                            "largest shards first, each to the process with the fewest images so far")
    return ("every shard to one process, and the processes' images within one shard of each other: with equal steps "
            "(counted on the busiest, the others padding) no process waits long, and none forever.")


q1 = Exercise(
    name="q1",
    task="Write split_shards(counts, num_processes): each process's shard indices, balanced by images.",
    checker=_check_split,
    hint_text=("Go through the shards from the largest to the smallest; give each to the process that has the fewest "
               "images so far (min over the processes of their running sums). Start with an empty list for every "
               "process, so a process with no shard still has one."),
    solution_code='''
def split_shards(counts, num_processes):
    shards, load = [[] for _ in range(num_processes)], [0] * num_processes
    for i in sorted(range(len(counts)), key=lambda i: -counts[i]):
        p = load.index(min(load))
        shards[p].append(i)
        load[p] += counts[i]
    return shards
''',
    answer_name="split_shards",
)


def _lru_downloads(order_1, order_2, capacity) -> int:
    kept: OrderedDict = OrderedDict()
    downloads = 0
    for epoch, order in enumerate((order_1, order_2)):
        for shard in order:
            if shard in kept:
                kept.move_to_end(shard)
                continue
            downloads += epoch == 1
            if len(kept) >= capacity:
                kept.popitem(last=False)
            kept[shard] = True
    return downloads


#: (order 1, order 2, capacity) the LRU check tries.
CACHE_CASES = ((list(range(8)), list(range(8)), 3), (list(range(8)), list(range(8)), 8),
               (list(range(8)), list(range(7, -1, -1)), 3), ([0, 1, 2, 3, 4, 5], [3, 0, 5, 1, 4, 2], 4),
               (list(range(6)), list(range(6)), 5), ([0, 1, 2, 3], [2, 3, 0, 1], 2))


def _check_downloads(second_epoch_downloads) -> str:
    for order_1, order_2, capacity in CACHE_CASES:
        got = second_epoch_downloads(list(order_1), list(order_2), capacity)
        expected = _lru_downloads(order_1, order_2, capacity)
        if got == expected:
            continue
        where = (f"second_epoch_downloads({order_1}, {order_2}, {capacity}) gave {got!r}, not {expected}")
        if got == max(0, len(order_2) - capacity):
            raise Incorrect(f"{where}: the cache does not keep any {capacity} shards you like; it keeps the "
                            f"{capacity} used last, and each download in epoch 2 evicts one that epoch 2 may still "
                            "need. Simulate it: an OrderedDict, move_to_end on a hit, popitem(last=False) when full")
        if got == _fifo_downloads(order_1, order_2, capacity):
            raise Incorrect(f"{where}: a hit must make its shard the most recently used (move_to_end); you evicted "
                            "in the order of download")
        if got == _lru_downloads(order_1, order_2, capacity + 1) or got == _lru_downloads(order_1, order_2,
                                                                                          capacity - 1):
            raise Incorrect(f"{where}: the cache holds exactly {capacity} shards: evict before adding one when "
                            f"{capacity} are already there")
        raise Incorrect(where)
    return ("with the same order each epoch and room for fewer shards than it reads, LRU downloads everything again "
            "(streaming#658); a budget of one epoch's shards downloads nothing, and another order saves a few.")


def _fifo_downloads(order_1, order_2, capacity) -> int:
    kept: list = []
    downloads = 0
    for epoch, order in enumerate((order_1, order_2)):
        for shard in order:
            if shard in kept:
                continue
            downloads += epoch == 1
            if len(kept) >= capacity:
                kept.pop(0)
            kept.append(shard)
    return downloads


q2 = Exercise(
    name="q2",
    task="Write second_epoch_downloads(order_1, order_2, capacity): the downloads of epoch 2 through an LRU cache.",
    checker=_check_downloads,
    hint_text=("Replay both epochs through a collections.OrderedDict (the least recently used first): a hit moves its "
               "shard to the end; a miss, when the cache is full, pops the first item (popitem(last=False)) and "
               "adds the shard at the end. Count the misses of epoch 2 only."),
    solution_code='''
from collections import OrderedDict


def second_epoch_downloads(order_1, order_2, capacity):
    kept, downloads = OrderedDict(), 0
    for epoch, order in enumerate((order_1, order_2)):
        for shard in order:
            if shard in kept:
                kept.move_to_end(shard)
                continue
            downloads += epoch == 1
            if len(kept) >= capacity:
                kept.popitem(last=False)
            kept[shard] = True
    return downloads
''',
    answer_name="second_epoch_downloads",
)


def _entry(data: bytes) -> dict:
    return {"name": "shard-00000.tfrecord", "count": 3, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _check_whole(is_whole) -> str:
    shard = bytes(range(256)) * 40
    entry = _entry(shard)
    if is_whole(shard, dict(entry)) is not True:
        raise Incorrect("is_whole(data, entry) should be True for the very bytes the entry was made from (return "
                        "True, not a truthy value; compare hashlib.sha256(data).hexdigest() with entry['sha256'])")
    flipped = shard[:100] + bytes([shard[100] ^ 1]) + shard[101:]
    cases = {"cut short (a connection that ended mid-shard)": shard[:-100],
             "with one bit flipped (the same size)": flipped,
             "empty": b"", "with bytes added at the end": shard + b"\0"}
    for what, data in cases.items():
        got = is_whole(data, dict(entry))
        if got is not False:
            hint = (" Checking the size alone lets it through: compare the SHA-256 too."
                    if len(data) == len(shard) else "")
            raise Incorrect(f"is_whole gave {got!r} for a shard {what}: it must be False.{hint}")
    if is_whole(shard, dict(entry, sha256=entry["sha256"].upper())) is not True:
        raise Incorrect("an index may hold the hash in capitals: compare the hex digests case-insensitively "
                        "(.lower() on both)")
    return "size and SHA-256 together: a short download, a flipped bit, extra bytes are all refused before use."


q3 = Exercise(
    name="q3",
    task="Write is_whole(data, entry): True only when data has the index entry's size and SHA-256.",
    checker=_check_whole,
    hint_text=("len(data) == entry['bytes'] catches a short download; hashlib.sha256(data).hexdigest() == "
               "entry['sha256'].lower() catches any changed byte. Return a real bool."),
    solution_code='''
import hashlib


def is_whole(data, entry):
    return len(data) == entry["bytes"] and hashlib.sha256(data).hexdigest() == entry["sha256"].lower()
''',
    answer_name="is_whole",
)
