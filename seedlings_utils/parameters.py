"""Every lesson's knobs, checked where the lesson reads them: one message naming the knob, its value, what is allowed.

A lesson's cell after its parameters calls ``check_parameters(globals())``: each knob the lesson has (the
upper-case names below) is checked for its type and range, and the knobs for how they fit together (a batch
that must split over the processes). A value set from ``make lessons NAME=value`` or papermill arrives here
as the same Python value, so a typo fails here, in words, and not deep inside TensorFlow.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from numbers import Integral, Real

from .all_images import LINK_METHODS
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

#: What each knob may be, by name: the same name means the same thing in every lesson.
RULES: dict[str, Callable[[object], str | None]] = {
    "DATA_DIR": _text('"" for the course\'s folder'),
    "COURSE_DIR": _text('"" for Google Drive\'s seedlings-course folder on Colab, DATA_DIR elsewhere'),
    "DATA_SOURCE": _one_of(*SOURCES),
    "SOURCE_PATH": _text("a folder, a .zip or an address"),
    "SOURCE_SHA256": _sha256,
    "SYNTHETIC_PER_CLASS": _whole(2, 100_000, "each species needs an image for training and one for validation"),
    "SEED": _whole(0, 2**32 - 1, "NumPy's seeds"),
    "VAL_FRACTION": _number(0, 1, "the share of each species kept for validation"),
    "IMAGE_SIZE": _whole(16, 4096, "lesson 06's CNN halves the side four times"),
    "BATCH_SIZE": _whole(1),
    "EPOCHS": _EPOCHS,
    "FIRST_EPOCHS": _EPOCHS,
    "FIRST_IMAGE_SIZE": _whole(24, 1024, "lesson 01's first model: three convolutions and two poolings"),
    "DEMO_EPOCHS": _EPOCHS,
    "TIMED_EPOCHS": _EPOCHS,
    "HEAD_EPOCHS": _EPOCHS,
    "FINE_TUNE_EPOCHS": _EPOCHS,
    "DISTRIBUTED_EPOCHS": _EPOCHS,
    "WORKERS": _whole(1, why="threads or processes loading batches; 1 loads in the training loop's own thread"),
    "USE_MULTIPROCESSING": _FLAG,
    "DETERMINISTIC": _FLAG,
    "MAKE_ZIP": _FLAG,
    "AUGMENT": _FLAG,
    "CRASH_DEMO": _FLAG,
    "RUN_TF_ATTEMPT": _FLAG,
    "GOING_DEEPER": _FLAG,
    "BASE_FILTERS": _whole(1),
    "LEARNING_RATE": _number(0, 10),
    "FINE_TUNE_LEARNING_RATE": _number(0, 10),
    "FLATTEN_METHOD": _one_of(*LINK_METHODS),
    "SPEED_BATCHES": _whole(1),
    "SHARD_SIZE": _whole(1),
    "RESULTS_DIR": _text('"" for DATA_DIR'),
    "SHUFFLE_BUFFER": _whole(1),
    "WEIGHTS": _weights,
    "FINE_TUNE_LAYERS": _whole(1),
    "MIXED_PRECISION": _one_of("auto", True, False),
    "WAIT_REPEATS": _whole(1),
    "NUM_PROCESSES": _whole(1, 64),
    "JOB_TIMEOUT": _number(0, why="seconds a training job of lessons 10 and 11 may run"),
    "RESUME_EPOCHS": _whole(2, why="lesson 11 kills its runs in the second epoch"),
    "SAVE_EVERY": _whole(1, why="batches between two saves of lesson 11's checkpoint"),
    "KILL_AFTER_BATCH": _whole(0, why="the batch of the second epoch, counted from 0, after which lesson 11 kills"),
    "GRAIN_WORKERS": _whole(0, 64, "Grain's worker processes; 0 reads in the training process"),
}


def _consistency(values: Mapping[str, object]) -> list[str]:
    """What the knobs say about each other (only for knobs that passed their own checks)."""
    problems = []
    if {"BATCH_SIZE", "NUM_PROCESSES"} <= values.keys() and values["BATCH_SIZE"] % values["NUM_PROCESSES"]:
        problems.append(f"BATCH_SIZE = {values['BATCH_SIZE']!r} and NUM_PROCESSES = {values['NUM_PROCESSES']!r}: the "
                        "global batch must split evenly over the processes (e.g. BATCH_SIZE 32 with 1, 2, 4 or 8).")
    if values.get("CRASH_DEMO") and values.get("DISTRIBUTED_EPOCHS", 2) < 2:
        problems.append(f"DISTRIBUTED_EPOCHS = {values['DISTRIBUTED_EPOCHS']!r} with CRASH_DEMO = True: the planned "
                        "crash happens in epoch 2, so it needs at least 2 epochs (or set CRASH_DEMO = False).")
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
