"""Lesson 03's exercises reject the typical wrong answers, each with its own diagnosis."""

import csv
import functools
import json
from pathlib import Path

import numpy as np
import pytest

from seedlings_utils.exercises import CORRECT, INCORRECT
from seedlings_utils.exercises import lesson03 as ex

from .helpers import WrongAnswers, rejected

WRONG = WrongAnswers()


def read_rows(csv_path):
    with open(csv_path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@WRONG(ex.q1, "the order in which the table first names each species")
def counter_2019(csv_path):  # a new number at each species met, in the order the rows are read
    rows, classes, labels = read_rows(csv_path), [], []
    for row in rows:
        if row["species"] not in classes:
            classes.append(row["species"])
        labels.append(classes.index(row["species"]))
    return np.array([r["file"] for r in rows]), np.array(labels), classes


@WRONG(ex.q1, "labels whose numbering follows the order rows were read in")
def sorted_classes_but_counter_labels(csv_path):
    filenames, labels, classes = counter_2019(csv_path)
    return filenames, labels, sorted(classes)


@WRONG(ex.q1, "the order in which the table first names each species")
def np_unique_labels_but_first_seen_classes(csv_path):  # right labels, classes listed as met
    rows = read_rows(csv_path)
    _, labels = np.unique([r["species"] for r in rows], return_inverse=True)
    return np.array([r["file"] for r in rows]), labels, list(dict.fromkeys(r["species"] for r in rows))


@WRONG(ex.q1, "that is one-hot")
def one_hot(csv_path):
    rows = read_rows(csv_path)
    classes = sorted({r["species"] for r in rows})
    return np.array([r["file"] for r in rows]), np.eye(len(classes))[[classes.index(r["species"]) for r in rows]], \
        classes


@WRONG(ex.q1, "not integers")
def names_as_labels(csv_path):
    rows = read_rows(csv_path)
    return np.array([r["file"] for r in rows]), np.array([r["species"] for r in rows]), \
        sorted({r["species"] for r in rows})


@WRONG(ex.q1, "dtype=object")
def object_filenames(csv_path):  # what a pandas column gives
    rows = read_rows(csv_path)
    classes = sorted({r["species"] for r in rows})
    return np.array([r["file"] for r in rows], dtype=object), np.array([classes.index(r["species"]) for r in rows]), \
        classes


@WRONG(ex.q1, "keep the rows' order")
def sorted_filenames(csv_path):  # labels in row order, names sorted: the parallel arrays no longer match
    rows = read_rows(csv_path)
    classes = sorted({r["species"] for r in rows})
    return np.array(sorted(r["file"] for r in rows)), np.array([classes.index(r["species"]) for r in rows]), classes


@WRONG(ex.q1, "return three things")
def only_two(csv_path):
    filenames, labels, _ = ex.q1.solution_namespace()["index_from_csv"](csv_path)
    return filenames, labels


@WRONG(ex.q1, "that is the data set in memory")
def loads_every_image(csv_path):  # the 2019 recipe's habit: the pixels of all the images in one array
    from PIL import Image

    rows = read_rows(csv_path)
    pixels = np.stack([np.asarray(Image.open(Path(csv_path).parent / r["file"]).convert("RGB")) for r in rows])
    assert len(pixels) == len(rows)
    return ex.q1.solution_namespace()["index_from_csv"](csv_path)


@WRONG(ex.q1, "decoded images at once")
def keeps_every_image_open(csv_path):
    from PIL import Image

    rows = read_rows(csv_path)
    images = [Image.open(Path(csv_path).parent / r["file"]).convert("RGB") for r in rows]
    assert all(image.size == (200, 200) for image in images)
    return ex.q1.solution_namespace()["index_from_csv"](csv_path)


@functools.cache
def _pixels(path):
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


@WRONG(ex.q1, "that is the data set in memory")
def caches_every_image(csv_path):  # an lru_cache of pixels "for later": every image stays in memory
    rows = read_rows(csv_path)
    assert all(_pixels(str(Path(csv_path).parent / r["file"])).shape == (200, 200, 3) for r in rows)
    return ex.q1.solution_namespace()["index_from_csv"](csv_path)


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


@WRONG(ex.q2, "np.load cannot read filenames.npy without allow_pickle=True")
def save_as_is(data_dir, filenames, labels, classes):  # the object array gets pickled
    np.save(Path(data_dir) / "filenames.npy", filenames)
    np.save(Path(data_dir) / "labels.npy", np.array(labels))
    (Path(data_dir) / "classes.json").write_text(json.dumps(classes))


@WRONG(ex.q2, "classes.json is missing")
def without_classes(data_dir, filenames, labels, classes):
    np.save(Path(data_dir) / "filenames.npy", np.asarray(filenames, dtype=str))
    np.save(Path(data_dir) / "labels.npy", np.asarray(labels))


@WRONG(ex.q2, "labels.npy holds float32, not integers")
def float_labels(data_dir, filenames, labels, classes):
    np.save(Path(data_dir) / "filenames.npy", np.asarray(filenames, dtype=str))
    np.save(Path(data_dir) / "labels.npy", np.asarray(labels, dtype=np.float32))
    (Path(data_dir) / "classes.json").write_text(json.dumps(classes))


@WRONG(ex.q2, "classes.json is missing")
def classes_as_npy(data_dir, filenames, labels, classes):
    np.save(Path(data_dir) / "filenames.npy", np.asarray(filenames, dtype=str))
    np.save(Path(data_dir) / "labels.npy", np.asarray(labels))
    np.save(Path(data_dir) / "classes.npy", np.asarray(classes))


@pytest.mark.parametrize("q, answer, phrases", WRONG.cases)
def test_typical_mistakes_are_rejected(q, answer, phrases):
    rejected(q, answer, *phrases)
