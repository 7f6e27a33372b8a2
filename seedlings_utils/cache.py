"""Lesson 07: decode and resize every image once, into an on-disk cache that training reads batch by batch.

Lesson 05's loader decodes and resizes every image again in every epoch. Here that work is done once:
the resized images go into a few large *shards*, plain uint8 ``.npy`` files
(``cache_dir/shard_00000.npy`` ...), each holding ``shard_size`` images of shape ``(s, s, 3)``. Training
opens them with memory mapping (``np.load(..., mmap_mode="r")``): nothing is read until a batch asks
for it, and then only the bytes of that batch, so the data set still never has to fit in memory.

``cache_dir/cache.json`` records what the cache holds (image size, count, shard size, the file names
in order) and a *fingerprint* of its inputs. A cache is used only while the fingerprint still matches:
change ``IMAGE_SIZE``, add or remove an image, or rewrite one, and the next build decodes again.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .dataset import SeedlingsDataset, load_image_uint8

CACHE_FILE = "cache.json"
CACHE_FORMAT = 1  # bump when the layout changes: older caches then stop matching and are rebuilt


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
    if not all((Path(cache_dir) / name).is_file() for name in info.get("shards", [None])):
        return None
    return info


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


def build_image_cache(
    image_dir: str | Path,
    filenames: Sequence[str] | np.ndarray,
    image_size: int,
    cache_dir: str | Path,
    shard_size: int = 2048,
    progress: bool = True,
) -> Path:
    """Decode and resize every image once into ``cache_dir``; returns ``cache_dir``.

    Each image goes through :func:`~seedlings_utils.dataset.load_image_uint8` (the same decoding and
    resizing as lesson 05) into ``shard_00000.npy``, ``shard_00001.npy`` ... (uint8, shape
    ``(n_in_shard, s, s, 3)``, ``shard_size`` images each, the last one fewer), and ``cache.json`` records
    ``image_size``, ``count``, ``shard_size``, the fingerprint and the file names in order.

    - If ``cache.json`` already has the same fingerprint, nothing is decoded: it returns at once.
    - Otherwise the cache is built in a sibling folder ``<cache_dir>.partial`` and swapped in only when
      complete, so an interrupted build (an error, a stopped kernel) is never mistaken for a cache; the
      next build starts that folder again from scratch. A non-empty ``cache_dir`` that is not a cache
      (no ``cache.json``) is never deleted: that raises ``FileExistsError``.
    - Memory stays bounded by one image: each shard is written through ``np.lib.format.open_memmap``,
      never by stacking all images in memory. Disk: ``count * s * s * 3`` bytes (4,750 images at 128 px:
      about 233 MB).
    """
    image_dir, cache_dir = Path(image_dir), Path(cache_dir)
    filenames = [str(name) for name in np.asarray(filenames).tolist()]
    image_size, shard_size = int(image_size), int(shard_size)
    if not filenames:
        raise ValueError("no file names: nothing to cache")
    if image_size < 1 or shard_size < 1:
        raise ValueError(f"image_size and shard_size must be positive, got {image_size} and {shard_size}")
    fingerprint = cache_fingerprint(image_dir, filenames, image_size)
    info = read_cache_info(cache_dir)
    if info is not None and info.get("fingerprint") == fingerprint:
        return cache_dir

    if cache_dir.is_dir() and not (cache_dir / CACHE_FILE).exists() and any(cache_dir.iterdir()):
        raise FileExistsError(f"{cache_dir} holds files but no {CACHE_FILE}: it is not an image cache, and "
                              "rebuilding would delete them. Choose an empty or new folder for the cache.")
    partial = cache_dir.with_name(cache_dir.name + ".partial")
    old = cache_dir.with_name(cache_dir.name + ".old")
    _remove(partial)  # what an interrupted earlier build left
    partial.mkdir(parents=True)
    count = len(filenames)
    shards = [shard_name(i) for i in range(math.ceil(count / shard_size))]
    try:
        with tqdm(total=count, desc="cache", unit="img", disable=not progress) as bar:
            for i, name in enumerate(shards):
                names = filenames[i * shard_size : (i + 1) * shard_size]
                shard = np.lib.format.open_memmap(partial / name, mode="w+", dtype=np.uint8,
                                                  shape=(len(names), image_size, image_size, 3))
                for j, file in enumerate(names):
                    shard[j] = load_image_uint8(image_dir / file, image_size)
                    bar.update()
                shard.flush()
                del shard
        info = {"format": CACHE_FORMAT, "image_size": image_size, "count": count, "shard_size": shard_size,
                "fingerprint": fingerprint, "shards": shards, "filenames": filenames}
        # cache.json last: a folder without it is never read as a cache
        (partial / CACHE_FILE).write_text(json.dumps(info, indent=1), encoding="utf-8")
    except BaseException:
        _remove(partial)
        raise
    _remove(old)
    if cache_dir.exists() or cache_dir.is_symlink():
        os.replace(cache_dir, old)  # a folder cannot replace a non-empty folder: move the old one aside first
    os.replace(partial, cache_dir)
    _remove(old)
    return cache_dir


class CachedDataset(SeedlingsDataset):
    """Batches of ``(images, labels)`` read from a cache made by :func:`build_image_cache`.

    The same contract as lesson 05's :class:`~seedlings_utils.dataset.SeedlingsDataset`: ``len`` is the
    number of batches, ``ds[i]`` is ``(float32 images in [0, 1], labels)`` (images only when ``labels``
    is ``None``), and with ``shuffle=True`` the sample order is reshuffled at the end of every epoch,
    reproducibly from ``seed``. ``labels`` must be in the order of the file names the cache was built
    with (``ds.filenames``). ``workers``, ``use_multiprocessing`` and ``max_queue_size`` go to
    ``keras.utils.PyDataset`` through ``**kwargs``.

    Shards are opened lazily with memory mapping, in whichever process reads them: the open maps are
    left out when the data set is pickled for ``use_multiprocessing=True`` (a pickled ``np.memmap``
    would copy the whole shard into the pickle), and each worker process reopens them.
    """

    def __init__(
        self,
        cache_dir: str | Path,
        labels: np.ndarray | None = None,
        batch_size: int = 32,
        shuffle: bool = False,
        seed: int | None = None,
        **kwargs,
    ):
        info = read_cache_info(cache_dir)
        if info is None:
            raise FileNotFoundError(f"No complete image cache in {cache_dir}: run build_image_cache first.")
        if labels is not None and len(labels) != len(info["filenames"]):
            raise ValueError(f"the cache holds {len(info['filenames'])} images but {len(labels)} labels were given")
        super().__init__(cache_dir, np.asarray(info["filenames"], dtype=str), labels, batch_size,
                         int(info["image_size"]), shuffle, seed, **kwargs)
        self.cache_dir = Path(cache_dir)
        self.shard_size = int(info["shard_size"])
        self.shard_files = list(info["shards"])
        self._shards: dict[int, np.ndarray] = {}

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_shards"] = {}  # reopened (memory-mapped) in the process that unpickles it
        return state

    def shard(self, index: int) -> np.ndarray:
        """Shard ``index`` as a read-only memory-mapped uint8 array ``(n, s, s, 3)``, opened on first use."""
        array = self._shards.get(index)
        if array is None:
            array = np.load(self.cache_dir / self.shard_files[index], mmap_mode="r")
            self._shards[index] = array
        return array

    def load_batch(self, picked: np.ndarray) -> np.ndarray:
        """The images at positions ``picked``, sliced from the memory-mapped shards and scaled to [0, 1] once."""
        size = self.image_size
        batch = np.empty((len(picked), size, size, 3), dtype=np.uint8)
        shard_of, position = np.divmod(picked, self.shard_size)
        for s in np.unique(shard_of):
            rows = shard_of == s
            batch[rows] = self.shard(int(s))[position[rows]]  # reads only these images' bytes
        return batch.astype(np.float32) / 255.0  # scaled once, exactly as load_image does
