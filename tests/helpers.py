"""Plain helpers the tests share: tiny Kaggle-layout trees, the quick lesson parameters, learners' answers."""

from __future__ import annotations

import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seedlings_utils.parameters import KNOBS, quick_parameters
from seedlings_utils.synthetic import synthetic_class_counts

REPO = Path(__file__).resolve().parents[1]

#: The tests' settings: ``make lessons``' quick settings (the quick values of seedlings_utils.parameters.KNOBS, so a
#: changed quick value reaches the tests too), made smaller where a test run can afford less ("small for testing
#: efficiency"), with every Going deeper training asked for. Large enough that the CNN must really learn: the checks
#: ask for accuracy well above chance.
TEST_PARAMETERS = {
    **quick_parameters(),
    "SYNTHETIC_PER_CLASS": 40,
    "IMAGE_SIZE": 48,
    "BATCH_SIZE": 16,
    "SPEED_BATCHES": 4,  # lesson 09's profiler analyses the steps between the first and the last
    "DEMO_EPOCHS": 1,
    "TIMED_EPOCHS": 1,
    "HEAD_EPOCHS": 2,
    "FINE_TUNE_EPOCHS": 1,
    "WAIT_REPEATS": 1,
    "SEED": 7,
    "GOING_DEEPER": True,  # the papermill run also runs every Going deeper training (a learner asks for them)
    # at their smallest values, where the papermill run's checks still mean the same (nbval runs the core there)
    "SHUFFLE_BUFFER": 1,
    "GRAIN_WORKERS": 0,  # Grain's worker processes: tests/test_resume.py's killed run has one
    "KILL_AFTER_BATCH": 0,
    "SAVE_EVERY": 1,
}

#: The data nbval's lessons run on, as lesson 04 counts it: the synthetic set at its smallest (SYNTHETIC_PER_CLASS
#: is a knob too: 2 images a species), nothing given for validation.
NBVAL_DATA = {"train_count": sum(synthetic_class_counts(KNOBS["SYNTHETIC_PER_CLASS"].smallest).values()),
              "class_count": len(synthetic_class_counts(KNOBS["SYNTHETIC_PER_CLASS"].smallest)), "val_count": 0}


def lesson_knobs(lesson: str) -> dict[str, object]:
    """The knobs lesson ``"NN"``'s parameters cell sets, with its defaults."""
    from tools.lessons import lesson_notebooks
    from tools.pages import parameters_cell

    return parameters_cell(lesson_notebooks(lessons=[lesson])[0])


def nbval_settings(lesson: str) -> tuple[dict, dict[str, str]]:
    """What nbval runs lesson ``"NN"`` at, alone on its core path, and why a knob is above its smallest value.

    Every numeric knob of the lesson at the smallest value its rule accepts, jointly with the lesson's other
    knobs and on ``NBVAL_DATA`` (``smallest_settings``: where a rule forbids the combination, the knob it names
    is raised to the smallest value that fits, and the rule's own message says why), the rest at the tests'
    values. A rule and its lesson agree: every lesson runs at the smallest value each of its knobs accepts."""
    from seedlings_utils.parameters import smallest_settings

    values, raised = smallest_settings(lesson_knobs(lesson), counts=NBVAL_DATA)
    return {**TEST_PARAMETERS, **values}, raised


def nbval_parameters(lesson: str) -> dict:
    """The knobs nbval runs lesson ``"NN"`` at (:func:`nbval_settings`)."""
    return nbval_settings(lesson)[0]

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


def define(source: str, name: str, header: str = "", **names):
    """The object ``name`` that ``source`` (dedented, after ``header``) defines: a learner's answer written in a test.

    ``names`` are there before the code runs (``np=np``, say)."""
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


def every_exercise() -> list[tuple[str, object]]:
    """``(module name, exercise)`` for every question of every ``seedlings_utils.exercises.lessonNN`` module."""
    import importlib
    import pkgutil

    from seedlings_utils import exercises

    modules = sorted(m.name for m in pkgutil.iter_modules(exercises.__path__) if m.name.startswith("lesson"))
    return [(name, q) for name in modules
            for q in exercises.lesson_exercises(importlib.import_module(f"seedlings_utils.exercises.{name}"))]


class WrongAnswers:
    """Typical wrong answers, each registered with the phrases its check's message must contain::

        WRONG = WrongAnswers()

        @WRONG(ex.q1, "the order in which the table first names each species")
        def counter_2019(csv_path): ...

        @pytest.mark.parametrize("q, answer, phrases", WRONG.cases)
        def test_typical_mistakes_are_rejected(q, answer, phrases):
            rejected(q, answer, *phrases)
    """

    def __init__(self):
        self.cases: list = []

    def __call__(self, q, *phrases: str):
        def register(answer):
            self.cases.append(pytest.param(q, answer, phrases, id=f"{q.name}-{answer.__name__}"))
            return answer

        return register


def altered(source: str, old: str, new: str) -> str:
    """``source`` with its one ``old`` replaced by ``new``: a reference solution made wrong in one place.

    Fails when ``old`` is not there exactly once, so that a changed solution never leaves a test testing it unaltered.
    """
    assert source.count(old) == 1, f"{old!r} is in the source {source.count(old)} times, not once:\n{source}"
    return source.replace(old, new)


def make_photo_folder(root: Path, classes: tuple[str, ...] = ("cats", "dogs"), per_class: int = 100,
                      formats: tuple[str, ...] = ("jpg",), val_per_class: int = 20, test_images: int = 0,
                      val_folder: str = "val", seed: int = 0) -> Path:
    """A learner's own folder that is not the seedlings: ``root/train/<class>/``, ``root/<val_folder>/<class>/``
    (when ``val_per_class``), ``root/test/`` (only when ``test_images``).

    Each class is a colour (``species_colour``-like, spread over all classes) with a darker shape on it, at mixed
    sizes and aspect ratios (from 40 x 120 to 300 x 90 px), saved in turn in each of ``formats`` (``"jpg"``,
    ``"png"``, ``"jpeg"``, ``"webp"``...). Names are unique within the whole folder (``<class>_<split>_<k>``), so a
    test can tell each image's class and split from its name. Deterministic for a given ``seed``.
    """
    import colorsys

    rng = np.random.default_rng(seed)
    root = Path(root)

    def draw(folder: Path, label: int, name: str, k: int) -> None:
        hue = label / max(len(classes), 1)
        colour = tuple(int(255 * c) for c in colorsys.hsv_to_rgb(hue, 0.6 + 0.3 * (label % 2), 0.85))
        width, height = int(rng.integers(40, 301)), int(rng.integers(40, 301))
        image = Image.new("RGB", (width, height), colour)
        pixels = np.asarray(image).copy()
        y0, x0 = int(rng.integers(0, height // 2)), int(rng.integers(0, width // 2))
        pixels[y0:y0 + height // 3, x0:x0 + width // 3] //= 2  # a darker patch: not a flat colour only
        noise = rng.integers(-12, 13, size=pixels.shape)
        image = Image.fromarray(np.clip(pixels.astype(int) + noise, 0, 255).astype(np.uint8))
        extension = formats[k % len(formats)]
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{name}.{extension}")

    for label, name in enumerate(classes):
        for k in range(per_class):
            draw(root / "train" / name, label, f"{name}_train_{k:04d}", k)
        for k in range(val_per_class):
            draw(root / val_folder / name, label, f"{name}_val_{k:04d}", k)
    for k in range(test_images):
        label = k % len(classes)
        draw(root / "test", label, f"test_{k:04d}", k)
    return root
