"""Lesson 02: every training image into one folder, ``all_images/``, once, under a unique name."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from .sources import is_image_file

FLAT_SEPARATOR = "__"
LINK_METHODS = ("copy", "hardlink", "symlink")


def list_training_images(train_dir: str | Path) -> list[tuple[str, PurePosixPath]]:
    """Every image under ``train_dir`` as ``(species folder, path relative to that folder)``.

    Sorted by species, then path, so every run (and every machine) sees the same order: the 2019
    recipe walked folders with ``os.walk``, whose order depends on the file system.
    """
    train_dir = Path(train_dir)
    images = []
    for species_dir in sorted(d for d in train_dir.iterdir() if d.is_dir() and not d.name.startswith(".")):
        for path in sorted(species_dir.rglob("*")):
            if is_image_file(path) and not any(part.startswith(".") for part in path.relative_to(species_dir).parts):
                images.append((species_dir.name, PurePosixPath(path.relative_to(species_dir).as_posix())))
    return images


def flat_name(species: str, relative_path: str | PurePosixPath) -> str:
    """The unique name of one training image inside ``all_images/``.

    ``("Common wheat", "0a1b2c3d4.png")`` becomes ``"Common_wheat__0a1b2c3d4.png"``: the species
    prefix keeps two species folders that hold the same file name from overwriting each other (the
    2019 recipe copied bare file names, so the second copy silently replaced the first) and lets a
    person see each file's label at a glance. Sub-folders inside a species folder join the name too.
    """
    parts = [species.replace(" ", "_"), *PurePosixPath(relative_path).parts]
    return FLAT_SEPARATOR.join(parts)


@dataclass
class FlattenReport:
    """What :func:`flatten_images` did."""

    images_in: int
    written: int
    already_there: int
    stale_removed: list[str]
    images_out: int

    def __str__(self) -> str:
        text = (f"{self.images_in} images in raw/train -> {self.images_out} in all_images/ "
                f"({self.written} written, {self.already_there} already there")
        if self.stale_removed:
            text += f", {len(self.stale_removed)} left over from an older run removed"
        return text + ")"


def _same_file_already_there(src: Path, dst: Path, method: str) -> bool:
    if method == "symlink":
        return dst.is_symlink() and Path(os.readlink(dst)) == src.resolve()
    if dst.is_symlink() or not dst.is_file():
        return False
    if method == "hardlink":
        return dst.samefile(src)
    return dst.stat().st_size == src.stat().st_size


def _place(src: Path, dst: Path, method: str) -> None:
    tmp = dst.with_name(f".{dst.name}.partial")
    tmp.unlink(missing_ok=True)
    if method == "copy":
        shutil.copy2(src, tmp)
    elif method == "hardlink":
        os.link(src, tmp)
    else:
        os.symlink(src.resolve(), tmp)
    os.replace(tmp, dst)  # atomic: an interrupted run never leaves a half-written image under its real name


def flatten_images(
    train_dir: str | Path, all_images_dir: str | Path, method: str = "copy", progress: bool = True
) -> FlattenReport:
    """Copy (or link) every image of ``train_dir/<species>/`` into ``all_images_dir`` under :func:`flat_name`.

    Idempotent: files already in place are kept, files that no longer come from ``train_dir`` (an older
    run on other data, a half-written ``.partial``) are removed and listed. Ends by checking that the
    folder holds exactly one file per training image, and raises if not.

    ``method``: ``"copy"`` works everywhere (Google Drive included) but doubles the disk space;
    ``"hardlink"`` costs no space or time but needs both folders on one file system; ``"symlink"``
    is as cheap, but breaks if ``raw/`` moves.
    """
    if method not in LINK_METHODS:
        raise ValueError(f"method must be one of {LINK_METHODS}, not {method!r}")
    train_dir, all_images_dir = Path(train_dir), Path(all_images_dir)
    images = list_training_images(train_dir)
    wanted: dict[str, Path] = {}
    for species, relative in images:
        name = flat_name(species, relative)
        if name in wanted:
            raise ValueError(
                f"Two training images map to the same name {name!r} in all_images/: {wanted[name]} and "
                f"{train_dir / species / relative}. Rename one of them; nothing was copied."
            )
        wanted[name] = train_dir / species / relative

    all_images_dir.mkdir(parents=True, exist_ok=True)
    stale = sorted(p.name for p in all_images_dir.iterdir() if p.name not in wanted)
    for name in stale:
        path = all_images_dir / name
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    if stale:
        print(f"Removed {len(stale)} files from {all_images_dir} that do not come from {train_dir} "
              f"(an older run's leftovers): {', '.join(stale[:5])}{' ...' if len(stale) > 5 else ''}")

    written = already = 0
    for name, src in tqdm(wanted.items(), desc="flatten", unit="img", disable=not progress):
        dst = all_images_dir / name
        if _same_file_already_there(src, dst, method):
            already += 1
            continue
        if dst.exists() or dst.is_symlink():
            dst.unlink()
        _place(src, dst, method)
        written += 1

    out = sorted(p.name for p in all_images_dir.iterdir())
    if out != sorted(wanted):
        missing = sorted(set(wanted) - set(out))[:5]
        extra = sorted(set(out) - set(wanted))[:5]
        raise RuntimeError(f"{all_images_dir} does not match {train_dir}: missing {missing}, unexpected {extra}")
    return FlattenReport(len(images), written, already, stale, len(out))
