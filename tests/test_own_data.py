"""A learner's own data, not the seedlings: its labelled val/ folder through lessons 01-04's plumbing, the parameter
check against its counts, figures and headline with its own number of classes, both decoders on its formats; then
lessons 01-06 run on a folder with many classes (32 classes of PNGs and JPEGs of mixed sizes, no val/ folder, so
lesson 04 splits; a test/ folder, so lesson 06 predicts it). The papermill run of every lesson
(test_lessons_papermill.py) covers the other case: two classes of JPEGs, a labelled val/, no test/."""

import csv
import json
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
from PIL import Image

from seedlings_utils.earlier_lessons import ensure_split
from seedlings_utils.flatten import FLAT_SEPARATOR
from seedlings_utils.image_scan import (
    MANIFEST_FILE,
    NO_TRAINING_REASON,
    SKIPPED_FILE,
    flatten_images,
    given_validation,
    read_manifest,
    read_skipped,
)
from seedlings_utils.images import why_unusable
from seedlings_utils.index import build_index
from seedlings_utils.parameters import ParameterError, check_fits_data
from seedlings_utils.results import list_test_images
from seedlings_utils.sources import DataSourceError, fetch_raw_data
from seedlings_utils.split import split_train_val
from tools.lessons import headline, run_lessons

from .helpers import make_photo_folder

pytestmark = pytest.mark.long_file(9)  # tests/conftest.py: long files start first (its lessons run takes a minute)

#: Class folders with names of any kind: capitals, hyphens, digits (not a seedlings species among them).
CLASSES = tuple(sorted(f"{kind}-{k:02d}" for k, kind in enumerate(["Bird", "car", "leaf", "Tool"] * 8)))
PER_CLASS, TEST_IMAGES = 8, 12
#: Small settings: the point is that every lesson goes through, not what the model learns.
SMALL = {"IMAGE_SIZE": 32, "BATCH_SIZE": 16, "EPOCHS": 2, "BASE_FILTERS": 8, "SPEED_BATCHES": 2, "DEMO_EPOCHS": 1,
         "TIMED_EPOCHS": 1, "SEED": 7, "GOING_DEEPER": False}


def test_a_validation_folder_is_copied_as_raw_val_and_other_folders_are_named(tmp_path, capsys):
    source = make_photo_folder(tmp_path / "src", per_class=4, val_per_class=3, val_folder="Validation")
    (source / "notes").mkdir()
    (source / "notes" / "a.txt").write_text("x")
    raw = fetch_raw_data(tmp_path / "data", "local", source, progress=False)
    assert raw.train_counts == {"cats": 4, "dogs": 4} and raw.val_counts == {"cats": 3, "dogs": 3}
    assert raw.test_count == 0 and not (raw.root / "test").exists() and not (raw.root / "notes").exists()
    assert sorted(p.name for p in (raw.root / "val" / "dogs").iterdir()) == [f"dogs_val_{k:04d}.jpg" for k in range(3)]
    out = capsys.readouterr().out
    assert "Validation/ holds a labelled validation set" in out and "Left out" in out and "notes" in out
    assert "6 labelled validation images" in str(raw)


def test_a_zipped_folder_keeps_its_validation_set_and_two_are_refused(tmp_path):
    from seedlings_utils.files import zip_folder

    source = make_photo_folder(tmp_path / "src" / "wrapper", per_class=3, val_per_class=2, val_folder="valid")
    archive = zip_folder(source, tmp_path / "photos.zip", progress=False)  # wrapper/train/..., wrapper/valid/...
    raw = fetch_raw_data(tmp_path / "data", "local", archive, progress=False)
    assert raw.val_counts == {"cats": 2, "dogs": 2} and raw.train_total == 6
    make_photo_folder(source, per_class=1, val_per_class=1, val_folder="val")  # now valid/ and val/
    with pytest.raises(DataSourceError, match="2 validation folders"):
        fetch_raw_data(tmp_path / "other", "local", source, progress=False)
    assert not (tmp_path / "other" / "raw").exists()


def test_flatten_keeps_the_validation_set_apart_by_name_and_in_the_record(tmp_path):
    source = make_photo_folder(tmp_path / "src", per_class=4, val_per_class=2, formats=("png", "jpg"))
    (source / "val" / "Cats").mkdir()  # another spelling of a training class: the same class
    Image.new("RGB", (9, 7), (1, 2, 3)).save(source / "val" / "Cats" / "extra.png")
    (source / "val" / "birds").mkdir()  # a class with no training image: left out, with the reason
    Image.new("RGB", (9, 7)).save(source / "val" / "birds" / "b.png")
    dogs = source / "val" / "dogs"
    (dogs / "dogs_train_0000.png").write_bytes((dogs / "dogs_val_0000.png").read_bytes())  # a training image's name
    raw = fetch_raw_data(tmp_path / "data", "local", source, progress=False)
    report = flatten_images(raw.root / "train", tmp_path / "data" / "all_images", progress=False)
    assert report.images_out == 8 + 6 and report.val_images == 6
    rows = read_manifest(tmp_path / "data" / MANIFEST_FILE)
    val_rows = [row for row in rows if row["split"] == "val"]
    assert {row["file"] for row in val_rows} >= {"dogs__val__dogs_train_0000.png", "cats__val__extra.png"}
    assert all(row["file"].startswith(row["species"] + "__val__") for row in val_rows)
    assert {row["species"] for row in rows} == {"cats", "dogs"}
    assert [s.reason for s in read_skipped(tmp_path / "data" / SKIPPED_FILE)] == [NO_TRAINING_REASON]
    filenames, labels, classes = build_index(tmp_path / "data" / "all_images")
    given = given_validation(tmp_path / "data" / "all_images", filenames)
    assert given.sum() == 6 and all(("__val__" in name) == g for name, g in zip(filenames, given, strict=True))


def test_the_given_validation_set_is_kept_whole_and_each_side_shuffled(tmp_path):
    source = make_photo_folder(tmp_path / "src", per_class=6, val_per_class=3)
    data = tmp_path / "data"
    fetch_raw_data(data, "local", source, progress=False)
    x_train, x_val, y_train, y_val = (np.array(a) for a in ensure_split(data, 0.5, seed=3, progress=False))  # copies
    given_names = [f"{c}__val__{c}_val_{k:04d}.jpg" for c in ("cats", "dogs") for k in range(3)]
    assert sorted(x_val.tolist()) == given_names
    assert len(x_train) == 12 and not set(x_train.tolist()) & set(x_val.tolist())
    assert [name.split("__")[0] for name in x_val.tolist()] == [("cats", "dogs")[y] for y in y_val]
    assert x_train.tolist() != sorted(x_train.tolist()), "the training side is shuffled"
    filenames, labels, _ = build_index(data / "all_images")
    given = given_validation(data / "all_images", filenames)
    again = split_train_val(filenames, labels, 0.5, 3, given)
    assert all((a == b).all() for a, b in zip(again, (x_train, x_val, y_train, y_val), strict=True))
    np.save(data / "X_val_filenames.npy", x_train[:3])  # a random split left by an older run: rebuilt
    np.save(data / "X_train_filenames.npy", np.concatenate([x_train[3:], x_val]))
    assert sorted(ensure_split(data, 0.5, seed=3, progress=False)[1].tolist()) == given_names


def test_without_a_test_folder_there_is_nothing_to_predict(tmp_path):
    source = make_photo_folder(tmp_path / "src", per_class=2, val_per_class=0)
    raw = fetch_raw_data(tmp_path / "data", "local", source, progress=False)
    assert raw.test_count == 0 and list_test_images(raw.root / "test") == []


def test_a_tiff_is_left_out_with_the_reason(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.tif")
    Image.new("RGB", (8, 8)).save(tmp_path / "a.webp")
    assert "tf.io.decode_image" in why_unusable(tmp_path / "a.tif") and why_unusable(tmp_path / "a.webp") is None


def test_tf_data_decodes_every_kept_format_as_pillow_does_within_1_of_255(tmp_path):
    """JPEG included: decode_and_resize asks for libjpeg's accurate inverse DCT, as Pillow uses (decode_image's
    default, the fast one, is off by about 1/255 on average and up to 18/255 at edges)."""
    from seedlings_utils.dataset import load_image_uint8
    from seedlings_utils.tfdata import decode_and_resize

    source = make_photo_folder(tmp_path / "src", per_class=6, val_per_class=0,
                               formats=("jpg", "png", "bmp", "gif", "webp", "jpeg"))
    paths = sorted((source / "train").rglob("*.*"))
    assert {p.suffix for p in paths} == {".jpg", ".png", ".bmp", ".gif", ".webp", ".jpeg"}
    for path in paths:
        for size in (32, 100):
            ours = decode_and_resize(str(path), size).numpy().astype(int)
            assert np.abs(ours - load_image_uint8(path, size)).max() <= 1, (path.name, size)


@pytest.mark.parametrize(("fraction", "fits"), [(0.2, True), (0.1, False), (0.85, False)])
def test_val_fraction_must_leave_each_class_on_both_sides(fraction, fits):
    knobs = {"VAL_FRACTION": fraction, "BATCH_SIZE": 8}
    if fits:
        check_fits_data(knobs, train_count=150, class_count=30)
        check_fits_data({**knobs, "VAL_FRACTION": 0.01}, train_count=150, class_count=30, val_count=40)  # given
    else:
        with pytest.raises(ParameterError, match=r"VAL_FRACTION = .*any value from 0\.2 to 0\.8 fits"):
            check_fits_data(knobs, train_count=150, class_count=30)


def test_headline_and_learning_curves_use_the_datas_number_of_classes(tmp_path):
    from seedlings_utils import plots

    (tmp_path / "classes.json").write_text(json.dumps(["a", "b", "c"]))
    np.save(tmp_path / "filenames.npy", np.array(["a__1.png"] * 30))
    (tmp_path / "metrics.json").write_text(json.dumps({"val_accuracy": 0.9, "val_micro_f1": 0.9}))
    text = headline(tmp_path)
    assert "Images:              30 in 3 classes" in text and "chance is 1/3 = 0.333" in text
    fig = plots.plot_history({"loss": [1, 0.5], "accuracy": [0.5, 0.8], "val_accuracy": [0.4, 0.7]}, class_count=3)
    assert [line.get_ydata()[0] for line in fig.axes[1].lines if line.get_linestyle() == ":"] == [1 / 3]


@pytest.fixture(scope="module")
def many_classes(tmp_path_factory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("own-data")
    photos = make_photo_folder(root / "photos", classes=CLASSES, per_class=PER_CLASS, formats=("png", "jpg"),
                               val_per_class=0, test_images=TEST_IMAGES)
    data_dir = root / "data"
    parameters = {**SMALL, "DATA_DIR": str(data_dir), "DATA_SOURCE": "local", "SOURCE_PATH": str(photos)}
    return data_dir, run_lessons(parameters, data_dir / "executed", lessons=["01", "02", "03", "04", "05", "06"])


@pytest.mark.slow
def test_lessons_01_to_06_reach_their_checks(many_classes):
    _, executed = many_classes
    assert [p.name[:2] for p in executed] == ["01", "02", "03", "04", "05", "06"]
    for path in executed:
        outputs = [o for c in json.loads(path.read_text())["cells"] for o in c.get("outputs", [])]
        assert any("OK:" in "".join(o.get("text", "")) for o in outputs), f"{path.name} did not reach its check"


@pytest.mark.slow
def test_every_image_once_with_its_class_in_a_stratified_split(many_classes):
    data_dir, _ = many_classes
    classes = json.loads((data_dir / "classes.json").read_text())
    assert classes == list(CLASSES)
    x_train, y_train = np.load(data_dir / "X_train_filenames.npy"), np.load(data_dir / "y_train.npy")
    x_val, y_val = np.load(data_dir / "X_val_filenames.npy"), np.load(data_dir / "y_val.npy")
    names = np.concatenate([x_train, x_val]).tolist()
    originals = [name.split(FLAT_SEPARATOR)[-1] for name in names]
    assert len(set(originals)) == len(originals) == len(CLASSES) * PER_CLASS
    assert {PurePosixPath(name).suffix for name in originals} == {".png", ".jpg"}
    generated_class = [PurePosixPath(name).stem.rsplit("_", 2)[0] for name in originals]  # Bird-00_train_0003
    assert generated_class == [classes[y] for y in np.concatenate([y_train, y_val])]
    assert np.bincount(y_val, minlength=len(CLASSES)).min() >= 1, "every class in validation (stratified)"
    assert np.bincount(y_train, minlength=len(CLASSES)).min() >= 1


@pytest.mark.slow
def test_lesson_06_predicts_every_test_image_with_one_of_the_classes(many_classes):
    data_dir, _ = many_classes
    metrics = json.loads((data_dir / "metrics.json").read_text())
    assert sorted(metrics["per_class"]) == list(CLASSES)
    assert len(metrics["confusion_matrix"]) == len(CLASSES)
    with open(data_dir / "submission.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(row["file"] for row in rows) == sorted(p.name for p in (data_dir / "raw" / "test").iterdir())
    assert len(rows) == TEST_IMAGES and {row["species"] for row in rows} <= set(CLASSES)
