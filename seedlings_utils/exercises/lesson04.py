"""Lesson 04's exercises: train, validation and test, each stratified and seeded; a split that keeps each plant on
one side."""

from __future__ import annotations

import numpy as np

from . import Exercise, Incorrect

SPECIES = ("Black-grass", "Charlock", "Maize")
SIZES = (60, 40, 20)  # unequal on purpose: a plain split often misses the small species' share


def _stratify_data() -> tuple[np.ndarray, np.ndarray]:
    labels = np.repeat(np.arange(len(SIZES)), SIZES)
    counters = [0] * len(SIZES)
    names = []
    for label in labels:
        names.append(f"{SPECIES[label].replace(' ', '_')}__{counters[label]:03d}.png")
        counters[label] += 1
    return np.array(names), labels


def _plant_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """16 plants of 3 species, 1 to 3 photos each."""
    names, labels, plants = [], [], []
    for p in range(16):
        label = p % len(SPECIES)
        for letter in "abc"[: 1 + (p * 7) % 3]:
            names.append(f"{SPECIES[label]}__plant{p:02d}_{letter}.png")
            labels.append(label)
            plants.append(f"plant{p:02d}")
    return np.array(names), np.array(labels), np.array(plants)


def _four(result, filenames: np.ndarray, labels: np.ndarray, name: str) -> tuple[np.ndarray, ...]:
    """Check the shape of a split's result: four arrays, train_test_split's order, nothing lost, pairs kept."""
    if not isinstance(result, (tuple, list)) or len(result) != 4:
        got = f"{len(result)} things" if isinstance(result, (tuple, list)) else type(result).__name__
        raise Incorrect(f"{name} returned {got}; return four arrays: X_train, X_val, y_train, y_val")
    x_train, x_val, y_train, y_val = (np.asarray(a) for a in result)
    kinds = ["text" if a.dtype.kind in "UO" else "numbers" for a in (x_train, x_val, y_train, y_val)]
    if kinds == ["text", "numbers", "text", "numbers"]:
        raise Incorrect("the second array holds labels and the third file names: that is (X_train, y_train, X_val, "
                        "y_val). Return train_test_split's order: X_train, X_val, y_train, y_val")
    if kinds != ["text", "text", "numbers", "numbers"]:
        raise Incorrect(f"the four arrays hold {kinds}; expected file names, file names, labels, labels "
                        "(X_train, X_val, y_train, y_val)")
    if len(x_train) != len(y_train) or len(x_val) != len(y_val):
        raise Incorrect(f"X_train has {len(x_train)} names but y_train {len(y_train)} labels; X_val {len(x_val)}, "
                        f"y_val {len(y_val)}: one label per name")
    both = sorted(set(x_train.tolist()) & set(x_val.tolist()))
    if both:
        raise Incorrect(f"{len(both)} images are in both sets, e.g. {both[0]!r}: validation must be images the model "
                        "never trained on")
    everything = sorted(np.concatenate([x_train, x_val]).tolist())
    if everything != sorted(filenames.tolist()):
        lost = sorted(set(filenames.tolist()) - set(everything))
        raise Incorrect(f"the two sets hold {len(everything)} names for {len(filenames)} images; lost {lost[:3]}")
    label_of = dict(zip(filenames.tolist(), labels.tolist(), strict=True))
    for part, xs, ys in (("train", x_train, y_train), ("val", x_val, y_val)):
        for i, (x, y) in enumerate(zip(xs.tolist(), ys.tolist(), strict=True)):
            if label_of[x] != y:
                raise Incorrect(f"X_{part}[{i}] is {x!r} (label {label_of[x]}) but y_{part}[{i}] is {y}: names and "
                                "labels were shuffled apart. Shuffle and split them together, in one call")
    return x_train, x_val, y_train, y_val


def _same(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> bool:
    return a[1].tolist() == b[1].tolist() and a[0].tolist() == b[0].tolist()


def _check_reproducible(split, args: tuple, data: tuple, name: str) -> None:
    first = _four(split(*args, 3), *data, name)
    again = _four(split(*args, 3), *data, name)
    if not _same(first, again):
        raise Incorrect("two calls with seed 3 gave different splits: pass random_state=seed, so that the split is "
                        "the same on every run")
    other = _four(split(*args, 4), *data, name)
    if _same(first, other):
        raise Incorrect("seeds 3 and 4 gave the same split: the seed is ignored (a fixed random_state=1 left from "
                        "2019?). Pass random_state=seed")


def _six(result, filenames: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, ...]:
    """Check a three-way split's result: six arrays, disjoint, nothing lost, each name with its own label."""
    if not isinstance(result, (tuple, list)) or len(result) != 6:
        got = f"{len(result)} things" if isinstance(result, (tuple, list)) else type(result).__name__
        raise Incorrect(f"three_way_split returned {got}; return six arrays: X_train, X_val, X_test, y_train, y_val, "
                        "y_test")
    arrays = tuple(np.asarray(a) for a in result)
    kinds = ["text" if a.dtype.kind in "UO" else "numbers" for a in arrays]
    if kinds != ["text"] * 3 + ["numbers"] * 3:
        raise Incorrect(f"the six arrays hold {kinds}; expected three of file names, then three of labels "
                        "(X_train, X_val, X_test, y_train, y_val, y_test)")
    parts = dict(zip(("train", "val", "test"), zip(arrays[:3], arrays[3:], strict=True), strict=True))
    for part, (xs, ys) in parts.items():
        if len(xs) != len(ys):
            raise Incorrect(f"X_{part} has {len(xs)} names but y_{part} {len(ys)} labels: one label per name")
    for one, two in (("train", "val"), ("train", "test"), ("val", "test")):
        both = sorted(set(parts[one][0].tolist()) & set(parts[two][0].tolist()))
        if both:
            raise Incorrect(f"{len(both)} images are in both {one} and {two}, e.g. {both[0]!r}: the three sets must "
                            "not share an image. Cut what is left after the first split, not the whole index again")
    everything = sorted(np.concatenate(arrays[:3]).tolist())
    if everything != sorted(filenames.tolist()):
        lost = sorted(set(filenames.tolist()) - set(everything))
        raise Incorrect(f"the three sets hold {len(everything)} names for {len(filenames)} images; lost {lost[:3]}")
    label_of = dict(zip(filenames.tolist(), labels.tolist(), strict=True))
    for part, (xs, ys) in parts.items():
        for i, (x, y) in enumerate(zip(xs.tolist(), ys.tolist(), strict=True)):
            if label_of[x] != y:
                raise Incorrect(f"X_{part}[{i}] is {x!r} (label {label_of[x]}) but y_{part}[{i}] is {y}: names and "
                                "labels were shuffled apart. Split them together, in one call")
    return arrays


def _check_three_way(three_way_split) -> str:
    filenames, labels = _stratify_data()
    n = len(labels)
    for seed in range(6):
        arrays = _six(three_way_split(filenames.copy(), labels.copy(), 0.2, 0.2, seed), filenames, labels)
        for part, xs, ys in (("validation", arrays[1], arrays[4]), ("test", arrays[2], arrays[5])):
            if abs(len(xs) - 0.2 * n) > 1:
                hint = (" The second cut takes its share of what is left, not of all the images: "
                        "test_size=val_fraction / (1 - test_fraction)" if part == "validation" else "")
                raise Incorrect(f"{part} holds {len(xs)} of {n} images; a fraction of 0.2 means {0.2 * n:.0f}.{hint}")
            counts = np.bincount(ys, minlength=len(SIZES))
            for label, (size, got) in enumerate(zip(SIZES, counts.tolist(), strict=True)):
                expected = size * len(xs) / n
                if abs(got - expected) > 1.5:
                    raise Incorrect(f"not stratified: with seed {seed}, {SPECIES[label]!r} has {got} of its {size} "
                                    f"images in {part}, {expected:.0f} expected ({len(xs) / n:.0%} of each species). "
                                    "Pass stratify= the labels of the images being cut, in both calls")
    first = _six(three_way_split(filenames, labels, 0.2, 0.2, 3), filenames, labels)
    again = _six(three_way_split(filenames, labels, 0.2, 0.2, 3), filenames, labels)
    if any(a.tolist() != b.tolist() for a, b in zip(first[:3], again[:3], strict=True)):
        raise Incorrect("two calls with seed 3 gave different splits (an unseeded split): pass random_state=seed to "
                        "both calls, so that the split is the same on every run")
    other = _six(three_way_split(filenames, labels, 0.2, 0.2, 4), filenames, labels)
    if first[2].tolist() == other[2].tolist() or first[1].tolist() == other[1].tolist():
        raise Incorrect("seeds 3 and 4 gave the same test or validation set: a seed is ignored (a fixed "
                        "random_state left in?). Pass random_state=seed to both calls")
    return (f"{n} images: {len(first[0])} train, {len(first[1])} validation, {len(first[2])} test, each species in its "
            "share in all three, and the seed decides.")


q1 = Exercise(
    name="q1",
    task=("Write three_way_split(filenames, labels, val_fraction, test_fraction, seed): train, validation and test, "
          "each stratified, reproducible."),
    checker=_check_three_way,
    hint_text=("Two cuts. First `train_test_split(filenames, labels, test_size=test_fraction, stratify=labels, "
               "random_state=seed)` sets the test images aside. Then cut what is left the same way, with "
               "`stratify=` ITS labels and `test_size=val_fraction / (1 - test_fraction)`: a share of what is left, "
               "so that validation is val_fraction of all the images."),
    solution_code='''
from sklearn.model_selection import train_test_split


def three_way_split(filenames, labels, val_fraction, test_fraction, seed):
    X_rest, X_test, y_rest, y_test = train_test_split(
        filenames, labels, test_size=test_fraction, stratify=labels, random_state=seed)
    X_train, X_val, y_train, y_val = train_test_split(
        X_rest, y_rest, test_size=val_fraction / (1 - test_fraction), stratify=y_rest, random_state=seed)
    return X_train, X_val, X_test, y_train, y_val, y_test
''',
    answer_name="three_way_split",
)


def _check_plants(split_by_plant) -> str:
    filenames, labels, plants = _plant_data()
    n_plants = len(set(plants.tolist()))
    plant_of = dict(zip(filenames.tolist(), plants.tolist(), strict=True))
    for seed in range(4):
        x_train, x_val, _, _ = _four(split_by_plant(filenames.copy(), labels.copy(), plants.copy(), 0.25, seed),
                                     filenames, labels, "split_by_plant")
        train_plants = {plant_of[x] for x in x_train.tolist()}
        for x in x_val.tolist():
            if plant_of[x] in train_plants:
                seen = next(t for t in x_train.tolist() if plant_of[t] == plant_of[x])
                raise Incorrect(f"with seed {seed}, {plant_of[x]} has photos in both sets ({seen!r} in training, "
                                f"{x!r} in validation): a plant must not leak across the split, or the model is "
                                "measured on a plant it has seen. Split the plants, not the photos (groups=plants)")
        val_plants = {plant_of[x] for x in x_val.tolist()}
        if abs(len(val_plants) - 0.25 * n_plants) > 1:
            raise Incorrect(f"with seed {seed}, validation holds {len(val_plants)} of {n_plants} plants; "
                            f"val_fraction=0.25 means about {0.25 * n_plants:.0f} (test_size=val_fraction)")
    _check_reproducible(split_by_plant, (filenames, labels, plants, 0.25), (filenames, labels), "split_by_plant")
    return f"every plant on one side, about a quarter of the {n_plants} plants in validation, and the seed decides."


q2 = Exercise(
    name="q2",
    task="Write split_by_plant(filenames, labels, plants, val_fraction, seed): all photos of a plant on one side.",
    checker=_check_plants,
    hint_text=("`GroupShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed)` splits the groups "
               "(here, plants), not the rows: `train, val = next(splitter.split(filenames, labels, groups=plants))` "
               "gives two arrays of positions. Index with them: `filenames[train]`, `filenames[val]`, ... "
               "(turn the inputs into arrays with np.asarray first). To stratify by species as well, "
               "scikit-learn has StratifiedGroupKFold."),
    solution_code='''
import numpy as np
from sklearn.model_selection import GroupShuffleSplit


def split_by_plant(filenames, labels, plants, val_fraction, seed):
    filenames, labels = np.asarray(filenames), np.asarray(labels)
    splitter = GroupShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed)
    train, val = next(splitter.split(filenames, labels, groups=plants))
    return filenames[train], filenames[val], labels[train], labels[val]
''',
    answer_name="split_by_plant",
)
