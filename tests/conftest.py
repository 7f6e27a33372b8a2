"""Shared fixtures: tiny Kaggle-layout trees, the quick lesson parameters, nbval's prepared notebooks."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parents[1]

#: Small settings for running every lesson in the tests ("small for testing efficiency"). Large enough
#: that the CNN must really learn: the checks ask for accuracy well above chance.
QUICK_PARAMETERS = {
    "SYNTHETIC_PER_CLASS": 40,
    "IMAGE_SIZE": 48,
    "BATCH_SIZE": 16,
    "EPOCHS": 15,
    "BASE_FILTERS": 16,
    "SPEED_BATCHES": 4,
    "DEMO_EPOCHS": 1,
    "TIMED_EPOCHS": 1,
    "WEIGHTS": None,  # lesson 09: random weights, no download
    "HEAD_EPOCHS": 2,
    "FINE_TUNE_EPOCHS": 1,
    "WAIT_REPEATS": 1,
    "DISTRIBUTED_EPOCHS": 2,  # lesson 10: two epochs, so that its crash in epoch 2 has a checkpoint to resume from
    "GRAIN_WORKERS": 1,  # lesson 11: one Grain worker process (each one starts Python, Keras and JAX)
    "SEED": 7,
}

#: nbval runs each lesson alone; lesson 06's check there asks only for 3 x chance, the papermill run's test for
#: 0.5 (so 15 epochs there). Lesson 10's crash and restart run in the papermill run (and in test_distributed.py);
#: alone, the lesson runs its two jobs without it.
NBVAL_PARAMETERS = {**QUICK_PARAMETERS, "EPOCHS": 8, "CRASH_DEMO": False}

TINY_SPECIES = ("Charlock", "Common wheat", "Maize")


def species_colour(label: int) -> tuple[int, int, int]:
    """A colour per class id, so a test can read an image's label back from its pixels."""
    return (40 + 80 * label, 200 - 60 * label, 90)


def make_kaggle_tree(root: Path, per_species: int = 4, test_images: int = 3, shared_name: bool = True) -> Path:
    """``root/train/<species>/*.png`` (one colour per species, mixed sizes and modes) and ``root/test/``.

    With ``shared_name`` every species folder also holds ``same.png``: the name clash of lesson 02.
    """
    for label, species in enumerate(TINY_SPECIES):
        folder = root / "train" / species
        folder.mkdir(parents=True)
        names = [f"{label}{k:08x}.png" for k in range(per_species - int(shared_name))]
        names += ["same.png"] if shared_name else []
        for k, name in enumerate(names):
            size = (20 + 7 * k, 24 + 3 * k)
            image = Image.new("RGB", size, species_colour(label))
            if k % 3 == 1:
                image = image.convert("RGBA")
            image.save(folder / name)
    (root / "test").mkdir(parents=True)
    for k in range(test_images):
        Image.new("RGB", (30, 30), species_colour(k % len(TINY_SPECIES))).save(root / "test" / f"t{k:08x}.png")
    return root


def zip_tree(tree: Path, archive: Path, prefix: str = "") -> Path:
    """``tree`` zipped into ``archive``, every entry under ``prefix`` (a wrapper folder, as zips often have)."""
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted(tree.rglob("*")):
            if path.is_file():
                z.write(path, prefix + path.relative_to(tree).as_posix())
    return archive


@pytest.fixture
def http_folder(tmp_path, monkeypatch):
    """A plain HTTP server on 127.0.0.1 serving ``tmp_path / "www"``; yields (folder, base URL, request log)."""
    import functools
    import http.server
    import threading

    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)  # urllib would send even 127.0.0.1 through a proxy

    folder = tmp_path / "www"
    folder.mkdir()
    seen = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            seen.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


@pytest.fixture
def kaggle_tree(tmp_path: Path) -> Path:
    return make_kaggle_tree(tmp_path / "source")


@pytest.fixture
def indexed(kaggle_tree: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """The tiny tree flattened and indexed (lessons 02-03): ``(all_images, filenames, labels)``."""
    from seedlings_utils.flatten import flatten_images
    from seedlings_utils.index import build_index

    out = kaggle_tree.parent / "all_images"
    flatten_images(kaggle_tree / "train", out, progress=False)
    filenames, labels, _ = build_index(out)
    return out, filenames, labels


@pytest.fixture(scope="session")
def executed_lessons(tmp_path_factory) -> tuple[Path, list[Path]]:
    """Every lesson run once in order with the quick parameters into one DATA_DIR: ``(data_dir, executed
    notebooks)``. Read-only for its users: a test that writes must copy. Only test_lessons_papermill.py may use
    it (under ``make test``'s two workers, a second module could run it a second time in the other worker)."""
    from tools.lessons import run_lessons

    data_dir = tmp_path_factory.mktemp("lessons")
    return data_dir, run_lessons({**QUICK_PARAMETERS, "DATA_DIR": str(data_dir)}, data_dir / "executed")


@pytest.fixture
def op_determinism_off():
    """TensorFlow's op determinism off for the test, as it was afterwards.

    ``env.set_seed(..., deterministic=True)`` turns it on for the rest of the process, and then ``tf.data``
    keeps every map's order whatever ``deterministic`` says: a test of unordered decoding would test nothing.
    Yields the private config module that can read it (TensorFlow has no public getter).
    """
    from tensorflow.python.framework import config as tf_config

    was_on = tf_config.is_op_determinism_enabled()
    tf_config.disable_op_determinism()
    yield tf_config
    (tf_config.enable_op_determinism if was_on else tf_config.disable_op_determinism)()


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium for the site's browser check (installed with apt-get when missing and run as root)."""
    from tools import site

    path, how = site.find_chromium(install=True)
    if path is None:
        pytest.skip(f"the site's browser check needs Chromium: {how}")
    return path


def define(source: str, name: str, header: str = "", **names):
    """The object ``name`` that ``source`` (dedented, after ``header``) defines: a learner's answer written in a test.

    ``names`` are there before the code runs (``np=np``, say)."""
    import textwrap

    namespace: dict = dict(names)
    exec(compile(textwrap.dedent(header) + textwrap.dedent(source), f"<{name}>", "exec"), namespace)
    return namespace[name]


def rejected(q, answer, *phrases: str) -> str:
    """Exercise ``q``'s check marks ``answer`` wrong, with every phrase in its message; returns the message."""
    from seedlings_utils.exercises import INCORRECT

    outcome = q.evaluate(answer)
    assert outcome.status == INCORRECT, f"{q.name} accepted a wrong answer: {outcome}"
    for phrase in phrases:
        assert phrase in outcome.message, f"{phrase!r} not in: {outcome.message}"
    return outcome.message


def label_from_pixels(image: np.ndarray) -> int:
    """Inverse of :func:`species_colour` for an image in [0, 1]."""
    red = float(image[..., 0].mean()) * 255
    return int(round((red - 40) / 80))


def pytest_sessionstart(session: pytest.Session) -> None:
    """Write the notebooks nbval runs into each ``build/nbval*`` folder named on the command line (the
    Makefile names one per run, so two runs never share it): every lesson with the quick parameters
    injected and its own empty DATA_DIR, as if a learner opened that lesson first in a fresh runtime.
    A run that names no such folder (a unit test alone) prepares nothing. Under pytest-xdist only the
    controller prepares them, before it starts the workers that collect them."""
    from tools.lessons import prepare_for_nbval

    if hasattr(session.config, "workerinput"):  # an xdist worker: the controller has prepared them already
        return
    for arg in session.config.args:
        path = Path(arg.split("::")[0]).resolve()
        if path.parent == REPO / "build" and path.name.startswith("nbval") and not path.suffix:
            prepare_for_nbval(path, NBVAL_PARAMETERS)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """nbval's notebook cells are slow tests too (``make test-fast`` leaves them out).

    ``make test`` runs on two pytest-xdist workers with ``--dist loadfile``: each file stays in one worker, so
    a notebook's cells run in order in one kernel, a module's fixtures are built once, and the session's one
    run of the lessons (``executed_lessons``) runs once, since only test_lessons_papermill.py uses it.
    """
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)
        elif "executed_lessons" in getattr(item, "fixturenames", ()) and item.path.name != "test_lessons_papermill.py":
            raise pytest.UsageError(f"{item.nodeid}: only tests/test_lessons_papermill.py may use executed_lessons")
    # The longest files first (make test passes --no-loadscope-reorder, so xdist hands files out in this order):
    # one worker starts the run of every lesson at once while the other takes the rest, and no long file is
    # left for the end, when the other worker would wait idle.
    first = ["test_lessons_papermill.py", "06_train_and_evaluate_a_cnn.ipynb", "10_beyond_one_machine.ipynb",
             "11_resume_a_long_epoch_exactly.ipynb", "test_resume.py",
             "test_colab_path.py", "test_bench.py", "test_synthetic.py", "test_distributed.py",
             "09_transfer_learning_and_a_busy_gpu.ipynb"]
    items.sort(key=lambda item: first.index(item.path.name) if item.path.name in first else len(first))
