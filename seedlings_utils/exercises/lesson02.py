"""Lesson 02's exercises: fix the 2019 copy loop; link instead of copy."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path, PurePosixPath

from ..flatten import unique_name
from . import Exercise, Incorrect, image_number, pixel_value

#: The checker's own tree: two species share "1.png", "Common wheat" has a space, Maize has a sub-folder.
TREE = ("Charlock/1.png", "Charlock/2.png", "Common wheat/1.png", "Maize/1.png", "Maize/field2/1.png")


def _make_tree(train_dir: Path) -> dict[str, tuple[Path, str, PurePosixPath]]:
    """Write :data:`TREE` (image ``k`` has red value ``pixel_value(k)``): ``{expected name: (source, species, file)}``
    in :data:`TREE` order."""
    from PIL import Image

    expected = {}
    for k, relative in enumerate(TREE):
        path = train_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (6, 4), (pixel_value(k), 128, 64)).save(path)
        species, *inside = PurePosixPath(relative).parts
        expected[unique_name(species, PurePosixPath(*inside))] = (path, species, PurePosixPath(*inside))
    return expected


def _number(path: Path) -> int:
    from PIL import Image

    with Image.open(path) as img:
        return image_number(img.convert("RGB"))


def _check_folder(out_dir: Path, expected: dict, train_dir: Path) -> None:
    """Every image of ``expected`` once in ``out_dir`` under its expected name, with its own pixels."""
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        raise Incorrect(f"nothing was written to out_dir ({out_dir.name}/ is missing or empty): copy the files into it")
    missing_sources = [str(src.relative_to(train_dir)) for src, _, _ in expected.values() if not src.is_file()]
    if missing_sources:
        raise Incorrect(f"{missing_sources} are gone from train_dir: copy the images (shutil.copy), don't move them")
    got = sorted(p.name for p in out_dir.iterdir())
    numbers = {name: _number(out_dir / name) for name in got}
    lost = [TREE[k] for k in range(len(TREE)) if k not in numbers.values()]
    if lost:
        raise Incorrect(f"{len(TREE)} images in, {len(got)} files out ({got}): {lost} lost. Two images were copied "
                        "to the same name and the later copy replaced the earlier one. Name each copy "
                        "unique_name(species, path inside the species folder): an image in a sub-folder keeps the "
                        "sub-folder in that path")
    for name, k in numbers.items():
        want = list(expected)[k]
        if name != want:
            why = ""
            if TREE[k] == "Maize/field2/1.png" and name.startswith("field2"):
                why = (": the species is the first folder under train_dir, not the folder the file sits in; "
                       "the sub-folder belongs in the file part")
            elif name.count("__") == 0:
                why = ": start the name with its species (unique_name does it)"
            raise Incorrect(f"train/{TREE[k]} became {name!r}, expected {want!r}{why}")
    extra = sorted(set(got) - set(expected))
    if len(got) != len(expected) or extra:
        raise Incorrect(f"{len(expected)} images in, {len(got)} files out: unexpected {extra}")


def _check_flatten_tree(flatten_tree) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        train_dir, out_dir = Path(tmp) / "train", Path(tmp) / "all_images"
        expected = _make_tree(train_dir)
        flatten_tree(train_dir, out_dir)
        _check_folder(out_dir, expected, train_dir)
        flatten_tree(str(train_dir), str(out_dir))  # a second run, with the folders as text, changes nothing
        if len(list(out_dir.iterdir())) != len(expected):
            raise Incorrect(f"a second run left {len(list(out_dir.iterdir()))} files in out_dir instead of "
                            f"{len(expected)}: the same image must get the same name every time")
        _check_folder(out_dir, expected, train_dir)
    return (f"{len(TREE)} images in, {len(TREE)} out, each under its species' name, the sub-folder's image "
            "included, and a second run changes nothing.")


q1 = Exercise(
    name="q1",
    task="Fix the 2019 loop: copy every file of train_dir/<species>/ into out_dir under unique_name(...).",
    checker=_check_flatten_tree,
    hint_text=("Keep the loop `for subdir, dirs, files in os.walk(train_dir): for file in files:`. For each file, "
               "take its path relative to train_dir, e.g. `Path('Maize/field2/1.png')`: `parts[0]` is the species, "
               "`Path(*parts[1:])` the path inside the species folder. Create out_dir first "
               "(`mkdir(parents=True, exist_ok=True)`), then `shutil.copy(source, out_dir / unique_name(...))`."),
    solution_code='''
import os
import shutil
from pathlib import Path

from seedlings_utils.flatten import unique_name


def flatten_tree(train_dir, out_dir):
    train_dir, out_dir = Path(train_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for subdir, dirs, files in os.walk(train_dir):
        for file in files:
            relative = (Path(subdir) / file).relative_to(train_dir)  # e.g. Maize/field2/1.png
            species, inside = relative.parts[0], Path(*relative.parts[1:])
            shutil.copy(Path(subdir) / file, out_dir / unique_name(species, inside.as_posix()))
''',
    answer_name="flatten_tree",
)


def _check_links(link_into_one_folder) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        train_dir, out_dir = Path(tmp) / "train", Path(tmp) / "all_images"
        expected = _make_tree(train_dir)
        images = list(expected.values())
        names = link_into_one_folder(images, out_dir)
        if names is None or list(names) != list(expected):
            raise Incorrect(f"it returned {names!r}; copy_into_one_folder returns the new names in order: "
                            f"{list(expected)} (return what it returns)")
        _check_folder(out_dir, expected, train_dir)
        for name, (source, _, _) in expected.items():
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
            raise Incorrect("two images that would get the same name were linked without a word: keep "
                            "copy_into_one_folder's check (call it rather than rewriting it)")
        if (Path(tmp) / "clash").exists() and any((Path(tmp) / "clash").iterdir()):
            raise Incorrect("on a clash, files were linked before the error: decide every name first")
    return f"{len(expected)} hard links, no image twice on disk, and a clash is still refused."


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
