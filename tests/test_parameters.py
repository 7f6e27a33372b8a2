"""Every lesson knob is checked where the lesson reads it, with a message naming it, its value and what is allowed."""

from __future__ import annotations

import json

import pytest

from seedlings_utils.parameters import KNOBS, RULES, UNSET, ParameterError, check_parameters, quick_parameters
from tools.lessons import lesson_notebooks

from .helpers import NBVAL_DATA, TEST_PARAMETERS, nbval_parameters, nbval_settings


def parameters_cell(notebook) -> tuple[dict, str]:
    """The defaults of a lesson's parameters cell, and the source of the cell after it."""
    cells = [c for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code"]
    at = next(i for i, c in enumerate(cells) if "parameters" in c["metadata"].get("tags", []))
    namespace: dict = {}
    exec("".join(cells[at]["source"]), namespace)
    return {k: v for k, v in namespace.items() if k.isupper()}, "".join(cells[at + 1]["source"])


@pytest.mark.parametrize("notebook", lesson_notebooks(), ids=lambda p: p.name[:2])
def test_every_lesson_checks_every_knob_and_its_defaults_pass(notebook):
    defaults, next_cell = parameters_cell(notebook)
    assert set(defaults) <= set(RULES), f"knobs without a rule: {sorted(set(defaults) - set(RULES))}"
    assert "check_parameters(globals())" in next_cell, "the cell after the parameters must check them"
    check_parameters(defaults)
    check_parameters({**defaults, **TEST_PARAMETERS})
    check_parameters({**defaults, **{k: v for k, v in nbval_parameters(notebook.name[:2]).items() if k in defaults}})


@pytest.mark.parametrize("notebook", lesson_notebooks(), ids=lambda p: p.name[:2])
def test_every_parameters_cell_sets_the_registrys_defaults(notebook):
    """A knob is written once, in KNOBS: a parameters cell that sets another default is named with the fix."""
    defaults, _ = parameters_cell(notebook)
    lesson = notebook.name[:2]
    wrong = {name: (value, KNOBS[name].default_in(lesson)) for name, value in defaults.items()
             if name in KNOBS and value != KNOBS[name].default_in(lesson)}
    assert not wrong, (f"{notebook.name}: defaults that differ from seedlings_utils.parameters.KNOBS "
                       f"(cell, registry): {wrong}; change one of them (lesson_defaults for a lesson of its own)")


def test_every_knob_is_used_by_a_lesson_and_its_quick_value_passes_its_rule():
    used = {name for notebook in lesson_notebooks() for name in parameters_cell(notebook)[0]}
    assert set(KNOBS) <= used, f"knobs no lesson has: {sorted(set(KNOBS) - used)}"
    for name, knob in KNOBS.items():
        assert knob.rule(knob.default) is None, (name, knob.default)
        assert knob.quick is UNSET or knob.rule(knob.quick) is None, (name, knob.quick)
        assert all(knob.rule(value) is None for value in knob.lesson_defaults.values()), name
    assert quick_parameters() == {name: k.quick for name, k in KNOBS.items() if k.quick is not UNSET}


def test_every_numeric_knob_has_a_smallest_value_or_says_why_not():
    """A new knob cannot skip the smallest-values run: a numeric one has a range rule (``_whole``: its lower bound;
    ``_number``: an open bound, so ``smallest=``), or says why it is left at its quick value."""
    for name, knob in KNOBS.items():
        if isinstance(knob.default, int | float) and not isinstance(knob.default, bool):
            assert knob.numeric, f"{name}: a number whose rule is not _whole or _number has no smallest value"
        if not knob.numeric:
            continue
        assert knob.smallest is not None or knob.not_at_smallest, (
            f"{name}: no smallest value; give its _number a smallest=, or say in not_at_smallest why it has none")
        if knob.smallest is not None and not callable(knob.smallest):
            assert knob.rule(knob.smallest) is None, (name, knob.smallest)
            below = knob.smallest - (1 if isinstance(knob.smallest, int) else 1e-9)
            assert knob.rule(below) is not None, f"{name}: {below} passes, so {knob.smallest} is not the smallest"


def test_smallest_parameters_raise_only_what_a_rule_forbids_and_say_which_rule():
    from seedlings_utils.parameters import check_fits_data, smallest_settings

    values, raised = smallest_settings(["IMAGE_SIZE", "BATCH_SIZE", "NUM_PROCESSES", "EPOCHS"])
    assert (values["IMAGE_SIZE"], values["BATCH_SIZE"], values["NUM_PROCESSES"], values["EPOCHS"]) == (16, 1, 1, 1)
    assert raised == {}
    values, raised = smallest_settings(["IMAGE_SIZE", "WEIGHTS", "DISTRIBUTED_EPOCHS", "GOING_DEEPER"],
                                       going_deeper=True)
    assert values["IMAGE_SIZE"] == 32 and values["DISTRIBUTED_EPOCHS"] == 2
    assert raised["IMAGE_SIZE"].startswith("IMAGE_SIZE = 16: lesson 09's MobileNetV3Small needs at least 32")
    assert raised["DISTRIBUTED_EPOCHS"].startswith("DISTRIBUTED_EPOCHS = 1 with GOING_DEEPER = True")
    counts = {"train_count": 480, "class_count": 12, "val_count": 0}  # one image of each class for validation
    values, _ = smallest_settings(["VAL_FRACTION"], counts=counts)
    assert values["VAL_FRACTION"] == 0.023  # 11.04 of 480 images: ceil gives 12, one of each class
    check_fits_data(values, **counts)
    with pytest.raises(ParameterError, match="VAL_FRACTION = 0.022: .*at least 0.023"):
        check_fits_data({"VAL_FRACTION": 0.022}, **counts)
    given_val = smallest_settings(["VAL_FRACTION"], counts={**counts, "val_count": 40})[0]  # nothing is split
    assert "VAL_FRACTION" not in given_val and "VAL_FRACTION" not in smallest_settings(["VAL_FRACTION"])[0]


@pytest.mark.parametrize("notebook", lesson_notebooks(), ids=lambda p: p.name[:2])
def test_nbval_runs_each_lesson_at_its_knobs_smallest_accepted_values(notebook):
    """nbval's settings (tests/conftest.py) for this lesson: each numeric knob at its rule's smallest value, or
    at the smallest value the rule named in ``raised`` lets pass (one less fails it), accepted with the lesson's
    defaults and on the data nbval runs on."""
    from seedlings_utils.parameters import check_fits_data

    defaults, _ = parameters_cell(notebook)
    values, raised = nbval_settings(notebook.name[:2])
    settings = {**defaults, **{name: value for name, value in values.items() if name in defaults}}
    check_parameters(settings)
    check_fits_data(settings, **NBVAL_DATA)
    for name in defaults:
        knob = KNOBS[name]
        if not knob.numeric or knob.not_at_smallest:
            continue
        smallest = knob.smallest(NBVAL_DATA) if callable(knob.smallest) else knob.smallest
        if name in raised:
            below = {**settings, name: settings[name] - 1}
            with pytest.raises(ParameterError, match=f"{name} = {below[name]!r}"):
                check_parameters(below)
                check_fits_data(below, **NBVAL_DATA)
        else:
            assert settings[name] == smallest, (name, settings[name], smallest)


@pytest.mark.parametrize(("name", "value", "allowed"), [
    ("IMAGE_SIZE", 0, "a whole number from 16"),
    ("IMAGE_SIZE", -5, "a whole number from 16"),
    ("IMAGE_SIZE", 64.5, "a whole number from 16"),
    ("BATCH_SIZE", 0, "a whole number from 1"),
    ("SEED", "abc", "a whole number from 0 to 4,294,967,295"),
    ("SEED", True, "a whole number from 0"),
    ("WORKERS", -1, "a whole number from 1"),
    ("EPOCHS", 0, "0 epochs would train nothing"),
    ("VAL_FRACTION", 1.0, "a number above 0 and below 1"),
    ("DATA_SOURCE", "kagle", "one of 'synthetic', 'local', 'kaggle', 'url'"),
    ("USE_MULTIPROCESSING", "False", "one of True, False"),
    ("MIXED_PRECISION", 1, "one of 'auto', True, False"),
    ("FLATTEN_METHOD", "move", "one of 'copy', 'hardlink', 'symlink'"),
    ("SOURCE_SHA256", "abc", "64 hexadecimal digits"),
    ("WEIGHTS", "", '"imagenet", None, or a weights file path'),
    ("JOB_TIMEOUT", 0, "a number above 0"),
    ("DATA_DIR", 3, "text in quotes"),
])
def test_a_bad_value_is_named_with_what_is_allowed(name, value, allowed):
    with pytest.raises(ParameterError) as error:
        check_parameters({"SEED": 42, name: value})
    assert f"{name} = {value!r}: must be " in str(error.value) and allowed in str(error.value)


def test_knobs_that_do_not_fit_together_are_named_together():
    with pytest.raises(ParameterError, match=r"BATCH_SIZE = 32 and NUM_PROCESSES = 3: the global batch must split"):
        check_parameters({"BATCH_SIZE": 32, "NUM_PROCESSES": 3})
    with pytest.raises(ParameterError, match=r"DISTRIBUTED_EPOCHS = 1 with GOING_DEEPER = True"):
        check_parameters({"DISTRIBUTED_EPOCHS": 1, "GOING_DEEPER": True})
    with pytest.raises(ParameterError, match=r"IMAGE_SIZE = 16: lesson 09's MobileNetV3Small needs at least 32"):
        check_parameters({"IMAGE_SIZE": 16, "WEIGHTS": None})
    with pytest.raises(ParameterError, match=r"SOURCE_PATH = '': DATA_SOURCE = 'local' needs the folder"):
        check_parameters({"DATA_SOURCE": "local", "SOURCE_PATH": ""})
    check_parameters({"BATCH_SIZE": 32, "NUM_PROCESSES": 4, "DISTRIBUTED_EPOCHS": 1, "GOING_DEEPER": False})


def test_every_problem_is_listed_in_one_message():
    with pytest.raises(ParameterError) as error:
        check_parameters({"IMAGE_SIZE": 0, "BATCH_SIZE": 0, "SEED": "abc", "UNRELATED": object()})
    lines = str(error.value).splitlines()
    assert lines[0].startswith("Parameters to fix") and len(lines) == 4


@pytest.mark.slow
def test_a_lesson_run_with_a_bad_knob_stops_at_once_naming_it(tmp_path):
    from tools.lessons import LessonsFailed, run_lessons

    with pytest.raises(LessonsFailed) as error:
        run_lessons({"DATA_DIR": str(tmp_path / "data"), "SEED": "abc"}, tmp_path / "out", lessons=["01"],
                    keep_going=True)
    assert "ParameterError: Parameter to fix" in error.value.failed["01_download_the_data.ipynb"]
    assert not (tmp_path / "data" / "raw").exists(), "nothing may be written before the knobs are checked"


def test_a_setting_the_data_cannot_satisfy_names_the_knob_and_the_largest_value_that_fits():
    from seedlings_utils.parameters import check_fits_data

    with pytest.raises(ParameterError, match=r"BATCH_SIZE = 64: .* the largest that fits is 40"):
        check_fits_data({"BATCH_SIZE": 64}, train_count=40, class_count=2)
    check_fits_data({"BATCH_SIZE": 40}, train_count=40, class_count=2)


def test_a_kill_point_beyond_the_end_of_an_epoch_is_refused_naming_the_largest_that_fits():
    """Lesson 11: 160 training images in batches of 32 are 5 batches (0 to 4): the disconnect must cut an epoch, so it
    comes after batch 3 at the latest."""
    from seedlings_utils.parameters import check_fits_data

    knobs = {"BATCH_SIZE": 32, "SAVE_EVERY": 2}
    for kill in (4, 10):
        with pytest.raises(ParameterError, match=rf"KILL_AFTER_BATCH = {kill}: .*an epoch has 5 batches.* the largest "
                                                 r"that fits is 3"):
            check_fits_data({**knobs, "KILL_AFTER_BATCH": kill}, train_count=160, class_count=2)
    check_fits_data({**knobs, "KILL_AFTER_BATCH": 3}, train_count=160, class_count=2)
    check_fits_data({**knobs, "KILL_AFTER_BATCH": 3}, train_count=129, class_count=2)  # 5 batches, the last of 1
    with pytest.raises(ParameterError, match=r"KILL_AFTER_BATCH = 3: .* the largest that fits is 2"):
        check_fits_data({**knobs, "KILL_AFTER_BATCH": 3}, train_count=128, class_count=2)
    with pytest.raises(ParameterError, match=r"KILL_AFTER_BATCH = 0: .*none fits: lower BATCH_SIZE"):
        check_fits_data({**knobs, "KILL_AFTER_BATCH": 0}, train_count=20, class_count=2)
