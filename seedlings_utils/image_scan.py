"""Lesson 02's scan of the raw files around its exported copy (``seedlings_utils.flatten``): used or skipped.

Real data sets hold more than clean PNGs. The scan here decides, for every file under ``raw/train``, ``raw/val``
(a learner's own labelled validation set, when the data has one) and ``raw/test``, whether it is used (with which
class) or skipped (with the reason), and
:func:`flatten_images` writes both lists to disk: ``all_images.csv`` (every image in ``all_images/`` and where
it came from) and ``skipped.csv`` (every file not used, and why). Nothing is dropped silently.
"""

from __future__ import annotations

import csv
import filecmp
import os
import re
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
from tqdm.auto import tqdm

from .config import SPECIES
from .files import replaced_when_done
from .flatten import check_one_file_per_image, copy_into_one_folder, unique_name
from .images import why_unusable
from .locking import output_lock
from .sources import VAL_DIR

LINK_METHODS = ("copy", "hardlink", "symlink")
MANIFEST_FILE = "all_images.csv"
SKIPPED_FILE = "skipped.csv"
EMPTY_CLASS_REASON = "species folder with no usable image: no class for it"
EMPTY_VAL_CLASS_REASON = "validation class folder with no usable image"
NO_TRAINING_REASON = "validation class folder whose class has no training image: the model could never learn it"
#: The ``split`` column of ``all_images.csv``: the folder of ``raw/`` an image came from.
TRAIN_SPLIT, VAL_SPLIT = "train", VAL_DIR


def species_key(name: str) -> str:
    """A folder name as lower-case letters and digits only: ``"Sugar  beet"``, ``"sugar_beet"`` -> ``"sugarbeet"``."""
    return re.sub(r"[^0-9a-z]", "", name.lower())


def canonical_species(folder_name: str, known: Sequence[str] = SPECIES) -> str:
    """The known species a folder name means, ignoring case, spaces, hyphens and underscores.

    ``"common  WHEAT"`` -> ``"Common wheat"``. A name that matches no known species is kept (with its
    spaces tidied) and becomes a class of its own: your own data set can have any species.
    """
    by_key = {species_key(name): name for name in known}
    return by_key.get(species_key(folder_name), " ".join(folder_name.split()))


@dataclass(frozen=True)
class TrainingImage:
    """One usable training image: its species, its file, and its path inside the species folder."""

    species: str
    path: Path
    relative: PurePosixPath


@dataclass(frozen=True)
class Skipped:
    """A file (or an empty species folder) that is not used, with the reason."""

    path: str  # relative to the raw data folder, e.g. "train/Maize/.DS_Store"
    reason: str


def _is_hidden(relative: Path) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in relative.parts)


def _check_all(paths: list[Path], known_good: set[tuple[str, int, int]], progress: bool, desc: str) -> list:
    """``why_unusable`` for each path, in threads (Pillow decodes without holding Python's lock)."""

    def check(path: Path) -> str | None:
        stat = path.stat()
        if (str(path), stat.st_size, stat.st_mtime_ns) in known_good:
            return None
        return why_unusable(path)

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        return list(tqdm(pool.map(check, paths), total=len(paths), desc=desc, unit="file", disable=not progress))


def _scan(folder: Path, root: Path, check: bool, known_good: set, progress: bool, desc: str):
    usable: list[Path] = []
    skipped: list[Skipped] = []
    visible: list[Path] = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if _is_hidden(path.relative_to(folder)):
            skipped.append(Skipped(path.relative_to(root).as_posix(), "hidden file or folder"))
        else:
            visible.append(path)
    reasons = _check_all(visible, known_good, progress, desc) if check else [why_unusable(p, False) for p in visible]
    for path, reason in zip(visible, reasons, strict=True):
        if reason is None:
            usable.append(path)
        else:
            skipped.append(Skipped(path.relative_to(root).as_posix(), reason))
    return usable, skipped


def scan_training_images(
    train_dir: str | Path, check: bool = True, known_good: set | None = None, progress: bool = True
) -> tuple[list[TrainingImage], list[Skipped]]:
    """Every file under ``train_dir``: the usable images (sorted by species, then path) and the skipped files.

    A species comes from the top-level folder an image sits in (sub-folders inside it are fine), matched
    to the known species names ignoring case and spacing. Skipped, with a reason: files outside any
    species folder, hidden files and folders (``.DS_Store``, ``.ipynb_checkpoints/``), files that are not
    images, empty files, and (with ``check``) images that do not decode. A species folder left without a
    usable image is listed too: it gets no class. ``known_good`` holds ``(path, size, mtime_ns)`` of files
    an earlier run decoded successfully; they are not decoded again.
    """
    train_dir = Path(train_dir)
    root = train_dir.parent
    images: list[TrainingImage] = []
    skipped: list[Skipped] = []
    for entry in sorted(train_dir.iterdir()):
        relative = entry.relative_to(root).as_posix()
        if not entry.is_dir():
            skipped.append(Skipped(relative, "not inside a species folder"))
        elif _is_hidden(Path(entry.name)):
            skipped += [Skipped(p.relative_to(root).as_posix(), "hidden file or folder")
                        for p in sorted(entry.rglob("*")) if p.is_file()]
        else:
            species = canonical_species(entry.name)
            usable, bad = _scan(entry, root, check, known_good or set(), progress, f"check {entry.name}")
            skipped += bad
            images += [TrainingImage(species, p, PurePosixPath(p.relative_to(entry).as_posix())) for p in usable]
            if not usable:
                skipped.append(Skipped(relative + "/", EMPTY_CLASS_REASON))
    images.sort(key=lambda im: (im.species, im.path.relative_to(train_dir).as_posix()))
    return images, skipped


def scan_test_images(
    test_dir: str | Path, check: bool = True, progress: bool = True
) -> tuple[list[str], list[Skipped]]:
    """The usable images of Kaggle's ``test/`` folder (names relative to it, sorted) and the skipped files."""
    test_dir = Path(test_dir)
    if not test_dir.is_dir():
        return [], []
    usable, skipped = _scan(test_dir, test_dir.parent, check, set(), progress, "check test")
    return sorted(p.relative_to(test_dir).as_posix() for p in usable), skipped


def list_training_images(train_dir: str | Path) -> list[TrainingImage]:
    """The training images by name alone (no decoding): quick, for a first look before lesson 02 checks them."""
    return scan_training_images(train_dir, check=False, progress=False)[0]


def _flat_files(images: Sequence[TrainingImage], root: Path) -> list[tuple[Path, str, PurePosixPath]]:
    """``(source, species, file)`` of each image of ``root/train`` or ``root/val``, for :func:`copy_into_one_folder`.

    An image of the data's own validation set (``root/val``) gets ``val/`` before its file, so its unique name
    says where it came from (``cats__val__x.jpg``) and never clashes with a training image ``cats/x.jpg``.
    Two folders can mean one species (``Maize`` and ``maize``); where both hold ``a.png``, the later one's
    ``file`` starts with its folder's name, so that its unique name differs. A clash that remains is
    refused by :func:`copy_into_one_folder`.
    """
    taken: set[str] = set()
    out = []
    for image in images:
        split, folder = image.path.relative_to(root).parts[:2]
        prefix = PurePosixPath(VAL_DIR) if split == VAL_SPLIT else PurePosixPath()
        file = prefix / image.relative
        if unique_name(image.species, file) in taken:
            file = prefix / folder.replace(" ", "_") / image.relative
        taken.add(unique_name(image.species, file))
        out.append((image.path, image.species, file))
    return out


@dataclass
class FlattenReport:
    """What :func:`flatten_images` did."""

    files_seen: int
    images_out: int
    written: int
    already_there: int
    stale_removed: list[str]
    skipped: list[Skipped] = field(default_factory=list)
    #: Of ``images_out``, those from the data's own labelled validation set (``raw/val``).
    val_images: int = 0

    def __str__(self) -> str:
        text = (f"{self.files_seen} files in raw/train{' and raw/val' if self.val_images else ''} -> "
                f"{self.images_out} images in all_images/ "
                f"({self.written} written, {self.already_there} already there")
        if self.stale_removed:
            text += f", {len(self.stale_removed)} left over from an older run removed"
        text += ")"
        if self.skipped:
            text += f"; {len(self.skipped)} files or folders not used, listed in {SKIPPED_FILE}"
        return text


def _same_file_already_there(src: Path, dst: Path, method: str, compare_bytes: bool = False) -> bool:
    if method == "symlink":
        return dst.is_symlink() and Path(os.readlink(dst)) == src.resolve()
    if dst.is_symlink() or not dst.is_file():
        return False
    if method == "hardlink":
        return dst.samefile(src)
    return dst.stat().st_size == src.stat().st_size and (not compare_bytes or filecmp.cmp(src, dst, shallow=False))


def _place(src: Path, dst: Path, method: str) -> None:
    with replaced_when_done(dst) as tmp:  # an interrupted run never leaves a half-written image under its real name
        if method == "copy":
            shutil.copy2(src, tmp)
        elif method == "hardlink":
            os.link(src, tmp)
        else:
            os.symlink(src.resolve(), tmp)


def _placer(method: str, counts: dict, bar, compare_bytes: bool = False) -> Callable[[Path, Path], None]:
    """A ``place(source, target)`` for :func:`copy_into_one_folder`: copies or links with ``method``, keeps a
    target that is already the same file (with ``compare_bytes``, a copy must also match byte for byte), and
    counts both in ``counts``; a target that was there but differed is listed in ``counts["replaced"]``."""

    def place(src: Path, dst: Path) -> None:
        if _same_file_already_there(src, dst, method, compare_bytes):
            counts["already"] += 1
        else:
            if dst.exists() or dst.is_symlink():
                counts["replaced"].append(dst.name)
                dst.unlink()
            _place(src, dst, method)
            counts["written"] += 1
        bar.update()

    return place


def read_manifest(path: str | Path) -> list[dict[str, str]]:
    """Rows of ``all_images.csv``: ``file`` (in ``all_images/``), ``species``, ``source`` (in the raw folder)."""
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def read_skipped(path: str | Path) -> list[Skipped]:
    """Rows of ``skipped.csv``."""
    with open(path, newline="", encoding="utf-8") as f:
        return [Skipped(row["path"], row["reason"]) for row in csv.DictReader(f)]


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with replaced_when_done(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def _known_good(manifest: Path, root: Path) -> set[tuple[str, int, int]]:
    if not manifest.is_file():
        return set()
    return {(str(root / row["source"]), int(row["size"]), int(row["mtime_ns"])) for row in read_manifest(manifest)}


def flatten_images(
    train_dir: str | Path, all_images_dir: str | Path, method: str = "copy", progress: bool = True,
    recheck: bool = False,
) -> FlattenReport:
    """Copy (or link) every usable image of ``train_dir/<species>/`` into ``all_images_dir`` under a unique name.

    A labelled validation set beside it (``val/<class>/``, as lesson 01 copies a learner's ``val/``, ``valid/`` or
    ``validation/``) is flattened too, under names ``<class>__val__<file>``; lesson 04 keeps it as the validation
    set. Its class folders are matched to the training ones ignoring case and spacing.

    Writes, next to ``all_images_dir``: ``all_images.csv`` (each flat file, its species, its source, its split:
    ``train`` or ``val``) and ``skipped.csv`` (every file of ``train_dir``, of ``val/`` and of the sibling
    ``test/`` that is not used, and why).
    Idempotent: files already in place are kept, and images an earlier run decoded are not decoded
    again; files that no longer come from ``train_dir`` (an older run on other data, a half-written
    ``.partial``) are removed and listed. Ends by checking that the folder holds exactly one file per
    usable image, and raises if not.

    ``recheck``: trust nothing an earlier run found: decode every image again and compare every copy in
    ``all_images_dir`` with its source byte for byte, whatever sizes and times say. What to run when a file
    went bad after it was checked (lesson 05's loader says so when it meets one).

    ``method``: ``"copy"`` works everywhere (Google Drive included) but doubles the disk space;
    ``"hardlink"`` costs no space or time but needs both folders on one file system; ``"symlink"``
    is as cheap, but breaks if ``raw/`` moves.
    """
    if method not in LINK_METHODS:
        raise ValueError(f"method must be one of {LINK_METHODS}, not {method!r}")
    train_dir, all_images_dir = Path(train_dir), Path(all_images_dir)
    with output_lock(all_images_dir, "lesson 02: flattening the images"):  # one writer at a time
        return _flatten(train_dir, all_images_dir, method, progress, recheck)


def _flatten(train_dir: Path, all_images_dir: Path, method: str, progress: bool, recheck: bool) -> FlattenReport:
    root, out_dir = train_dir.parent, all_images_dir.parent
    known_good = set() if recheck else _known_good(out_dir / MANIFEST_FILE, root)
    images, skipped = scan_training_images(train_dir, known_good=known_good, progress=progress)
    val_images, val_skipped = _scan_val(root / VAL_DIR, images, known_good, progress)
    images, skipped = images + val_images, skipped + val_skipped
    files_seen = len(images) + sum(1 for s in skipped if not s.path.endswith("/"))
    skipped += scan_test_images(root / "test", progress=progress)[1]
    if progress:  # once, when the images are checked; a later lesson's quick re-check stays quiet
        _report_renamed_folders(train_dir, images)

    counts = {"written": 0, "already": 0, "replaced": []}
    with tqdm(total=len(images), desc="flatten", unit="img", disable=not progress) as bar:
        # lesson 02's copy loop, with a `place` that keeps what is already there and writes atomically
        names = copy_into_one_folder(_flat_files(images, root), all_images_dir,
                                     _placer(method, counts, bar, compare_bytes=recheck))
    if counts["replaced"]:
        print(f"Replaced {len(counts['replaced'])} files in {all_images_dir} that no longer matched their source: "
              f"{', '.join(counts['replaced'][:5])}{' ...' if len(counts['replaced']) > 5 else ''}")

    wanted = set(names)
    stale = sorted(p.name for p in all_images_dir.iterdir() if p.name not in wanted)
    for name in stale:
        path = all_images_dir / name
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    if stale:
        print(f"Removed {len(stale)} files from {all_images_dir} that do not come from {train_dir} "
              f"(an older run's leftovers): {', '.join(stale[:5])}{' ...' if len(stale) > 5 else ''}")
    check_one_file_per_image(names, all_images_dir)  # lesson 02's count check: count in == count out

    rows = []
    for name, image in zip(names, images, strict=True):
        stat = image.path.stat()
        source = image.path.relative_to(root)
        rows.append([name, image.species, source.as_posix(), stat.st_size, stat.st_mtime_ns, source.parts[0]])
    _write_csv(out_dir / MANIFEST_FILE, ["file", "species", "source", "size", "mtime_ns", "split"], rows)
    _write_csv(out_dir / SKIPPED_FILE, ["path", "reason"], [[s.path, s.reason] for s in skipped])
    return FlattenReport(files_seen, len(names), counts["written"], counts["already"], stale, skipped,
                         len(val_images))


def _scan_val(val_dir: Path, train_images: list[TrainingImage], known_good: set,
              progress: bool) -> tuple[list[TrainingImage], list[Skipped]]:
    """The usable images of the data's own validation set ``val_dir`` (none when it is not there), each with the
    training class its folder means (``Cats`` and ``cats`` are one class), and the files skipped, with a reason. A
    validation class that has no training image is skipped whole: the model could never learn it."""
    if not val_dir.is_dir():
        return [], []
    images, skipped = scan_training_images(val_dir, known_good=known_good, progress=progress)
    trained = {species_key(im.species): im.species for im in train_images}
    kept = []
    for image in images:
        species = trained.get(species_key(image.species))
        if species is None:
            skipped.append(Skipped(image.path.relative_to(val_dir.parent).as_posix(), NO_TRAINING_REASON))
        else:
            kept.append(TrainingImage(species, image.path, image.relative))
    untrained = sorted({im.species for im in images} - {im.species for im in kept})
    if untrained:
        print(f"val/ classes with no training image, left out (listed in {SKIPPED_FILE}): {', '.join(untrained)}")
    skipped = [Skipped(s.path, EMPTY_VAL_CLASS_REASON) if s.reason == EMPTY_CLASS_REASON else s for s in skipped]
    return kept, skipped


def _report_renamed_folders(train_dir: Path, images: list[TrainingImage]) -> None:
    root = train_dir.parent
    folders = sorted({(im.path.relative_to(root).parts[1], im.species) for im in images})
    own = sorted({species for _, species in folders if species not in SPECIES})
    for folder, species in folders:
        if folder != species and species in SPECIES:
            print(f"Folder {folder!r} is read as the species {species!r}.")
    if own and len(own) == len({species for _, species in folders}):  # a learner's own data: one line, not one each
        shown = ", ".join(own[:8]) + (f" and {len(own) - 8} more" if len(own) > 8 else "")
        print(f"{len(own)} classes, from the folders' names: {shown}.")
    else:
        for species in own:
            print(f"Folder {species!r} is not one of the competition's 12 species: it becomes a class of its own.")


def given_split(row: dict[str, str]) -> str:
    """The folder of ``raw/`` an ``all_images.csv`` row came from: ``"train"`` or ``"val"`` (the data's own
    validation set); read from ``source`` when the row predates the ``split`` column."""
    return row.get("split") or PurePosixPath(row["source"]).parts[0]


def given_validation(all_images_dir: str | Path, filenames) -> np.ndarray:
    """For each of ``filenames`` (names in ``all_images_dir``), True when it comes from the data's own labelled
    validation set (``raw/val``): all False for data without one, such as Kaggle's or the synthetic set."""
    split_of = {row["file"]: given_split(row) for row in read_manifest(Path(all_images_dir).parent / MANIFEST_FILE)}
    return np.array([split_of[str(name)] == VAL_SPLIT for name in np.asarray(filenames).tolist()], dtype=bool)


def read_flat_manifest(all_images_dir: str | Path) -> list[dict[str, str]]:
    """Lesson 02's record of ``all_images/`` (``all_images.csv`` next to it): one row per image, with its
    ``file`` and ``species``; raises if the record is missing, names a file the folder lacks, or holds fewer
    than two species (a classifier needs at least two things to tell apart)."""
    all_images_dir = Path(all_images_dir)
    manifest = all_images_dir.parent / MANIFEST_FILE
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} is missing: run lesson 02 (flatten), which writes it.")
    rows = read_manifest(manifest)
    missing = [row["file"] for row in rows if not (all_images_dir / row["file"]).exists()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} indexed images are not in {all_images_dir}, e.g. "
                                f"{missing[:3]}: run lesson 02 (flatten) again.")
    species = sorted({row["species"] for row in rows})
    if len(species) < 2:
        raise ValueError(f"{manifest} holds {len(rows)} images of {len(species)} species ({', '.join(species)}): a "
                         "classifier needs at least two. Check the species folders of raw/train (lesson 02's "
                         f"{SKIPPED_FILE} lists every file it left out, and why).")
    return rows
