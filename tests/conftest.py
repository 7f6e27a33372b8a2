"""Fixtures and hooks only (the plain helpers are in tests/helpers.py): tiny trees, a local HTTP server, every
lesson run once, nbval's prepared notebooks, the order in which the test files start."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from .helpers import NBVAL_PARAMETERS, REPO, TEST_PARAMETERS, make_kaggle_tree

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
    from seedlings_utils.image_scan import flatten_images
    from seedlings_utils.index import build_index

    out = kaggle_tree.parent / "all_images"
    flatten_images(kaggle_tree / "train", out, progress=False)
    filenames, labels, _ = build_index(out)
    return out, filenames, labels


#: The folder ``executed_lessons`` runs every lesson on: a learner's own photos, not the seedlings
#: (tests.helpers.make_photo_folder: two classes of JPEGs of mixed sizes, a labelled val/, no test/).
OWN_PHOTOS = {"classes": ("cats", "dogs"), "per_class": 100, "val_per_class": 20}
#: Where ``executed_lessons`` writes what ``run_lessons`` reported when a lesson failed (the others still ran).
LESSONS_FAILED_FILE = "lessons_failed.txt"


@pytest.fixture(scope="session")
def executed_lessons(tmp_path_factory) -> tuple[Path, list[Path]]:
    """Every lesson run once in order with the quick parameters (GOING_DEEPER included) into one DATA_DIR, on a
    learner's own folder of photos (``OWN_PHOTOS``, ``DATA_SOURCE="local"``): ``(data_dir, executed notebooks)``.
    A failing lesson does not stop the others: the list then lacks it (and the lessons that need it), and
    ``data_dir / LESSONS_FAILED_FILE`` says why. Read-only for its users: a test that writes must copy. Only
    test_lessons_papermill.py may use it (under ``make test``'s two workers, a second module could run it a
    second time in the other worker)."""
    from tools.lessons import LessonsFailed, run_lessons

    from .helpers import make_photo_folder

    root = tmp_path_factory.mktemp("lessons")
    photos, data_dir = make_photo_folder(root / "photos", **OWN_PHOTOS), root / "data"
    parameters = {**TEST_PARAMETERS, "DATA_DIR": str(data_dir), "DATA_SOURCE": "local", "SOURCE_PATH": str(photos)}
    try:
        return data_dir, run_lessons(parameters, data_dir / "executed", keep_going=True)
    except LessonsFailed as failure:
        (data_dir / LESSONS_FAILED_FILE).write_text(str(failure), encoding="utf-8")
        return data_dir, failure.written


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
    """The system's Chromium for the site's browser check; skipped when missing (.ci/install-browser installs it)."""
    from tools import site

    path, how = site.find_chromium()
    if path is None:
        pytest.skip(f"the site's browser check needs Chromium: {how}")  # how names .ci/install-browser
    return path


def pytest_sessionstart(session: pytest.Session) -> None:
    """Write the notebooks nbval runs into each ``build/nbval*`` folder named on the command line (the
    Makefile names one per run, so two runs never share it): every lesson with the quick parameters
    injected and its own empty DATA_DIR, on its core path (every "Going deeper" section removed), as if a
    learner who skips them opened that lesson first in a fresh runtime. (The papermill run executes every
    lesson whole, in order: test_lessons_papermill.py.) A run that names no such folder (a unit test alone)
    prepares nothing. Under pytest-xdist only the controller prepares them, before it starts the workers that
    collect them."""
    from tools.lessons import prepare_for_nbval

    if hasattr(session.config, "workerinput"):  # an xdist worker: the controller has prepared them already
        return
    for arg in session.config.args:
        path = Path(arg.split("::")[0]).resolve()
        if path.parent == REPO / "build" and path.name.startswith("nbval") and not path.suffix:
            prepare_for_nbval(path, NBVAL_PARAMETERS, core=True)


#: The long notebooks under nbval, by lesson number: the place each starts in among the long files (a notebook
#: cannot carry a marker; a number that names no notebook stops the run).
LONG_NOTEBOOKS = {"06": 2, "10": 3, "11": 3, "09": 8}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "long_file(order): a test file that takes minutes; make test starts the long "
                                       "files first, in this order (1 first): tests/conftest.py says why")


def start_order(item: pytest.Item) -> float:
    """Where ``item``'s file starts: its ``order`` (a ``long_file`` marker, or LONG_NOTEBOOKS), else last."""
    if item.path.suffix == ".ipynb":
        return LONG_NOTEBOOKS.get(item.path.name[:2], float("inf"))
    marker = item.get_closest_marker("long_file")
    if marker is None:
        return float("inf")
    if len(marker.args) != 1 or not isinstance(marker.args[0], int):
        raise pytest.UsageError(f"{item.path.name}: write pytest.mark.long_file(order), order an int (1 starts first)")
    return marker.args[0]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """nbval's notebook cells are slow tests too (``make test-fast`` leaves them out).

    ``make test`` runs on two pytest-xdist workers with ``--dist loadfile``: each file stays in one worker, so
    a notebook's cells run in order in one kernel, a module's fixtures are built once, and the session's one
    run of the lessons (``executed_lessons``) runs once, since only test_lessons_papermill.py uses it.

    The longest files start first (``make test`` passes ``--no-loadscope-reorder``, so xdist hands files out in
    the order of ``items``): one worker starts the run of every lesson at once while the other takes the rest, and
    no long file is left for the end, when the other worker would wait idle. A long test file says so itself
    (``pytestmark = pytest.mark.long_file(order)``), so a renamed file keeps its place; a long notebook is in
    LONG_NOTEBOOKS by its lesson number.
    """
    from tools.paths import lesson_notebooks

    missing = [number for number in LONG_NOTEBOOKS if len(lesson_notebooks(lessons=[number])) != 1]
    if missing:
        raise pytest.UsageError(f"tests/conftest.py's LONG_NOTEBOOKS names lessons {missing}, but notebooks/ has no "
                                "single notebook of each: correct LONG_NOTEBOOKS")
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)
        elif "executed_lessons" in getattr(item, "fixturenames", ()) and item.path.name != "test_lessons_papermill.py":
            raise pytest.UsageError(f"{item.nodeid}: only tests/test_lessons_papermill.py may use executed_lessons")
    items.sort(key=start_order)
