"""Lesson 03's exercises reject the typical wrong answers, each with its own diagnosis."""

import json
from pathlib import Path

import numpy as np
import pytest

from seedlings_utils.exercises import CORRECT, INCORRECT, NOT_ATTEMPTED
from seedlings_utils.exercises import lesson03 as ex

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "03_index_filenames_and_labels.ipynb"


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


def counter_2019(species):  # a new number at each species met, in the order met
    classes, labels = [], []
    for s in species:
        if s not in classes:
            classes.append(s)
        labels.append(classes.index(s))
    return np.array(labels), classes


def sorted_classes_but_counter_labels(species):
    labels, classes = counter_2019(species)
    return labels, sorted(classes)


def one_hot(species):
    classes = sorted(set(species))
    return np.eye(len(classes))[[classes.index(s) for s in species]], classes


def names_as_labels(species):
    return np.array(species), sorted(set(species))


def only_labels(species):
    classes = sorted(set(species))
    return np.array([classes.index(s) for s in species])


@pytest.mark.parametrize(("wrong", "message"), [
    (counter_2019, "the order in which the species were first met"),
    (sorted_classes_but_counter_labels, "the labels still count species in the order they were met"),
    (one_hot, "that is one-hot"),
    (names_as_labels, "not integers"),
    (only_labels, "return a pair: (labels, classes)"),
])
def test_q1_rejects_typical_mistakes(wrong, message):
    outcome = ex.q1.evaluate(wrong)
    assert outcome.status == INCORRECT and message in outcome.message, outcome


def test_q1_rejects_labels_that_change_with_the_order():
    calls = []

    def changes_on_the_second_call(species):  # right once, then every label shifted by one
        calls.append(species)
        classes = sorted(set(species))
        labels = np.array([classes.index(s) for s in species])
        return (labels if len(calls) == 1 else (labels + 1) % len(classes)), classes

    outcome = ex.q1.evaluate(changes_on_the_second_call)
    assert outcome.status == INCORRECT and "'Black-grass' got label 0 with one folder order and 1" in outcome.message


def save_as_is(data_dir, filenames, labels, classes):  # the object array gets pickled
    np.save(Path(data_dir) / "filenames.npy", filenames)
    np.save(Path(data_dir) / "labels.npy", np.array(labels))
    (Path(data_dir) / "classes.json").write_text(json.dumps(classes))


def without_classes(data_dir, filenames, labels, classes):
    np.save(Path(data_dir) / "filenames.npy", np.asarray(filenames, dtype=str))
    np.save(Path(data_dir) / "labels.npy", np.asarray(labels))


def float_labels(data_dir, filenames, labels, classes):
    np.save(Path(data_dir) / "filenames.npy", np.asarray(filenames, dtype=str))
    np.save(Path(data_dir) / "labels.npy", np.asarray(labels, dtype=np.float32))
    (Path(data_dir) / "classes.json").write_text(json.dumps(classes))


def classes_as_npy(data_dir, filenames, labels, classes):
    np.save(Path(data_dir) / "filenames.npy", np.asarray(filenames, dtype=str))
    np.save(Path(data_dir) / "labels.npy", np.asarray(labels))
    np.save(Path(data_dir) / "classes.npy", np.asarray(classes))


@pytest.mark.parametrize(("wrong", "message"), [
    (save_as_is, "np.load cannot read filenames.npy without allow_pickle=True"),
    (without_classes, "classes.json is missing"),
    (classes_as_npy, "classes.json is missing"),
    (float_labels, "labels.npy holds float32, not integers"),
])
def test_q2_rejects_typical_mistakes(wrong, message):
    outcome = ex.q2.evaluate(wrong)
    assert outcome.status == INCORRECT and message in outcome.message, outcome


def test_solutions_pass():
    for q in (ex.q1, ex.q2):
        assert q.evaluate(q.solution_namespace()[q.answer_name]).status == CORRECT
