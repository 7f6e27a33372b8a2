import json
import zipfile
from pathlib import Path

import pytest

from seedlings_utils.sources import (
    DataSourceError,
    count_raw_images,
    extract_zip_safely,
    fetch_raw_data,
    find_kaggle_root,
    read_source_record,
)


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


def _zip_tree(tree: Path, archive: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted(tree.rglob("*")):
            if path.is_file():
                z.write(path, prefix + path.relative_to(tree).as_posix())
    return archive


class FakeKaggleApi:
    """The Kaggle client's boundary: writes the competition zip where the real client would."""

    def __init__(self, tree: Path):
        self.tree, self.downloads = tree, 0

    def authenticate(self):
        pass

    def competition_download_files(self, competition, path=None, quiet=True, **kwargs):
        self.downloads += 1
        _zip_tree(self.tree, Path(path) / f"{competition}.zip")


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


@pytest.fixture
def http_folder(tmp_path, monkeypatch):
    """A plain HTTP server on 127.0.0.1 serving ``tmp_path / "www"``; yields (folder, base URL, request log)."""
    import functools
    import http.server
    import threading

    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)  # urllib would send even 127.0.0.1 through a proxy

    folder = tmp_path / "www"
    folder.mkdir()
    seen = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            seen.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def test_url_source_downloads_verifies_and_skips_next_time(kaggle_tree, tmp_path, http_folder):
    from seedlings_utils.download import sha256_of

    folder, base, seen = http_folder
    archive = _zip_tree(kaggle_tree, folder / "seedlings.zip", prefix="plant-seedlings/")
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
    _zip_tree(kaggle_tree, folder / "seedlings.zip")
    # the notebooks' default SOURCE_SHA256 = "" means "not given", not a malformed digest
    raw = fetch_raw_data(tmp_path / "data", "url", f"{base}/seedlings.zip", progress=False, sha256="")
    assert raw.train_total == 12


def test_url_source_with_a_wrong_checksum_leaves_nothing(kaggle_tree, tmp_path, http_folder):
    folder, base, _ = http_folder
    _zip_tree(kaggle_tree, folder / "seedlings.zip")
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
