"""Lesson 04's exercises reject the typical wrong answers, each with its own diagnosis."""

import pytest
from sklearn.model_selection import GroupShuffleSplit, train_test_split
from sklearn.utils import shuffle

from seedlings_utils.exercises import CORRECT
from seedlings_utils.exercises import lesson04 as ex

from .helpers import WrongAnswers, rejected

WRONG = WrongAnswers()


def cut(filenames, labels, fraction, seed, stratify=True):
    return train_test_split(filenames, labels, test_size=fraction, random_state=seed,
                            stratify=labels if stratify else None)


def six(first, second):
    (_, x_test, _, y_test), (x_train, x_val, y_train, y_val) = first, second
    return x_train, x_val, x_test, y_train, y_val, y_test


@WRONG(ex.q1, "not stratified: with seed 0")
def the_2019_call_twice(filenames, labels, val_fraction, test_fraction, seed):  # unstratified, random_state=1
    first = train_test_split(filenames, labels, test_size=test_fraction, random_state=1)
    return six(first, train_test_split(first[0], first[2], test_size=val_fraction / (1 - test_fraction),
                                       random_state=1))


@WRONG(ex.q1, "Pass stratify= the labels of the images being cut")
def unstratified(filenames, labels, val_fraction, test_fraction, seed):
    first = cut(filenames, labels, test_fraction, seed, stratify=False)
    return six(first, cut(first[0], first[2], val_fraction / (1 - test_fraction), seed, stratify=False))


@WRONG(ex.q1, "not stratified")
def second_cut_unstratified(filenames, labels, val_fraction, test_fraction, seed):
    first = cut(filenames, labels, test_fraction, seed)
    return six(first, cut(first[0], first[2], val_fraction / (1 - test_fraction), seed, stratify=False))


@WRONG(ex.q1, "validation holds 20 of 120 images")
def val_fraction_of_what_is_left(filenames, labels, val_fraction, test_fraction, seed):
    first = cut(filenames, labels, test_fraction, seed)
    return six(first, cut(first[0], first[2], val_fraction, seed))


@WRONG(ex.q1, "gave different splits (an unseeded split)")
def no_seed(filenames, labels, val_fraction, test_fraction, seed):
    first = cut(filenames, labels, test_fraction, None)
    return six(first, cut(first[0], first[2], val_fraction / (1 - test_fraction), None))


@WRONG(ex.q1, "a seed is ignored")
def seed_left_at_1(filenames, labels, val_fraction, test_fraction, seed):
    first = cut(filenames, labels, test_fraction, 1)
    return six(first, cut(first[0], first[2], val_fraction / (1 - test_fraction), 1))


@WRONG(ex.q1, "the three sets must not share an image")
def the_whole_index_cut_twice(filenames, labels, val_fraction, test_fraction, seed):  # validation and test overlap
    return six(cut(filenames, labels, test_fraction, seed), cut(filenames, labels, val_fraction, seed + 1))


@WRONG(ex.q1, "names and labels were shuffled apart")
def names_shuffled_alone(filenames, labels, val_fraction, test_fraction, seed):
    first = cut(shuffle(filenames, random_state=seed), labels, test_fraction, seed)
    return six(first, cut(first[0], first[2], val_fraction / (1 - test_fraction), seed))


@WRONG(ex.q1, "returned 4 things")
def the_four_of_train_test_split(filenames, labels, val_fraction, test_fraction, seed):
    return cut(filenames, labels, test_fraction, seed)


@WRONG(ex.q1, "expected three of file names, then three of labels")
def labels_first(filenames, labels, val_fraction, test_fraction, seed):
    x_train, x_val, x_test, y_train, y_val, y_test = three_way(filenames, labels, val_fraction, test_fraction, seed)
    return y_train, y_val, y_test, x_train, x_val, x_test


def three_way(filenames, labels, val_fraction, test_fraction, seed):
    return ex.q1.solution_namespace()["three_way_split"](filenames, labels, val_fraction, test_fraction, seed)


@WRONG(ex.q2, "a plant must not leak across the split")
def split_per_photo(filenames, labels, plants, val_fraction, seed):
    return train_test_split(filenames, labels, test_size=val_fraction, stratify=labels, random_state=seed)


@WRONG(ex.q2, "groups")  # scikit-learn's own error, shown with the line that raised it
def groups_forgotten(filenames, labels, plants, val_fraction, seed):
    splitter = GroupShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed)
    train, val = next(splitter.split(filenames, labels))
    return filenames[train], filenames[val], labels[train], labels[val]


@WRONG(ex.q2, "validation holds 12 of 16 plants")
def val_fraction_of_train(filenames, labels, plants, val_fraction, seed):
    splitter = GroupShuffleSplit(n_splits=1, test_size=1 - val_fraction, random_state=seed)
    train, val = next(splitter.split(filenames, labels, groups=plants))
    return filenames[train], filenames[val], labels[train], labels[val]


@WRONG(ex.q2, "are in both sets")
def overlapping_sets(filenames, labels, plants, val_fraction, seed):
    splitter = GroupShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed)
    train, val = next(splitter.split(filenames, labels, groups=plants))
    return filenames, filenames[val], labels, labels[val]  # "train on everything"


def test_q1_accepts_lists():
    def via_lists(filenames, labels, val_fraction, test_fraction, seed):
        result = three_way(list(filenames), list(labels), val_fraction, test_fraction, seed)
        return tuple(list(a) for a in result)

    assert ex.q1.evaluate(via_lists).status == CORRECT


@pytest.mark.parametrize("q, answer, phrases", WRONG.cases)
def test_typical_mistakes_are_rejected(q, answer, phrases):
    rejected(q, answer, *phrases)
