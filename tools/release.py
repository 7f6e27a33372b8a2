"""Releases: the git tag a learner's notebook opens and installs from (``seedlings_utils.config.GITHUB_REF``).

    python -m tools.release bump 0.2.0   # the package's version, and every notebook's and the README's links to it
    python -m tools.release tag          # checks, then the annotated tag v<version> on HEAD; prints the push command

Every notebook's Colab and GitHub buttons and its install line (``pip install "... .git@v<version>"``) name the
tag ``v<version>``, ``<version>`` being ``seedlings_utils.__version__``, written once in
``seedlings_utils/__init__.py``. ``bump`` rewrites that line and every link to the old tag (notebooks, README,
docs); ``tag`` refuses a work tree with uncommitted changes, a notebook that names another release, and a tag that
exists already.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

from .paths import REPO_ROOT, lesson_notebooks

VERSION_FILE = Path("seedlings_utils") / "__init__.py"
VERSION_LINE = re.compile(r'^__version__ = "([^"]+)"$', re.M)
RELEASE_VERSION = re.compile(r"\d+\.\d+\.\d+")


class ReleaseError(Exception):
    """A release step that cannot be done, with what to do."""


def read_version(repo: Path) -> str:
    """``__version__`` as written in ``repo``'s package."""
    found = VERSION_LINE.search((repo / VERSION_FILE).read_text(encoding="utf-8"))
    if not found:
        raise ReleaseError(f"{VERSION_FILE} has no line __version__ = \"X.Y.Z\"")
    return found[1]


def linked_files(repo: Path) -> list[Path]:
    """The files that link to the release: the lessons, the README, the docs."""
    return [*lesson_notebooks(repo / "notebooks"), repo / "README.md", *sorted((repo / "docs").glob("*.md"))]


def references(text: str, version: str) -> int:
    """How many times ``text`` names release ``version``: in a notebook link (``/blob/vX/``) or the install line
    (``.git@vX``)."""
    return text.count(f"/blob/v{version}/") + text.count(f".git@v{version}")


def other_releases(text: str, version: str) -> set[str]:
    """The releases other than ``version`` that ``text`` links to or installs."""
    return {v for v in re.findall(r"(?:/blob/|\.git@)v(\d+\.\d+\.\d+)", text) if v != version}


def bump(repo: Path, new: str) -> list[Path]:
    """Make ``new`` the package's version and the release every link names; returns the files changed."""
    if not RELEASE_VERSION.fullmatch(new):
        raise ReleaseError(f"{new!r} is not a version X.Y.Z")
    old = read_version(repo)
    changed = []
    version_file = repo / VERSION_FILE
    version_file.write_text(VERSION_LINE.sub(f'__version__ = "{new}"', version_file.read_text(encoding="utf-8")),
                            encoding="utf-8")
    changed.append(version_file)
    for path in linked_files(repo):
        text = path.read_text(encoding="utf-8")
        updated = text.replace(f"/blob/v{old}/", f"/blob/v{new}/").replace(f".git@v{old}", f".git@v{new}")
        if updated != text:
            path.write_text(updated, encoding="utf-8")
            changed.append(path)
    return changed


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def tag(repo: Path) -> str:
    """Create the annotated tag ``v<version>`` on HEAD after checking that it may be; returns the tag."""
    version = read_version(repo)
    name = f"v{version}"
    dirty = git(repo, "status", "--porcelain", "--untracked-files=no").strip()
    if dirty:
        raise ReleaseError(f"uncommitted changes; commit them first, the tag names a commit:\n{dirty}")
    for path in lesson_notebooks(repo / "notebooks"):
        text = path.read_text(encoding="utf-8")
        others = other_releases(text, version)
        if others or references(text, version) < 3:  # the Colab button, the GitHub button, the install line
            raise ReleaseError(f"{path.relative_to(repo)} does not name release {name} in its buttons and install "
                               f"line{' (it names ' + ', '.join(sorted(others)) + ')' if others else ''}: "
                               f"run python -m tools.release bump {version}")
    if git(repo, "tag", "--list", name).strip():
        raise ReleaseError(f"the tag {name} exists already: bump the version first (tools.release bump X.Y.Z)")
    git(repo, "tag", "-a", name, "-m", f"Release {name}: the notebooks at this tag install the package at this tag")
    return name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("bump", "tag"))
    parser.add_argument("version", nargs="?", help="with bump: the new version, X.Y.Z")
    parser.add_argument("--repo", type=Path, default=REPO_ROOT)
    args = parser.parse_args(argv)
    try:
        if args.command == "bump":
            if not args.version:
                parser.error("bump needs the new version, e.g. python -m tools.release bump 0.2.0")
            for path in bump(args.repo, args.version):
                print(f"updated {path.relative_to(args.repo)}")
            print("Now run make export and make test, commit, then: python -m tools.release tag")
        else:
            name = tag(args.repo)
            print(f"Tagged {name}. Publish it: git push origin {name}")
    except ReleaseError as error:
        print(f"release: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
