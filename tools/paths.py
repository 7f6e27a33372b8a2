"""The repository's places, written once: every tool finds the notebooks, the package and its outputs here."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
PACKAGE_DIR = REPO_ROOT / "seedlings_utils"
BUILD_DIR = REPO_ROOT / "build"
BENCH_DIR = REPO_ROOT / "runs" / "bench"
LESSON_GLOB = "[0-9][0-9]_*.ipynb"


def lesson_notebooks(notebooks_dir: str | Path = NOTEBOOKS_DIR, lessons: list[str] | None = None) -> list[Path]:
    """The numbered notebooks (``01_*.ipynb`` ...), in order; ``lessons`` picks some by number (``["05"]``)."""
    paths = sorted(Path(notebooks_dir).glob(LESSON_GLOB))
    return [p for p in paths if lessons is None or p.name[:2] in lessons]
