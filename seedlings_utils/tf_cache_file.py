"""A ``tf.data`` cache file that is never replayed for other inputs, and the files ``Dataset.cache`` writes.

``Dataset.cache(filename)`` writes ``<filename>.index`` and ``<filename>.data-*`` (and lock files while a first
pass runs) and replays them, unchecked, in every later run: :func:`prepare_cache_file` stamps them with a
fingerprint of their inputs and deletes them when the inputs change.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .cache_manifest import cache_fingerprint
from .files import write_text_atomically


def cache_files(cache_file: str | Path) -> list[Path]:
    """The files ``Dataset.cache(cache_file)`` writes: ``<name>.index``, ``<name>.data-*``, lock files.

    The one place that knows how ``tf.data`` names them (lesson 08, the benchmark and the tests ask here).
    """
    cache_file = Path(cache_file)
    if not cache_file.parent.is_dir():
        return []
    name = cache_file.name
    return sorted(p for p in cache_file.parent.iterdir()
                  if p.name == f"{name}.index" or p.name.startswith(f"{name}.data-")
                  or (p.name.startswith(f"{name}_") and p.name.endswith(".lockfile")))


def prepare_cache_file(
    cache_file: str | Path,
    image_dir: str | Path,
    names: Sequence[str],
    labels: np.ndarray | None,
    image_size: int,
    order: str = "",
) -> str:
    """``cache_file`` as a string for ``Dataset.cache``, after deleting a cache written for other inputs.

    ``Dataset.cache`` never checks what it holds: it replays whatever an earlier run wrote. So
    ``<cache_file>.json`` records a fingerprint of the images (names, sizes, times), the labels, the
    image size and ``order`` (how the first pass was ordered, e.g. the shuffle seed: the cache replays
    that order); when any of them changes, or an earlier first pass never finished (a killed run leaves
    a lock file that would stop the next one), the old cache files are removed and the next complete
    epoch writes new ones.
    """
    cache_file = Path(cache_file)
    labels_digest = "none" if labels is None else hashlib.sha256(np.asarray(labels).tobytes()).hexdigest()
    fingerprint = f"{cache_fingerprint(image_dir, names, image_size)}/{labels_digest}/{order}"
    stamp = cache_file.with_name(cache_file.name + ".json")
    try:
        current = json.loads(stamp.read_text(encoding="utf-8")).get("fingerprint") == fingerprint
    except (OSError, ValueError, AttributeError):
        current = False
    if not current or not cache_is_written(cache_file):  # other inputs, or a first pass that never finished
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        for path in cache_files(cache_file):  # a lock file left by a killed run would stop the next one
            path.unlink()
        write_text_atomically(stamp, json.dumps({"fingerprint": fingerprint}))
    return str(cache_file)


def cache_is_written(cache_file: str | Path) -> bool:
    """True when ``Dataset.cache(cache_file)`` has finished a complete pass: its ``.index`` and ``.data-*`` exist."""
    names = [path.name for path in cache_files(cache_file)]
    name = Path(cache_file).name
    return f"{name}.index" in names and any(n.startswith(f"{name}.data-") for n in names)
