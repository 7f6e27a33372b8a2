"""Where the course runs: Colab or not, the platform, the installed versions and whether they are new enough, and
the lines its libraries print to a terminal at start-up that say nothing to a learner (the lesson runner, the site
and the training-process launcher hide them)."""

from __future__ import annotations

import os
import platform
import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

#: The course's requirements beside the package in a checkout, read when it runs from a copy, not an install.
REQUIREMENTS_FILE = Path(__file__).resolve().parents[1] / "requirements.txt"


def is_colab() -> bool:
    """True inside Google Colab."""
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


def package_requirements() -> list[str]:
    """The package's runtime requirements (requirements.txt), from its installed metadata or, in a checkout that
    is not installed, from the file itself."""
    try:
        declared = metadata.requires("seedlings-utils") or []
    except metadata.PackageNotFoundError:
        lines = REQUIREMENTS_FILE.read_text().splitlines() if REQUIREMENTS_FILE.is_file() else []
        declared = [line.split("#")[0].strip() for line in lines]
    return [r for r in declared if r and "extra ==" not in r]


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


#: TensorFlow's and XLA's C++ start-up lines (glog's ``I0000 ...``, printed before TF_CPP_MIN_LOG_LEVEL is read),
#: the kernel's transport notice, nbformat's cell-id notice, and the kernel's shutdown message.
TERMINAL_NOISE = re.compile(
    r"^[EWI]\d{4} |absl::InitializeLog|All log messages before absl|cudart_stub\.cc|cuda_(dnn|fft|blas|executor)"
    r"|cuInit|Unable to register cu|computation_placer|oneDNN custom operations|Kernel is running over TCP"
    r"|MissingIDFieldWarning|_validate\(nbdict|KeyboardInterrupt caught in kernel"
    r"|This TensorFlow binary is optimized|rebuild TensorFlow with"
)


def is_noise(line: str) -> bool:
    """True for a start-up line of :data:`TERMINAL_NOISE`."""
    return bool(TERMINAL_NOISE.search(line))
