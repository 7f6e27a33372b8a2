"""Messy data: every readable image used exactly once with its label, everything else reported."""

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seedlings_utils import image_scan as flatten_module
from seedlings_utils.dataset import SeedlingsDataset, load_image
from seedlings_utils.image_scan import (
    EMPTY_CLASS_REASON,
    MANIFEST_FILE,
    SKIPPED_FILE,
    canonical_species,
    flatten_images,
    read_manifest,
    read_skipped,
    scan_test_images,
    scan_training_images,
)
from seedlings_utils.images import to_rgb, why_unusable
from seedlings_utils.index import build_index
from seedlings_utils.results import list_test_images
from seedlings_utils.split import split_train_val
from tools.lessons import run_lessons

from .messy import EMPTY_FOLDER, make_messy_tree


@pytest.fixture(scope="module")
def messy(tmp_path_factory):
    root = tmp_path_factory.mktemp("messy") / "plant-seedlings"
    return root, make_messy_tree(root)


def expected_skipped(truth):
    return sorted([path for path, species in truth.items() if species is None] + [EMPTY_FOLDER])


def test_scan_uses_every_readable_image_once_and_skips_the_rest(messy):
    root, truth = messy
    images, skipped = scan_training_images(root / "train", progress=False)
    used = {im.path.relative_to(root).as_posix(): im.species for im in images}
    want = {path: species for path, species in truth.items() if species not in (None, "test")}
    assert used == {path: canonical_species(species) for path, species in want.items()}
    assert sorted(s.path for s in skipped) == [p for p in expected_skipped(truth) if p.startswith("train/")]
    reasons = {s.path: s.reason for s in skipped}
    assert reasons["train/Fat Hen/empty.png"] == "empty file (0 bytes)"
    assert reasons["train/Charlock/truncated.png"].startswith("corrupt or truncated image")
    assert reasons["train/Shepherds Purse/not really.png"].startswith("not an image")
    assert reasons["train/README.txt"] == "not inside a species folder"
    assert reasons["train/Cleavers/notes.txt"] == "not an image file (ending '.txt')"
    assert reasons["train/Maize/.ipynb_checkpoints/copy.png"] == "hidden file or folder"
    assert reasons[EMPTY_FOLDER] == EMPTY_CLASS_REASON


def test_test_folder_scan(messy):
    root, truth = messy
    names, skipped = scan_test_images(root / "test", progress=False)
    assert names == sorted(Path(p).name for p, s in truth.items() if s == "test")
    assert sorted(s.path for s in skipped) == ["test/.DS_Store", "test/corrupt.png"]
    assert list_test_images(root / "test") == names


@pytest.mark.parametrize(("folder", "species"), [
    ("sugar  BEET", "Sugar beet"), ("Common_Wheat", "Common wheat"), ("black grass", "Black-grass"),
    ("LOOSE SILKY BENT", "Loose Silky-bent"), ("Cornflower ", "Cornflower"), ("My  own   class", "My own class"),
])
def test_canonical_species(folder, species):
    assert canonical_species(folder) == species


@pytest.mark.parametrize("name", ["gray.png", "palette.png", "deep16.png", "alpha.png"])
def test_every_image_mode_loads_as_the_same_picture(messy, name):
    root, _ = messy
    reference = load_image(root / "train" / "Cleavers" / "gray.png", 32)
    image = load_image(root / "train" / "Cleavers" / name, 32)
    assert image.shape == (32, 32, 3) and 0 <= image.min() and image.max() <= 1
    if name in ("gray.png", "deep16.png"):  # a 16-bit image is scaled, not clipped to white
        assert np.abs(image - reference).max() < 0.01
    assert image.std() > 0.02


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (40, 20), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    with Image.open(buffer) as img:
        assert to_rgb(img).size == (20, 40)


def test_why_unusable_cheap_mode_does_not_decode(tmp_path):
    (tmp_path / "fake.png").write_bytes(b"not a png at all")
    assert why_unusable(tmp_path / "fake.png", decode=False) is None
    assert why_unusable(tmp_path / "fake.png").startswith("not an image")


def test_flatten_the_messy_tree_and_rerun_without_decoding_again(messy, tmp_path, monkeypatch):
    root, truth = messy
    report = flatten_images(root / "train", tmp_path / "all_images", progress=False)
    manifest = read_manifest(tmp_path / MANIFEST_FILE)
    used = {path for path, species in truth.items() if species not in (None, "test")}
    assert {row["source"] for row in manifest} == used and len(manifest) == len(used) == report.images_out
    assert sorted(s.path for s in read_skipped(tmp_path / SKIPPED_FILE)) == expected_skipped(truth)
    assert {row["file"] for row in manifest if row["source"].endswith("dup.png")} == {"Charlock__dup.png",
                                                                                      "Maize__dup.png"}
    variant = next(row for row in manifest if row["source"] == "train/sugar  BEET/variant.png")
    assert variant["species"] == "Sugar beet" and variant["file"] == "Sugar_beet__variant.png"

    decoded = []
    real_check = flatten_module.why_unusable
    def counting_check(path, decode=True):
        decoded.append(path)
        return real_check(path, decode)

    monkeypatch.setattr(flatten_module, "why_unusable", counting_check)
    again = flatten_images(root / "train", tmp_path / "all_images", progress=False)
    assert again.written == 0 and again.images_out == report.images_out
    decoded_sources = {Path(p).relative_to(root).as_posix() for p in decoded}
    assert not decoded_sources & used, "images checked once are not decoded again"
    assert "train/Charlock/truncated.png" in decoded_sources, "files that failed are checked again"
    filenames, labels, classes = build_index(tmp_path / "all_images")
    assert "Cornflower" not in classes and len(classes) == 12


def test_a_file_that_goes_bad_after_indexing_is_named(messy, tmp_path):
    root, _ = messy
    flatten_images(root / "train", tmp_path / "all_images", progress=False)
    filenames, labels, _ = build_index(tmp_path / "all_images")
    (tmp_path / "all_images" / filenames[5]).write_bytes(b"\x89PNG\r\n\x1a\ngone bad")
    dataset = SeedlingsDataset(tmp_path / "all_images", filenames, labels, batch_size=4, image_size=16)
    with pytest.raises(OSError, match=str(filenames[5])):
        dataset[1]


def test_split_puts_a_single_image_class_into_training(capsys):
    labels = np.array([0] * 10 + [1] * 10 + [2])
    filenames = np.array([f"f{i}" for i in range(len(labels))])
    x_train, x_val, y_train, y_val = split_train_val(filenames, labels, 0.2, seed=0)
    assert "f20" in x_train and 2 in y_train and 2 not in y_val and len(x_train) + len(x_val) == 21
    assert "single image" in capsys.readouterr().out


@pytest.mark.slow
def test_lessons_01_to_04_on_the_messy_tree(messy, tmp_path):
    """Lesson 01 with DATA_SOURCE=local on the messy tree, then 02-04 (the lessons that handle the files):
    every readable image used once with its label, every other file in the report, and lesson 06's
    submission writer gives a row for every readable test image."""
    from seedlings_utils.model import build_cnn
    from seedlings_utils.results import write_submission

    root, truth = messy
    data_dir = tmp_path / "data"
    params = {"DATA_DIR": str(data_dir), "DATA_SOURCE": "local", "SOURCE_PATH": str(root)}
    run_lessons(params, tmp_path / "executed", lessons=["01", "02", "03", "04"])
    manifest = read_manifest(data_dir / MANIFEST_FILE)
    used = {path: species for path, species in truth.items() if species not in (None, "test")}
    assert sorted(row["source"] for row in manifest) == sorted(used), "each readable image exactly once"
    classes = json.loads((data_dir / "classes.json").read_text())
    label_of = dict(zip(np.load(data_dir / "filenames.npy"), np.load(data_dir / "labels.npy"), strict=True))
    for row in manifest:
        assert classes[label_of[row["file"]]] == canonical_species(used[row["source"]]), row
    for split in ("train", "val"):
        names = np.load(data_dir / f"X_{split}_filenames.npy")
        labels = np.load(data_dir / f"y_{split}.npy")
        assert all(label_of[n] == y for n, y in zip(names, labels, strict=True))
    assert sorted(s.path for s in read_skipped(data_dir / SKIPPED_FILE)) == expected_skipped(truth)
    model = build_cnn(len(classes), 32, base_filters=8, seed=0)  # untrained: only the rows are checked here
    write_submission(model, data_dir / "raw" / "test", classes, data_dir / "submission.csv", image_size=32)
    with open(data_dir / "submission.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["file"] for r in rows] == sorted(Path(p).name for p, s in truth.items() if s == "test")
    executed = json.loads((tmp_path / "executed" / "02_flatten_into_one_folder.ipynb").read_text())
    text = "".join("".join(o.get("text", "")) for c in executed["cells"] for o in c.get("outputs", []))
    assert f"{len(expected_skipped(truth))} files or folders not used" in text, "lesson 02 shows the count"
    check_the_one_liner_runs_on_lesson_05s_species_folders(data_dir, classes, label_of)


def check_the_one_liner_runs_on_lesson_05s_species_folders(data_dir, classes, label_of):
    """On raw/train as it arrived the one-liner finds a 13th class and stops at a broken file; on lesson 05's
    by_species/ tree it reads a whole epoch, with the index's classes and labels."""
    import keras
    import tensorflow as tf

    from seedlings_utils.earlier_lessons import ensure_species_folders

    def one_epoch(folder):
        ds = keras.utils.image_dataset_from_directory(str(folder), image_size=(32, 32), batch_size=8, shuffle=False,
                                                      verbose=False)
        return ds, sum(len(y) for _, y in ds)

    raw = keras.utils.image_dataset_from_directory(str(data_dir / "raw" / "train"), verbose=False)
    assert "sugar  BEET" in raw.class_names and len(raw.class_names) > len(classes)
    with pytest.raises(tf.errors.InvalidArgumentError):
        one_epoch(data_dir / "raw" / "train")
    ds, seen = one_epoch(ensure_species_folders(data_dir, progress=False))
    assert ds.class_names == classes
    assert seen == len(ds.file_paths) == sum(Path(n).suffix.lower() in (".png", ".jpg", ".jpeg") for n in label_of)
    labels = np.concatenate([y for _, y in ds])
    assert [label_of[Path(p).name] for p in ds.file_paths] == labels.tolist(), "the index's label for every file"
