"""Lesson 03's exercises reject the typical wrong answers, each with its own diagnosis."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from seedlings_utils.exercises import CORRECT, INCORRECT
from seedlings_utils.exercises import lesson03 as ex


def read_rows(csv_path):
    with open(csv_path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def counter_2019(csv_path):  # a new number at each species met, in the order the rows are read
    rows, classes, labels = read_rows(csv_path), [], []
    for row in rows:
        if row["species"] not in classes:
            classes.append(row["species"])
        labels.append(classes.index(row["species"]))
    return np.array([r["file"] for r in rows]), np.array(labels), classes


def sorted_classes_but_counter_labels(csv_path):
    filenames, labels, classes = counter_2019(csv_path)
    return filenames, labels, sorted(classes)


def np_unique_labels_but_first_seen_classes(csv_path):  # right labels, classes listed as met
    rows = read_rows(csv_path)
    _, labels = np.unique([r["species"] for r in rows], return_inverse=True)
    return np.array([r["file"] for r in rows]), labels, list(dict.fromkeys(r["species"] for r in rows))


def one_hot(csv_path):
    rows = read_rows(csv_path)
    classes = sorted({r["species"] for r in rows})
    return np.array([r["file"] for r in rows]), np.eye(len(classes))[[classes.index(r["species"]) for r in rows]], \
        classes


def names_as_labels(csv_path):
    rows = read_rows(csv_path)
    return np.array([r["file"] for r in rows]), np.array([r["species"] for r in rows]), \
        sorted({r["species"] for r in rows})


def object_filenames(csv_path):  # what a pandas column gives
    rows = read_rows(csv_path)
    classes = sorted({r["species"] for r in rows})
    return np.array([r["file"] for r in rows], dtype=object), np.array([classes.index(r["species"]) for r in rows]), \
        classes


def sorted_filenames(csv_path):  # labels in row order, names sorted: the parallel arrays no longer match
    rows = read_rows(csv_path)
    classes = sorted({r["species"] for r in rows})
    return np.array(sorted(r["file"] for r in rows)), np.array([classes.index(r["species"]) for r in rows]), classes


def only_two(csv_path):
    filenames, labels, _ = ex.q1.solution_namespace()["index_from_csv"](csv_path)
    return filenames, labels


def loads_every_image(csv_path):  # the 2019 recipe's habit: the pixels of all the images in one array
    from PIL import Image

    rows = read_rows(csv_path)
    pixels = np.stack([np.asarray(Image.open(Path(csv_path).parent / r["file"]).convert("RGB")) for r in rows])
    assert len(pixels) == len(rows)
    return ex.q1.solution_namespace()["index_from_csv"](csv_path)


def keeps_every_image_open(csv_path):
    from PIL import Image

    rows = read_rows(csv_path)
    images = [Image.open(Path(csv_path).parent / r["file"]).convert("RGB") for r in rows]
    assert all(image.size == (200, 200) for image in images)
    return ex.q1.solution_namespace()["index_from_csv"](csv_path)


@pytest.mark.parametrize(("wrong", "message"), [
    (counter_2019, "the order in which the table first names each species"),
    (sorted_classes_but_counter_labels, "labels whose numbering follows the order rows were read in"),
    (np_unique_labels_but_first_seen_classes, "the order in which the table first names each species"),
    (one_hot, "that is one-hot"),
    (names_as_labels, "not integers"),
    (object_filenames, "dtype=object"),
    (sorted_filenames, "keep the rows' order"),
    (only_two, "return three things"),
    (loads_every_image, "that is the data set in memory"),
    (keeps_every_image_open, "decoded images at once"),
])
def test_q1_rejects_typical_mistakes(wrong, message):
    outcome = ex.q1.evaluate(wrong)
    assert outcome.status == INCORRECT and message in outcome.message, outcome


def test_q1_rejects_labels_that_change_with_the_order():
    calls = []

    def changes_on_a_later_call(csv_path):  # right once, then every label shifted by one
        calls.append(csv_path)
        filenames, labels, classes = ex.q1.solution_namespace()["index_from_csv"](csv_path)
        return filenames, (labels if Path(csv_path).parent.name == "here" else (labels + 1) % len(classes)), classes

    outcome = ex.q1.evaluate(changes_on_a_later_call)
    assert outcome.status == INCORRECT and "a label must be the species' position in classes" in outcome.message


def test_q1_accepts_np_unique_and_opening_one_image_at_a_time():
    def with_np_unique(csv_path):
        from PIL import Image

        rows = read_rows(csv_path)
        for row in rows:  # checking each image, one at a time, is fine
            with Image.open(Path(csv_path).parent / row["file"]) as image:
                image.verify()
        classes, labels = np.unique([r["species"] for r in rows], return_inverse=True)
        return np.array([r["file"] for r in rows]), labels, classes.tolist()

    assert ex.q1.evaluate(with_np_unique).status == CORRECT


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
