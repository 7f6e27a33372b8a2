"""Lesson 02's exercises reject the typical wrong answers, each with its own diagnosis."""

import os
import shutil
import uuid
from pathlib import Path

import pytest

from seedlings_utils.exercises import CORRECT, INCORRECT
from seedlings_utils.exercises import lesson02 as ex
from seedlings_utils.flatten import copy_into_one_folder, unique_name


def files_of(root):
    for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
        yield path, path.relative_to(root).parts


def bare_names(root, out_dir):  # the 2019 loop: the second Maize/1.png replaces the first
    os.makedirs(out_dir, exist_ok=True)
    for path, _ in files_of(root):
        shutil.copy(path, out_dir)


def species_and_file_only(root, out_dir):  # lesson 02's name, but the field dropped: field_A and field_B clash
    os.makedirs(out_dir, exist_ok=True)
    for path, (_field, species, file) in files_of(root):
        shutil.copy(path, Path(out_dir) / unique_name(species, file))


def field_as_species(root, out_dir):  # lesson 02's rule "the first folder is the species", copied unchanged
    os.makedirs(out_dir, exist_ok=True)
    for path, (first, *rest) in files_of(root):
        shutil.copy(path, Path(out_dir) / unique_name(first, "/".join(rest)))


def moves(root, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    for path, (field, species, file) in files_of(root):
        shutil.move(path, Path(out_dir) / unique_name(species, f"{field}/{file}"))


def random_names(root, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    for path, _ in files_of(root):
        shutil.copy(path, Path(out_dir) / f"{uuid.uuid4().hex}.png")


def fresh_number_each_run(root, out_dir):  # species first, but a counter that goes on from what is there
    os.makedirs(out_dir, exist_ok=True)
    start = len(os.listdir(out_dir))
    for k, (path, (_, species, _)) in enumerate(files_of(root)):
        shutil.copy(path, Path(out_dir) / unique_name(species, f"{start + k}.png"))


def reads_every_file_first(root, out_dir):  # right names, but all the files' bytes in one list
    os.makedirs(out_dir, exist_ok=True)
    everything = [(parts, path.read_bytes()) for path, parts in files_of(root)]
    for (field, species, file), data in everything:
        (Path(out_dir) / unique_name(species, f"{field}/{file}")).write_bytes(data)


def decodes_every_image_first(root, out_dir):  # right names, but every image decoded into one list
    from PIL import Image

    os.makedirs(out_dir, exist_ok=True)
    everything = [(parts, Image.open(path).convert("RGB")) for path, parts in files_of(root)]
    for (field, species, file), image in everything:
        image.save(Path(out_dir) / unique_name(species, f"{field}/{file}"))


def stacks_every_image_first(root, out_dir):  # the 2019 recipe's habit: one NumPy array of all the pixels
    import numpy as np
    from PIL import Image

    os.makedirs(out_dir, exist_ok=True)
    found = list(files_of(root))
    pixels = np.stack([np.asarray(Image.open(path).convert("RGB")) for path, _ in found])
    for (_, (field, species, file)), image in zip(found, pixels, strict=True):
        Image.fromarray(image).save(Path(out_dir) / unique_name(species, f"{field}/{file}"))


_READ_CACHE: dict = {}


def caches_every_file_read(root, out_dir):  # a dict of every file's bytes "to avoid reading twice"
    os.makedirs(out_dir, exist_ok=True)
    for path, (field, species, file) in files_of(root):
        data = _READ_CACHE.setdefault((str(root), str(path)), Path(path).read_bytes())
        (Path(out_dir) / unique_name(species, f"{field}/{file}")).write_bytes(data)


@pytest.mark.parametrize(("wrong", "message"), [
    (bare_names, "the later copy silently replaced the earlier one (a name clash)"),
    (species_and_file_only, "'field_A/Maize/1.png'"),
    (field_as_species, "Here the species is the second folder"),
    (moves, "don't move them"),
    (random_names, "does not start with its species"),
    (fresh_number_each_run, "a second run gave other names"),
    (reads_every_file_first, "MB at once"),
    (decodes_every_image_first, "decoded images at once"),
    (stacks_every_image_first, "that is the data set in memory"),
    (caches_every_file_read, "that is the data set in memory"),
    (lambda root, out_dir: None, "nothing was written to out_dir"),
])
def test_q1_rejects_typical_mistakes(wrong, message):
    outcome = ex.q1.evaluate(wrong)
    assert outcome.status == INCORRECT and message in outcome.message, outcome


def test_q1_reports_the_lost_images_by_name():
    outcome = ex.q1.evaluate(bare_names)
    assert "8 images in, 3 files out" in outcome.message and "field_A/Maize/1.png" in outcome.message


def test_q1_accepts_any_unique_species_first_name_and_streaming_decodes():
    def field_last(root, out_dir):
        from PIL import Image

        os.makedirs(out_dir, exist_ok=True)
        for path, (field, species, file) in files_of(root):
            with Image.open(path) as image:  # one image at a time is fine
                image.save(Path(out_dir) / unique_name(species, f"{Path(file).stem}_{field}.png"))

    assert ex.q1.evaluate(field_last).status == CORRECT


def test_q2_rejects_copies_symlinks_a_lost_clash_check_and_reading_everything():
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

    def reads_everything(images, out_dir):
        everything = [(source, Path(source).read_bytes()) for source, _, _ in images]
        return copy_into_one_folder([(s, sp, f) for (s, _), (_, sp, f) in zip(everything, images, strict=True)],
                                    out_dir, place=os.link)

    for wrong, message in [(copies, "is a copy"), (symlinks, "symbolic link"),
                           (links_without_the_check, "linked without a word (a name clash"),
                           (returns_nothing, "returned None"), (reads_everything, "the data set in memory")]:
        outcome = ex.q2.evaluate(wrong)
        assert outcome.status == INCORRECT and message in outcome.message, (wrong.__name__, outcome)


def test_solutions_pass():
    for q in (ex.q1, ex.q2):
        assert q.evaluate(q.solution_namespace()[q.answer_name]).status == CORRECT
