"""Installing the browser is CI's job: ``.ci/install-browser`` (run by ``make test``) installs Chromium; the site's
``find_chromium`` only looks. Nothing here installs anything: apt-get is a fake on a PATH of the test's own."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tools import site
from tools.paths import REPO_ROOT

SCRIPT = REPO_ROOT / ".ci" / "install-browser"


def test_find_chromium_only_looks(monkeypatch):
    monkeypatch.delenv("CHROMIUM", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name, *args, **kwargs: None)

    def no_commands(*args, **kwargs):
        raise AssertionError(f"find_chromium ran a command: {args}")

    monkeypatch.setattr(subprocess, "run", no_commands)
    monkeypatch.setattr(subprocess, "Popen", no_commands)
    path, how = site.find_chromium()
    assert path is None and ".ci/install-browser" in how and "CHROMIUM=" in how


def test_find_chromium_takes_the_chromium_variable_first(monkeypatch, tmp_path):
    browser = tmp_path / "my-chrome"
    browser.write_text("#!/bin/sh\n")
    browser.chmod(0o755)
    monkeypatch.setenv("CHROMIUM", str(browser))
    assert site.find_chromium()[0] == str(browser)


def executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


@pytest.fixture
def bare_path(tmp_path) -> tuple[Path, dict[str, str]]:
    """A bin folder holding only what the script needs besides a browser (and a fake apt-get that logs its calls
    and "installs" a fake chromium there), and an environment whose PATH is that folder alone."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("id", "head"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    executable(bin_dir / "apt-get", f"""#!{shutil.which("bash")}
echo "$*" >> {tmp_path / "apt-get.log"}
if [[ "$1" == install ]]; then printf '#!/bin/sh\\n' > {bin_dir / "chromium"}; chmod +x {bin_dir / "chromium"}; fi
exit 0
""")
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path)}
    return bin_dir, env


def run_script(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([shutil.which("bash"), str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)


def test_install_browser_is_a_no_op_when_chromium_is_there(bare_path, tmp_path):
    bin_dir, env = bare_path
    executable(bin_dir / "chromium", "#!/bin/sh\n")
    result = run_script(env)
    assert result.returncode == 0 and str(bin_dir / "chromium") in result.stdout
    assert not (tmp_path / "apt-get.log").exists()


def test_install_browser_installs_chromium_only_as_root(bare_path, tmp_path):
    bin_dir, env = bare_path
    result = run_script(env)
    assert result.returncode == 0, result.stderr
    if os.geteuid() == 0:
        calls = (tmp_path / "apt-get.log").read_text().splitlines()
        assert calls[0].startswith("update") and calls[-1].startswith("install") and "chromium" in calls[-1]
        assert (bin_dir / "chromium").exists() and str(bin_dir / "chromium") in result.stdout
    else:
        assert not (tmp_path / "apt-get.log").exists()
        assert "apt-get install chromium" in result.stderr and "CHROMIUM=" in result.stderr


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="apt-get runs only as root")
def test_install_browser_fails_when_apt_get_fails(bare_path, tmp_path):
    bin_dir, env = bare_path
    executable(bin_dir / "apt-get", f"#!{shutil.which('bash')}\necho \"$*\" >> {tmp_path / 'apt-get.log'}\nexit 100\n")
    result = run_script(env)
    assert result.returncode != 0 and not (bin_dir / "chromium").exists()


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_test_installs_the_browser_before_the_tests():
    """`make -n` prints the commands without running them."""
    planned = subprocess.run(["make", "-n", "test"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    commands = planned.stdout.splitlines()
    browser = next(i for i, line in enumerate(commands) if line.strip() == ".ci/install-browser")
    assert browser < next(i for i, line in enumerate(commands) if "pytest" in line)


def test_the_github_workflow_installs_the_browser_before_make_test():
    yaml = pytest.importorskip("yaml")
    workflow = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "test.yml").read_text())
    runs = [step.get("run", "").strip() for step in workflow["jobs"]["test"]["steps"]]
    assert runs.index(".ci/install-browser") < runs.index("make test")
