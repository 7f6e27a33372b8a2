"""The versions the course promises, and the Colab runtimes they were checked against.

    python -m tools.versions floors [requirements.txt requirements-dev.txt ...]

prints the requirement files (default: both) with every ``>=`` floor turned into an exact pin
(``keras>=3.8,<4`` -> ``keras==3.8``): what ``make test-oldest`` installs, so that the lowest versions the ranges
allow are tested, not hoped for.
Standard library only: it runs before anything else is installed.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from .paths import REPO_ROOT

#: When the Colab versions below were read, and from where (Google's published ``pip freeze`` of its runtimes).
COLAB_CHECKED = "2026-11-25, from github.com/googlecolab/backend-info (pip-freeze.txt; newest commit 2026-08-19)"

#: What Colab's CPU/GPU runtimes ship: the current one, and the past runtime a notebook can be pinned to that
#: came just before it (every package of requirements.txt, and the two lesson 12's setup cell relies on: fsspec,
#: whose version the s3fs it installs must have, and Flask, which moto's server needs). The requirements' ranges
#: must hold both, so installing the course there reinstalls nothing; the floors are at most the older one's.
#: Runtimes before 2026.07 have TensorFlow 2.19 or older, whose ``tf.io.decode_image`` cannot read WebP (lesson 08),
#: and Keras before 3.13, whose ``set_random_seed`` does not reset ``keras.random``'s global generator
#: (keras-team/keras#21874).
COLAB_RUNTIMES: dict[str, dict[str, str]] = {
    "current (2026-08, Python 3.13)": {
        "tensorflow": "2.20.0", "keras": "3.13.2", "numpy": "2.1.3", "scikit-learn": "1.6.1",
        "scikit-image": "0.25.2", "pillow": "11.3.0", "matplotlib": "3.10.0", "tqdm": "4.67.3",
        "packaging": "26.3", "kaggle": "2.0.2", "jax": "0.7.2", "grain": "0.2.18", "array-record": "0.8.3",
        "fsspec": "2025.3.0", "flask": "3.1.3",
    },
    "2026.07, the newest past runtime (Python 3.12)": {
        "tensorflow": "2.20.0", "keras": "3.13.2", "numpy": "2.0.2", "scikit-learn": "1.6.1",
        "scikit-image": "0.25.2", "pillow": "11.3.0", "matplotlib": "3.10.0", "tqdm": "4.67.3",
        "packaging": "26.2", "kaggle": "2.0.2", "jax": "0.7.2", "grain": "0.2.17", "array-record": "0.8.3",
        "fsspec": "2025.3.0", "flask": "3.1.3",
    },
}

_RANGE = re.compile(r">=\s*([^,;\s#]+)(\s*,\s*[<!=~][^,;\s#]*)*")


def floors(requirements: str) -> str:
    """``requirements`` with each range ``>=X[,<Y]`` made ``==X`` (names, markers and comments kept)."""
    return "\n".join(_RANGE.sub(r"==\1", line, count=1) if not line.lstrip().startswith("#") else line
                     for line in requirements.splitlines()) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] != "floors":
        print(__doc__, file=sys.stderr)
        return 2
    paths = [Path(a) for a in args[1:]] or [REPO_ROOT / "requirements.txt", REPO_ROOT / "requirements-dev.txt"]
    sys.stdout.write("".join(floors(path.read_text()) for path in paths))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
