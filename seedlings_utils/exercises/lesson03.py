"""Lesson 03's exercises: labels that do not depend on the folder order; an index saved without pickles."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from . import Exercise, Incorrect

#: The species of six images as one machine's ``os.walk`` met them, and as another's did.
FOUND_HERE = ["Maize", "Maize", "Charlock", "Common wheat", "Charlock", "Black-grass"]
FOUND_THERE = ["Black-grass", "Common wheat", "Charlock", "Maize", "Charlock", "Maize"]


def _first_seen_order(species: list[str]) -> list[str]:
    return list(dict.fromkeys(species))


def _labels_of(make_labels, species: list[str]) -> tuple[np.ndarray, list[str]]:
    result = make_labels(list(species))
    if not isinstance(result, tuple) or len(result) != 2:
        raise Incorrect(f"make_labels returned {type(result).__name__}; return a pair: (labels, classes)")
    labels, classes = np.asarray(result[0]), list(result[1])
    if labels.ndim == 2 and labels.shape == (len(species), len(set(species))):
        raise Incorrect(f"labels have shape {labels.shape}: that is one-hot. Return one integer per image, shape "
                        f"({len(species)},): sparse_categorical_crossentropy takes the integer directly")
    if labels.shape != (len(species),):
        raise Incorrect(f"labels have shape {labels.shape}; one label per image means shape ({len(species)},)")
    if labels.dtype.kind not in "iu":
        raise Incorrect(f"labels are {labels.dtype} ({labels[:2].tolist()} ...), not integers: a label is the "
                        "position of the image's species in classes")
    return labels, classes


def _check_make_labels(make_labels) -> str:
    labels, classes = _labels_of(make_labels, FOUND_HERE)
    want = sorted(set(FOUND_HERE))
    if classes != want:
        if classes == _first_seen_order(FOUND_HERE):
            raise Incorrect(f"classes are {classes}: the order in which the species were first met (the 2019 "
                            f"counter over os.walk). Another machine walks the folders in another order and numbers "
                            f"them differently. Sort the species: {want}")
        raise Incorrect(f"classes should be the distinct species, sorted: {want}; got {classes}")
    for i, (species, label) in enumerate(zip(FOUND_HERE, labels.tolist(), strict=True)):
        if not 0 <= label < len(classes) or classes[label] != species:
            first_seen = {name: k for k, name in enumerate(_first_seen_order(FOUND_HERE))}
            if labels.tolist() == [first_seen[s] for s in FOUND_HERE]:
                raise Incorrect("classes are sorted, but the labels still count species in the order they were met "
                                f"(image {i}, {species!r}, got {label}): a label must be the species' position in "
                                "classes, e.g. classes.index(species)")
            shown = repr(classes[label]) if 0 <= label < len(classes) else "out of range"
            raise Incorrect(f"image {i} is {species!r} but its label {label} means {shown} in classes {classes}")
    there, _ = _labels_of(make_labels, FOUND_THERE)
    here_ids = dict(zip(FOUND_HERE, labels.tolist(), strict=True))
    for species, label in zip(FOUND_THERE, there.tolist(), strict=True):
        if here_ids[species] != label:
            raise Incorrect(f"{species!r} got label {here_ids[species]} with one folder order and {label} with "
                            "another: labels must not depend on the order the files are found in")
    return f"classes {classes}; each species keeps its number whatever order the folders are walked in."


q1 = Exercise(
    name="q1",
    task="Write make_labels(species) -> (labels, classes): sorted classes, integer labels, any input order.",
    checker=_check_make_labels,
    hint_text=("`classes = sorted(set(species))` fixes the numbering once and for all; then a dictionary "
               "`{name: i for i, name in enumerate(classes)}` gives each image its label. Return "
               "`np.array([...], dtype=np.int64), classes`."),
    solution_code='''
import numpy as np


def make_labels(species):
    classes = sorted(set(species))
    class_id = {name: i for i, name in enumerate(classes)}
    return np.array([class_id[s] for s in species], dtype=np.int64), classes
''',
    answer_name="make_labels",
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
