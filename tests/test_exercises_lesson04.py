"""Lesson 04's exercises reject the typical wrong answers, each with its own diagnosis."""


import pytest
from sklearn.model_selection import GroupShuffleSplit, train_test_split
from sklearn.utils import shuffle

from seedlings_utils.exercises import CORRECT, INCORRECT
from seedlings_utils.exercises import lesson04 as ex


def cut(filenames, labels, fraction, seed, stratify=True):
    return train_test_split(filenames, labels, test_size=fraction, random_state=seed,
                            stratify=labels if stratify else None)


def six(first, second):
    (_, x_test, _, y_test), (x_train, x_val, y_train, y_val) = first, second
    return x_train, x_val, x_test, y_train, y_val, y_test


def the_2019_call_twice(filenames, labels, val_fraction, test_fraction, seed):  # unstratified, random_state=1
    first = train_test_split(filenames, labels, test_size=test_fraction, random_state=1)
    return six(first, train_test_split(first[0], first[2], test_size=val_fraction / (1 - test_fraction),
                                       random_state=1))


def unstratified(filenames, labels, val_fraction, test_fraction, seed):
    first = cut(filenames, labels, test_fraction, seed, stratify=False)
    return six(first, cut(first[0], first[2], val_fraction / (1 - test_fraction), seed, stratify=False))


def second_cut_unstratified(filenames, labels, val_fraction, test_fraction, seed):
    first = cut(filenames, labels, test_fraction, seed)
    return six(first, cut(first[0], first[2], val_fraction / (1 - test_fraction), seed, stratify=False))


def val_fraction_of_what_is_left(filenames, labels, val_fraction, test_fraction, seed):
    first = cut(filenames, labels, test_fraction, seed)
    return six(first, cut(first[0], first[2], val_fraction, seed))


def no_seed(filenames, labels, val_fraction, test_fraction, seed):
    first = cut(filenames, labels, test_fraction, None)
    return six(first, cut(first[0], first[2], val_fraction / (1 - test_fraction), None))


def seed_left_at_1(filenames, labels, val_fraction, test_fraction, seed):
    first = cut(filenames, labels, test_fraction, 1)
    return six(first, cut(first[0], first[2], val_fraction / (1 - test_fraction), 1))


def the_whole_index_cut_twice(filenames, labels, val_fraction, test_fraction, seed):  # validation and test overlap
    return six(cut(filenames, labels, test_fraction, seed), cut(filenames, labels, val_fraction, seed + 1))


def names_shuffled_alone(filenames, labels, val_fraction, test_fraction, seed):
    first = cut(shuffle(filenames, random_state=seed), labels, test_fraction, seed)
    return six(first, cut(first[0], first[2], val_fraction / (1 - test_fraction), seed))


def the_four_of_train_test_split(filenames, labels, val_fraction, test_fraction, seed):
    return cut(filenames, labels, test_fraction, seed)


def labels_first(filenames, labels, val_fraction, test_fraction, seed):
    x_train, x_val, x_test, y_train, y_val, y_test = three_way(filenames, labels, val_fraction, test_fraction, seed)
    return y_train, y_val, y_test, x_train, x_val, x_test


def three_way(filenames, labels, val_fraction, test_fraction, seed):
    return ex.q1.solution_namespace()["three_way_split"](filenames, labels, val_fraction, test_fraction, seed)


@pytest.mark.parametrize(("wrong", "message"), [
    (the_2019_call_twice, "not stratified: with seed 0"),
    (unstratified, "Pass stratify= the labels of the images being cut"),
    (second_cut_unstratified, "not stratified"),
    (val_fraction_of_what_is_left, "validation holds 20 of 120 images"),
    (no_seed, "gave different splits (an unseeded split)"),
    (seed_left_at_1, "a seed is ignored"),
    (the_whole_index_cut_twice, "the three sets must not share an image"),
    (names_shuffled_alone, "names and labels were shuffled apart"),
    (the_four_of_train_test_split, "returned 4 things"),
    (labels_first, "expected three of file names, then three of labels"),
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
    (split_per_photo, "a plant must not leak across the split"),
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

    def via_lists(filenames, labels, val_fraction, test_fraction, seed):
        result = three_way(list(filenames), list(labels), val_fraction, test_fraction, seed)
        return tuple(list(a) for a in result)

    assert ex.q1.evaluate(via_lists).status == CORRECT
