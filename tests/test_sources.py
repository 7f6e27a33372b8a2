import json
import zipfile
from pathlib import Path

import pytest

from seedlings_utils.sources import (
    COURSE_RECORD,
    DataSourceError,
    count_raw_images,
    extract_zip_safely,
    fetch_course_data,
    fetch_raw_data,
    find_kaggle_root,
    read_course_record,
    read_source_record,
)

from .helpers import zip_tree


def test_local_folder_is_copied_in_kaggle_layout(kaggle_tree, tmp_path):
    raw = fetch_raw_data(tmp_path / "data", "local", kaggle_tree, progress=False)
    assert raw.root == tmp_path / "data" / "raw"
    assert raw.train_counts == {"Charlock": 4, "Common wheat": 4, "Maize": 4}
    assert raw.test_count == 3
    copied, original = raw.root / "train" / "Maize" / "same.png", kaggle_tree / "train" / "Maize" / "same.png"
    assert copied.read_bytes() == original.read_bytes()
    record = read_source_record(raw.root)
    assert record["source"] == "local" and record["path"] == str(kaggle_tree.resolve())
    assert record["fingerprint"][0] == sum(1 for p in kaggle_tree.rglob("*") if p.is_file())
    assert not (tmp_path / "data" / "raw.partial").exists()


def test_local_zip_with_wrapper_folder_and_nested_zips(kaggle_tree, tmp_path):
    # Kaggle's older bundle: one folder holding train.zip and test.zip
    bundle = tmp_path / "bundle.zip"
    with zipfile.ZipFile(bundle, "w") as outer:
        for part in ("train", "test"):
            inner = tmp_path / f"{part}.zip"
            with zipfile.ZipFile(inner, "w") as z:
                for p in sorted((kaggle_tree / part).rglob("*.png")):
                    z.write(p, p.relative_to(kaggle_tree))
            outer.write(inner, f"plant-seedlings/{part}.zip")
    raw = fetch_raw_data(tmp_path / "data", "local", bundle, progress=False)
    assert raw.train_total == 12 and raw.test_count == 3
    assert sorted(p.name for p in raw.root.iterdir()) == [".source.json", "test", "train"]


def test_rerun_is_a_no_op_and_keeps_files(kaggle_tree, tmp_path):
    fetch_raw_data(tmp_path / "data", "local", kaggle_tree, progress=False)
    marker = tmp_path / "data" / "raw" / "train" / "Maize" / "same.png"
    before = marker.stat().st_mtime_ns
    again = fetch_raw_data(tmp_path / "data", "local", kaggle_tree, progress=False)
    assert again.train_total == 12 and marker.stat().st_mtime_ns == before


def test_other_data_is_never_overwritten(kaggle_tree, tmp_path):
    fetch_raw_data(tmp_path / "data", "local", kaggle_tree, progress=False)
    with pytest.raises(DataSourceError, match="already holds other data"):
        fetch_raw_data(tmp_path / "data", "synthetic", synthetic_per_class=2, progress=False)
    assert count_raw_images(tmp_path / "data" / "raw")[0]["Maize"] == 4


@pytest.mark.slow
def test_synthetic_set_is_replaced_when_its_parameters_change(tmp_path):
    first = fetch_raw_data(tmp_path, "synthetic", synthetic_per_class=2, seed=1, progress=False)
    assert first.train_total == 24 and len(first.train_counts) == 12
    second = fetch_raw_data(tmp_path, "synthetic", synthetic_per_class=3, seed=1, progress=False)
    assert second.train_total == 36
    assert json.loads((tmp_path / "raw" / ".source.json").read_text())["per_class"] == 3


def test_interrupted_run_is_redone(kaggle_tree, tmp_path):
    partial = tmp_path / "data" / "raw.partial" / "train" / "Maize"
    partial.mkdir(parents=True)
    (partial / "half.png").write_bytes(b"\x89PNG")
    raw = fetch_raw_data(tmp_path / "data", "local", kaggle_tree, progress=False)
    assert raw.train_total == 12 and not (raw.root / "train" / "Maize" / "half.png").exists()


class FakeKaggleApi:
    """The Kaggle client's boundary: writes the competition zip where the real client would."""

    def __init__(self, tree: Path):
        self.tree, self.downloads = tree, 0

    def authenticate(self):
        pass

    def competition_download_files(self, competition, path=None, quiet=True, **kwargs):
        self.downloads += 1
        zip_tree(self.tree, Path(path) / f"{competition}.zip")


def test_kaggle_source_downloads_extracts_and_skips_next_time(kaggle_tree, tmp_path, monkeypatch):
    from seedlings_utils import kaggle_download

    api = FakeKaggleApi(kaggle_tree)
    monkeypatch.setattr(kaggle_download, "_real_api", lambda: api)
    monkeypatch.setenv("KAGGLE_USERNAME", "learner")
    monkeypatch.setenv("KAGGLE_KEY", "SECRET-KEY-1234")
    raw = fetch_raw_data(tmp_path / "data", "kaggle", progress=False)
    assert raw.train_counts == {"Charlock": 4, "Common wheat": 4, "Maize": 4} and raw.test_count == 3
    assert (tmp_path / "data" / "downloads" / "plant-seedlings-classification.zip").is_file()
    assert "SECRET" not in (raw.root / ".source.json").read_text()
    fetch_raw_data(tmp_path / "data", "kaggle", progress=False)
    assert api.downloads == 1


def test_kaggle_source_without_credentials_says_what_to_do(tmp_path, monkeypatch):
    from seedlings_utils import kaggle_download

    monkeypatch.setattr(kaggle_download, "find_kaggle_credentials", lambda: None)
    with pytest.raises(DataSourceError, match="kaggle.json"):
        fetch_raw_data(tmp_path, "kaggle", progress=False)
    assert not (tmp_path / "raw").exists()


def test_url_source_downloads_verifies_and_skips_next_time(kaggle_tree, tmp_path, http_folder):
    from seedlings_utils.download import sha256_of

    folder, base, seen = http_folder
    archive = zip_tree(kaggle_tree, folder / "seedlings.zip", prefix="plant-seedlings/")
    raw = fetch_raw_data(tmp_path / "data", "url", f"{base}/seedlings.zip?token=SECRET", progress=False,
                         sha256=sha256_of(archive))
    assert raw.train_total == 12 and raw.test_count == 3
    assert "SECRET" not in (raw.root / ".source.json").read_text()
    requests = len(seen)
    fetch_raw_data(tmp_path / "data", "url", f"{base}/seedlings.zip?token=SECRET", progress=False,
                   sha256=sha256_of(archive))
    assert len(seen) == requests, "a verified copy is not downloaded again"


def test_url_source_without_a_checksum_as_make_lessons_passes_it(kaggle_tree, tmp_path, http_folder):
    folder, base, _ = http_folder
    zip_tree(kaggle_tree, folder / "seedlings.zip")
    # the notebooks' default SOURCE_SHA256 = "" means "not given", not a malformed digest
    raw = fetch_raw_data(tmp_path / "data", "url", f"{base}/seedlings.zip", progress=False, sha256="")
    assert raw.train_total == 12


def test_url_source_with_a_wrong_checksum_leaves_nothing(kaggle_tree, tmp_path, http_folder):
    folder, base, _ = http_folder
    zip_tree(kaggle_tree, folder / "seedlings.zip")
    with pytest.raises(DataSourceError, match="(?i)sha-?256|checksum"):
        fetch_raw_data(tmp_path / "data", "url", f"{base}/seedlings.zip", progress=False, sha256="0" * 64)
    assert not (tmp_path / "data" / "raw").exists()
    with pytest.raises(DataSourceError, match="404"):
        fetch_raw_data(tmp_path / "data", "url", f"{base}/missing.zip", progress=False)
    with pytest.raises(DataSourceError, match="needs SOURCE_PATH"):
        fetch_raw_data(tmp_path / "data", "url", "", progress=False)


def test_bad_arguments_get_clear_errors(tmp_path):
    with pytest.raises(DataSourceError, match="must be one of"):
        fetch_raw_data(tmp_path, "ftp")
    with pytest.raises(DataSourceError, match="needs SOURCE_PATH"):
        fetch_raw_data(tmp_path, "local")
    with pytest.raises(DataSourceError, match="does not exist"):
        fetch_raw_data(tmp_path, "local", tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataSourceError, match="No train/ folder"):
        fetch_raw_data(tmp_path / "d", "local", tmp_path / "empty")


@pytest.mark.parametrize("entry", ["../evil.txt", "/etc/evil.txt", "a/../../evil.txt"])
def test_zip_slip_is_refused_before_writing(entry, tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("train/ok.txt", "fine")
        z.writestr(entry, "evil")
    target = tmp_path / "out" / "inner"
    with pytest.raises(DataSourceError, match="Refusing to extract"):
        extract_zip_safely(archive, target, progress=False)
    assert not (target / "train" / "ok.txt").exists()
    assert not list(tmp_path.rglob("evil.txt"))


def test_zip_symlink_is_refused(tmp_path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as z:
        info = zipfile.ZipInfo("train/link.png")
        info.external_attr = (0o120777 << 16)
        z.writestr(info, "/etc/passwd")
    with pytest.raises(DataSourceError, match="symbolic link"):
        extract_zip_safely(archive, tmp_path / "out", progress=False)


def test_find_kaggle_root(tmp_path: Path):
    (tmp_path / "wrapper" / "train").mkdir(parents=True)
    assert find_kaggle_root(tmp_path) == tmp_path / "wrapper"
    assert find_kaggle_root(tmp_path / "wrapper") == tmp_path / "wrapper"


def test_a_source_without_training_images_is_refused_and_not_recorded(tmp_path):
    empty = tmp_path / "empty"
    (empty / "train").mkdir(parents=True)
    data = tmp_path / "data"
    with pytest.raises(DataSourceError, match="No training image in .*a train/ folder with no species folder"):
        fetch_raw_data(data, "local", empty, progress=False)
    assert not (data / "raw").exists() and not (data / "raw.partial").exists()
    (empty / "train" / "Maize").mkdir()
    (empty / "train" / "Maize" / "notes.txt").write_text("not an image")
    with pytest.raises(DataSourceError, match=r"1 species folders in train/ \(Maize\), none with an image file"):
        fetch_raw_data(data, "local", empty, progress=False)
    assert read_source_record(data / "raw") is None


def test_a_changed_source_folder_is_copied_again(kaggle_tree, tmp_path, capsys):
    data = tmp_path / "data"
    assert fetch_raw_data(data, "local", kaggle_tree, progress=False).train_total == 12
    (kaggle_tree / "train" / "Sugar beet").mkdir()
    for name in ("a.png", "b.png"):
        (kaggle_tree / "train" / "Sugar beet" / name).write_bytes((kaggle_tree / "train" / "Maize" / "same.png")
                                                                  .read_bytes())
    again = fetch_raw_data(data, "local", kaggle_tree, progress=False)
    assert "changed since it was copied" in capsys.readouterr().out
    assert again.train_total == 14 and again.train_counts["Sugar beet"] == 2
    assert count_raw_images(data / "raw")[0]["Sugar beet"] == 2


def test_a_record_of_an_earlier_version_is_refreshed(kaggle_tree, tmp_path):
    data = tmp_path / "data"
    fetch_raw_data(data, "local", kaggle_tree, progress=False)
    record = data / "raw" / ".source.json"  # what the course wrote before it fingerprinted folders
    record.write_text(json.dumps({"source": "local", "path": str(kaggle_tree.resolve())}))
    assert fetch_raw_data(data, "local", kaggle_tree, progress=False).train_total == 12
    assert "fingerprint" in read_source_record(data / "raw")


# The course record (COURSE_DIR/course_data.json): lesson 01 writes it, a fresh runtime rebuilds raw/ from it.


def test_url_zip_is_kept_in_course_dir_and_a_fresh_runtime_unpacks_it_offline(kaggle_tree, tmp_path, http_folder,
                                                                              capsys):
    from seedlings_utils.earlier_lessons import ensure_raw

    folder, base, seen = http_folder
    zip_tree(kaggle_tree, folder / "seedlings.zip", prefix="plant-seedlings/")
    course = tmp_path / "drive"
    raw = fetch_course_data(tmp_path / "runtime1", course, "url", f"{base}/seedlings.zip?token=SECRET",
                            progress=False)
    record = read_course_record(course)
    assert record == {"source": raw.source, "archive": "downloads/seedlings.zip"}
    assert (course / "downloads" / "seedlings.zip").is_file() and "SECRET" not in (course / COURSE_RECORD).read_text()
    assert not (tmp_path / "runtime1" / "downloads").exists(), "the zip is kept once, in COURSE_DIR"
    requests = len(seen)
    fresh = ensure_raw(tmp_path / "runtime2", course_dir=course, progress=False)
    assert len(seen) == requests, "a fresh runtime unpacks the zip from COURSE_DIR, with no request"
    assert read_source_record(fresh.root) == raw.source
    assert (fresh.train_counts, fresh.test_count) == (raw.train_counts, raw.test_count)
    assert "Unpacked 15 images" in capsys.readouterr().out
    ensure_raw(tmp_path / "runtime2", course_dir=course, progress=False)
    assert "Unpacked" not in capsys.readouterr().out, "a runtime that has the data keeps it"


def test_kaggle_zip_is_downloaded_once_for_every_runtime(kaggle_tree, tmp_path, monkeypatch):
    from seedlings_utils import kaggle_download
    from seedlings_utils.earlier_lessons import ensure_raw

    api = FakeKaggleApi(kaggle_tree)
    monkeypatch.setattr(kaggle_download, "_real_api", lambda: api)
    monkeypatch.setenv("KAGGLE_USERNAME", "learner")
    monkeypatch.setenv("KAGGLE_KEY", "SECRET-KEY-1234")
    course = tmp_path / "drive"
    fetch_course_data(tmp_path / "runtime1", course, "kaggle", progress=False)
    assert read_course_record(course)["archive"] == "downloads/plant-seedlings-classification.zip"
    for runtime in ("runtime2", "runtime3"):
        assert ensure_raw(tmp_path / runtime, course_dir=course, progress=False).train_total == 12
    assert api.downloads == 1


def test_a_course_dir_chosen_after_the_download_gets_the_zip_too(kaggle_tree, tmp_path, http_folder):
    folder, base, _ = http_folder
    zip_tree(kaggle_tree, folder / "seedlings.zip")
    fetch_raw_data(tmp_path / "data", "url", f"{base}/seedlings.zip", progress=False)  # raw/ is there already
    fetch_course_data(tmp_path / "data", tmp_path / "drive", "url", f"{base}/seedlings.zip", progress=False)
    assert (tmp_path / "drive" / read_course_record(tmp_path / "drive")["archive"]).is_file()


def test_without_a_record_a_lesson_says_it_uses_the_synthetic_set(tmp_path, capsys):
    from seedlings_utils.earlier_lessons import course_data, ensure_raw

    raw_kwargs = course_data(tmp_path / "drive", tmp_path / "data", synthetic_per_class=2, seed=1, progress=False)
    assert "SYNTHETIC" in capsys.readouterr().out
    assert raw_kwargs == {"course_dir": tmp_path / "drive", "synthetic_per_class": 2}
    raw = ensure_raw(tmp_path / "data", seed=1, progress=False, **raw_kwargs)
    assert raw.source == {"source": "synthetic", "per_class": 2, "seed": 1}


def test_a_record_written_later_replaces_the_synthetic_fallback(kaggle_tree, tmp_path):
    from seedlings_utils.earlier_lessons import ensure_index, ensure_raw

    course = tmp_path / "drive"
    ensure_raw(tmp_path / "data", course_dir=course, synthetic_per_class=2, progress=False)  # lesson 05 run first
    fetch_course_data(tmp_path / "lesson01", course, "local", kaggle_tree, progress=False)  # then lesson 01
    filenames, _, classes = ensure_index(tmp_path / "data", course_dir=course, progress=False)
    assert classes == ["Charlock", "Common wheat", "Maize"] and len(filenames) == 12


@pytest.mark.slow
def test_a_synthetic_record_is_drawn_again_with_lesson_01s_size_and_seed(tmp_path):
    from seedlings_utils.earlier_lessons import ensure_raw

    first = fetch_course_data(tmp_path / "runtime1", tmp_path / "drive", "synthetic", synthetic_per_class=2, seed=5,
                              progress=False)
    again = ensure_raw(tmp_path / "runtime2", course_dir=tmp_path / "drive", synthetic_per_class=400, seed=9,
                       progress=False)
    assert again.source == first.source and again.train_counts == first.train_counts
    assert sorted(p.name for p in (again.root / "train").rglob("*.png")) == sorted(
        p.name for p in (first.root / "train").rglob("*.png"))


def test_a_record_this_runtime_cannot_follow_says_what_to_do(kaggle_tree, tmp_path, http_folder):
    from seedlings_utils.earlier_lessons import ensure_raw

    fetch_course_data(tmp_path / "runtime1", tmp_path / "drive", "local", kaggle_tree, progress=False)
    kaggle_tree.rename(tmp_path / "elsewhere")  # another runtime's disk
    with pytest.raises(DataSourceError, match="this runtime cannot see"):
        ensure_raw(tmp_path / "runtime2", course_dir=tmp_path / "drive", progress=False)
    folder, base, _ = http_folder
    zip_tree(tmp_path / "elsewhere", folder / "seedlings.zip")
    fetch_course_data(tmp_path / "runtime3", tmp_path / "other-drive", "url", f"{base}/seedlings.zip", progress=False)
    (tmp_path / "other-drive" / "downloads" / "seedlings.zip").unlink()
    with pytest.raises(DataSourceError, match="Run lesson 01 again"):
        ensure_raw(tmp_path / "runtime4", course_dir=tmp_path / "other-drive", progress=False)
    assert not (tmp_path / "runtime2" / "raw").exists() and not (tmp_path / "runtime4" / "raw").exists()


def test_course_dir_defaults_to_drive_on_colab_and_to_data_dir_elsewhere(tmp_path, monkeypatch):
    from seedlings_utils import data_dirs

    assert data_dirs.resolve_course_dir("", tmp_path / "data") == (tmp_path / "data").resolve()
    assert data_dirs.resolve_course_dir(tmp_path / "c", tmp_path / "data") == (tmp_path / "c").resolve()
    monkeypatch.setattr(data_dirs, "is_colab", lambda: True)
    monkeypatch.setattr(data_dirs, "resolve_data_dir", lambda path: Path(path))  # no Drive to mount here
    assert data_dirs.resolve_course_dir("", tmp_path / "data") == Path(data_dirs.COLAB_COURSE_DIR)
