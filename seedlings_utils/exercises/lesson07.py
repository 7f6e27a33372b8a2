"""Lesson 07's exercises: a cache at another size, written shard by shard; find what holds every image in
memory; a cache fingerprint that catches every rewrite.

Any answer that holds the data set in memory fails, saying so: the checks measure what the answer allocates
(``tracemalloc``, which sees NumPy's arrays; pages read through a memory map are not allocations)."""

from __future__ import annotations

import builtins
import contextlib
import io
import math
import mmap
import os
import tempfile
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from . import Exercise, Incorrect, image_number, tiny_image_folder
from .loader_checks import check_pydataset, min_count, numbered_noise_png, watch

#: The checkers' own cache: 11 images of 8 x 8 px in shards of 4, 4 and 3 (image k is red ``pixel_value(k)``).
COUNT, SHARD_SIZE, SIZE = 11, 4, 8


@contextlib.contextmanager
def _tiny_cache(count: int = COUNT, shard_size: int = SHARD_SIZE, size: int = SIZE) -> Iterator[Path]:
    """A cache of ``count`` numbered images, built by the lesson's ``build_image_cache`` in a temporary folder."""
    from ..cache import build_image_cache

    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "images"
        names = tiny_image_folder(images, count)
        yield build_image_cache(images, names, size, Path(tmp) / "cache", shard_size=shard_size, progress=False)


#: The shared memory check's cache (:func:`~seedlings_utils.exercises.loader_checks.check_pydataset`): images of
#: noise, enough of them in batches of MEMORY_BATCH that holding them all is far more than a few batches.
MEMORY_BATCH, MEMORY_SHARD, MEMORY_SIZE = 2, 16, 32
MEMORY_COUNT = min_count(MEMORY_BATCH)


@contextlib.contextmanager
def _noise_cache(count: int, shard_size: int, size: int) -> Iterator[Path]:
    """A cache of ``count`` images of noise (``size`` px), built by the lesson's ``build_image_cache``."""
    from ..cache import build_image_cache

    with tempfile.TemporaryDirectory() as tmp:
        names = [f"noise_{i:04d}.png" for i in range(count)]
        for i, name in enumerate(names):
            numbered_noise_png(Path(tmp) / "images" / name, i, size)
        yield build_image_cache(Path(tmp) / "images", names, size, Path(tmp) / "cache", shard_size=shard_size,
                                progress=False)


@contextlib.contextmanager
def _npy_reads() -> Iterator[list[tuple[str, str, str | None]]]:
    """Records how ``.npy`` files are opened while the block runs: ``("map", file, mode)`` for a memory map
    (``np.load(..., mmap_mode=...)``, ``open_memmap``), ``("read", file, None)`` for a full read (``np.load``)."""
    import numpy.lib.format as npy_format

    seen: list[tuple[str, str, str | None]] = []
    real_map, real_read = npy_format.open_memmap, npy_format.read_array

    def open_memmap(filename, mode="r+", *args, **kwargs):
        seen.append(("map", Path(filename).name, mode))
        return real_map(filename, mode, *args, **kwargs)

    def read_array(fp, *args, **kwargs):
        seen.append(("read", Path(str(getattr(fp, "name", "?"))).name, None))
        return real_read(fp, *args, **kwargs)

    npy_format.open_memmap, npy_format.read_array = open_memmap, read_array
    try:
        yield seen
    finally:
        npy_format.open_memmap, npy_format.read_array = real_map, real_read


def _full_reads(seen, writes_allowed: bool = False) -> None:
    read = sorted({file for how, file, _ in seen if how == "read"})
    if read:
        raise Incorrect(f"np.load({read[0]!r}) without mmap_mode read the whole shard into memory ({len(read)} "
                        f"shard(s) in all): with 100,000 images that is every image in RAM. Open shards with "
                        "np.load(path, mmap_mode='r'), which maps the file and reads only the rows you index")
    allowed = {"r", "w+"} if writes_allowed else {"r"}
    modes = sorted({mode for how, _, mode in seen if how == "map" and mode not in allowed})
    if modes:
        raise Incorrect(f"a shard was opened with mmap_mode={modes[0]!r}: use 'r' (read-only), so that a bug can "
                        "never write into the cache")


def _check_pixels(images, what: str) -> None:
    """``images`` must be float32 and scaled to [0, 1] exactly once."""
    if not isinstance(images, np.ndarray):
        raise Incorrect(f"{what} is a {type(images).__name__}, expected a NumPy array")
    if images.dtype == np.uint8 or float(images.max()) > 1.0:
        raise Incorrect(f"{what} goes up to {float(images.max()):.0f}: the cache stores uint8 (0-255); scale to "
                        "[0, 1] once, with `.astype(np.float32) / 255.0`")
    if float(images.max()) <= 1 / 255 + 1e-6:
        raise Incorrect(f"every value of {what} is at most 1/255 ({float(images.max()):.5f}): the images were "
                        "divided by 255 twice. Divide once, after reading the uint8 pixels")
    if images.dtype != np.float32:
        raise Incorrect(f"{what} has dtype {images.dtype}: `uint8_array / 255.0` gives float64, twice the memory "
                        "and not what Keras expects; convert first: `.astype(np.float32) / 255.0`")


def _everything_in_memory(held: int, total: int, what: str, allowance: int = 0) -> None:
    """``what`` held (beyond ``allowance``, e.g. the batch it returns) more than half the images' bytes at once."""
    if held - allowance >= 0.6 * total:
        raise Incorrect(f"{what} held {held:,} bytes at once while the check's cache holds {total:,} bytes of "
                        "images: that is the data set in memory (at 100,000 images of 128 px: 4.9 GB). Read and "
                        "write one image (or one shard) at a time: index the memory maps, never np.stack, "
                        "np.concatenate, np.array or a list of every image")


#: Exercise 1's cache: 40 images of 64 px in shards of 8, resized to 16 px (exercise 2 reads it too).
Q1_COUNT, Q1_SHARD, Q1_SIZE, Q1_NEW = 40, 8, 64, 16


def _check_resize_cache(resize_cache) -> str:
    from ..cache_manifest import read_cache_info

    with _tiny_cache(3, 4, SIZE) as warm, tempfile.TemporaryDirectory() as out:
        resize_cache(warm, out, 4)  # a first call imports what it needs: not part of what it holds
    with _tiny_cache(Q1_COUNT, Q1_SHARD, Q1_SIZE) as cache, tempfile.TemporaryDirectory() as out:
        total = Q1_COUNT * Q1_SIZE * Q1_SIZE * 3
        with _npy_reads() as seen, watch() as held:
            shards = resize_cache(cache, out, Q1_NEW)
        _everything_in_memory(held.peak_bytes, total, "resize_cache")
        _full_reads(seen, writes_allowed=True)
        info = read_cache_info(cache)
        expected = list(info["shards"])
        if shards is None or [str(name) for name in shards] != expected:
            raise Incorrect(f"resize_cache returned {shards!r}; expected the new shards' names, {expected} (the "
                            "same shard_size, the same names: shard_name(0), shard_name(1), ...)")
        written = [how for how, file, mode in seen if how == "map" and mode == "w+"]
        if not written:
            raise Incorrect("no shard was written through np.lib.format.open_memmap(path, mode='w+', ...): write "
                            "each resized image into the new shard's memory map, one at a time, as write_shards does")
        numbers = []
        for k, name in enumerate(expected):
            path = Path(out) / name
            if not path.is_file():
                raise Incorrect(f"{name} is not in out_dir: write the new shards there")
            shard = np.load(path, mmap_mode="r")
            rows = min(Q1_SHARD, Q1_COUNT - k * Q1_SHARD)
            if shard.shape != (rows, Q1_NEW, Q1_NEW, 3) or shard.dtype != np.uint8:
                raise Incorrect(f"{name} holds {shard.dtype} of shape {shard.shape}; expected uint8 of shape "
                                f"{(rows, Q1_NEW, Q1_NEW, 3)}: the same images, at image_size, as 0-255 values")
            numbers += [image_number(image) for image in shard]
        if numbers != list(range(Q1_COUNT)):
            raise Incorrect(f"the new cache holds images {numbers[:12]}...; expected 0, 1, 2, ... in the old "
                            "cache's order (row k % shard_size of shard k // shard_size)")
    return ("every image resized into shards of the same layout, written through memory maps, holding a shard "
            "at most, never the whole cache.")


q1 = Exercise(
    name="q1",
    task=("Write resize_cache(cache_dir, out_dir, image_size): the cache's images at another size, into shards "
          "of the same layout in out_dir, read through memory maps and written through open_memmap; return the "
          "shard names."),
    checker=_check_resize_cache,
    hint_text=("`info = read_cache_info(cache_dir)`. For each `name` in info['shards']: `old = np.load(Path(cache_dir) "
               "/ name, mmap_mode='r')`, `new = np.lib.format.open_memmap(Path(out_dir) / name, mode='w+', "
               "dtype=np.uint8, shape=(len(old), image_size, image_size, 3))`, then for each row j: "
               "`new[j] = np.asarray(Image.fromarray(old[j]).resize((image_size, image_size), Image.BILINEAR))`; "
               "`new.flush()` and `del new` before the next shard."),
    solution_code='''
from pathlib import Path

import numpy as np
from PIL import Image

from seedlings_utils.cache_manifest import read_cache_info


def resize_cache(cache_dir, out_dir, image_size):
    info = read_cache_info(cache_dir)
    for name in info["shards"]:
        old = np.load(Path(cache_dir) / name, mmap_mode="r")  # a map: nothing read yet
        new = np.lib.format.open_memmap(Path(out_dir) / name, mode="w+", dtype=np.uint8,
                                        shape=(len(old), image_size, image_size, 3))
        for j in range(len(old)):  # one image at a time
            new[j] = np.asarray(Image.fromarray(old[j]).resize((image_size, image_size), Image.BILINEAR))
        new.flush()
        del new  # unmapped before the next shard
    return list(info["shards"])
''',
    answer_name="resize_cache",
)


def _memory_backed(array: np.ndarray) -> bool:
    """True when ``array`` is a memory map or a view into one (its bytes are a mapped file's pages)."""
    while array is not None:
        if isinstance(array, (np.memmap, mmap.mmap)):
            return True
        array = getattr(array, "base", None)
    return False


def _arrays_held(value, path: str, depth: int = 0) -> Iterator[tuple[str, np.ndarray]]:
    """Every NumPy array reachable from ``value`` through attributes, lists, tuples and dicts (a few levels)."""
    if depth > 3:
        return
    if isinstance(value, np.ndarray):
        yield path, value
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _arrays_held(item, f"{path}[{i}]", depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _arrays_held(item, f"{path}[{key!r}]", depth + 1)
    elif hasattr(value, "__dict__") and not isinstance(value, (type, types.ModuleType)) and not callable(value):
        for name, item in vars(value).items():
            yield from _arrays_held(item, f"{path}.{name}", depth + 1)


def _check_streaming_cache(StreamingCache) -> str:  # noqa: N803 (the learner's class)
    import keras

    batch_size = 3
    labels = np.arange(COUNT) % 5
    with _tiny_cache() as cache:
        with _npy_reads() as seen:
            ds = StreamingCache(cache, labels, batch_size=batch_size)
            if not isinstance(ds, keras.utils.PyDataset):
                raise Incorrect(f"StreamingCache(...) is a {type(ds).__name__}, not a keras.utils.PyDataset: "
                                "subclass SeedlingsDataset (or CachedDataset), as ConcatenatedCache does")
            if len(ds) != math.ceil(COUNT / batch_size):
                raise Incorrect(f"{COUNT} images in batches of {batch_size} make {math.ceil(COUNT / batch_size)} "
                                f"batches, len() says {len(ds)}")
            for i in range(len(ds)):
                batch = ds[i]
                if not (isinstance(batch, tuple) and len(batch) == 2):
                    raise Incorrect(f"ds[{i}] should be (images, labels), got a {type(batch).__name__}")
                x, y = batch
                _check_pixels(x, f"the images of batch {i}")
                want = list(range(i * batch_size, min((i + 1) * batch_size, COUNT)))
                got = [image_number(image) for image in x]
                if got != want:
                    raise Incorrect(f"batch {i} holds images {got}, expected {want} (unshuffled, in cache order)")
                if np.asarray(y).tolist() != labels[want].tolist():
                    raise Incorrect(f"batch {i} has labels {np.asarray(y).tolist()}, expected {labels[want].tolist()}")
        _full_reads(seen)
        held = list(_arrays_held(ds, "ds"))
    # images kept in ordinary memory between batches: more than one batch's worth is the leak
    copies = [(path, array) for path, array in held if array.ndim == 4 and not _memory_backed(array)]
    images = sum(len(array) for _, array in copies)
    if images > batch_size:
        what = "every image of the cache" if images >= COUNT else f"{images} of the cache's {COUNT} images"
        paths = ", ".join(path for path, _ in copies[:3]) + (", ..." if len(copies) > 3 else "")
        verb = "is an ordinary in-memory array" if len(copies) == 1 else "are ordinary in-memory arrays"
        raise Incorrect(f"after reading the batches, {paths} {verb} "
                        f"holding {what} ({sum(a.nbytes for _, a in copies):,} bytes; with 100,000 images of "
                        f"128 px: {100_000 * 128 * 128 * 3 * min(images, COUNT) / COUNT / 1e9:.1f} GB). "
                        "np.concatenate (like np.stack, np.array or np.copy) of memory maps copies their pages "
                        "into new memory. Keep the memory maps themselves, one per shard, and copy out only each "
                        "batch's rows")
    # each batch must copy only its own images: np.concatenate(self.shards)[picked] copies all of them every batch
    with _tiny_cache(Q1_COUNT, Q1_SHARD, Q1_SIZE) as cache:
        ds = StreamingCache(cache, np.zeros(Q1_COUNT, np.int64), batch_size=2)
        ds[0]  # a first batch may import or open what it needs
        with watch() as held:
            ds[len(ds) - 1]
        float_batch = 2 * Q1_SIZE * Q1_SIZE * 3 * 4
        try:
            _everything_in_memory(held.peak_bytes, Q1_COUNT * Q1_SIZE * Q1_SIZE * 3, "reading one batch",
                                  allowance=2 * float_batch)
        except Incorrect as err:
            raise Incorrect(f"{err}. Here load_batch reads the whole cache for every batch: np.concatenate (or "
                            "np.vstack) of the memory maps copies every image into new memory each time, even "
                            "when only a few rows are kept. Index each shard's map with its own rows instead") from None
    with _noise_cache(MEMORY_COUNT, MEMORY_SHARD, MEMORY_SIZE) as cache:
        held = check_pydataset(lambda **kw: StreamingCache(cache, np.zeros(MEMORY_COUNT, np.int64),
                                                           batch_size=MEMORY_BATCH, **kw), MEMORY_BATCH,
                               name="StreamingCache")
    return ("the same batches as ConcatenatedCache, only memory maps held between batches, and each batch "
            f"copies only its own images; {held}.")


q2 = Exercise(
    name="q2",
    task=("ConcatenatedCache opens every shard with mmap_mode='r' and still holds every image in memory. Find the "
          "line, then write StreamingCache(cache_dir, labels=None, batch_size=32, **kwargs): the same batches, "
          "holding only memory maps."),
    checker=_check_streaming_cache,
    hint_text=("Look at `type(ConcatenatedCache(...).images)` and its `.nbytes`: is it still a np.memmap? "
               "np.concatenate builds a new array in memory and copies every shard into it. Keep the list of "
               "memory-mapped shards instead (`self.shards`) and, in load_batch, find each picked image's shard and "
               "row with `np.divmod(picked, shard_size)`, as CachedDataset.load_batch does."),
    solution_code='''
from pathlib import Path

import numpy as np

from seedlings_utils.cache_manifest import cache_filenames, read_cache_info
from seedlings_utils.dataset import SeedlingsDataset


class StreamingCache(SeedlingsDataset):
    def __init__(self, cache_dir, labels=None, batch_size=32, **kwargs):
        info = read_cache_info(cache_dir)
        super().__init__(cache_dir, cache_filenames(cache_dir), labels, batch_size, info["image_size"], **kwargs)
        self.shard_size = info["shard_size"]
        # the memory maps themselves: no image is read until a batch indexes them
        self.shards = [np.load(Path(cache_dir) / name, mmap_mode="r") for name in info["shards"]]

    def load_batch(self, picked):
        shard_of, row = np.divmod(picked, self.shard_size)
        batch = np.empty((len(picked), self.image_size, self.image_size, 3), dtype=np.uint8)
        for s in np.unique(shard_of):
            batch[shard_of == s] = self.shards[s][row[shard_of == s]]  # copies only this batch's images
        return batch.astype(np.float32) / 255.0
''',
    answer_name="StreamingCache",
)


@contextlib.contextmanager
def _file_opens(folder: Path) -> Iterator[list[str]]:
    """Records the names of files inside ``folder`` opened (for reading their bytes) while the block runs."""
    import PIL.Image

    seen: list[str] = []
    folder = Path(folder).resolve()
    real_open, real_io_open, real_pil_open, real_os_open = builtins.open, io.open, PIL.Image.open, os.open

    def note(file) -> None:
        with contextlib.suppress(TypeError, ValueError, OSError):
            path = Path(os.fsdecode(file)).resolve()
            if folder in path.parents:
                seen.append(path.name)

    def spy(real):
        def opener(file, *args, **kwargs):
            note(file)
            return real(file, *args, **kwargs)

        return opener

    builtins.open, io.open, PIL.Image.open, os.open = (spy(real_open), spy(real_io_open), spy(real_pil_open),
                                                        spy(real_os_open))
    try:
        yield seen
    finally:
        builtins.open, io.open, PIL.Image.open, os.open = real_open, real_io_open, real_pil_open, real_os_open


def _check_fingerprint(fingerprint) -> str:
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        names = tiny_image_folder(folder, 6)
        with _file_opens(folder) as opened:
            base = fingerprint(folder, names, 16)
        if opened:
            raise Incorrect(f"fingerprint opened {sorted(set(opened))[:3]} to read them. Take what you need from "
                            "(image_dir / name).stat(): st_size and st_mtime_ns. One stat per file is instant, while "
                            "reading every image each time a lesson starts costs about as long as decoding them")
        if not isinstance(base, str) or not base:
            raise Incorrect(f"fingerprint returned {base!r}; return a non-empty str, for example "
                            "hashlib.sha256(...).hexdigest()")
        again = fingerprint(folder, list(names), 16)
        if again != base:
            raise Incorrect("the same files at the same size gave two different fingerprints (did it use the time, a "
                            "random number, or Python's hash()?): then every cache would look out of date")
        if fingerprint(str(folder), np.array(names), 16) != base:
            raise Incorrect("the same names as a NumPy array (as lessons 03-04 save them) and as a list gave different "
                            "fingerprints: hash each name as str(name), not the whole sequence's repr")
        checks = [
            ((folder, names, 24), "IMAGE_SIZE 24 instead of 16", "a cache of 16 px images would feed a 24 px model; "
             "put image_size into the digest"),
            ((folder, names[::-1], 16), "the same files in reverse order",
             "the cache stores images in file order, so every label would be paired with the wrong image; hash the "
             "names in the order given (no sorted(), no set())"),
            ((folder, names[:-1], 16), "one file fewer", "hash every name"),
            ((folder, names + [names[0]], 16), "a file added at the end (the first one again)", "hash every name"),
        ]
        for args, change, why in checks:
            if fingerprint(*args) == base:
                raise Incorrect(f"{change} gave the same fingerprint: {why}")
        # the first image rewritten with another picture of the same size in bytes: only its time changes
        path = folder / names[0]
        old = path.stat()
        data = bytearray(path.read_bytes())
        data[-5] ^= 0xFF  # other bytes, the same length
        path.write_bytes(bytes(data))
        os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns + 2_000_000_000))
        if fingerprint(folder, names, 16) == base:
            raise Incorrect(f"{names[0]} was rewritten with other bytes of the same size (only its modification "
                            "time changed) and the fingerprint stayed the same: a stale cache would keep the old "
                            "picture. st_size alone misses a rewrite of the same size: add each file's st_mtime_ns")
        # another file rewritten with a new size, its old modification time put back (as `cp -p` or unzip do)
        before = fingerprint(folder, names, 16)
        path = folder / names[1]
        old = path.stat()
        Image.new("RGB", (25, 19), (250, 10, 10)).save(path)
        os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns))
        if path.stat().st_size != old.st_size and fingerprint(folder, names, 16) == before:
            raise Incorrect(f"{names[1]} was replaced by a picture of another size that kept the old modification "
                            "time (as `cp -p` or unzipping does) and the fingerprint stayed the same: add each "
                            "file's st_size too")
    return ("stable for the same inputs, and changed by IMAGE_SIZE, order, a file removed, added or rewritten, "
            "without reading a single image.")


q3 = Exercise(
    name="q3",
    task=("Write fingerprint(image_dir, filenames, image_size) -> str: equal for the same inputs, different when "
          "IMAGE_SIZE changes or a file is added, removed, reordered or rewritten, using os.stat, not the files' "
          "bytes."),
    checker=_check_fingerprint,
    hint_text=("`digest = hashlib.sha256(str(image_size).encode())`, then for each name in order: "
               "`stat = (Path(image_dir) / str(name)).stat()` and "
               "`digest.update(f'{name}|{stat.st_size}|{stat.st_mtime_ns}\\n'.encode())`; return `digest.hexdigest()`. "
               "The separators keep 'a1' + '23' apart from 'a12' + '3'."),
    solution_code='''
import hashlib
from pathlib import Path


def fingerprint(image_dir, filenames, image_size):
    digest = hashlib.sha256(f"size={int(image_size)}\\n".encode())
    for name in filenames:  # in order: the cache stores the images in this order
        stat = (Path(image_dir) / str(name)).stat()  # size and modification time, without reading the file
        digest.update(f"{name}|{stat.st_size}|{stat.st_mtime_ns}\\n".encode())
    return digest.hexdigest()
''',
    answer_name="fingerprint",
)
