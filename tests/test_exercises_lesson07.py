"""Lesson 07's exercises: each check accepts correct answers and names the mistake in typical wrong ones."""

from __future__ import annotations

import json

import pytest

from seedlings_utils.cache import CachedDataset
from seedlings_utils.cache_manifest import cache_fingerprint
from seedlings_utils.exercises import CORRECT
from seedlings_utils.exercises import lesson07 as ex
from tools.lessons import lesson_notebooks

from .helpers import altered, rejected
from .helpers import define as define_answer

HEADER = """
import hashlib
import uuid
from pathlib import Path

import numpy as np

from seedlings_utils.cache_manifest import cache_filenames, read_cache_info
from seedlings_utils.dataset import SeedlingsDataset
"""


def define(source: str, name: str):
    """The object ``name`` defined by ``source`` (run after the usual imports)."""
    return define_answer(source, name, HEADER)


# ---- Exercise 1: a cache at another size ------------------------------------------------------------------

RESIZE = """
from PIL import Image


def resize_cache(cache_dir, out_dir, image_size):
    info = read_cache_info(cache_dir)
    for name in info["shards"]:
        old = {load}
        new = np.lib.format.open_memmap(Path(out_dir) / name, mode="w+", dtype=np.uint8,
                                        shape=(len(old), image_size, image_size, 3))
        for j in range(len(old)):
            new[j] = np.asarray(Image.fromarray(old[j]).resize((image_size, image_size), Image.BILINEAR))
        new.flush()
        del new
    return {returned}
"""


def resizer(load='np.load(Path(cache_dir) / name, mmap_mode="r")', returned='list(info["shards"])'):
    return define(RESIZE.format(load=load, returned=returned), "resize_cache")


def test_q1_accepts_a_shard_by_shard_resize():
    assert ex.q1.evaluate(resizer()).status == CORRECT


def test_q1_every_image_stacked_in_memory_is_refused():
    stacked = define("""
    from PIL import Image


    def resize_cache(cache_dir, out_dir, image_size):
        info = read_cache_info(cache_dir)
        shards = [np.load(Path(cache_dir) / name, mmap_mode="r") for name in info["shards"]]
        everything = np.concatenate(shards)  # every image of the cache, in memory
        small = np.stack([np.asarray(Image.fromarray(im).resize((image_size, image_size))) for im in everything])
        for k, name in enumerate(info["shards"]):
            np.save(Path(out_dir) / name, small[k * info["shard_size"] : (k + 1) * info["shard_size"]])
        return list(info["shards"])
    """, "resize_cache")
    rejected(ex.q1, stacked, "that is the data set in memory", "np.concatenate")


def test_q1_reading_shards_without_mmap_mode():
    rejected(ex.q1, resizer(load="np.load(Path(cache_dir) / name)"), "without mmap_mode")


def test_q1_shards_saved_with_np_save_instead_of_written_through_a_map():
    saved = define("""
    from PIL import Image


    def resize_cache(cache_dir, out_dir, image_size):
        info = read_cache_info(cache_dir)
        for name in info["shards"]:
            old = np.load(Path(cache_dir) / name, mmap_mode="r")
            np.save(Path(out_dir) / name, np.stack([np.asarray(Image.fromarray(im).resize((image_size, image_size)))
                                                    for im in old]))
        return list(info["shards"])
    """, "resize_cache")
    rejected(ex.q1, saved, "open_memmap(path, mode='w+'")


def test_q1_returning_nothing():
    rejected(ex.q1, resizer(returned="None"), "returned None", "shard_00000.npy")


def test_q1_images_scaled_to_float_are_not_a_uint8_cache():
    floats = define(RESIZE.format(load='np.load(Path(cache_dir) / name, mmap_mode="r")',
                                  returned='list(info["shards"])').replace("dtype=np.uint8", "dtype=np.float32"),
                    "resize_cache")
    rejected(ex.q1, floats, "expected uint8")


# ---- Exercise 2: the loader that holds every image -------------------------------------------------------------

CONCATENATED = """
class StreamingCache(SeedlingsDataset):
    def __init__(self, cache_dir, labels=None, batch_size=32, **kwargs):
        info = read_cache_info(cache_dir)
        super().__init__(cache_dir, cache_filenames(cache_dir), labels, batch_size, info["image_size"], **kwargs)
        shards = [np.load(Path(cache_dir) / name, mmap_mode="r") for name in info["shards"]]
        self.images = np.concatenate(shards)

    def load_batch(self, picked):
        return self.images[picked].astype(np.float32) / 255.0
"""

def streaming(load=None, offset=""):
    """The reference StreamingCache, with ``load`` for the line that opens each shard and ``offset`` added to the
    rows it reads."""
    source = ex.q2.solution_code
    if load is not None:
        source = altered(source, 'np.load(Path(cache_dir) / name, mmap_mode="r")', load)
    if offset:
        source = altered(source, "row[shard_of == s]]", f"row[shard_of == s]{offset}]")
    return define(source, "StreamingCache")


def test_q2_accepts_per_shard_memory_maps_and_the_lessons_class():
    assert ex.q2.evaluate(streaming()).status == CORRECT
    assert ex.q2.evaluate(CachedDataset).status == CORRECT


def test_q2_the_notebooks_concatenated_cache_is_caught():
    rejected(ex.q2, define(CONCATENATED, "StreamingCache"),
              "ds.images is an ordinary in-memory array holding every image", "np.concatenate", "4.9 GB")


def test_q2_the_notebook_shows_that_very_class():
    notebook = next(p for p in lesson_notebooks() if p.name.startswith("07_"))
    text = "".join("".join(c["source"]) for c in json.loads(notebook.read_text())["cells"])
    assert "self.images = np.concatenate(shards)" in text and "class ConcatenatedCache(SeedlingsDataset):" in text


def test_q2_shards_read_without_mmap_mode():
    rejected(ex.q2, streaming(load="np.load(Path(cache_dir) / name)"), "without mmap_mode")


def test_q2_copies_of_the_maps_hold_the_images():
    message = rejected(ex.q2, streaming(load='np.array(np.load(Path(cache_dir) / name, mmap_mode="r"))'),
                        "ds.shards[0], ds.shards[1], ds.shards[2] are ordinary in-memory arrays holding every image")
    assert "Keep the memory maps themselves" in message


def test_q2_maps_kept_but_every_batch_concatenated_reads_the_whole_cache():
    every_batch = define("""
    class StreamingCache(SeedlingsDataset):
        def __init__(self, cache_dir, labels=None, batch_size=32, **kwargs):
            info = read_cache_info(cache_dir)
            super().__init__(cache_dir, cache_filenames(cache_dir), labels, batch_size, info["image_size"], **kwargs)
            self.shards = [np.load(Path(cache_dir) / name, mmap_mode="r") for name in info["shards"]]

        def load_batch(self, picked):
            return np.concatenate(self.shards)[picked].astype(np.float32) / 255.0
    """, "StreamingCache")
    rejected(ex.q2, every_batch, "reads the whole cache for every batch", "np.concatenate",
              "that is the data set in memory")


def test_q2_keyword_arguments_that_never_reach_keras():
    swallowed = altered(ex.q2.solution_code, 'info["image_size"], **kwargs)', 'info["image_size"])')
    rejected(ex.q2, define(swallowed, "StreamingCache"), "workers=2, use_multiprocessing=True, max_queue_size=3",
             "Keras sees workers=1", "never reach Keras")


@pytest.mark.parametrize("returned, phrases", [
    ("batch", ("goes up to", "scale to [0, 1] once")),  # the cache's uint8, as stored
    ("batch.astype(np.float32)", ("goes up to", "scale to [0, 1] once")),  # float, but 0-255
    ("batch / 255.0", ("float64", "astype(np.float32) / 255.0")),
], ids=["uint8", "float-0-255", "float64"])
def test_q2_images_not_float32_in_0_1(returned, phrases):
    rejected(ex.q2, define(altered(ex.q2.solution_code, "batch.astype(np.float32) / 255.0", returned),
                           "StreamingCache"), *phrases)


HOLDERS = {
    "remembered-batches": ("return batch.astype(np.float32) / 255.0",
                           "self.__dict__.setdefault('served', []).append(batch.astype(np.float32) / 255.0)\n"
                           "        return self.served[-1]", None),
    "dict-of-images": ("batch[shard_of == s] = self.shards[s][row[shard_of == s]]",
                       "batch[shard_of == s] = [MEMO.setdefault((id(self), s, r), np.array(self.shards[s][r])) "
                       "for r in row[shard_of == s]]", "after serving 2 epochs"),
    "list-in-init": ('for name in info["shards"]]',
                     'for name in info["shards"]]\n        self.rows = [np.array(row) for shard in self.shards '
                     'for row in shard]', "right after __init__"),
}


@pytest.mark.parametrize("old, new, when", HOLDERS.values(), ids=list(HOLDERS))
def test_q2_images_kept_alive_by_any_means(old, new, when):
    """Beyond the concatenated copy the lesson shows: batches remembered, a dict of images, a list in __init__."""
    answer = define("MEMO = {}\n" + altered(ex.q2.solution_code, old, new.replace("\\n", "\n")), "StreamingCache")
    if when is None:  # the lesson's own look at what the object keeps names it first
        rejected(ex.q2, answer, "ds.served[0], ds.served[1]", "holding every image of the cache")
    else:
        rejected(ex.q2, answer, when, "more than a few batches (4 batches of 2 = 8 images)")


def test_q2_wrong_rows():
    rejected(ex.q2, streaming(offset=" - 1"), "batch 0 holds images", "expected [0, 1, 2]")


# ---- Exercise 3: the fingerprint -------------------------------------------------------------------------------

FINGERPRINT = """
def fingerprint(image_dir, filenames, image_size):
    digest = hashlib.sha256({size}.encode())
    for name in {names}:
        stat = (Path(image_dir) / str(name)).stat()
        digest.update({entry}.encode())
    return digest.hexdigest()
"""
FP_GOOD = dict(size='f"size={image_size}\\n"', names="filenames",
               entry='f"{name}|{stat.st_size}|{stat.st_mtime_ns}\\n"')


def fingerprint(**changes):
    return define(FINGERPRINT.format(**{**FP_GOOD, **changes}), "fingerprint")


def test_q3_accepts_a_stat_based_fingerprint_and_the_lessons():
    assert ex.q3.evaluate(fingerprint()).status == CORRECT
    assert ex.q3.evaluate(cache_fingerprint).status == CORRECT


@pytest.mark.parametrize("changes, phrases", [
    (dict(entry='f"{name}\\n"'), ("img_0000.png was rewritten", "st_mtime_ns")),
    (dict(entry='f"{name}|{stat.st_size}\\n"'), ("img_0000.png was rewritten", "same size", "st_size alone",
                                                 "st_mtime_ns")),
    (dict(entry='f"{name}|{stat.st_mtime_ns}\\n"'), ("img_0001.png was replaced", "kept the old modification time",
                                                      "st_size")),
    (dict(names="sorted(filenames)"), ("reverse order", "no sorted()")),
    (dict(size='"cache"'), ("IMAGE_SIZE 24 instead of 16",)),
    (dict(size='f"{image_size}{uuid.uuid4()}"'), ("two different fingerprints",)),
], ids=["names-only", "size-alone", "time-alone", "sorted-names", "no-image-size", "a-fresh-uuid"])
def test_q3_rejects_fingerprints_that_miss_a_change_or_never_match(changes, phrases):
    rejected(ex.q3, fingerprint(**changes), *phrases)


def test_q3_repr_of_the_whole_sequence():
    by_repr = define("""
    def fingerprint(image_dir, filenames, image_size):
        sizes = [(Path(image_dir) / str(n)).stat().st_mtime_ns for n in filenames]
        return hashlib.sha256(f"{image_size}{filenames}{sizes}".encode()).hexdigest()
    """, "fingerprint")
    rejected(ex.q3, by_repr, "NumPy array")


def test_q3_reading_every_file_is_refused():
    by_content = define("""
    def fingerprint(image_dir, filenames, image_size):
        digest = hashlib.sha256(str(image_size).encode())
        for name in filenames:
            digest.update((Path(image_dir) / str(name)).read_bytes())
        return digest.hexdigest()
    """, "fingerprint")
    rejected(ex.q3, by_content, "opened ['img_0000.png'", ".stat()")


def test_q3_returning_bytes():
    rejected(ex.q3, define(FINGERPRINT.format(**FP_GOOD).replace(".hexdigest()", ".digest()"), "fingerprint"),
              "return a non-empty str")

