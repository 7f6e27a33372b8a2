"""Lesson 04's exercises reject the typical wrong answers, each with its own diagnosis."""

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.model_selection import GroupShuffleSplit, train_test_split
from sklearn.utils import shuffle

from seedlings_utils.exercises import CORRECT, INCORRECT, NOT_ATTEMPTED
from seedlings_utils.exercises import lesson04 as ex

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "04_shuffle_and_split.ipynb"


def notebook_starter(q):
    """The learner's untouched cell for ``q``, run (its check prints "Not attempted yet"): the answer it defines."""
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    source = next("".join(c["source"]) for c in cells if c["cell_type"] == "code" and f"ex.{q.name}.check(" in
                  "".join(c["source"]))
    namespace = {"ex": ex}
    exec(source, namespace)
    return namespace[q.answer_name]


@pytest.mark.parametrize("q", [ex.q1, ex.q2], ids=["q1", "q2"])
def test_untouched_starter_is_not_attempted(q):
    assert q.evaluate(notebook_starter(q)).status == NOT_ATTEMPTED


def the_2019_call(filenames, labels, val_fraction, seed):
    return train_test_split(filenames, labels, test_size=0.2, random_state=1)


def unstratified(filenames, labels, val_fraction, seed):
    return train_test_split(filenames, labels, test_size=val_fraction, random_state=seed)


def no_seed(filenames, labels, val_fraction, seed):
    return train_test_split(filenames, labels, test_size=val_fraction, stratify=labels)


def seed_left_at_1(filenames, labels, val_fraction, seed):
    return train_test_split(filenames, labels, test_size=val_fraction, stratify=labels, random_state=1)


def old_ensure_split_order(filenames, labels, val_fraction, seed):
    x_train, x_val, y_train, y_val = train_test_split(filenames, labels, test_size=val_fraction, stratify=labels,
                                                      random_state=seed)
    return x_train, y_train, x_val, y_val


def names_shuffled_alone(filenames, labels, val_fraction, seed):
    return train_test_split(shuffle(filenames, random_state=seed), labels, test_size=val_fraction, stratify=labels,
                            random_state=seed)


def train_size_instead_of_test_size(filenames, labels, val_fraction, seed):
    return train_test_split(filenames, labels, train_size=val_fraction, stratify=labels, random_state=seed)


def returns_two_sets(filenames, labels, val_fraction, seed):
    x_train, x_val, _, _ = train_test_split(filenames, labels, test_size=val_fraction, stratify=labels,
                                            random_state=seed)
    return x_train, x_val


@pytest.mark.parametrize(("wrong", "message"), [
    (the_2019_call, "not stratified: with seed 0, 'Black-grass' has 3 of its 30 images in validation, 6 expected"),
    (unstratified, "Pass stratify=labels"),
    (no_seed, "two calls with seed 3 gave different splits"),
    (seed_left_at_1, "the seed is ignored"),
    (old_ensure_split_order, "that is (X_train, y_train, X_val, y_val)"),
    (names_shuffled_alone, "names and labels were shuffled apart"),
    (train_size_instead_of_test_size, "validation holds 48 of 60 images"),
    (returns_two_sets, "returned 2 things"),
])
def test_q1_rejects_typical_mistakes(wrong, message):
    outcome = ex.q1.evaluate(wrong)
    assert outcome.status == INCORRECT and message in outcome.message, outcome


def split_per_photo(filenames, labels, plants, val_fraction, seed):
    return train_test_split(filenames, labels, test_size=val_fraction, stratify=labels, random_state=seed)


def groups_forgotten(filenames, labels, plants, val_fraction, seed):
    splitter = GroupShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed)
    train, val = next(splitter.split(filenames, labels))
    return filenames[train], filenames[val], labels[train], labels[val]


def val_fraction_of_train(filenames, labels, plants, val_fraction, seed):
    splitter = GroupShuffleSplit(n_splits=1, test_size=1 - val_fraction, random_state=seed)
    train, val = next(splitter.split(filenames, labels, groups=plants))
    return filenames[train], filenames[val], labels[train], labels[val]


def overlapping_sets(filenames, labels, plants, val_fraction, seed):
    splitter = GroupShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed)
    train, val = next(splitter.split(filenames, labels, groups=plants))
    return filenames, filenames[val], labels, labels[val]  # "train on everything"


@pytest.mark.parametrize(("wrong", "message"), [
    (split_per_photo, "has photos in both sets"),
    (groups_forgotten, "groups"),  # scikit-learn's own error, shown with the line that raised it
    (val_fraction_of_train, "validation holds 12 of 16 plants"),
    (overlapping_sets, "are in both sets"),
])
def test_q2_rejects_typical_mistakes(wrong, message):
    outcome = ex.q2.evaluate(wrong)
    assert outcome.status == INCORRECT and message in outcome.message, outcome


def test_solutions_pass_and_q1_accepts_lists():
    for q in (ex.q1, ex.q2):
        assert q.evaluate(q.solution_namespace()[q.answer_name]).status == CORRECT

    def via_lists(filenames, labels, val_fraction, seed):
        result = train_test_split(list(filenames), list(labels), test_size=val_fraction, stratify=list(labels),
                                  random_state=seed)
        return tuple(np.asarray(a) for a in result)

    assert ex.q1.evaluate(via_lists).status == CORRECT
