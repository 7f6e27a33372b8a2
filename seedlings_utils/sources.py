"""Lesson 01: get the raw data into ``DATA_DIR/raw`` in the Kaggle layout (``train/<species>/``, ``test/``).

A learner's own folder may also hold a labelled validation set, ``val/<class>/`` (or ``valid/``,
``validation/``): it is copied to ``raw/val/``, and lesson 04 keeps it as the validation set instead of
splitting. Any other top-level folder is left out, and said.

Every source ends in the same place and the same shape, so the later lessons never care where the
images came from. A folder is built under a temporary name and renamed into place only when complete,
so an interrupted run is redone, never mistaken for a finished one.
"""

from __future__ import annotations

import json
import shutil
import stat
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from .files import folder_replaced_when_done, write_text_atomically
from .images import has_image_extension
from .locking import output_lock

SOURCES = ("synthetic", "local", "kaggle", "url")


class DataSourceError(RuntimeError):
    """The raw data could not be obtained (missing credentials, a failed download, a bad archive...): the message
    says what happened, where, and what to do next."""
SOURCE_RECORD = ".source.json"
#: The names a labelled validation folder may have beside ``train/`` (any case); it becomes ``raw/val``.
VAL_FOLDER_NAMES = ("val", "valid", "validation")
VAL_DIR = "val"
#: Lesson 01's record in ``COURSE_DIR``: the data source of the whole course, and the zip it downloaded.
COURSE_RECORD = "course_data.json"


@dataclass
class RawData:
    """What lesson 01 left in ``DATA_DIR/raw``."""

    root: Path
    source: dict
    train_counts: dict[str, int] = field(default_factory=dict)
    test_count: int = 0
    #: Images per class folder of a labelled validation set (``raw/val``); empty when the data has none.
    val_counts: dict[str, int] = field(default_factory=dict)

    @property
    def train_total(self) -> int:
        return sum(self.train_counts.values())

    @property
    def val_total(self) -> int:
        return sum(self.val_counts.values())

    def __str__(self) -> str:
        val = f", {self.val_total} labelled validation images in val/" if self.val_counts else ""
        lines = [f"{self.root}: {self.train_total} training images in {len(self.train_counts)} class "
                 f"folders{val}, {self.test_count} test images (source: {self.source.get('source')})"]
        width = max((len(name) for name in self.train_counts), default=0) + 2
        shown = list(self.train_counts.items())
        if len(shown) > 20:  # 200 classes: the first and last few
            shown = shown[:10] + [("...", None)] + shown[-5:]
        lines += [f"  {name:<{width}} {'' if count is None else count:>6}"
                  + (f"  val {self.val_counts.get(name, 0):>5}" if self.val_counts and count is not None else "")
                  for name, count in shown]
        return "\n".join(lines)


def is_image_file(path: Path) -> bool:
    """True for a visible file whose ending is one the course reads as an image (not yet checked to decode)."""
    return path.is_file() and not path.name.startswith(".") and has_image_extension(path)


def _class_counts(folder: Path) -> dict[str, int]:
    """Image files per class folder of ``folder`` (sorted by name); empty when ``folder`` is not there."""
    if not folder.is_dir():
        return {}
    return {d.name: sum(1 for p in d.rglob("*") if is_image_file(p))
            for d in sorted(folder.iterdir()) if d.is_dir() and not d.name.startswith(".")}


def count_raw_images(root: str | Path) -> tuple[dict[str, int], int]:
    """Images per species folder in ``root/train`` (sorted by name) and images in ``root/test``."""
    root = Path(root)
    test_dir = root / "test"
    test_count = sum(1 for p in test_dir.rglob("*") if is_image_file(p)) if test_dir.is_dir() else 0
    return _class_counts(root / "train"), test_count


def count_val_images(root: str | Path) -> dict[str, int]:
    """Images per class folder in ``root/val``, the data's own labelled validation set; ``{}`` when it has none."""
    return _class_counts(Path(root) / VAL_DIR)


def raw_data(root: str | Path, source: dict) -> RawData:
    """What ``root`` (a finished ``raw/``) holds, counted."""
    train_counts, test_count = count_raw_images(root)
    return RawData(Path(root), source, train_counts, test_count, count_val_images(root))


def read_source_record(raw_dir: str | Path) -> dict | None:
    """The record lesson 01 writes next to ``train/`` saying where the raw data came from, if any."""
    path = Path(raw_dir) / SOURCE_RECORD
    return json.loads(path.read_text()) if path.is_file() else None


def fetch_raw_data(
    data_dir: str | Path,
    source: str = "synthetic",
    source_path: str | Path | None = None,
    synthetic_per_class: int = 40,
    seed: int = 42,
    progress: bool = True,
    sha256: str | None = None,
    downloads_dir: str | Path | None = None,
) -> RawData:
    """Put the raw data set into ``data_dir/raw`` and describe it; skip the work when it is already there.

    - ``"synthetic"``: generate the mini seedlings set (offline, deterministic from ``seed``);
    - ``"local"``: copy a folder, or safely extract a zip, already in the Kaggle layout;
    - ``"kaggle"``: the official competition files through the Kaggle client (needs credentials);
    - ``"url"``: a zip at the URL ``source_path`` (a mirror), resumable, checked against ``sha256`` if given.

    Downloads are kept in ``downloads_dir`` (default ``data_dir/downloads``) and not fetched again. Re-running
    with the same arguments does nothing. A different synthetic set replaces the old one (it can always be
    regenerated); anything else already in ``raw/`` is never overwritten: you get an error that says which
    folder to remove or which other ``DATA_DIR`` to use.
    """
    data_dir = Path(data_dir)
    if source not in SOURCES:
        raise DataSourceError(f"DATA_SOURCE must be one of {SOURCES}, not {source!r}.")
    if source == "synthetic":
        wanted = {"source": "synthetic", "per_class": int(synthetic_per_class), "seed": int(seed)}
    elif source == "kaggle":
        from .kaggle_download import COMPETITION

        wanted = {"source": "kaggle", "competition": COMPETITION}
    elif source == "url":
        from .download import redact_url

        if not source_path or "://" not in str(source_path):
            raise DataSourceError("DATA_SOURCE='url' needs SOURCE_PATH set to the address of a zip in the Kaggle "
                                  "layout, e.g. https://example.org/plant-seedlings.zip.")
        wanted = {"source": "url", "url": redact_url(str(source_path)), "sha256": sha256 or None}
    else:
        if not source_path:
            raise DataSourceError("DATA_SOURCE='local' needs SOURCE_PATH: a folder or a .zip in the Kaggle "
                                  "layout (train/<class>/*.jpg or .png; optionally val/<class>/ and test/).")
        path = Path(source_path).expanduser().resolve()
        if not path.exists():
            raise DataSourceError(f"SOURCE_PATH {path} does not exist.")
        wanted = {"source": "local", "path": str(path)}
        wanted["fingerprint"] = source_fingerprint(path)  # a folder or zip changed later is noticed and copied again

    downloads = Path(downloads_dir) if downloads_dir else data_dir / "downloads"
    return _build_raw(data_dir, wanted, lambda partial: _fill(partial, source, wanted, source_path, downloads,
                                                             synthetic_per_class, seed, sha256, progress))


def _build_raw(data_dir: Path, wanted: dict, fill) -> RawData:
    """``data_dir/raw`` holding the source ``wanted`` describes: kept when it already does, else made by
    ``fill(folder)`` in ``raw.partial`` and renamed into place once checked, with ``wanted`` as its record."""
    raw_dir = data_dir / "raw"
    with output_lock(raw_dir, "lesson 01: fetching the raw data"):  # a second run waits: it would delete our work
        existing = read_source_record(raw_dir)
        if existing == wanted:
            return raw_data(raw_dir, existing)
        if raw_dir.exists() and any(raw_dir.iterdir()):
            if existing is not None and same_source(existing, wanted) and wanted["source"] == "local":
                print(f"{wanted['path']} changed since it was copied into {raw_dir}: copying it again.")
            elif existing is None or existing.get("source") != "synthetic":
                raise DataSourceError(
                    f"{raw_dir} already holds other data ({existing or 'of unknown origin'}). Nothing was "
                    f"changed. Use another DATA_DIR, or delete {raw_dir} to replace it."
                )
            else:
                print(f"Replacing the synthetic set in {raw_dir} ({existing}) with {wanted}.")

        if (data_dir / "raw.partial").exists():
            print(f"Removing {data_dir / 'raw.partial'}, left by an interrupted run.")
        with folder_replaced_when_done(raw_dir) as partial:  # nothing half-made is left to be mistaken for data
            fill(partial)
            train_counts, _ = count_raw_images(partial)
            _check_usable(train_counts, wanted)
            (partial / SOURCE_RECORD).write_text(json.dumps(wanted, indent=2))  # last: only a checked source counts
    return raw_data(raw_dir, wanted)


def _fill(partial: Path, source: str, wanted: dict, source_path, downloads: Path, synthetic_per_class: int,
          seed: int, sha256: str | None, progress: bool) -> None:
    """Put the source's ``train/``, ``test/`` and labelled validation folder (as ``val/``) into ``partial``."""
    if source == "synthetic":
        from .synthetic import make_synthetic_seedlings

        make_synthetic_seedlings(partial, per_class=synthetic_per_class, seed=seed, progress=progress)
    elif source in ("kaggle", "url"):
        _copy_local_source(_download(wanted, source_path, downloads, sha256, progress), partial, progress)
    else:
        _copy_local_source(Path(wanted["path"]), partial, progress)


def _download(wanted: dict, source_path, downloads: Path, sha256: str | None, progress: bool) -> Path:
    """The zip of a ``kaggle`` or ``url`` source in ``downloads``: fetched once, found there afterwards."""
    if wanted["source"] == "kaggle":
        from .kaggle_download import download_competition

        return download_competition(downloads, progress=progress)
    from .download import download_url

    name = PurePosixPath(wanted["url"].split("?")[0]).name or "data.zip"
    return download_url(str(source_path), downloads / name, sha256=sha256, progress=progress)


def fetch_course_data(
    data_dir: str | Path,
    course_dir: str | Path,
    source: str = "synthetic",
    source_path: str | Path | None = None,
    synthetic_per_class: int = 40,
    seed: int = 42,
    progress: bool = True,
    sha256: str | None = None,
) -> RawData:
    """Lesson 01: :func:`fetch_raw_data`, keeping a download in ``course_dir/downloads``, then the record of the
    source in ``course_dir/course_data.json``, from which every later lesson rebuilds ``raw/`` in a runtime of
    its own (:func:`raw_from_course`): the zip unpacked from ``course_dir`` with no network, a local source
    copied again, the synthetic set drawn again."""
    course_dir = Path(course_dir)
    downloads = course_dir / "downloads"
    raw = fetch_raw_data(data_dir, source, source_path, synthetic_per_class, seed, progress, sha256, downloads)
    archive = None
    if source in ("kaggle", "url"):  # raw/ may predate this course_dir: then the zip comes into it now
        archive = _download(raw.source, source_path, downloads, sha256, progress).relative_to(course_dir).as_posix()
    record = {"source": raw.source, "archive": archive}
    path = course_dir / COURSE_RECORD
    if read_course_record(course_dir) != record:
        course_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomically(path, json.dumps(record, indent=2))  # a reader sees the old record or the new
    return raw


def read_course_record(course_dir: str | Path) -> dict | None:
    """What lesson 01 recorded in ``course_dir`` (``{"source": ..., "archive": ...}``), or None."""
    path = Path(course_dir) / COURSE_RECORD
    return json.loads(path.read_text()) if path.is_file() else None


def describe_source(source: dict) -> str:
    """A source record in words: ``the zip from https://...``, ``the synthetic set (400 images per species)``."""
    kind = source["source"]
    if kind == "synthetic":
        return f"the synthetic set ({source['per_class']} images per species on average, seed {source['seed']})"
    if kind == "kaggle":
        return f"Kaggle's {source['competition']!r} files"
    return f"the zip from {source['url']}" if kind == "url" else f"the folder or zip {source['path']}"


def raw_from_course(data_dir: str | Path, course_dir: str | Path, record: dict, progress: bool = True) -> RawData:
    """``data_dir/raw`` from lesson 01's ``record`` in ``course_dir``, in a runtime that has no copy yet.

    A zip (``url``, ``kaggle``) is unpacked from ``course_dir`` (no network; the time it took is printed),
    a ``local`` folder or zip is copied again, the synthetic set is drawn again with lesson 01's size and seed.
    """
    data_dir, course_dir, source = Path(data_dir), Path(course_dir), record["source"]
    if source["source"] == "synthetic":
        return fetch_raw_data(data_dir, "synthetic", synthetic_per_class=source["per_class"], seed=source["seed"],
                              progress=progress)
    if source["source"] == "local":
        if not Path(source["path"]).exists():
            raise DataSourceError(
                f"Lesson 01 used SOURCE_PATH = {source['path']!r}, which this runtime cannot see (on Colab each "
                "notebook has its own disk). Put the folder or zip on Google Drive, run lesson 01 again with that "
                "path, then this cell.")
        return fetch_raw_data(data_dir, "local", source["path"], progress=progress)
    archive = course_dir / (record.get("archive") or "missing")
    if not archive.is_file():
        raise DataSourceError(f"Lesson 01 recorded {describe_source(source)}, but its copy {archive} is gone. "
                              "Run lesson 01 again (it downloads the zip into COURSE_DIR once), then this cell.")
    start = time.perf_counter()
    raw = _build_raw(data_dir, source, lambda partial: _copy_local_source(archive, partial, progress))
    print(f"Unpacked {raw.train_total + raw.test_count:,} images ({archive.stat().st_size / 1e6:,.0f} MB zip) from "
          f"{archive} into {raw.root} in {time.perf_counter() - start:.0f} s.")
    return raw


def same_source(recorded: dict, wanted: dict) -> bool:
    """The same source (kind and place), whatever its contents' fingerprint says."""
    return {k: v for k, v in recorded.items() if k != "fingerprint"} == {
        k: v for k, v in wanted.items() if k != "fingerprint"}


def source_fingerprint(path: str | Path) -> list[int]:
    """``[files, bytes, newest modification time in ns]`` of a folder (every file under it) or of one file.

    Cheap (file metadata only) and changed by adding, removing, growing or touching any file.
    """
    path = Path(path)
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    stats = [p.stat() for p in files]
    return [len(stats), sum(s.st_size for s in stats), max((s.st_mtime_ns for s in stats), default=0)]


def _check_usable(train_counts: dict[str, int], wanted: dict) -> None:
    """Refuse a source without a single training image, saying what was found and what is expected."""
    if sum(train_counts.values()) > 0:
        return
    where = wanted.get("path") or wanted.get("url") or wanted.get("competition") or wanted["source"]
    found = (f"{len(train_counts)} species folders in train/ ({', '.join(list(train_counts)[:5])}"
             f"{' ...' if len(train_counts) > 5 else ''}), none with an image file" if train_counts
             else "a train/ folder with no species folder in it")
    raise DataSourceError(
        f"No training image in {where}: found {found}. Expected the Kaggle layout, train/<class>/*.jpg or .png (and "
        "optionally val/<class>/ and test/). Nothing was recorded: fix the source and run this again."
    )


def find_val_folder(root: str | Path) -> Path | None:
    """The labelled validation folder beside ``root/train`` (``val``, ``valid`` or ``validation``, any case), or None.

    Two such folders are refused: which one is the validation set is the learner's choice, not ours.
    """
    root = Path(root)
    found = sorted(p for p in root.iterdir() if p.is_dir() and p.name.lower() in VAL_FOLDER_NAMES)
    if len(found) > 1:
        raise DataSourceError(f"{root} holds {len(found)} validation folders ({', '.join(p.name for p in found)}): "
                              "keep one (or merge them), then run this again.")
    return found[0] if found else None


def _copy_local_source(path: Path, target: Path, progress: bool) -> None:
    """Copy (folder) or extract (zip) a Kaggle-layout data set into ``target``: ``train/``, ``test/`` and a labelled
    validation folder (:data:`VAL_FOLDER_NAMES`, renamed ``val/``); any other top-level folder is left out, and
    said."""
    if path.is_file():
        if not zipfile.is_zipfile(path):
            raise DataSourceError(f"SOURCE_PATH {path} is a file but not a zip archive.")
        extracted = target / "_extracted"
        extract_zip_safely(path, extracted, progress=progress)
        for inner in sorted(extracted.rglob("*.zip")):  # Kaggle's older bundle holds train.zip, test.zip
            extract_zip_safely(inner, inner.parent, progress=progress)
            inner.unlink()
        path = extracted
    root = find_kaggle_root(path)
    val = find_val_folder(root)
    parts = {"train": root / "train", "test": root / "test", **({VAL_DIR: val} if val else {})}
    for part, source in parts.items():
        if source.is_dir() and path == target / "_extracted":
            source.rename(target / part)  # our own extraction: move it, no second copy
        elif source.is_dir():
            for folder in [source, *(p for p in source.rglob("*") if p.is_dir())]:
                (target / part / folder.relative_to(source)).mkdir(parents=True, exist_ok=True)  # empty ones too
            files = [p for p in source.rglob("*") if p.is_file()]
            for src in tqdm(files, desc=f"copy {source.name}/", unit="file", disable=not progress):
                shutil.copy2(src, target / part / src.relative_to(source))
    if val is not None:
        print(f"{val.name}/ holds a labelled validation set: copied as raw/{VAL_DIR}/; lesson 04 keeps it as the "
              "validation set instead of splitting train/.")
    others = sorted(p.name for p in root.iterdir() if p.is_dir() and p not in parts.values()
                    and not p.name.startswith((".", "_")))
    if others:
        print(f"Left out (the course reads train/, {'/'.join(VAL_FOLDER_NAMES)} and test/ only): "
              f"{', '.join(others)}.")
    if (target / "_extracted").exists():
        shutil.rmtree(target / "_extracted")


def find_kaggle_root(path: str | Path) -> Path:
    """The folder that holds ``train/``: ``path`` itself or the one folder it wraps (as zips often do)."""
    path = Path(path)
    candidates = [path] + sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    for candidate in candidates:
        if (candidate / "train").is_dir():
            return candidate
    raise DataSourceError(
        f"No train/ folder in {path}. Expected the Kaggle layout: train/<class>/*.jpg or .png, one folder per class "
        "(and optionally val/<class>/ and test/)."
    )


def _unsafe_reason(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return "is a symbolic link"
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "is an absolute path"
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        return "climbs out of the folder with '..'"
    return None


def extract_zip_safely(zip_path: str | Path, target: str | Path, progress: bool = True) -> Path:
    """Extract ``zip_path`` into ``target``, refusing any entry that would land outside it.

    Absolute paths, ``..`` components and symbolic links are rejected before anything is written
    (a "zip slip" archive raises :class:`DataSourceError` naming the entry). Files are extracted into
    ``target`` directly; callers that need all-or-nothing extract into a temporary folder first.
    """
    zip_path, target = Path(zip_path), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    root = target.resolve()
    with zipfile.ZipFile(zip_path) as archive:
        members = archive.infolist()
        for info in members:
            reason = _unsafe_reason(info)
            if reason is None and not (root / info.filename).resolve().is_relative_to(root):
                reason = "resolves outside the target folder"
            if reason:
                raise DataSourceError(f"Refusing to extract {zip_path}: entry {info.filename!r} {reason}.")
        for info in tqdm(members, desc=f"extract {zip_path.name}", unit="file", disable=not progress):
            archive.extract(info, root)
    return target

