"""Where a lesson keeps its files: ``DATA_DIR`` and ``COURSE_DIR`` resolved to folders (Google Drive on Colab)."""

from __future__ import annotations

from pathlib import Path

from .platform_info import is_colab

PACKAGE_ROOT = Path(__file__).resolve().parent



def default_data_dir() -> Path:
    """Where lessons keep their files when ``DATA_DIR`` is left empty.

    ``/content/seedlings-data`` on Colab; ``data/`` at the top of the repository when the package runs
    from a checkout (``pip install -e .``); ``~/seedlings-data`` otherwise.
    """
    if is_colab():
        return Path("/content/seedlings-data")
    repo = PACKAGE_ROOT.parent
    if (repo / "pyproject.toml").is_file() and (repo / "notebooks").is_dir():
        return repo / "data"
    return Path.home() / "seedlings-data"



def resolve_data_dir(data_dir: str | Path | None = "") -> Path:
    """``DATA_DIR`` as an absolute, existing folder; ``""`` or ``None`` means :func:`default_data_dir`.

    On Colab, a path under ``/content/drive`` mounts Google Drive first, so that a lesson's outputs
    survive a disconnect.
    """
    path = Path(data_dir).expanduser() if data_dir else default_data_dir()
    if is_colab() and str(path).startswith("/content/drive") and not Path("/content/drive/MyDrive").exists():
        from google.colab import drive  # type: ignore[import-not-found]

        drive.mount("/content/drive")
    path = path.resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path



#: ``COURSE_DIR``'s default on Colab: a folder on Google Drive, which outlives every runtime.
COLAB_COURSE_DIR = "/content/drive/MyDrive/seedlings-course"



def resolve_course_dir(course_dir: str | Path | None, data_dir: str | Path) -> Path:
    """``COURSE_DIR`` as an absolute, existing folder: where lesson 01 records its data source and keeps its download.

    Every Colab notebook runs in a runtime of its own, whose disk (``DATA_DIR``) the other lessons never see;
    Google Drive outlives them all. ``""`` or ``None`` means :data:`COLAB_COURSE_DIR` on Colab (Drive is mounted
    first) and ``data_dir`` itself elsewhere, where every lesson shares one disk.
    """
    if not course_dir:
        course_dir = COLAB_COURSE_DIR if is_colab() else data_dir
    return resolve_data_dir(course_dir)
