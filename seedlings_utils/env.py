"""Where the course runs: platform detection, versions, the data folder, seeds.

``python -m seedlings_utils.env`` prints OK/FAIL for every package the course needs.
"""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

#: Used when the package's own metadata is unavailable (running from a copy, not an install).
FALLBACK_REQUIREMENTS = ("tensorflow>=2.20", "keras>=3.13", "numpy>=2.0", "pillow>=11.0")
PACKAGE_ROOT = Path(__file__).resolve().parent


def is_colab() -> bool:
    """True inside Google Colab."""
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


def package_requirements() -> list[str]:
    """The runtime requirements declared in pyproject.toml, read from the installed package's metadata."""
    try:
        declared = metadata.requires("seedlings-utils") or []
    except metadata.PackageNotFoundError:
        return list(FALLBACK_REQUIREMENTS)
    return [r for r in declared if "extra ==" not in r]


def check_environment(requirements: list[str] | None = None) -> list[tuple[str, str, str, bool]]:
    """``(package, wanted, installed, ok)`` for each requirement, comparing versions (not strings)."""
    rows = []
    for text in requirements if requirements is not None else package_requirements():
        req = Requirement(text)
        installed = installed_version(req.name)
        ok = installed != MISSING and req.specifier.contains(Version(installed), prereleases=True)
        rows.append((req.name, str(req.specifier), installed, ok))
    return rows


MISSING = "missing"


def installed_version(name: str) -> str:
    """The installed version of distribution ``name`` (from its metadata, without importing it), or ``"missing"``."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return MISSING


def describe_platform(tensorflow: bool = True) -> str:
    """One paragraph for the top of every notebook: where we run, with which versions and hardware.

    ``tensorflow=False`` is for lessons 01-04, which never use TensorFlow: the versions come from the
    installed packages' records instead of an import of TensorFlow (5 to 8 s of a lesson's start on a
    2-core CPU), and the GPU question waits for lesson 05.
    """
    where = "Google Colab" if is_colab() else f"{platform.system()} ({platform.machine()})"
    if tensorflow:
        import keras
        import tensorflow as tf

        versions = f"TensorFlow {tf.__version__}, Keras {keras.__version__}"
        gpus = tf.config.list_physical_devices("GPU")
        gpu_line = (f"GPU: {', '.join(g.name for g in gpus)}" if gpus else "No GPU found: everything works on the "
                    "CPU, only slower. On Colab: Runtime > Change runtime type > GPU.")
    else:
        versions = f"TensorFlow {installed_version('tensorflow')}, Keras {installed_version('keras')} (installed, " \
                   "not loaded: this lesson does not use them)"
        gpu_line = "This lesson needs no GPU; from lesson 05 on, this line says whether TensorFlow sees one."
    lines = [f"Running on {where}, Python {platform.python_version()}, {versions}, {os.cpu_count()} CPU cores.",
             gpu_line]
    problems = [f"{name} {installed} (needs {wanted})" for name, wanted, installed, ok in check_environment() if not ok]
    if problems:
        lines.append("WARNING, these packages are too old or missing: " + "; ".join(problems))
    return "\n".join(lines)


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


def set_seed(seed: int, deterministic: bool = False, tensorflow: bool = True) -> None:
    """Seed Python, NumPy and TensorFlow; with ``deterministic``, ask TensorFlow for repeatable ops too.

    Seeds alone fix the starting weights, the shuffles and the augmentation draws. ``deterministic``
    also makes TensorFlow pick only ops that give bit-identical results run after run, which costs
    speed: some GPU kernels have slower deterministic versions, and ``tf.data`` then keeps every map's
    output order and gives up part of its parallelism. It stays on for the rest of the process.
    ``tensorflow=False`` (lessons 01-04) seeds Python and NumPy as Keras would, without importing TensorFlow.
    """
    if not tensorflow:
        if deterministic:
            raise ValueError("deterministic=True is about TensorFlow's ops: it needs tensorflow=True")
        import random

        import numpy as np

        random.seed(seed)
        np.random.seed(seed)  # noqa: NPY002 - NumPy's global generator, the one keras.utils.set_random_seed seeds
        return
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def start_lesson(data_dir: str | Path | None, seed: int = 42, deterministic: bool = False,
                 tensorflow: bool = True) -> Path:
    """The call after a notebook's parameters: resolve ``DATA_DIR``, seed everything, say where files go.

    ``deterministic`` is the lesson's ``DETERMINISTIC`` parameter (see :func:`set_seed`): off by
    default, so that the lessons' speed figures are measured the way ``make bench`` measures them.
    ``tensorflow=False``: a lesson that never uses TensorFlow (01-04) seeds without importing it.
    """
    path = resolve_data_dir(data_dir)
    set_seed(seed, deterministic, tensorflow)
    print(f"DATA_DIR = {path}" + ("  (deterministic TensorFlow ops: repeatable, slower)" if deterministic else ""))
    return path


def main() -> int:
    rows = check_environment()
    for name, wanted, installed, ok in rows:
        print(f"{'OK  ' if ok else 'FAIL'} {name:<14} {installed:<12} (needs {wanted})")
    print(f"Python {platform.python_version()} at {sys.executable}")
    return 0 if all(ok for *_, ok in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
