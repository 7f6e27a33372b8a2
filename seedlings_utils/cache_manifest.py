"""The manifest of lesson 07's image cache (``seedlings_utils.cache``): its files, fingerprint and folder.

``cache_dir/cache.json`` records what the cache holds (image size, count, shard size, the file names
in order) and a *fingerprint* of its inputs. A cache is used only while the fingerprint still matches:
change ``IMAGE_SIZE``, add or remove an image, or rewrite one, and the next build decodes again. A cache is
built in a ``.partial`` folder that is swapped in only when complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from .files import folder_replaced_when_done
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
    with output_lock(cache_dir, "lesson 07: building an image cache"):  # a second build waits: it would delete ours
        with folder_replaced_when_done(cache_dir) as partial:
            yield partial
