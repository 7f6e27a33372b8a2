"""One home for each piece of code: the lessons' ``#| export`` cells ARE the package's code.

A lesson writes its technique in code cells a learner runs and changes. A cell whose first line is
``#| export <module>`` (the habit of nbdev's ``#| export`` and d2l's ``#@save``) is also copied, as it
stands, into ``seedlings_utils/<module>.py``, between two marker lines::

    # ---- BEGIN notebooks/05_....ipynb: edit the notebook, then `make export` ----
    ...the lesson's cells, in order...
    # ---- END notebooks/05_....ipynb ----

Later lessons, the benchmark and the tests import that copy. The module keeps its docstring, its
imports and any code that is not a lesson's technique outside the markers.

    python -m tools.export           # write the cells into the package
    python -m tools.export --check   # exit 1 with a diff where notebook and package differ (CI)
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from .paths import NOTEBOOKS_DIR, PACKAGE_DIR, lesson_notebooks

EXPORT_MARK = re.compile(r"^#\| export (?P<module>[a-z_][a-z0-9_]*)\s*$")
REGION_START = re.compile(r"^# ---- BEGIN (\S+): edit the notebook", flags=re.M)


def begin_marker(notebook: str) -> str:
    return f"# ---- BEGIN {notebook}: edit the notebook, then `make export` ----"


def end_marker(notebook: str) -> str:
    return f"# ---- END {notebook} ----"


@dataclass
class ExportedCell:
    notebook: str  # relative to the repository, e.g. notebooks/05_....ipynb
    module: str  # e.g. "dataset" for seedlings_utils/dataset.py
    code: str  # the cell without its #| export line


def exported_cells(notebooks_dir: Path = NOTEBOOKS_DIR) -> list[ExportedCell]:
    """Every ``#| export`` cell of every numbered notebook, in lesson and cell order."""
    cells = []
    for path in lesson_notebooks(notebooks_dir):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] != "code":
                continue
            lines = "".join(cell["source"]).splitlines()
            match = EXPORT_MARK.match(lines[0]) if lines else None
            if match:
                relative = path.relative_to(Path(notebooks_dir).parent).as_posix()
                cells.append(ExportedCell(relative, match["module"], "\n".join(lines[1:]).strip("\n")))
    return cells


def render_modules(notebooks_dir: Path = NOTEBOOKS_DIR, package_dir: Path = PACKAGE_DIR) -> dict[Path, str]:
    """``{module path: text it must have}`` with each exported region replaced by the notebooks' cells."""
    regions: dict[tuple[str, str], list[str]] = {}
    for cell in exported_cells(notebooks_dir):
        regions.setdefault((cell.module, cell.notebook), []).append(cell.code)
    texts: dict[Path, str] = {}
    for (module, notebook), codes in regions.items():
        path = Path(package_dir) / f"{module}.py"
        if not path.is_file():
            raise FileNotFoundError(f"{notebook} exports to {path}, which does not exist: create it with a "
                                    f"docstring, its imports and the lines\n{begin_marker(notebook)}\n"
                                    f"{end_marker(notebook)}")
        text = texts.get(path, path.read_text(encoding="utf-8"))
        begin, end = begin_marker(notebook), end_marker(notebook)
        if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
            raise ValueError(f"{path} needs exactly one pair of marker lines for {notebook}:\n{begin}\n{end}")
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        texts[path] = head + begin + "\n" + "\n\n\n".join(codes) + "\n" + end + tail
    # a region whose notebook no longer exports anything is stale: empty it, and say so through the diff
    for path in sorted(Path(package_dir).glob("*.py")):
        text = texts.get(path, path.read_text(encoding="utf-8"))
        for notebook in REGION_START.findall(text):
            if (path.stem, notebook) not in regions:
                head, rest = text.split(begin_marker(notebook), 1)
                _, tail = rest.split(end_marker(notebook), 1)
                texts[path] = text = head + begin_marker(notebook) + "\n" + end_marker(notebook) + tail
    return texts


def differences(notebooks_dir: Path = NOTEBOOKS_DIR, package_dir: Path = PACKAGE_DIR) -> str:
    """A unified diff from the package as it is to the package the notebooks export; empty when in step."""
    out = []
    for path, wanted in render_modules(notebooks_dir, package_dir).items():
        current = path.read_text(encoding="utf-8")
        if current != wanted:
            name = path.relative_to(Path(package_dir).parent).as_posix()
            out += difflib.unified_diff(current.splitlines(True), wanted.splitlines(True),
                                        f"{name} (package)", f"{name} (as the notebooks export it)")
    return "".join(out)


def export(notebooks_dir: Path = NOTEBOOKS_DIR, package_dir: Path = PACKAGE_DIR) -> list[Path]:
    """Write the exported cells into the package; returns the modules that changed.

    A module region whose notebook does not exist (yet) is never emptied: that raises, naming it.
    """
    for path in sorted(Path(package_dir).glob("*.py")):
        for notebook in REGION_START.findall(path.read_text(encoding="utf-8")):
            if not (Path(notebooks_dir).parent / notebook).is_file():
                raise FileNotFoundError(f"{path} holds code exported from {notebook}, which does not exist: "
                                        "restore the notebook, or delete that region with its two marker lines.")
    changed = []
    for path, wanted in render_modules(notebooks_dir, package_dir).items():
        if path.read_text(encoding="utf-8") != wanted:
            path.write_text(wanted, encoding="utf-8")
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 and show a diff when they differ")
    args = parser.parse_args(argv)
    if args.check:
        diff = differences(NOTEBOOKS_DIR, PACKAGE_DIR)
        if diff:
            print(diff)
            print("The package and the notebooks' #| export cells differ (above). The notebook is the source: "
                  "run `make export` to copy its cells into the package.")
            return 1
        print(f"OK: {len(exported_cells(NOTEBOOKS_DIR))} exported cells match the package.")
        return 0
    for path in export(NOTEBOOKS_DIR, PACKAGE_DIR):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
