"""Every lesson's knobs, checked where the lesson reads them: one message naming the knob, its value, what is allowed.

A lesson's cell after its parameters calls ``check_parameters(globals())``: each knob the lesson has (the
upper-case names below) is checked for its type and range, and the knobs for how they fit together (a batch
that must split over the processes). A value set from ``make lessons NAME=value`` or papermill arrives here
as the same Python value, so a typo fails here, in words, and not deep inside TensorFlow.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from numbers import Integral, Real

from .image_scan import LINK_METHODS
from .sources import SOURCES


class ParameterError(ValueError):
    """A lesson parameter with a value the lesson cannot use."""


def _whole(low: int, high: int | None = None, why: str = "") -> Callable[[object], str | None]:
    def check(value: object) -> str | None:
        if isinstance(value, bool) or not isinstance(value, Integral) or value < low or (high and value > high):
            allowed = f"a whole number from {low}" + (f" to {high:,}" if high else " up")
            return allowed + (f" ({why})" if why else "")
        return None

    return check


def _number(low: float, high: float | None = None, why: str = "") -> Callable[[object], str | None]:
    def check(value: object) -> str | None:
        if isinstance(value, bool) or not isinstance(value, Real) or not low < value < (high or float("inf")):
            allowed = f"a number above {low}" + (f" and below {high}" if high else "")
            return allowed + (f" ({why})" if why else "")
        return None

    return check


def _one_of(*allowed: object) -> Callable[[object], str | None]:
    def check(value: object) -> str | None:
        ok = any(value is choice if isinstance(choice, bool) or choice is None else value == choice
                 for choice in allowed)
        return None if ok else "one of " + ", ".join(repr(choice) for choice in allowed)

    return check


def _text(why: str = "") -> Callable[[object], str | None]:
    def check(value: object) -> str | None:
        return None if isinstance(value, str | os.PathLike) else "text in quotes" + (f" ({why})" if why else "")

    return check


def _sha256(value: object) -> str | None:
    ok = isinstance(value, str) and (value == "" or (len(value) == 64 and all(c in "0123456789abcdefABCDEF"
                                                                              for c in value)))
    return None if ok else '"" or the 64 hexadecimal digits of a SHA-256'


def _weights(value: object) -> str | None:
    return None if value is None or isinstance(value, str) and value else '"imagenet", None, or a weights file path'


_FLAG = _one_of(True, False)
_EPOCHS = _whole(1, why="0 epochs would train nothing and leave no results to check")

class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


#: A knob without a quick value: ``make lessons`` leaves it at the notebook's default.
UNSET = _Unset()


@dataclass(frozen=True)
class Knob:
    """One knob, written once: what it may be, what it means, its default in the notebooks, its quick value.

    ``default`` is what every parameters cell that has the knob sets, except the lessons named in
    ``lesson_defaults`` (a check compares them: tests/test_parameters.py); ``quick`` is what ``make lessons`` uses
    (``UNSET``: the default). The lessons that use a knob are read from the notebooks, never typed here.
    """

    rule: Callable[[object], str | None]
    group: str
    meaning: str
    default: object
    quick: object = UNSET
    lesson_defaults: Mapping[str, object] = field(default_factory=dict)

    def default_in(self, lesson: str) -> object:
        """The default of this knob in lesson ``"NN"``'s parameters cell."""
        return self.lesson_defaults.get(lesson, self.default)


#: The groups of knobs, in the order the parameters page shows them.
GROUPS = {
    "data": "The data and where it goes",
    "training": "Training and loading",
    "transfer": "Transfer learning",
    "processes": "Several processes",
    "resume": "Resuming in the middle of an epoch",
    "bucket": "The data in a bucket",
}

#: Every knob, by name: the same name means the same thing in every lesson. The one place a knob is written:
#: the rules below, docs/parameters.md (``python -m tools.pages``), the quick settings of ``make lessons`` and of
#: the tests, and the check of every parameters cell come from here.
KNOBS: dict[str, Knob] = {
    "DATA_DIR": Knob(
        _text('"" for the course\'s folder'), "data", "working folder; every lesson reads and writes under it "
        "(empty: on Colab the runtime's own disk, `/content/seedlings-data`; in a checkout of the repository `data/`, "
        "git-ignored; otherwise `~/seedlings-data`)", ""),
    "COURSE_DIR": Knob(
        _text('"" for Google Drive\'s seedlings-course folder on Colab, DATA_DIR elsewhere'), "data",
        "the folder that outlives a runtime: lesson 01's record of the data source and its downloads (empty: on "
        "Colab `MyDrive/seedlings-course` on Google Drive, elsewhere `DATA_DIR`)", ""),
    "DATA_SOURCE": Knob(
        _one_of(*SOURCES), "data", '`"synthetic"` (offline), `"kaggle"` (official files, needs credentials), '
        '`"local"` (a folder or zip in the Kaggle layout), `"url"` (a zip at a URL)', "synthetic"),
    "SOURCE_PATH": Knob(_text("a folder, a .zip or an address"), "data",
                        "the folder or zip for `local`, the address for `url`", ""),
    "SOURCE_SHA256": Knob(_sha256, "data", "optional SHA-256 the `url` download must match (empty: not checked)", ""),
    "SYNTHETIC_PER_CLASS": Knob(
        _whole(2, 100_000, "each species needs an image for training and one for validation"), "data",
        "synthetic images per species, on average (species differ in size, like the real ones); in lessons 02 and "
        "later used only when `COURSE_DIR` holds no record from lesson 01", 400, quick=60),
    "SEED": Knob(_whole(0, 2**32 - 1, "NumPy's seeds"), "data",
                 "one seed for data generation, splitting, shuffling and weights", 42),
    "VAL_FRACTION": Knob(_number(0, 1, "the share of each species kept for validation"), "data",
                         "the share of each class kept for validation", 0.2),
    "FLATTEN_METHOD": Knob(
        _one_of(*LINK_METHODS), "data",
        'how lesson 02 puts images into `all_images/`: `"copy"`, `"hardlink"` or `"symlink"`', "copy"),
    "MAKE_ZIP": Knob(_FLAG, "data", "lesson 04 also zips `all_images/` into one file for moving it around", False),
    "RESULTS_DIR": Knob(_text('"" for DATA_DIR'), "data", "where lesson 06 writes its model, backup, history, metrics "
                        "and submission (empty: `DATA_DIR`); on Colab, a Drive folder survives a disconnect", ""),
    "IMAGE_SIZE": Knob(_whole(16, 4096, "lesson 06's CNN halves the side four times"), "training",
                       "side in pixels of the square images fed to the model", 128, quick=64,
                       lesson_defaults={"09": 224, "10": 64, "11": 64, "12": 64}),
    "BATCH_SIZE": Knob(_whole(1), "training", "images per training step", 32),
    "EPOCHS": Knob(_EPOCHS, "training", "training epochs of lesson 06's recipe (early stopping may end it sooner), "
                   "and nothing else", 40, quick=8),
    "FIRST_EPOCHS": Knob(_EPOCHS, "training", "epochs of a first, plain fit: lesson 01's first model, lesson 06's "
                         "first version", 5, quick=2),
    "FIRST_IMAGE_SIZE": Knob(_whole(24, 1024, "lesson 01's first model: three convolutions and two poolings"),
                             "training", "side in pixels of lesson 01's first model's images", 64),
    "DEMO_EPOCHS": Knob(_EPOCHS, "training", "epochs of the short demonstration fits in lessons 05 and 08", 2),
    "TIMED_EPOCHS": Knob(_EPOCHS, "training", "epochs timed with each loader in lesson 07", 1),
    "SPEED_BATCHES": Knob(_whole(1), "training", "batches read when a lesson measures a loader's images/s "
                          "(05, 07, 08); training steps per timed run (09)", 30,
                          lesson_defaults={"09": 10}),
    "WORKERS": Knob(_whole(1, why="threads or processes loading batches; 1 loads in the training loop's own thread"),
                    "training", "passed to `PyDataset`: how many batches load in parallel, in threads or processes", 2,
                    lesson_defaults={"10": 1}),
    "USE_MULTIPROCESSING": Knob(_FLAG, "training", "passed to `PyDataset`: processes instead of threads", False),
    "DETERMINISTIC": Knob(_FLAG, "training", "repeatable TensorFlow ops (05-09), at a cost in speed that lesson 06 "
                          "measures", False),
    "BASE_FILTERS": Knob(_whole(1), "training", "width of the CNN (filters of its first layer)", 32, quick=16,
                         lesson_defaults={"10": 16, "11": 16, "12": 16}),
    "LEARNING_RATE": Knob(_number(0, 10), "training", "Adam's learning rate", 1e-3),
    "SHARD_SIZE": Knob(_whole(1), "training", "images per shard: per cache file in lesson 07; per TFRecord shard in "
                       "lesson 12 (fewer requests per image with bigger shards, more memory per reader and more to "
                       "read again after a failure)", 2048, lesson_defaults={"12": 64}),
    "SHUFFLE_BUFFER": Knob(_whole(1), "training", "lesson 08: decoded images in the (bounded) shuffle buffer after a "
                           "cache file", 1000),
    "GOING_DEEPER": Knob(_FLAG, "training", "`False`: the *Going deeper* sections explain and show, but skip their "
                         "extra trainings and long measurements (each says what it would run and how long it takes); "
                         "`True` runs them too (lesson 10: a process killed in epoch 2 and the job resumed, one "
                         "process against `NUM_PROCESSES`)", False),
    "WEIGHTS": Knob(_weights, "transfer", 'the backbone\'s starting weights: `"imagenet"` (downloaded once), `None` '
                    "(random weights, offline: `make lessons` and the tests), or the path of a weights file on disk",
                    "imagenet", quick=None),
    "HEAD_EPOCHS": Knob(_EPOCHS, "transfer", "epochs of phase 1 (new head, frozen backbone)", 10, quick=4),
    "FINE_TUNE_EPOCHS": Knob(_EPOCHS, "transfer", "epochs of phase 2 (fine-tuning)", 10, quick=2),
    "FINE_TUNE_LAYERS": Knob(_whole(1), "transfer", "the backbone's last layers trained in phase 2", 33),
    "FINE_TUNE_LEARNING_RATE": Knob(_number(0, 10), "transfer", "the learning rate of phase 2", 1e-5),
    "MIXED_PRECISION": Knob(_one_of("auto", True, False), "transfer",
                            '`"auto"` (on with a GPU, off on a CPU), `True` or `False`', "auto"),
    "WAIT_REPEATS": Knob(_whole(1), "transfer", "timed runs per loader when measuring the wait for data (the median "
                         "is the figure)", 3),
    "DISTRIBUTED_EPOCHS": Knob(_EPOCHS, "processes", "epochs of each training job; with `GOING_DEEPER`, at least 2 "
                               "(a process is killed in epoch 2, and the loss must fall from the first epoch to the "
                               "last)", 5, quick=2),
    "NUM_PROCESSES": Knob(_whole(1, 64), "processes", "processes of the job (`BATCH_SIZE` must split evenly over "
                          "them)", 2),
    "AUGMENT": Knob(_FLAG, "processes", "augmentation in the jobs", False),
    "JOB_TIMEOUT": Knob(_number(0, why="seconds a training job of lessons 10 and 11 may run"), "processes",
                        "seconds a training job (lessons 10 and 11) may run", 900),
    "RUN_TF_ATTEMPT": Knob(_FLAG, "processes", "with `GOING_DEEPER`, run the failing TensorFlow route again (two "
                           "more processes)", False),
    "RESUME_EPOCHS": Knob(_whole(2, why="lesson 11 kills its runs in the second epoch"), "resume",
                          "epochs of each training run (at least 2: the kill comes in the second)", 2),
    "SAVE_EVERY": Knob(_whole(1, why="batches between two saves of lesson 11's checkpoint"), "resume",
                       "batches between two saves of the weights, the optimizer state and the data position", 4),
    "KILL_AFTER_BATCH": Knob(
        _whole(0, why="the batch of the second epoch, counted from 0, after which lesson 11 kills"), "resume",
        "the batch of the second epoch (counted from 0) after which each run is stopped; after the epoch's first "
        "save", 10),
    "GRAIN_WORKERS": Knob(_whole(0, 64, "Grain's worker processes; 0 reads in the training process"), "resume",
                          "Grain's worker processes (0: Grain reads in the training process itself)", 2, quick=1),
    "CACHE_SHARDS": Knob(_whole(3, why="lesson 12's cache holds the shard being read and the 2 fetched ahead"),
                         "bucket", "the local shard cache's byte budget, in shards of the largest size (at least 3: "
                         "the shard being read and the 2 fetched ahead)", 3),
}

#: What each knob may be, by name (from :data:`KNOBS`).
RULES: dict[str, Callable[[object], str | None]] = {name: knob.rule for name, knob in KNOBS.items()}


def quick_parameters() -> dict[str, object]:
    """``make lessons``' quick settings: every knob that has a quick value, at that value."""
    return {name: knob.quick for name, knob in KNOBS.items() if knob.quick is not UNSET}


def _consistency(values: Mapping[str, object]) -> list[str]:
    """What the knobs say about each other (only for knobs that passed their own checks)."""
    problems = []
    if {"BATCH_SIZE", "NUM_PROCESSES"} <= values.keys() and values["BATCH_SIZE"] % values["NUM_PROCESSES"]:
        problems.append(f"BATCH_SIZE = {values['BATCH_SIZE']!r} and NUM_PROCESSES = {values['NUM_PROCESSES']!r}: the "
                        "global batch must split evenly over the processes (e.g. BATCH_SIZE 32 with 1, 2, 4 or 8).")
    if values.get("GOING_DEEPER") and values.get("DISTRIBUTED_EPOCHS", 2) < 2:
        problems.append(f"DISTRIBUTED_EPOCHS = {values['DISTRIBUTED_EPOCHS']!r} with GOING_DEEPER = True: lesson 10's "
                        "Going deeper crashes a process in epoch 2 and checks that the loss falls from the first epoch "
                        "to the last, so it needs at least 2 epochs (or set GOING_DEEPER = False).")
    if {"KILL_AFTER_BATCH", "SAVE_EVERY"} <= values.keys() and values["KILL_AFTER_BATCH"] + 1 < values["SAVE_EVERY"]:
        problems.append(f"KILL_AFTER_BATCH = {values['KILL_AFTER_BATCH']!r} and SAVE_EVERY = {values['SAVE_EVERY']!r}: "
                        "the kill would come before the first save of the epoch, so no resume starts in its middle.")
    if "WEIGHTS" in values and "IMAGE_SIZE" in values and values["IMAGE_SIZE"] < 32:
        problems.append(f"IMAGE_SIZE = {values['IMAGE_SIZE']!r}: lesson 09's MobileNetV3Small needs at least 32 px.")
    if values.get("DATA_SOURCE") in ("local", "url") and values.get("SOURCE_PATH") == "":
        problems.append(f"SOURCE_PATH = '': DATA_SOURCE = {values['DATA_SOURCE']!r} needs the "
                        + ("folder or .zip on disk." if values["DATA_SOURCE"] == "local" else "address of the .zip."))
    return problems


def check_parameters(namespace: Mapping[str, object]) -> None:
    """Check every lesson knob found in ``namespace`` (a notebook passes ``globals()``); raise one
    :class:`ParameterError` listing each bad one: its name, its value and what it may be."""
    present = {name: namespace[name] for name in RULES if name in namespace}
    problems, good = [], {}
    for name, value in present.items():
        allowed = RULES[name](value)
        if allowed is None:
            good[name] = value
        else:
            problems.append(f"{name} = {value!r}: must be {allowed}.")
    problems += _consistency(good)
    if problems:
        raise ParameterError("Parameter" + ("s" if len(problems) > 1 else "") + " to fix in the parameters cell "
                             "(or on make lessons' command line):\n  " + "\n  ".join(problems))


#: Rules that need the data: each takes the knobs that passed ``check_parameters`` and the data's counts
#: (``train_count``, ``val_count``, ``class_count``) and returns its problems, each naming the knob and the
#: largest (or smallest) value that fits this data.
DATA_RULES: list[Callable[[Mapping[str, object], Mapping[str, int]], list[str]]] = []


def data_rule(rule: Callable[[Mapping[str, object], Mapping[str, int]], list[str]]):
    """Register ``rule`` in :data:`DATA_RULES` (a decorator)."""
    DATA_RULES.append(rule)
    return rule


@data_rule
def _batch_fits_training_set(values: Mapping[str, object], counts: Mapping[str, int]) -> list[str]:
    if "BATCH_SIZE" in values and values["BATCH_SIZE"] > counts["train_count"]:
        return [f"BATCH_SIZE = {values['BATCH_SIZE']!r}: this data has {counts['train_count']} training images, so "
                f"an epoch would have no full batch; the largest that fits is {counts['train_count']}."]
    return []


@data_rule
def _val_fraction_fits_classes(values: Mapping[str, object], counts: Mapping[str, int]) -> list[str]:
    """A stratified split (lesson 04) puts at least one image of each class on each side: with ``n`` images and
    ``k`` classes, ``VAL_FRACTION`` must leave ``ceil(f n) >= k`` for validation and ``n - ceil(f n) >= k`` for
    training. Not checked when the data brings its own validation set (``val_count > 0``): nothing is split."""
    if "VAL_FRACTION" not in values or counts["val_count"] > 0:
        return []
    import math

    n, k, fraction = counts["train_count"], counts["class_count"], float(values["VAL_FRACTION"])
    held = math.ceil(fraction * n)
    if k <= held <= n - k:
        return []
    if 2 * k > n:
        return [f"VAL_FRACTION = {fraction!r}: this data has {n} images in {k} classes, too few to put one image of "
                "each class on each side of a stratified split; add images, or a val/ folder of your own."]
    low, high = k / n, math.floor((n - k) / n * 1000) / 1000  # ceil(low n) = k; ceil(high n) <= n - k
    return [f"VAL_FRACTION = {fraction!r}: a stratified split of {n} images in {k} classes needs one image of each "
            f"class on each side, so {'at least' if held < k else 'at most'} "
            f"{math.ceil(low * 1000) / 1000 if held < k else high} (any value from "
            f"{math.ceil(low * 1000) / 1000} to {high} fits)."]


@data_rule
def _kill_point_inside_an_epoch(values: Mapping[str, object], counts: Mapping[str, int]) -> list[str]:
    """Lesson 11: the disconnect must cut an epoch, so it comes before the epoch's last batch."""
    if not {"KILL_AFTER_BATCH", "BATCH_SIZE"} <= values.keys():
        return []
    batches = -(-counts["train_count"] // values["BATCH_SIZE"])  # ceil: the last batch may be short
    if values["KILL_AFTER_BATCH"] <= batches - 2:
        return []
    fits = (f"the largest that fits is {batches - 2}" if batches >= 2 else
            "none fits: lower BATCH_SIZE so that an epoch has at least 2 batches")
    return [f"KILL_AFTER_BATCH = {values['KILL_AFTER_BATCH']!r}: with {counts['train_count']} training images in "
            f"batches of {values['BATCH_SIZE']}, an epoch has {batches} batches (0 to {batches - 1}), so the "
            f"disconnect must come after one of batches 0 to {batches - 2} to cut an epoch; {fits}."]


def check_fits_data(namespace: Mapping[str, object], *, train_count: int, class_count: int,
                    val_count: int = 0) -> None:
    """Check the knobs in ``namespace`` against the data they will run on, before any work: raise one
    :class:`ParameterError` listing each knob this data cannot satisfy, with the largest value that fits."""
    values = {name: namespace[name] for name in RULES if name in namespace and RULES[name](namespace[name]) is None}
    counts = {"train_count": int(train_count), "val_count": int(val_count), "class_count": int(class_count)}
    problems = [problem for rule in DATA_RULES for problem in rule(values, counts)]
    if problems:
        raise ParameterError("Parameter" + ("s" if len(problems) > 1 else "") + " this data cannot satisfy (fix them "
                             "in the parameters cell or on make lessons' command line):\n  " + "\n  ".join(problems))
