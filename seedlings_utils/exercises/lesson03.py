"""Lesson 03's exercises: an index from a CSV label table; an index saved without pickles."""

from __future__ import annotations

import csv
import json
import tempfile
from pathlib import Path

import numpy as np

from . import Exercise, Incorrect
from .loader_checks import held_by, noise_png, refuse_if_all_held

#: The check's label table: (file, species), in the order one copy of labels.csv lists them.
TABLE = (("c41.png", "Maize"), ("a07.png", "Maize"), ("f3e.png", "Charlock"), ("b19.png", "Common wheat"),
         ("d22.png", "Charlock"), ("e90.png", "Black-grass"), ("a51.png", "Common wheat"), ("c08.png", "Black-grass"),
         ("b77.png", "Maize"), ("f10.png", "Charlock"))
#: The order in which another copy of labels.csv lists the same rows (sorted by another column, say).
OTHER_ORDER = (5, 3, 2, 0, 9, 7, 1, 6, 4, 8)
NOT_IN_MEMORY = "The index needs each image's name and label, read from the table: leave the pixels on disk."


def _write_table(folder: Path, order) -> Path:
    path = folder / "labels.csv"
    folder.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "species"])
        writer.writerows(TABLE[i] for i in order)
    return path


def _index_of(index_from_csv, path: Path, order) -> tuple[np.ndarray, np.ndarray, list[str]]:
    result = index_from_csv(path)
    if not isinstance(result, tuple) or len(result) != 3:
        raise Incorrect(f"index_from_csv returned {type(result).__name__}; return three things: (filenames, labels, "
                        "classes)")
    filenames, labels, classes = np.asarray(result[0]), np.asarray(result[1]), list(result[2])
    rows = [TABLE[i] for i in order]
    if filenames.dtype.kind == "O":
        raise Incorrect("filenames is an array of Python objects (dtype=object): np.save would pickle it, and "
                        "np.load would refuse it. Make it text: np.array(names, dtype=str)")
    if filenames.tolist() != [file for file, _ in rows]:
        raise Incorrect(f"filenames should be the table's files in its own order, {[f for f, _ in rows][:4]} ...; "
                        f"got {filenames.tolist()[:4]} ... (parallel arrays: keep the rows' order)")
    want_classes = sorted({species for _, species in TABLE})
    if labels.ndim == 2 and labels.shape == (len(rows), len(want_classes)):
        raise Incorrect(f"labels have shape {labels.shape}: that is one-hot. Return one integer per image, shape "
                        f"({len(rows)},): sparse_categorical_crossentropy takes the integer directly")
    if labels.shape != (len(rows),):
        raise Incorrect(f"labels have shape {labels.shape}; one label per image means shape ({len(rows)},)")
    if labels.dtype.kind not in "iu":
        raise Incorrect(f"labels are {labels.dtype} ({labels[:2].tolist()} ...), not integers: a label is the "
                        "position of the image's species in classes")
    if classes != want_classes:
        if classes == list(dict.fromkeys(species for _, species in rows)):
            raise Incorrect(f"classes are {classes}: the order in which the table first names each species. Another "
                            "copy of the table, in another row order, would number them differently. Sort the "
                            f"species: {want_classes}")
        raise Incorrect(f"classes should be the distinct species, sorted: {want_classes}; got {classes}")
    for i, ((file, species), label) in enumerate(zip(rows, labels.tolist(), strict=True)):
        if not 0 <= label < len(classes) or classes[label] != species:
            shown = repr(classes[label]) if 0 <= label < len(classes) else "out of range"
            raise Incorrect(f"row {i}, {file}, is {species!r} but its label {label} means {shown} in classes "
                            f"{classes}: a label must be the species' position in classes (labels whose numbering "
                            "follows the order rows were read in change with that order)")
    return filenames, labels, classes


def _check_index_from_csv(index_from_csv) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        image_bytes = max(noise_png(folder / file, seed=k) for k, (file, _) in enumerate(TABLE))
        here = _write_table(folder / "here", range(len(TABLE)))
        there = _write_table(folder / "there", OTHER_ORDER)
        warm = _write_table(folder / "warm", range(len(TABLE)))
        for file, _ in TABLE:  # each copy of the table sits next to its images (other paths: nothing kept applies)
            for copy in ("here", "there", "warm"):
                (folder / copy / file).hardlink_to(folder / file)
        _index_of(index_from_csv, warm, range(len(TABLE)))  # a first run: imports and the like are not counted
        held, results = held_by(lambda: index_from_csv(here), lambda: index_from_csv(there))
        refuse_if_all_held(held, len(TABLE), image_bytes, NOT_IN_MEMORY)
        _, labels_here, classes = _index_of(lambda _: results[0], here, range(len(TABLE)))
        _, labels_there, _ = _index_of(lambda _: results[1], there, OTHER_ORDER)
    number = dict(zip((f for f, _ in TABLE), labels_here.tolist(), strict=True))
    for (file, species), label in zip((TABLE[i] for i in OTHER_ORDER), labels_there.tolist(), strict=True):
        if number[file] != label:
            raise Incorrect(f"{species!r} got label {number[file]} from one copy of the table and {label} from the "
                            "same rows in another order: labels must not depend on the order rows are read in")
    return f"classes {classes}; each species keeps its number whatever order the table lists its rows in."


q1 = Exercise(
    name="q1",
    task="Write index_from_csv(csv_path) -> (filenames, labels, classes) from a table with columns file, species.",
    checker=_check_index_from_csv,
    hint_text=("`csv.DictReader(open(csv_path, newline=''))` gives one dict per row: `row['file']`, "
               "`row['species']`. Then the lesson's recipe: `classes = sorted(set(species))`, each label the "
               "position of its species in classes, `np.array(files, dtype=str)` and `np.array(labels, "
               "dtype=np.int64)`. The images themselves are never opened."),
    solution_code='''
import csv

import numpy as np


def index_from_csv(csv_path):
    with open(csv_path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    classes = sorted({row["species"] for row in rows})
    class_id = {name: i for i, name in enumerate(classes)}
    filenames = np.array([row["file"] for row in rows], dtype=str)
    labels = np.array([class_id[row["species"]] for row in rows], dtype=np.int64)
    return filenames, labels, classes
''',
    answer_name="index_from_csv",
)


def _check_save(save_my_index) -> str:
    filenames = np.array(["Maize__a.png", "Charlock__b.png", "Small-flowered_Cranesbill__c.png"], dtype=object)
    labels = [2, 0, 1]  # a plain Python list
    classes = ["Charlock", "Maize", "Small-flowered Cranesbill"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        save_my_index(folder, filenames.copy(), list(labels), list(classes))
        for name in ("filenames.npy", "labels.npy", "classes.json"):
            if not (folder / name).is_file():
                written = sorted(p.name for p in folder.iterdir())
                why = " (nothing else says which number is which species)" if name == "classes.json" else ""
                raise Incorrect(f"{name} is missing from data_dir{why}; it holds {written}")
        try:
            names = np.load(folder / "filenames.npy")
        except ValueError as err:
            raise Incorrect(f"np.load cannot read filenames.npy without allow_pickle=True ({err}): it holds an array "
                            "of Python objects, which np.save pickles. Save np.asarray(filenames, dtype=str)") from None
        if names.dtype.kind != "U":
            raise Incorrect(f"filenames.npy holds {names.dtype}, not text: save np.asarray(filenames, dtype=str)")
        if names.tolist() != filenames.tolist():
            raise Incorrect(f"filenames.npy reads back as {names.tolist()}, not {filenames.tolist()}")
        try:
            saved_labels = np.load(folder / "labels.npy")
        except ValueError as err:
            raise Incorrect(f"np.load cannot read labels.npy without allow_pickle=True ({err})") from None
        if saved_labels.dtype.kind not in "iu":
            raise Incorrect(f"labels.npy holds {saved_labels.dtype}, not integers: save np.asarray(labels, "
                            "dtype=np.int64)")
        if saved_labels.tolist() != labels:
            raise Incorrect(f"labels.npy reads back as {saved_labels.tolist()}, not {labels}")
        try:
            saved_classes = json.loads((folder / "classes.json").read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise Incorrect(f"classes.json is not JSON ({err}): write json.dumps(list(classes))") from None
        if saved_classes != classes:
            raise Incorrect(f"classes.json holds {saved_classes!r}, not the list {classes}")
    return "names as text, labels as integers, classes as JSON: all read back without pickle."


q2 = Exercise(
    name="q2",
    task="Write save_my_index(data_dir, filenames, labels, classes) so that np.load reads it without pickle.",
    checker=_check_save,
    hint_text=("np.save pickles an array of Python objects (dtype=object), and np.load then refuses it. Convert "
               "first: `np.asarray(filenames, dtype=str)` and `np.asarray(labels, dtype=np.int64)`; write the "
               "classes with `json.dumps(list(classes))`. Join the folder and the file name with `Path(data_dir) / "
               "'filenames.npy'`."),
    solution_code='''
import json
from pathlib import Path

import numpy as np


def save_my_index(data_dir, filenames, labels, classes):
    data_dir = Path(data_dir)
    np.save(data_dir / "filenames.npy", np.asarray(filenames, dtype=str))
    np.save(data_dir / "labels.npy", np.asarray(labels, dtype=np.int64))
    (data_dir / "classes.json").write_text(json.dumps(list(classes)))
''',
    answer_name="save_my_index",
)
