"""Lesson 07's exercises: read images through memory-mapped shards; find what holds every image in memory;
write a cache fingerprint."""

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

#: The checkers' own cache: 11 images of 8 x 8 px in shards of 4, 4 and 3 (image k is red ``pixel_value(k)``).
COUNT, SHARD_SIZE, SIZE = 11, 4, 8


@contextlib.contextmanager
def _tiny_cache() -> Iterator[Path]:
    """A cache of :data:`COUNT` numbered images, built by the lesson's ``build_image_cache`` in a temporary folder."""
    from ..cache import build_image_cache

    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "images"
        names = tiny_image_folder(images, COUNT)
        yield build_image_cache(images, names, SIZE, Path(tmp) / "cache", shard_size=SHARD_SIZE, progress=False)


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


def _full_reads(seen) -> None:
    read = sorted({file for how, file, _ in seen if how == "read"})
    if read:
        raise Incorrect(f"np.load({read[0]!r}) without mmap_mode read the whole shard into memory ({len(read)} "
                        f"shard(s) in all): with 100,000 images that is every image in RAM. Open shards with "
                        "np.load(path, mmap_mode='r'), which maps the file and reads only the rows you index")
    modes = sorted({mode for how, _, mode in seen if how == "map" and mode != "r"})
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


def _check_read_images(read_images) -> str:
    with _tiny_cache() as cache:
        # positions in every shard, at both edges of each (3|4 and 7|8), in no particular order
        for call, positions in enumerate(([5, 0, 10, 3, 4, 8, 7], [9, 2, 0, 10])):
            with _npy_reads() as seen:
                try:
                    images = read_images(cache, np.array(positions))
                except IndexError as err:
                    raise Incorrect(f"read_images(cache_dir, {positions}) raised IndexError ({err}): a position was "
                                    "sent to a shard or row that does not exist. Image k is row k % shard_size of "
                                    f"shard k // shard_size, with shard_size from read_cache_info ({SHARD_SIZE} "
                                    f"here: {COUNT} images in shards of 4, 4 and 3)") from err
            _full_reads(seen)
            if call == 0 and not any(how == "map" for how, _, _ in seen):
                raise Incorrect("no shard was opened with np.load(path, mmap_mode='r'): read the shards through "
                                "memory maps (the exercise is about them)")
            shape = (len(positions), SIZE, SIZE, 3)
            if not isinstance(images, np.ndarray) or images.shape != shape:
                got = images.shape if isinstance(images, np.ndarray) else type(images).__name__
                extra = " (every image of the cache, not only those asked)" if got == (COUNT, SIZE, SIZE, 3) else ""
                raise Incorrect(f"read_images(cache_dir, {positions}) returned {got}{extra}; expected an array of "
                                f"shape {shape}: one image per position asked, in that order")
            _check_pixels(images, f"read_images(cache_dir, {positions})")
            got = [image_number(image) for image in images]
            if got != positions:
                if sorted(got) == sorted(positions):
                    raise Incorrect(f"positions {positions} gave images {got}: the right images, in another order. "
                                    "Return them in the order of `positions`")
                i = next(i for i, (a, b) in enumerate(zip(got, positions, strict=True)) if a != b)
                k = positions[i]
                raise Incorrect(f"position {k} gave image {got[i]}, expected image {k}. With shard_size "
                                f"{SHARD_SIZE} (from read_cache_info), image {k} is row {k % SHARD_SIZE} of shard "
                                f"{k // SHARD_SIZE} (shard_name({k // SHARD_SIZE})): row = k % shard_size, "
                                "shard = k // shard_size. Shards all hold shard_size images except the last")
            opened = sorted({file for how, file, _ in seen if how == "map"})
            needed = {f"shard_{k // SHARD_SIZE:05d}.npy" for k in positions}
            if set(opened) - needed:
                raise Incorrect(f"read_images(cache_dir, {positions}) opened {sorted(set(opened) - needed)}, which "
                                f"holds none of these positions: open only the shards that hold them")
    return (f"positions across {math.ceil(COUNT / SHARD_SIZE)} shards, edges included, come back in order, as float32 "
            "in [0, 1], read through read-only memory maps of only the shards needed.")


q1 = Exercise(
    name="q1",
    task=("Write read_images(cache_dir, positions): the images at `positions` (0-based, in the cache's file order) "
          "as a float32 array in [0, 1], shape (len(positions), s, s, 3), read from shards opened with "
          "np.load(..., mmap_mode='r')."),
    checker=_check_read_images,
    hint_text=("`info = read_cache_info(cache_dir)` gives info['shard_size'], info['image_size'] and info['shards'] "
               "(the shard file names). `shard_of, row = np.divmod(positions, info['shard_size'])`. For each shard "
               "number s in np.unique(shard_of): `shard = np.load(Path(cache_dir) / info['shards'][s], "
               "mmap_mode='r')`, then `out[shard_of == s] = shard[row[shard_of == s]]` into a uint8 array `out` made "
               "with np.empty. Scale once at the end."),
    solution_code='''
from pathlib import Path

import numpy as np

from seedlings_utils.cache import read_cache_info


def read_images(cache_dir, positions):
    info = read_cache_info(cache_dir)
    positions = np.asarray(positions)
    shard_of, row = np.divmod(positions, info["shard_size"])  # image k: row k % shard_size of shard k // shard_size
    size = info["image_size"]
    out = np.empty((len(positions), size, size, 3), dtype=np.uint8)
    for s in np.unique(shard_of):
        shard = np.load(Path(cache_dir) / info["shards"][s], mmap_mode="r")  # maps the file, reads nothing yet
        out[shard_of == s] = shard[row[shard_of == s]]  # reads only these rows
    return out.astype(np.float32) / 255.0
''',
    answer_name="read_images",
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
    return ("the same batches as ConcatenatedCache, and nothing but memory maps and small arrays held between "
            "batches.")


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

from seedlings_utils.cache import cache_filenames, read_cache_info
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
        # the first image rewritten with another picture: new bytes and a newer modification time
        path = folder / names[0]
        old = path.stat()
        Image.new("RGB", (25, 19), (250, 10, 10)).save(path)
        os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns + 2_000_000_000))
        if fingerprint(folder, names, 16) == base:
            raise Incorrect(f"{names[0]} was rewritten with another picture (new size and modification time) and "
                            "the fingerprint stayed the same: the cache would keep the old picture. Add each file's "
                            "st_size and st_mtime_ns from (image_dir / name).stat()")
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
