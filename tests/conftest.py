"""Fixtures and hooks only (the plain helpers are in tests/helpers.py): tiny trees, a local HTTP server, every
lesson run once, nbval's prepared notebooks, the order in which the test files start."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from .helpers import NBVAL_PARAMETERS, QUICK_PARAMETERS, REPO, make_kaggle_tree

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")


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
             "test_colab_path.py", "test_bench.py", "test_synthetic.py", "test_distributed.py",
             "09_transfer_learning_and_a_busy_gpu.ipynb"]
    items.sort(key=lambda item: first.index(item.path.name) if item.path.name in first else len(first))
