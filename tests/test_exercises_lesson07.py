"""Lesson 07's exercises: each check accepts correct answers and names the mistake in typical wrong ones."""

from __future__ import annotations

import json
import textwrap
import time

import pytest

from seedlings_utils.cache import CachedDataset, cache_fingerprint
from seedlings_utils.exercises import CORRECT, INCORRECT, NOT_ATTEMPTED
from seedlings_utils.exercises import lesson07 as ex
from seedlings_utils.lessons import lesson_notebooks

HEADER = """
import hashlib
import time
from pathlib import Path

import numpy as np

from seedlings_utils.cache import cache_filenames, read_cache_info
from seedlings_utils.dataset import SeedlingsDataset
"""


def define(source: str, name: str):
    """The object ``name`` defined by ``source`` (run after the usual imports)."""
    namespace: dict = {}
    exec(compile(HEADER + textwrap.dedent(source), f"<{name}>", "exec"), namespace)
    return namespace[name]


def incorrect(q, answer, *phrases: str) -> str:
    outcome = q.evaluate(answer)
    assert outcome.status == INCORRECT, f"{q.name} accepted a wrong answer: {outcome}"
    for phrase in phrases:
        assert phrase in outcome.message, f"{phrase!r} not in {outcome.message!r}"
    return outcome.message


# ---- Exercise 1: the shard reader ----------------------------------------------------------------------------

READER = """
def read_images(cache_dir, positions):
    info = read_cache_info(cache_dir)
    shard_size = {shard_size}
    shard_of, row = np.divmod(np.asarray(positions), shard_size)
    size = info["image_size"]
    out = np.empty((len(positions), size, size, 3), dtype=np.uint8)
    for s in np.unique(shard_of):
        shard = {load}
        out[shard_of == s] = shard[row[shard_of == s]]
    return {scale}
"""
GOOD = dict(shard_size='info["shard_size"]', load='np.load(Path(cache_dir) / info["shards"][s], mmap_mode="r")',
            scale="out.astype(np.float32) / 255.0")


def reader(**changes):
    return define(READER.format(**{**GOOD, **changes}), "read_images")


def test_q1_accepts_the_reader_written_the_lesson_way():
    assert ex.q1.evaluate(reader()).status == CORRECT


def test_q1_np_load_without_mmap_mode_reads_whole_shards():
    incorrect(ex.q1, reader(load='np.load(Path(cache_dir) / info["shards"][s])'), "without mmap_mode",
              "shard_00000.npy", "mmap_mode='r'")


def test_q1_a_writable_map_is_refused():
    incorrect(ex.q1, reader(load='np.load(Path(cache_dir) / info["shards"][s], mmap_mode="r+")'), "'r+'",
              "read-only")


def test_q1_shard_size_taken_from_count_and_shards_is_off_by_one():
    # 11 images in 3 shards: 11 // 3 = 3, but shards hold 4 (the last one fewer)
    incorrect(ex.q1, reader(shard_size='info["count"] // len(info["shards"])'), "raised IndexError",
              "row k % shard_size of shard k // shard_size", "shards of 4, 4 and 3")


def test_q1_off_by_one_row():
    incorrect(ex.q1, define(READER.format(**GOOD).replace("out[shard_of == s] = shard[row[shard_of == s]]",
                                                          "out[shard_of == s] = shard[row[shard_of == s] - 1]"),
                            "read_images"), "gave image", "expected image")


@pytest.mark.parametrize("scale, phrase", [
    ("out", "scale to [0, 1] once"),
    ("out.astype(np.float32) / 255.0 / 255.0", "divided by 255 twice"),
    ("out / 255.0", "float64"),
])
def test_q1_scaling_mistakes(scale, phrase):
    incorrect(ex.q1, reader(scale=scale), phrase)


def test_q1_images_grouped_by_shard_instead_of_in_the_order_asked():
    grouped = define("""
    def read_images(cache_dir, positions):
        info = read_cache_info(cache_dir)
        shard_of, row = np.divmod(np.asarray(positions), info["shard_size"])
        parts = []
        for s in np.unique(shard_of):
            shard = np.load(Path(cache_dir) / info["shards"][s], mmap_mode="r")
            parts.append(shard[row[shard_of == s]])
        return np.concatenate(parts).astype(np.float32) / 255.0
    """, "read_images")
    incorrect(ex.q1, grouped, "in another order")


def test_q1_every_shard_opened_and_concatenated():
    everything = define("""
    def read_images(cache_dir, positions):
        info = read_cache_info(cache_dir)
        shards = [np.load(Path(cache_dir) / name, mmap_mode="r") for name in info["shards"]]
        return np.concatenate(shards)[np.asarray(positions)].astype(np.float32) / 255.0
    """, "read_images")
    incorrect(ex.q1, everything, "opened ['shard_00001.npy']", "holds none of these positions")


def test_q1_returning_every_image():
    everything = define("""
    def read_images(cache_dir, positions):
        info = read_cache_info(cache_dir)
        shards = [np.load(Path(cache_dir) / name, mmap_mode="r") for name in info["shards"]]
        return np.concatenate(shards).astype(np.float32) / 255.0
    """, "read_images")
    incorrect(ex.q1, everything, "returned (11, 8, 8, 3) (every image of the cache, not only those asked)")


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

PER_SHARD = """
class StreamingCache(SeedlingsDataset):
    def __init__(self, cache_dir, labels=None, batch_size=32, **kwargs):
        info = read_cache_info(cache_dir)
        super().__init__(cache_dir, cache_filenames(cache_dir), labels, batch_size, info["image_size"], **kwargs)
        self.shard_size = info["shard_size"]
        self.shards = [{load} for name in info["shards"]]

    def load_batch(self, picked):
        shard_of, row = np.divmod(picked, self.shard_size)
        batch = np.empty((len(picked), self.image_size, self.image_size, 3), dtype=np.uint8)
        for s in np.unique(shard_of):
            batch[shard_of == s] = self.shards[s][row[shard_of == s]{offset}]
        return batch.astype(np.float32) / 255.0
"""


def streaming(load='np.load(Path(cache_dir) / name, mmap_mode="r")', offset=""):
    return define(PER_SHARD.format(load=load, offset=offset), "StreamingCache")


def test_q2_accepts_per_shard_memory_maps_and_the_lessons_class():
    assert ex.q2.evaluate(streaming()).status == CORRECT
    assert ex.q2.evaluate(CachedDataset).status == CORRECT


def test_q2_the_notebooks_concatenated_cache_is_caught():
    incorrect(ex.q2, define(CONCATENATED, "StreamingCache"),
              "ds.images is an ordinary in-memory array holding every image", "np.concatenate", "4.9 GB")


def test_q2_the_notebook_shows_that_very_class():
    notebook = next(p for p in lesson_notebooks() if p.name.startswith("07_"))
    text = "".join("".join(c["source"]) for c in json.loads(notebook.read_text())["cells"])
    assert "self.images = np.concatenate(shards)" in text and "class ConcatenatedCache(SeedlingsDataset):" in text


def test_q2_shards_read_without_mmap_mode():
    incorrect(ex.q2, streaming(load="np.load(Path(cache_dir) / name)"), "without mmap_mode")


def test_q2_copies_of_the_maps_hold_the_images():
    message = incorrect(ex.q2, streaming(load='np.array(np.load(Path(cache_dir) / name, mmap_mode="r"))'),
                        "ds.shards[0], ds.shards[1], ds.shards[2] are ordinary in-memory arrays holding every image")
    assert "Keep the memory maps themselves" in message


def test_q2_wrong_rows():
    incorrect(ex.q2, streaming(offset=" - 1"), "batch 0 holds images", "expected [0, 1, 2]")


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


def test_q3_names_only_misses_a_rewritten_image():
    incorrect(ex.q3, fingerprint(entry='f"{name}\\n"'), "img_0000.png was rewritten", "st_mtime_ns")


def test_q3_sorted_names_miss_a_new_order():
    incorrect(ex.q3, fingerprint(names="sorted(filenames)"), "reverse order", "no sorted()")


def test_q3_image_size_left_out():
    incorrect(ex.q3, fingerprint(size='"cache"'), "IMAGE_SIZE 24 instead of 16")


def test_q3_time_in_the_digest_is_never_stable():
    incorrect(ex.q3, fingerprint(size='f"{image_size}{time.time_ns()}"'), "two different fingerprints")


def test_q3_repr_of_the_whole_sequence():
    by_repr = define("""
    def fingerprint(image_dir, filenames, image_size):
        sizes = [(Path(image_dir) / str(n)).stat().st_mtime_ns for n in filenames]
        return hashlib.sha256(f"{image_size}{filenames}{sizes}".encode()).hexdigest()
    """, "fingerprint")
    incorrect(ex.q3, by_repr, "NumPy array")


def test_q3_reading_every_file_is_refused():
    by_content = define("""
    def fingerprint(image_dir, filenames, image_size):
        digest = hashlib.sha256(str(image_size).encode())
        for name in filenames:
            digest.update((Path(image_dir) / str(name)).read_bytes())
        return digest.hexdigest()
    """, "fingerprint")
    incorrect(ex.q3, by_content, "opened ['img_0000.png'", ".stat()")


def test_q3_returning_bytes():
    incorrect(ex.q3, define(FINGERPRINT.format(**FP_GOOD).replace(".hexdigest()", ".digest()"), "fingerprint"),
              "return a non-empty str")


# ---- the notebook's untouched cells, and speed -----------------------------------------------------------------

def test_untouched_starters_in_the_notebook_say_not_attempted(capsys):
    notebook = next(p for p in lesson_notebooks() if p.name.startswith("07_"))
    cells = ["".join(c["source"]) for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code"]
    starters = {q: next(c for c in cells if f"ex.{q}.check(" in c) for q in ("q1", "q2", "q3")}
    for q, source in starters.items():
        namespace = {"ex": ex}
        exec(compile(HEADER, "<imports>", "exec"), namespace)
        exec(compile(source, f"<starter {q}>", "exec"), namespace)  # runs the check: must not raise
        assert NOT_ATTEMPTED in capsys.readouterr().out, q
        answer = namespace[getattr(ex, q).answer_name]
        assert getattr(ex, q).evaluate(answer).status == NOT_ATTEMPTED, q


@pytest.mark.parametrize("q", [ex.q1, ex.q2, ex.q3], ids=lambda q: q.name)
def test_checks_are_quick(q):
    answer = q.solution_namespace()[q.answer_name]
    start = time.perf_counter()
    assert q.evaluate(answer).status == CORRECT
    assert time.perf_counter() - start < 2.0
