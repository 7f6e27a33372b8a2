"""Lesson 02's exercises reject the typical wrong answers, each with its own diagnosis."""

import json
import os
import shutil
import uuid
from pathlib import Path

import pytest

from seedlings_utils.exercises import CORRECT, INCORRECT, NOT_ATTEMPTED
from seedlings_utils.exercises import lesson02 as ex
from seedlings_utils.flatten import copy_into_one_folder, unique_name

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "02_flatten_into_one_folder.ipynb"


def notebook_starter(q):
    """The learner's untouched cell for ``q``, run (its check prints "Not attempted yet"): the answer it defines."""
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    source = next("".join(c["source"]) for c in cells if c["cell_type"] == "code" and f"ex.{q.name}.check(" in
                  "".join(c["source"]))
    namespace = {"ex": ex}
    exec(source, namespace)
    return namespace[q.answer_name]


@pytest.mark.parametrize("q", [ex.q1, ex.q2], ids=["q1", "q2"])
def test_untouched_starter_is_not_attempted(q, capsys):
    assert q.evaluate(notebook_starter(q)).status == NOT_ATTEMPTED
    assert "Not attempted yet" in capsys.readouterr().out


def copy_bare_names(train_dir, out_dir):  # the 2019 loop
    os.makedirs(out_dir, exist_ok=True)
    for subdir, _, files in os.walk(train_dir):
        for file in files:
            shutil.copy(os.path.join(subdir, file), out_dir)


def species_from_parent_folder(train_dir, out_dir):  # unique names, but the species is the folder the file is in
    os.makedirs(out_dir, exist_ok=True)
    for subdir, _, files in os.walk(train_dir):
        for file in files:
            shutil.copy(os.path.join(subdir, file), Path(out_dir) / unique_name(Path(subdir).name, file))


def bare_file_inside_species(train_dir, out_dir):  # right species, but the sub-folder dropped from the name
    os.makedirs(out_dir, exist_ok=True)
    for subdir, _, files in os.walk(train_dir):
        for file in files:
            species = Path(subdir).relative_to(train_dir).parts[0]
            shutil.copy(os.path.join(subdir, file), Path(out_dir) / unique_name(species, file))


def moves_instead_of_copying(train_dir, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    for path in sorted(Path(train_dir).rglob("*.png")):
        relative = path.relative_to(train_dir)
        shutil.move(path, Path(out_dir) / unique_name(relative.parts[0], Path(*relative.parts[1:]).as_posix()))


def random_names(train_dir, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    for path in sorted(Path(train_dir).rglob("*.png")):
        shutil.copy(path, Path(out_dir) / f"{uuid.uuid4().hex}.png")


@pytest.mark.parametrize(("wrong", "message"), [
    (copy_bare_names, "lost. Two images were copied to the same name"),
    (species_from_parent_folder, "the species is the first folder under train_dir"),
    (bare_file_inside_species, "sub-folder in that path"),
    (moves_instead_of_copying, "don't move them"),
    (random_names, "start the name with its species"),
    (lambda train_dir, out_dir: None, "nothing was written to out_dir"),
])
def test_q1_rejects_typical_mistakes(wrong, message):
    outcome = ex.q1.evaluate(wrong)
    assert outcome.status == INCORRECT and message in outcome.message, outcome


def test_q1_reports_the_lost_images_by_name():
    outcome = ex.q1.evaluate(copy_bare_names)
    assert "5 images in, 2 files out" in outcome.message and "Maize/1.png" in outcome.message


def test_q1_notices_names_that_change_between_runs():
    def species_and_counter(train_dir, out_dir):  # right prefix, but a fresh number on every run
        os.makedirs(out_dir, exist_ok=True)
        start = len(os.listdir(out_dir))
        for k, path in enumerate(sorted(Path(train_dir).rglob("*.png"))):
            shutil.copy(path, Path(out_dir) / unique_name(path.relative_to(train_dir).parts[0], f"{start + k}.png"))

    outcome = ex.q1.evaluate(species_and_counter)
    assert outcome.status == INCORRECT and "expected 'Charlock__1.png'" in outcome.message


def test_q2_rejects_copies_symlinks_and_a_lost_clash_check():
    def copies(images, out_dir):
        return copy_into_one_folder(images, out_dir)

    def symlinks(images, out_dir):
        return copy_into_one_folder(images, out_dir, place=lambda src, dst: os.symlink(Path(src).resolve(), dst))

    def links_without_the_check(images, out_dir):
        os.makedirs(out_dir, exist_ok=True)
        names = [unique_name(species, file) for _, species, file in images]
        for (source, _, _), name in zip(images, names, strict=True):
            if not (Path(out_dir) / name).exists():
                os.link(source, Path(out_dir) / name)
        return names

    def returns_nothing(images, out_dir):
        copy_into_one_folder(images, out_dir, place=os.link)

    for wrong, message in [(copies, "is a copy"), (symlinks, "symbolic link"),
                           (links_without_the_check, "linked without a word"), (returns_nothing, "returned None")]:
        outcome = ex.q2.evaluate(wrong)
        assert outcome.status == INCORRECT and message in outcome.message, (wrong.__name__, outcome)


def test_solutions_pass():
    for q in (ex.q1, ex.q2):
        assert q.evaluate(q.solution_namespace()[q.answer_name]).status == CORRECT
