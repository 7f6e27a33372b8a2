"""Writing a file or a folder so that a reader never sees half of it: write beside it, then rename it into place.

The one home of the course's write-then-rename: every hand-written module that writes a file a later step
reads (records, manifests, zips, submissions) writes it through :func:`replaced_when_done`, and a folder built
in one go (the raw data, an image cache) through :func:`folder_replaced_when_done`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

from tqdm.auto import tqdm

PARTIAL_SUFFIX = ".partial"


def partial_path(path: str | Path) -> Path:
    """Where ``path`` is written before it is renamed into place: ``.<name>.partial`` in the same folder."""
    path = Path(path)
    return path.with_name(f".{path.name}{PARTIAL_SUFFIX}")


@contextlib.contextmanager
def replaced_when_done(path: str | Path) -> Iterator[Path]:
    """A path to write ``path``'s new contents to; renamed onto ``path`` when the ``with`` block ends well.

    The rename is one step (``os.replace``, same folder): a reader sees the old file or the new one, never half
    of one. If the block raises (or is interrupted), the partial file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    partial = partial_path(path)
    partial.unlink(missing_ok=True)  # what an interrupted earlier write left
    try:
        yield partial
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def write_text_atomically(path: str | Path, text: str) -> Path:
    """``Path(path).write_text(text)`` (UTF-8) through :func:`replaced_when_done`; returns ``path``."""
    with replaced_when_done(path) as partial:
        partial.write_text(text, encoding="utf-8")
    return Path(path)


def remove(path: str | Path) -> None:
    """Delete ``path``, a file, a link or a whole folder; nothing happens when it is not there."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextlib.contextmanager
def folder_replaced_when_done(folder: str | Path) -> Iterator[Path]:
    """An empty folder ``<folder>.partial`` to build ``folder``'s new contents in, put in its place at the end.

    What an interrupted earlier build left in ``<folder>.partial`` is deleted first. If the ``with`` block
    raises (an error, a stopped kernel), the partial folder is deleted and ``folder`` is left as it was, so a
    half-built folder is never mistaken for a finished one; a process killed outright leaves ``.partial``
    behind, and the next build starts it again. A folder cannot replace a non-empty folder in one rename, so
    the old one is moved aside to ``<folder>.old`` for the moment of the swap and then deleted.
    """
    folder = Path(folder)
    partial = folder.with_name(folder.name + PARTIAL_SUFFIX)
    old = folder.with_name(folder.name + ".old")
    remove(partial)
    partial.mkdir(parents=True)
    try:
        yield partial
    except BaseException:
        remove(partial)
        raise
    remove(old)
    if folder.exists() or folder.is_symlink():
        os.replace(folder, old)
    os.replace(partial, folder)
    remove(old)


def zip_folder(folder: str | Path, zip_path: str | Path, progress: bool = True) -> Path:
    """Zip ``folder`` (e.g. ``all_images/``) into ``zip_path``, entries sorted, written under a temporary name.

    PNGs are already compressed, so the zip is stored without recompressing: it is a way to move one
    file instead of thousands (to Drive, to another machine), not a way to save space.
    """
    folder, zip_path = Path(folder), Path(zip_path)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    with replaced_when_done(zip_path) as partial, zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_STORED) as z:
        for path in tqdm(files, desc=f"zip {folder.name}/", unit="file", disable=not progress):
            z.write(path, Path(folder.name) / path.relative_to(folder))
    return zip_path
