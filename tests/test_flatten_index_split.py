import os
import shutil
import zipfile

import numpy as np
import pytest

from seedlings_utils.dataset import load_image_uint8
from seedlings_utils.earlier_lessons import ensure_split
from seedlings_utils.files import zip_folder
from seedlings_utils.flatten import check_one_file_per_image, copy_into_one_folder, unique_name
from seedlings_utils.image_scan import MANIFEST_FILE, flatten_images, list_training_images, read_manifest
from seedlings_utils.index import build_index, labels_from_species, load_classes, load_index, save_index
from seedlings_utils.split import SPLIT_FILES, load_split, save_split, split_train_val
from seedlings_utils.stratify import stratifiable

from .helpers import TINY_SPECIES, make_kaggle_tree


def test_list_training_images_is_sorted_and_skips_hidden_and_non_images(kaggle_tree):
    (kaggle_tree / "train" / "Maize" / ".DS_Store").write_bytes(b"x")
    (kaggle_tree / "train" / "Maize" / "notes.txt").write_text("x")
    (kaggle_tree / "train" / ".hidden").mkdir()
    images = list_training_images(kaggle_tree / "train")
    assert len(images) == 12
    assert [(im.species, im.relative) for im in images] == sorted((im.species, im.relative) for im in images)
    assert {im.species for im in images} == set(TINY_SPECIES)
    assert all(im.path.is_file() for im in images)


def test_unique_name_is_unique_per_species_and_readable():
    assert unique_name("Common wheat", "0a1b2c3d4.png") == "Common_wheat__0a1b2c3d4.png"
    assert unique_name("Maize", "same.png") != unique_name("Charlock", "same.png")
    assert unique_name("Maize", "sub/x.png") == "Maize__sub__x.png"


def test_copy_into_one_folder_refuses_a_clash_before_copying_anything(tmp_path):
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes(name.encode())
    images = [(tmp_path / "a.png", "Maize", "x.png"), (tmp_path / "b.png", "Maize", "y.png")]
    assert copy_into_one_folder(images, tmp_path / "out") == ["Maize__x.png", "Maize__y.png"]
    assert (tmp_path / "out" / "Maize__y.png").read_bytes() == b"b.png"
    check_one_file_per_image(["Maize__x.png", "Maize__y.png"], tmp_path / "out")
    with pytest.raises(ValueError, match="same name 'Maize__x.png'"):
        copy_into_one_folder([images[0], (tmp_path / "b.png", "Maize", "x.png")], tmp_path / "clash")
    assert not (tmp_path / "clash").exists()
    placed = []
    copy_into_one_folder(images, tmp_path / "linked", place=lambda src, dst: placed.append((src, dst.name)))
    assert placed == [(tmp_path / "a.png", "Maize__x.png"), (tmp_path / "b.png", "Maize__y.png")]


def test_count_check_names_what_is_lost_or_extra(tmp_path):
    (tmp_path / "1.png").write_bytes(b"x")
    with pytest.raises(RuntimeError, match=r"2 images in, 1 files out .* 1 names used twice"):
        check_one_file_per_image(["1.png", "1.png"], tmp_path)  # the 2019 loop's silent loss
    with pytest.raises(RuntimeError, match=r"missing \['2.png'\]"):
        check_one_file_per_image(["1.png", "2.png"], tmp_path)
    (tmp_path / "old.png").write_bytes(b"x")
    with pytest.raises(RuntimeError, match=r"unexpected \['old.png'\]"):
        check_one_file_per_image(["1.png"], tmp_path)


def test_flatten_keeps_every_image_once_even_with_clashing_names(kaggle_tree, tmp_path):
    out = tmp_path / "all_images"
    report = flatten_images(kaggle_tree / "train", out, progress=False)
    names = sorted(p.name for p in out.iterdir())
    assert report.files_seen == report.images_out == report.written == 12 == len(names)
    assert report.skipped == []
    assert {"Charlock__same.png", "Common_wheat__same.png", "Maize__same.png"} <= set(names)
    assert (out / "Maize__same.png").read_bytes() == (kaggle_tree / "train/Maize/same.png").read_bytes()


def test_flatten_is_idempotent_and_cleans_leftovers(kaggle_tree, tmp_path):
    out = tmp_path / "all_images"
    flatten_images(kaggle_tree / "train", out, progress=False)
    (out / "Old__gone.png").write_bytes(b"x")
    (out / ".Maize__same.png.partial").write_bytes(b"half")
    again = flatten_images(kaggle_tree / "train", out, progress=False)
    assert len(read_manifest(tmp_path / MANIFEST_FILE)) == 12
    assert again.written == 0 and again.already_there == 12
    assert sorted(again.stale_removed) == [".Maize__same.png.partial", "Old__gone.png"]
    assert len(list(out.iterdir())) == 12


def test_flatten_rewrites_a_truncated_copy(kaggle_tree, tmp_path):
    out = tmp_path / "all_images"
    flatten_images(kaggle_tree / "train", out, progress=False)
    (out / "Maize__same.png").write_bytes(b"\x89PNG truncated")
    again = flatten_images(kaggle_tree / "train", out, progress=False)
    assert again.written == 1
    assert (out / "Maize__same.png").read_bytes() == (kaggle_tree / "train/Maize/same.png").read_bytes()


def spoil_keeping_size_and_time(path) -> None:
    """Overwrite ``path`` with zeros of the same length and give it back its modification time."""
    stat = path.stat()
    path.write_bytes(bytes(stat.st_size))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_recheck_finds_what_went_bad_whatever_size_and_time_say(kaggle_tree, tmp_path, capsys):
    out = tmp_path / "all_images"
    flatten_images(kaggle_tree / "train", out, progress=False)
    copy, source = out / "Maize__same.png", kaggle_tree / "train/Maize/same.png"
    spoil_keeping_size_and_time(copy)
    assert flatten_images(kaggle_tree / "train", out, progress=False).written == 0  # the quick re-check trusts it
    with pytest.raises(OSError, match="run lesson 02 again"):
        load_image_uint8(copy, 8)
    repaired = flatten_images(kaggle_tree / "train", out, progress=False, recheck=True)
    assert repaired.written == 1 and "Replaced 1 files" in capsys.readouterr().out
    assert copy.read_bytes() == source.read_bytes() and load_image_uint8(copy, 8).shape == (8, 8, 3)

    spoil_keeping_size_and_time(kaggle_tree / "train/Charlock/same.png")  # now the original itself
    assert flatten_images(kaggle_tree / "train", out, progress=False).images_out == 12
    report = flatten_images(kaggle_tree / "train", out, progress=False, recheck=True)
    assert report.images_out == 11 and "Charlock__same.png" in report.stale_removed
    assert [s.path for s in report.skipped] == ["train/Charlock/same.png"]


@pytest.mark.parametrize("method", ["hardlink", "symlink"])
def test_flatten_with_links(kaggle_tree, tmp_path, method):
    out = tmp_path / "all_images"
    report = flatten_images(kaggle_tree / "train", out, method=method, progress=False)
    assert report.images_out == 12
    linked = out / "Charlock__same.png"
    assert linked.samefile(kaggle_tree / "train" / "Charlock" / "same.png")
    assert flatten_images(kaggle_tree / "train", out, method=method, progress=False).written == 0


def test_two_folders_of_one_species_with_the_same_file_name_keep_both(tmp_path):
    root = make_kaggle_tree(tmp_path / "src", shared_name=True)
    (root / "train" / "maize").mkdir()  # the same species as Maize/, also holding same.png
    (root / "train" / "maize" / "same.png").write_bytes(b"")  # empty: skipped, not a clash
    other = (root / "train" / "Charlock" / "same.png").read_bytes()
    (root / "train" / "maize ").mkdir()  # and again, with a trailing space
    (root / "train" / "maize " / "same.png").write_bytes(other)
    report = flatten_images(root / "train", tmp_path / "out", progress=False)
    rows = {row["source"]: row for row in read_manifest(tmp_path / MANIFEST_FILE)}
    assert rows["train/Maize/same.png"]["file"] == "Maize__same.png"
    assert rows["train/maize /same.png"]["file"] == "Maize__maize___same.png"
    assert rows["train/maize /same.png"]["species"] == "Maize"
    assert (tmp_path / "out" / "Maize__maize___same.png").read_bytes() == other
    assert report.images_out == 13
    assert [(s.path, s.reason) for s in report.skipped] == [
        ("train/maize/same.png", "empty file (0 bytes)"),
        ("train/maize/", "species folder with no usable image: no class for it"),
    ]


def test_flatten_refuses_a_clash_it_cannot_resolve(tmp_path):
    root = make_kaggle_tree(tmp_path / "src", shared_name=False)
    image_bytes = next((root / "train" / "Maize").iterdir()).read_bytes()
    (root / "train" / "Maize" / "maize__x.png").write_bytes(image_bytes)  # Maize__maize__x.png
    (root / "train" / "Maize" / "x.png").write_bytes(image_bytes)  # Maize__x.png
    (root / "train" / "maize").mkdir()
    (root / "train" / "maize" / "x.png").write_bytes(image_bytes)  # Maize__x.png, then Maize__maize__x.png
    with pytest.raises(ValueError, match="same name"):
        flatten_images(root / "train", tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_index_labels_come_from_the_species_folder(kaggle_tree, tmp_path):
    out = tmp_path / "all_images"
    flatten_images(kaggle_tree / "train", out, progress=False)
    filenames, labels, classes = build_index(out)
    assert classes == sorted(TINY_SPECIES)
    assert len(filenames) == len(labels) == 12 and labels.dtype == np.int64
    for name, label in zip(filenames, labels, strict=True):
        assert name.startswith(classes[label].replace(" ", "_") + "__")
    save_index(tmp_path, filenames, labels, classes)
    f2, l2, c2 = load_index(tmp_path)
    assert (f2 == filenames).all() and (l2 == labels).all() and c2 == classes == load_classes(tmp_path)


def test_one_species_is_refused_by_the_index(tmp_path):
    make_kaggle_tree(tmp_path / "source")
    for species in TINY_SPECIES[1:]:
        shutil.rmtree(tmp_path / "source" / "train" / species)
    flatten_images(tmp_path / "source" / "train", tmp_path / "all_images", progress=False)
    with pytest.raises(ValueError, match=r"4 images of 1 species \(Charlock\): a classifier needs at least two"):
        build_index(tmp_path / "all_images")


def test_labels_do_not_depend_on_the_order_images_are_found_in():
    here = ["Maize", "Charlock", "Maize", "Black-grass"]
    labels, classes = labels_from_species(here)
    assert classes == ["Black-grass", "Charlock", "Maize"] and labels.tolist() == [2, 1, 2, 0]
    there, _ = labels_from_species(here[::-1])
    assert there.tolist() == labels.tolist()[::-1] and labels.dtype == np.int64


def test_save_index_turns_object_names_into_text(tmp_path):
    names = np.array(["a.png", "bb.png"], dtype=object)  # what a pandas column gives
    save_index(tmp_path, names, [1, 0], ["x", "y"])
    assert np.load(tmp_path / "filenames.npy").dtype.kind == "U"  # np.load without allow_pickle reads it


def test_index_reports_images_missing_from_all_images(kaggle_tree, tmp_path):
    out = tmp_path / "all_images"
    flatten_images(kaggle_tree / "train", out, progress=False)
    (out / "Maize__same.png").unlink()
    with pytest.raises(FileNotFoundError, match="1 indexed images"):
        build_index(out)
    (tmp_path / MANIFEST_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="run lesson 02"):
        build_index(out)


def test_split_is_stratified_disjoint_and_reproducible(tmp_path):
    labels = np.repeat(np.arange(4), [10, 20, 30, 40])
    filenames = np.array([f"img{i}.png" for i in range(len(labels))])
    x_train, x_val, y_train, y_val = split_train_val(filenames, labels, 0.2, seed=3)
    assert len(x_val) == 20 and not set(x_train) & set(x_val)
    assert sorted(np.concatenate([x_train, x_val])) == sorted(filenames)
    assert np.bincount(y_val).tolist() == [2, 4, 6, 8]
    lookup = dict(zip(filenames, labels, strict=True))
    assert all(lookup[f] == y for f, y in zip(x_val, y_val, strict=True))
    again = split_train_val(filenames, labels, 0.2, seed=3)
    assert (again[1] == x_val).all()
    assert not (split_train_val(filenames, labels, 0.2, seed=4)[1] == x_val).all()
    save_split(tmp_path, x_train, x_val, y_train, y_val)
    loaded = load_split(tmp_path)
    assert all((a == b).all() for a, b in zip(loaded, (x_train, x_val, y_train, y_val), strict=True))
    with pytest.raises(ValueError):
        split_train_val(filenames, labels, 1.5)


def test_the_split_is_read_memory_mapped_and_a_new_save_never_changes_an_open_one(tmp_path):
    """load_split maps the files (the names held by no loader's process memory); save_split replaces each file
    by a rename, so arrays still mapped keep the old contents instead of a truncated file (a bus error)."""
    first = (np.array(["a.png", "b.png", "c.png"]), np.array(["d.png"]), np.array([0, 1, 0]), np.array([1]))
    save_split(tmp_path, *first)
    loaded = load_split(tmp_path)
    assert all(isinstance(a, np.memmap) and not a.flags.writeable for a in loaded)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(SPLIT_FILES)  # no .partial file left
    inodes = [(tmp_path / name).stat().st_ino for name in SPLIT_FILES]
    save_split(tmp_path, np.array(["much-longer-name.png"] * 5), np.array(["e.png"]), np.arange(5), np.array([2]))
    assert [(tmp_path / name).stat().st_ino for name in SPLIT_FILES] != inodes  # new files, not rewritten ones
    assert loaded[0].tolist() == ["a.png", "b.png", "c.png"] and loaded[2].tolist() == [0, 1, 0]
    assert load_split(tmp_path)[0].tolist() == ["much-longer-name.png"] * 5
    with pytest.raises(ValueError, match="read-only"):
        loaded[0][0] = "z.png"


def test_stratifiable_marks_single_image_classes(capsys):
    assert stratifiable([0, 0, 1, 2, 2]).tolist() == [True, True, False, True, True]
    assert "class ids [1] have a single image" in capsys.readouterr().out
    assert stratifiable([0, 0, 1, 1]).all() and capsys.readouterr().out == ""


def test_zip_folder_holds_every_file(kaggle_tree, tmp_path):
    archive = zip_folder(kaggle_tree / "train", tmp_path / "train.zip", progress=False)
    with zipfile.ZipFile(archive) as z:
        assert len(z.namelist()) == 12 and all(n.startswith("train/") for n in z.namelist())


def test_ensure_split_rebuilds_everything_from_nothing_and_then_reuses(kaggle_tree, tmp_path):
    kwargs = dict(source="local", source_path=kaggle_tree, progress=False)
    x_train, x_val, y_train, y_val = ensure_split(tmp_path, 0.25, 1, **kwargs)
    assert len(x_train) + len(x_val) == 12
    assert len(list((tmp_path / "all_images").iterdir())) == 12
    stamp = (tmp_path / "y_val.npy").stat().st_mtime_ns
    ensure_split(tmp_path, 0.25, 1, **kwargs)
    assert (tmp_path / "y_val.npy").stat().st_mtime_ns == stamp
    # an index that no longer matches all_images/ is rebuilt
    np.save(tmp_path / "filenames.npy", np.array(["x.png"] * 12))
    again = ensure_split(tmp_path, 0.25, 1, **kwargs)
    assert sorted(np.concatenate([again[0], again[1]])) == sorted(p.name for p in (tmp_path / "all_images").iterdir())


def test_species_folders_are_links_to_the_indexed_images_and_follow_the_index(kaggle_tree, tmp_path):
    """Lesson 05's tree for image_dataset_from_directory: one folder per class of the index, each image a hard
    link into all_images/; a file the index no longer names (and a stray folder) disappears on the next call."""
    from seedlings_utils.earlier_lessons import ensure_species_folders

    kwargs = dict(source="local", source_path=kaggle_tree, progress=False)
    (kaggle_tree / "train" / "Maize" / "notes.txt").write_text("not an image")
    root = ensure_species_folders(tmp_path, **kwargs)
    filenames, labels, classes = load_index(tmp_path)
    tree = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert tree == sorted(f"{classes[y]}/{name}" for name, y in zip(filenames, labels, strict=True))
    assert sorted(p.name for p in root.iterdir()) == classes
    some = root / classes[labels[0]] / filenames[0]
    assert some.stat().st_ino == (tmp_path / "all_images" / filenames[0]).stat().st_ino, "a hard link, not a copy"
    inodes = {p: p.stat().st_ino for p in root.rglob("*.png")}
    (root / classes[0] / "stale.png").write_bytes(b"x")
    (root / "Not a class").mkdir()
    assert ensure_species_folders(tmp_path, **kwargs) == root
    assert {p: p.stat().st_ino for p in root.rglob("*.png")} == inodes, "a second call relinks nothing"
    assert not (root / "Not a class").exists() and sorted(p.name for p in root.iterdir()) == classes
