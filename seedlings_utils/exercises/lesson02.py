"""Lesson 02's exercises: flatten a tree nested another way (field/species/file); link instead of copy."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path, PurePosixPath

from ..flatten import FLAT_SEPARATOR, unique_name
from . import Exercise, Incorrect, image_number, pixel_value
from .loader_checks import held_by, noise_png, refuse_if_all_held

#: The checker's tree for exercise 1: the species is the SECOND folder; two fields hold ``Maize/1.png``, and a
#: species name has a space.
FIELDS = ("field_A/Charlock/1.png", "field_A/Maize/1.png", "field_A/Maize/2.png", "field_B/Maize/1.png",
          "field_B/Common wheat/1.png", "field_B/Common wheat/2.png", "field_C/Charlock/1.png", "field_C/Maize/3.png")
#: The checker's tree for exercise 2, in lesson 02's layout (species/...): two species share ``1.png``.
TREE = ("Charlock/1.png", "Charlock/2.png", "Common wheat/1.png", "Maize/1.png", "Maize/field2/1.png",
        "Maize/field2/2.png")
NOT_IN_MEMORY = "Copy one file at a time (shutil.copy streams it from disk to disk)."


def _write_images(root: Path, tree: tuple[str, ...]) -> int:
    """Image ``k`` of ``tree`` under ``root``, its red value ``pixel_value(k)``; returns the bytes of one image."""
    return max(noise_png(root / relative, seed=k, red=pixel_value(k)) for k, relative in enumerate(tree))


def _number(path: Path) -> int:
    from PIL import Image

    with Image.open(path) as img:
        return image_number(img.convert("RGB"))


def _numbers(out_dir: Path, tree: tuple[str, ...]) -> dict[str, int]:
    """``{name in out_dir: which image of tree it holds}``; raises when images are lost or out_dir is empty."""
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        raise Incorrect(f"nothing was written to out_dir ({out_dir.name}/ is missing or empty): copy the files into it")
    got = sorted(p.name for p in out_dir.iterdir())
    numbers = {name: _number(out_dir / name) for name in got}
    lost = [tree[k] for k in range(len(tree)) if k not in numbers.values()]
    if lost:
        raise Incorrect(f"{len(tree)} images in, {len(got)} files out ({got}): {lost} lost. Two images were copied "
                        "to the same name and the later copy silently replaced the earlier one (a name clash). Give "
                        "each copy a name no other image can get: unique_name(species, the rest of its path)")
    if len(got) != len(tree):
        raise Incorrect(f"{len(tree)} images in, {len(got)} files out: {len(got) - len(tree)} extra files in out_dir")
    return numbers


def _check_sources_kept(root: Path, tree: tuple[str, ...]) -> None:
    gone = [relative for relative in tree if not (root / relative).is_file()]
    if gone:
        raise Incorrect(f"{gone} are gone from the source folder: copy the images (shutil.copy), don't move them")


def _check_fields(flatten_fields) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "fields"
        image_bytes = _write_images(root, FIELDS)
        for copy in ("warm", "again"):  # copies: an answer that keeps what it read finds nothing of these kept
            _write_images(Path(tmp) / copy, FIELDS)
        flatten_fields(Path(tmp) / "warm", Path(tmp) / "warm_up")  # a first run: imports and the like not counted
        held, _ = held_by(lambda: flatten_fields(str(root), str(Path(tmp) / "all_images")),  # folders as text
                          lambda: flatten_fields(Path(tmp) / "again", Path(tmp) / "all_images_2"))
        refuse_if_all_held(held, len(FIELDS), image_bytes, NOT_IN_MEMORY)
        _check_sources_kept(root, FIELDS)
        out_dir = Path(tmp) / "all_images"
        numbers = _numbers(out_dir, FIELDS)
        for name, k in numbers.items():
            field, species, file = PurePosixPath(FIELDS[k]).parts
            prefix = unique_name(species, "") + FLAT_SEPARATOR
            if not name.startswith(prefix):
                why = (f": it starts with the field, {field!r}. Here the species is the second folder, not the first"
                       if name.startswith(field) else "")
                raise Incorrect(f"{FIELDS[k]} became {name!r}, which does not start with its species "
                                f"({prefix!r}){why}. Lesson 03 reads each image's label from the species")
        first = dict(numbers)
        flatten_fields(root, out_dir)  # a second run into the same folder
        again = sorted(p.name for p in out_dir.iterdir())
        if again != sorted(first):
            raise Incorrect(f"a second run gave other names ({len(again)} files in out_dir now, "
                            f"{sorted(set(again) - set(first))[:3]} ...): the same image must get the same name every "
                            "time, or a re-run leaves each image twice")
        _numbers(out_dir, FIELDS)
    return (f"{len(FIELDS)} images in, {len(FIELDS)} out, each under a name that starts with its species and that no "
            "other image can get (the field is in it), and a second run changes nothing.")


q1 = Exercise(
    name="q1",
    task="Write flatten_fields(root, out_dir) for a tree root/<field>/<species>/<file>: every image once, by species.",
    checker=_check_fields,
    hint_text=("`Path(root).rglob('*')` finds every file; `path.relative_to(root).parts` is `(field, species, file)`. "
               "`unique_name(species, f'{field}/{file}')` gives `Maize__field_B__1.png`: the species first, and the "
               "field keeps `field_A/Maize/1.png` and `field_B/Maize/1.png` apart. Create out_dir first, then "
               "`shutil.copy(path, out_dir / name)`, one file at a time."),
    solution_code='''
import shutil
from pathlib import Path

from seedlings_utils.flatten import unique_name


def flatten_fields(root, out_dir):
    root, out_dir = Path(root), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        field, species, file = path.relative_to(root).parts
        shutil.copy(path, out_dir / unique_name(species, f"{field}/{file}"))
''',
    answer_name="flatten_fields",
)


def _check_links(link_into_one_folder) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        train_dir, out_dir = Path(tmp) / "train", Path(tmp) / "all_images"
        image_bytes = _write_images(train_dir, TREE)
        _write_images(Path(tmp) / "again", TREE)  # a copy: an answer that keeps what it read finds nothing of it

        def listed(folder: Path) -> list:
            parts = [PurePosixPath(relative).parts for relative in TREE]
            return [(folder / relative, species, PurePosixPath(*inside))
                    for relative, (species, *inside) in zip(TREE, parts, strict=True)]

        images = listed(train_dir)
        expected = [unique_name(species, file) for _, species, file in images]
        again = listed(Path(tmp) / "again")
        held, (names, _) = held_by(lambda: link_into_one_folder(images, out_dir),
                                   lambda: link_into_one_folder(again, Path(tmp) / "all_images_2"))
        refuse_if_all_held(held, len(TREE), image_bytes, "A hard link is made without reading the image at all.")
        if names is None or list(names) != expected:
            raise Incorrect(f"it returned {names!r}; copy_into_one_folder returns the new names in order: "
                            f"{expected} (return what it returns)")
        _check_sources_kept(train_dir, TREE)
        numbers = _numbers(out_dir, TREE)
        for name, k in numbers.items():
            if name != expected[k]:
                raise Incorrect(f"train/{TREE[k]} became {name!r}, expected {expected[k]!r}")
        for name, (source, _, _) in zip(expected, images, strict=True):
            target = out_dir / name
            if target.is_symlink():
                raise Incorrect(f"{name} is a symbolic link: it breaks as soon as the source folder moves. A hard "
                                "link (os.link) is a second name for the same file")
            if not os.path.samefile(target, source):
                raise Incorrect(f"{name} is a copy (a file of its own, {target.stat().st_nlink} link to it), not a "
                                "hard link: the image is on disk twice. Pass place=os.link")
        # a clash must still be refused before anything is linked
        clash = [images[0], (images[1][0], images[0][1], images[0][2])]
        try:
            link_into_one_folder(clash, Path(tmp) / "clash")
        except ValueError:
            pass
        else:
            raise Incorrect("two images that would get the same name were linked without a word (a name clash "
                            "that loses an image): keep copy_into_one_folder's check (call it, don't rewrite it)")
        if (Path(tmp) / "clash").exists() and any((Path(tmp) / "clash").iterdir()):
            raise Incorrect("on a clash, files were linked before the error: decide every name first")
    return f"{len(TREE)} hard links, no image twice on disk, and a clash is still refused."


q2 = Exercise(
    name="q2",
    task="Write link_into_one_folder(images, out_dir): copy_into_one_folder with hard links instead of copies.",
    checker=_check_links,
    hint_text=("copy_into_one_folder already takes the function that places each file: "
               "`place(source, target)`. os.link has exactly that signature."),
    solution_code='''
import os

from seedlings_utils.flatten import copy_into_one_folder


def link_into_one_folder(images, out_dir):
    return copy_into_one_folder(images, out_dir, place=os.link)
''',
    answer_name="link_into_one_folder",
)
