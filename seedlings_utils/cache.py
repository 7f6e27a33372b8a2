"""Lesson 07: decode and resize every image once, into an on-disk cache that training reads batch by batch.

Lesson 05's loader decodes and resizes every image again in every epoch. Here that work is done once:
the resized images go into a few large *shards*, plain uint8 ``.npy`` files
(``cache_dir/shard_00000.npy`` ...), each holding ``shard_size`` images of shape ``(s, s, 3)``. Training
opens them with memory mapping (``np.load(..., mmap_mode="r")``): nothing is read until a batch asks
for it, and then only the bytes of that batch, so the data set still never has to fit in memory.

``cache_dir/cache.json`` records what the cache holds (image size, count, shard size, the file names
in order) and a *fingerprint* of its inputs. A cache is used only while the fingerprint still matches:
change ``IMAGE_SIZE``, add or remove an image, or rewrite one, and the next build decodes again.

The lesson's technique (writing shards through ``np.lib.format.open_memmap``, :func:`build_image_cache`,
and :class:`CachedDataset` reading them through memory maps) is written in notebook 07's cells and
exported below; this module's own code is the bookkeeping around it: the fingerprint, ``cache.json``,
and building in a ``.partial`` folder that is swapped in only when complete.
"""


from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .dataset import SeedlingsDataset, load_image_uint8
from .locking import output_lock

CACHE_FILE = "cache.json"
NAMES_FILE = "filenames.npy"  # the cache's file names, in its order
CACHE_FORMAT = 2  # bump when the layout changes: older caches then stop matching and are rebuilt (2: NAMES_FILE)


def shard_name(index: int) -> str:
    """The file name of shard ``index``: ``shard_00000.npy``."""
    return f"shard_{index:05d}.npy"


def cache_fingerprint(image_dir: str | Path, filenames: Sequence[str] | np.ndarray, image_size: int) -> str:
    """A sha256 (hex) over ``image_size``, the file names in order, and each file's size and ``mtime_ns``.

    It changes when ``IMAGE_SIZE`` changes, when an image is added, removed or reordered, and when a
    file is rewritten (its size or modification time changes). Only ``stat`` is called: no file is read.
    The folder's own path is not part of it, so a cache survives moving ``image_dir`` as long as the
    files keep their sizes and times.
    """
    image_dir = Path(image_dir)
    digest = hashlib.sha256(f"seedlings-cache/{CACHE_FORMAT}/{int(image_size)}\n".encode())
    for name in filenames:
        stat = (image_dir / str(name)).stat()
        digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def read_cache_info(cache_dir: str | Path) -> dict | None:
    """The contents of ``cache_dir/cache.json``, or ``None`` when there is no complete cache there."""
    path = Path(cache_dir) / CACHE_FILE
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or info.get("format") != CACHE_FORMAT:
        return None
    if not all((Path(cache_dir) / name).is_file() for name in [*info.get("shards", [None]), NAMES_FILE]):
        return None
    return info


def cache_filenames(cache_dir: str | Path) -> np.ndarray:
    """The cache's file names, in its order, memory-mapped read-only (as lesson 04's ``load_split`` opens the split)."""
    return np.load(Path(cache_dir) / NAMES_FILE, mmap_mode="r")


def cache_is_current(
    cache_dir: str | Path, image_dir: str | Path, filenames: Sequence[str] | np.ndarray, image_size: int
) -> bool:
    """True when ``cache_dir`` holds a complete cache of exactly these files at this ``image_size``."""
    info = read_cache_info(cache_dir)
    return info is not None and info.get("fingerprint") == cache_fingerprint(image_dir, filenames, image_size)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextlib.contextmanager
def new_cache_folder(cache_dir: str | Path) -> Iterator[Path]:
    """An empty folder ``<cache_dir>.partial`` to build a cache in, put in place of ``cache_dir`` at the end.

    If the ``with`` block fails (an error, a stopped kernel), the partial folder is deleted and
    ``cache_dir`` is left as it was, so an interrupted build is never mistaken for a cache; a build killed
    outright leaves ``.partial`` behind, and the next build starts it again from scratch. A non-empty
    ``cache_dir`` that is not a cache (no ``cache.json``) is never deleted: that raises ``FileExistsError``.
    """
    cache_dir = Path(cache_dir)
    if cache_dir.is_dir() and not (cache_dir / CACHE_FILE).exists() and any(cache_dir.iterdir()):
        raise FileExistsError(f"{cache_dir} holds files but no {CACHE_FILE}: it is not an image cache, and "
                              "rebuilding would delete them. Choose an empty or new folder for the cache.")
    partial = cache_dir.with_name(cache_dir.name + ".partial")
    old = cache_dir.with_name(cache_dir.name + ".old")
    with output_lock(cache_dir, "lesson 07: building an image cache"):  # a second build waits: it would delete ours
        _remove(partial)  # what an interrupted earlier build left
        partial.mkdir(parents=True)
        try:
            yield partial
        except BaseException:
            _remove(partial)
            raise
        _remove(old)
        if cache_dir.exists() or cache_dir.is_symlink():
            os.replace(cache_dir, old)  # a folder cannot replace a non-empty folder: move the old one aside first
        os.replace(partial, cache_dir)
        _remove(old)


def resident_memory_mb() -> tuple[float, float]:
    """This process's resident memory in MB, split in two: ``(anonymous, file_backed)``.

    *Anonymous* pages (``RssAnon``) hold the process's own data, such as NumPy arrays: they stay in RAM
    (or go to swap) until the process frees them. *File-backed* pages (``RssFile``) are pages of files
    mapped into memory (libraries, and memory-mapped shards): clean ones can be dropped by the kernel at
    any time and read again from the file. Linux only; elsewhere both are ``nan``.
    """
    from .profiling import proc_status_mb

    values = proc_status_mb("RssAnon", "RssFile")
    return values.get("RssAnon", float("nan")), values.get("RssFile", float("nan"))


# ---- BEGIN notebooks/07_preprocess_once_into_a_cache.ipynb: edit the notebook, then `make export` ----
def write_shards(image_dir, filenames, image_size, folder, shard_size=2048, progress=True) -> list[str]:
    """Decode and resize every image once into uint8 shards ``folder/shard_00000.npy`` ...; returns their names."""
    shards = []
    with tqdm(total=len(filenames), desc="cache", unit="img", disable=not progress) as bar:
        for first in range(0, len(filenames), shard_size):
            names = filenames[first : first + shard_size]
            shards.append(shard_name(len(shards)))
            # A .npy file of the final shape, opened as a memory map: `shard[j] = ...` writes into the file's
            # pages, which the OS saves to disk. No array of all the images is ever built in memory.
            shard = np.lib.format.open_memmap(Path(folder) / shards[-1], mode="w+", dtype=np.uint8,
                                              shape=(len(names), image_size, image_size, 3))
            for j, name in enumerate(names):
                # decoded and resized exactly as lesson 05 does it; uint8 (0-255) is 4x smaller than float32
                shard[j] = load_image_uint8(Path(image_dir) / name, image_size)
                bar.update()
            shard.flush()  # make sure every written page is in the file
            del shard  # unmap it: its pages leave this process's memory before the next shard starts
    return shards


def build_image_cache(image_dir, filenames, image_size, cache_dir, shard_size=2048, progress=True) -> Path:
    """Decode and resize every image once into ``cache_dir`` (shards + ``cache.json``), unless it is there already."""
    filenames = [str(name) for name in np.asarray(filenames).tolist()]
    image_size, shard_size = int(image_size), int(shard_size)
    if not filenames or image_size < 1 or shard_size < 1:
        raise ValueError(f"nothing to cache: {len(filenames)} files, image_size {image_size}, shard_size {shard_size}")
    fingerprint = cache_fingerprint(image_dir, filenames, image_size)
    info = read_cache_info(cache_dir)
    if info is not None and info.get("fingerprint") == fingerprint:
        return Path(cache_dir)  # built from exactly these files at this size: reuse it, decode nothing
    # built in <cache_dir>.partial and swapped in only when complete: a stopped build is never read as a cache
    with new_cache_folder(cache_dir) as folder:
        shards = write_shards(image_dir, filenames, image_size, folder, shard_size, progress)
        np.save(folder / NAMES_FILE, np.asarray(filenames, dtype=str))  # the names in cache order, read memory-mapped
        info = {"format": CACHE_FORMAT, "image_size": image_size, "count": len(filenames), "shard_size": shard_size,
                "fingerprint": fingerprint, "shards": shards}
        (folder / CACHE_FILE).write_text(json.dumps(info, indent=1), encoding="utf-8")  # last: marks it complete
    return Path(cache_dir)


class CachedDataset(SeedlingsDataset):
    """Lesson 05's ``SeedlingsDataset`` reading a cache made by ``build_image_cache``: only ``load_batch`` differs.

    ``labels`` follow the cache's file order (``ds.filenames``); batching, labels, reshuffling every epoch
    and ``workers`` / ``use_multiprocessing`` / ``max_queue_size`` (through ``**kwargs``) are inherited.
    """

    def __init__(self, cache_dir, labels=None, batch_size=32, shuffle=False, seed=None, **kwargs):
        info = read_cache_info(cache_dir)
        if info is None:
            raise FileNotFoundError(f"No complete image cache in {cache_dir}: run build_image_cache first.")
        if labels is not None and len(labels) != info["count"]:
            raise ValueError(f"the cache holds {info['count']} images but {len(labels)} labels were given")
        # the names memory-mapped, like the shards: 100,000 of them stay file pages, not this process's memory
        super().__init__(cache_dir, cache_filenames(cache_dir), labels, batch_size, info["image_size"],
                         shuffle, seed, **kwargs)
        self.cache_dir, self.shard_size, self.shard_files = Path(cache_dir), info["shard_size"], info["shards"]
        self._shards = {}  # shard number -> its memory map, opened on first use

    def shard(self, index: int) -> np.ndarray:
        """Shard ``index``, memory-mapped read-only: opening it reads only the header, nothing else yet."""
        if index not in self._shards:
            # without mmap_mode, np.load would read the whole shard into memory here
            self._shards[index] = np.load(self.cache_dir / self.shard_files[index], mmap_mode="r")
        return self._shards[index]

    def load_batch(self, picked: np.ndarray) -> np.ndarray:
        """The images at positions ``picked``, as float32 in [0, 1]."""
        shard_of, row = np.divmod(picked, self.shard_size)  # image k: row k % shard_size of shard k // shard_size
        batch = np.empty((len(picked), self.image_size, self.image_size, 3), dtype=np.uint8)
        for s in np.unique(shard_of):
            batch[shard_of == s] = self.shard(int(s))[row[shard_of == s]]  # copies only these images' bytes
        return batch.astype(np.float32) / 255.0  # scaled once, exactly as lesson 05's load_image does

    def __getstate__(self) -> dict:
        # Worker processes started with "spawn" or "forkserver" receive the data set pickled, and a pickled
        # memory map carries its whole shard: leave the maps out; each process reopens the shards it reads.
        return {**self.__dict__, "_shards": {}}
# ---- END notebooks/07_preprocess_once_into_a_cache.ipynb ----
