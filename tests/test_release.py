"""The release step (tools/release.py): the notebooks open and install the package at the tag of its version."""

import shutil
import subprocess

import pytest

from seedlings_utils import __version__
from seedlings_utils.config import COLAB_INSTALL, GITHUB_REF
from tools import release
from tools.paths import REPO_ROOT


def test_the_notebooks_install_the_release_of_the_package_version():
    assert GITHUB_REF == f"v{__version__}" and COLAB_INSTALL.endswith(f".git@v{__version__}")
    assert release.read_version(REPO_ROOT) == __version__
    for path in release.linked_files(REPO_ROOT):
        assert not release.other_releases(path.read_text(encoding="utf-8"), __version__), path


@pytest.fixture
def repo(tmp_path):
    """A git repository holding the course's notebooks, README, docs and version file, committed."""
    root = tmp_path / "repo"
    for part in ("notebooks", "docs"):
        shutil.copytree(REPO_ROOT / part, root / part, ignore=shutil.ignore_patterns("benchmark"))
    (root / "seedlings_utils").mkdir()
    shutil.copy(REPO_ROOT / release.VERSION_FILE, root / release.VERSION_FILE)
    shutil.copy(REPO_ROOT / "README.md", root / "README.md")
    for command in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"]):
        subprocess.run(["git", *command], cwd=root, check=True)
    return root


def git(root, *args):
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout


def test_bump_moves_every_link_and_install_line_to_the_new_release_and_tag_creates_it(repo, capsys):
    old = release.read_version(repo)
    assert release.main(["tag", "--repo", str(repo)]) == 0
    assert git(repo, "tag", "--list").split() == [f"v{old}"]
    assert release.main(["tag", "--repo", str(repo)]) == 1  # the tag exists already
    assert f"the tag v{old} exists already" in capsys.readouterr().err

    changed = release.bump(repo, "9.8.7")
    assert release.read_version(repo) == "9.8.7"
    for path in release.linked_files(repo):
        text = path.read_text(encoding="utf-8")
        assert f"v{old}" not in text, path
        if path.suffix == ".ipynb":
            assert release.references(text, "9.8.7") >= 3 and path in changed
    assert release.main(["tag", "--repo", str(repo)]) == 1  # not committed yet
    assert "uncommitted changes" in capsys.readouterr().err
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "bump")
    assert release.main(["tag", "--repo", str(repo)]) == 0
    assert "v9.8.7" in git(repo, "tag", "--list").split()


def test_a_notebook_that_names_another_release_is_refused(repo, capsys):
    notebook = sorted((repo / "notebooks").glob("0*.ipynb"))[1]
    version = release.read_version(repo)
    notebook.write_text(notebook.read_text().replace(f".git@v{version}", ".git@v0.0.1"))
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "stale install line")
    assert release.main(["tag", "--repo", str(repo)]) == 1
    err = capsys.readouterr().err
    assert notebook.name in err and "0.0.1" in err and f"bump {version}" in err
    assert not git(repo, "tag", "--list").strip()
    with pytest.raises(release.ReleaseError, match="not a version"):
        release.bump(repo, "next")
