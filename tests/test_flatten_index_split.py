import zipfile

import numpy as np
import pytest

from seedlings_utils.flatten import MANIFEST_FILE, flat_name, flatten_images, list_training_images, read_manifest
from seedlings_utils.index import build_index, load_classes, load_index, save_index
from seedlings_utils.pipeline import ensure_split
from seedlings_utils.split import load_split, save_split, split_train_val, zip_folder

from .conftest import TINY_SPECIES, make_kaggle_tree


def test_list_training_images_is_sorted_and_skips_hidden_and_non_images(kaggle_tree):
    (kaggle_tree / "train" / "Maize" / ".DS_Store").write_bytes(b"x")
    (kaggle_tree / "train" / "Maize" / "notes.txt").write_text("x")
    (kaggle_tree / "train" / ".hidden").mkdir()
    images = list_training_images(kaggle_tree / "train")
    assert len(images) == 12
    assert [(im.species, im.relative) for im in images] == sorted((im.species, im.relative) for im in images)
    assert {im.species for im in images} == set(TINY_SPECIES)
    assert all(im.path.is_file() for im in images)


def test_flat_name_is_unique_per_species_and_readable():
    assert flat_name("Common wheat", "0a1b2c3d4.png") == "Common_wheat__0a1b2c3d4.png"
    assert flat_name("Maize", "same.png") != flat_name("Charlock", "same.png")
    assert flat_name("Maize", "sub/x.png") == "Maize__sub__x.png"


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
