"""ruff keeps the package, the tests and the notebooks' code cells clean (``make test`` runs this)."""

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ruff_is_clean_on_package_tests_and_notebooks():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff is missing: it is in requirements-dev.txt; run `make venv`"
    result = subprocess.run([ruff, "check", "--no-cache", "seedlings_utils", "tools", "tests", "notebooks"], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
