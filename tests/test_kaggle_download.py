"""Kaggle download: where credentials come from, what each failure says, and that the key never leaks.

Nothing here touches the network: the client is a fake (the ``api`` parameter), and the one test that builds
the real client blocks name resolution and connections first.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import sys
import types
import zipfile
from pathlib import Path

import pytest

from seedlings_utils.kaggle_download import (
    COMPETITION,
    RULES_URL,
    KaggleCredentials,
    download_competition,
    find_kaggle_credentials,
)
from seedlings_utils.sources import DataSourceError

SECRET = "SECRET-KEY-1234"
ENV_NAMES = ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR", "XDG_CONFIG_HOME",
             "COLAB_RELEASE_TAG")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No real credentials, an empty home, not on Colab."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("google", "google.colab", "google.colab.userdata"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return home


class SecretNotFoundError(Exception):
    pass


class NotebookAccessError(Exception):
    pass


@pytest.fixture
def colab(monkeypatch):
    """A fake Colab: ``google.colab.userdata.get`` reads the returned dict; a value may be an exception."""
    secrets: dict[str, object] = {}

    def get(name):
        value = secrets.get(name, SecretNotFoundError(name))
        if isinstance(value, Exception):
            raise value
        return value

    userdata = types.ModuleType("google.colab.userdata")
    userdata.get = get
    google, google_colab = types.ModuleType("google"), types.ModuleType("google.colab")
    google.colab, google_colab.userdata = google_colab, userdata
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", google_colab)
    monkeypatch.setitem(sys.modules, "google.colab.userdata", userdata)
    return secrets


def write_kaggle_json(folder: Path, username: str = "jsonuser", key: str = SECRET) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "kaggle.json"
    path.write_text(json.dumps({"username": username, "key": key}))
    path.chmod(0o600)
    return path


def all_text(exc: BaseException) -> str:
    """Message, repr and every chained exception's text."""
    parts, seen = [], 0
    current: BaseException | None = exc
    while current is not None and seen < 10:
        parts += [str(current), repr(current), repr(current.args)]
        current, seen = current.__cause__ or current.__context__, seen + 1
    return "\n".join(parts)


class FakeApi:
    """The two methods of KaggleApi the download uses; records the credentials the client would see."""

    def __init__(self, error: BaseException | None = None, zip_name: str | None = None, auth_error=None):
        self.error, self.zip_name, self.auth_error = error, zip_name, auth_error
        self.downloads, self.seen_env = 0, None

    def authenticate(self):
        self.seen_env = {n: os.environ.get(n) for n in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN")}
        if self.auth_error is not None:
            raise self.auth_error

    def competition_download_files(self, competition, path=None, quiet=True):
        self.downloads += 1
        if self.error is not None:
            raise self.error
        with zipfile.ZipFile(Path(path) / (self.zip_name or f"{competition}.zip"), "w") as z:
            z.writestr("train/Maize/1.png", b"not really a png")


class ApiException(Exception):
    """The shape of kaggle 1.6's ``kaggle.rest.ApiException``: the status in ``.status``."""

    def __init__(self, status):
        super().__init__(f"({status})\nReason: x\nHTTP response headers: Authorization: Basic {SECRET}")
        self.status = status


def requests_http_error(status: int) -> Exception:
    """The shape of kaggle >= 1.7's errors: ``requests.HTTPError`` with ``.response.status_code``."""
    requests = pytest.importorskip("requests")
    response = requests.Response()
    response.status_code = status
    return requests.exceptions.HTTPError(f"{status} Client Error for key {SECRET}", response=response)


# --- where credentials come from ---------------------------------------------------------------------------

def test_environment_variables(monkeypatch):
    monkeypatch.setenv("KAGGLE_USERNAME", "envuser")
    monkeypatch.setenv("KAGGLE_KEY", SECRET)
    creds = find_kaggle_credentials()
    assert (creds.username, creds.key, creds.source) == ("envuser", SECRET, "environment variables")


def test_colab_secrets(colab):
    colab.update(KAGGLE_USERNAME="colabuser", KAGGLE_KEY=SECRET)
    creds = find_kaggle_credentials()
    assert (creds.username, creds.key, creds.source) == ("colabuser", SECRET, "Colab secrets")


def test_colab_secrets_ignored_off_colab(colab, monkeypatch):
    colab.update(KAGGLE_USERNAME="colabuser", KAGGLE_KEY=SECRET)
    monkeypatch.delitem(sys.modules, "google.colab")  # env.is_colab() is now False
    monkeypatch.delitem(sys.modules, "google.colab.userdata")
    assert find_kaggle_credentials() is None


def test_colab_secret_missing_or_access_denied_is_tolerated(colab, clean_env):
    colab.update(KAGGLE_USERNAME="colabuser", KAGGLE_KEY=NotebookAccessError("KAGGLE_KEY"))
    assert find_kaggle_credentials() is None
    with pytest.raises(DataSourceError, match="Notebook access"):
        download_competition(clean_env / "dl", api=FakeApi(), progress=False)
    path = write_kaggle_json(clean_env / ".kaggle")
    assert find_kaggle_credentials().source == str(path)


def test_kaggle_json_in_home(clean_env):
    path = write_kaggle_json(clean_env / ".kaggle")
    creds = find_kaggle_credentials()
    assert (creds.username, creds.key, creds.source) == ("jsonuser", SECRET, str(path))


def test_kaggle_json_in_config_dir_and_xdg(clean_env, monkeypatch, tmp_path):
    xdg = write_kaggle_json(clean_env / ".config" / "kaggle", username="xdguser")
    assert find_kaggle_credentials().source == str(xdg)
    custom = write_kaggle_json(tmp_path / "custom", username="customuser")
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(custom.parent))
    assert find_kaggle_credentials().username == "customuser"


def test_precedence_env_then_colab_then_file(clean_env, colab, monkeypatch):
    write_kaggle_json(clean_env / ".kaggle", username="jsonuser")
    colab.update(KAGGLE_USERNAME="colabuser", KAGGLE_KEY=SECRET)
    monkeypatch.setenv("KAGGLE_USERNAME", "envuser")
    monkeypatch.setenv("KAGGLE_KEY", SECRET)
    assert find_kaggle_credentials().username == "envuser"
    monkeypatch.delenv("KAGGLE_KEY")  # half a pair in the environment does not count
    assert find_kaggle_credentials().username == "colabuser"
    colab.clear()
    assert find_kaggle_credentials().username == "jsonuser"


def test_api_token_variable(monkeypatch):
    monkeypatch.setenv("KAGGLE_API_TOKEN", SECRET)
    creds = find_kaggle_credentials()
    assert creds.is_token and creds.key == SECRET and "KAGGLE_API_TOKEN" in creds.source


def test_api_tokens_are_found_where_the_kaggle_client_looks(clean_env, monkeypatch, tmp_path):
    pytest.importorskip("kagglesdk")
    token_file = clean_env / ".kaggle" / "access_token.txt"
    token_file.parent.mkdir()
    token_file.write_text(SECRET + "\n")
    creds = find_kaggle_credentials()
    assert creds.is_token and creds.key == SECRET and creds.source == str(token_file)
    json_path = write_kaggle_json(clean_env / ".kaggle")  # kaggle.json comes before a token file
    assert find_kaggle_credentials().source == str(json_path)
    elsewhere = tmp_path / "my-token"
    elsewhere.write_text("ANOTHER-TOKEN")
    monkeypatch.setenv("KAGGLE_API_TOKEN", str(elsewhere))  # the variable may name a file holding the token
    creds = find_kaggle_credentials()
    assert creds.key == "ANOTHER-TOKEN" and "KAGGLE_API_TOKEN" in creds.source and "ANOTHER" not in str(creds)


@pytest.mark.parametrize("content", ["{not json " + SECRET, "[1, 2]", json.dumps({"username": "u"}),
                                     json.dumps({"username": "", "key": SECRET})])
def test_malformed_kaggle_json_names_the_file_never_its_content(clean_env, content):
    path = clean_env / ".kaggle" / "kaggle.json"
    path.parent.mkdir()
    path.write_text(content)
    with pytest.raises(DataSourceError) as info:
        find_kaggle_credentials()
    assert str(path) in str(info.value) and "Create New Token" in str(info.value)
    assert SECRET not in all_text(info.value)


def test_no_credentials_explains_every_way(tmp_path):
    api = FakeApi()
    with pytest.raises(DataSourceError) as info:
        download_competition(tmp_path / "dl", api=api, progress=False)
    message = str(info.value)
    for needed in ("kaggle.json", "KAGGLE_USERNAME", "KAGGLE_KEY", "Colab", "secret", "chmod 600",
                   "https://www.kaggle.com/settings", "Create New Token", 'DATA_SOURCE = "synthetic"'):
        assert needed in message, needed
    assert api.downloads == 0


# --- the secret never shows ---------------------------------------------------------------------------------

def test_credentials_hide_the_key():
    creds = KaggleCredentials("someone", SECRET, "Colab secrets")
    assert SECRET not in str(creds) and SECRET not in repr(creds) and SECRET not in f"{creds!s} {creds!r}"
    assert "someone" in str(creds) and "Colab secrets" in str(creds)


# --- what each failure says ---------------------------------------------------------------------------------

@pytest.fixture
def env_creds(monkeypatch):
    monkeypatch.setenv("KAGGLE_USERNAME", "envuser")
    monkeypatch.setenv("KAGGLE_KEY", SECRET)


def download_error(tmp_path, api) -> DataSourceError:
    with pytest.raises(DataSourceError) as info:
        download_competition(tmp_path / "dl", api=api, progress=True)
    return info.value


@pytest.mark.parametrize("make", [ApiException, requests_http_error], ids=["status", "response.status_code"])
def test_403_says_accept_the_rules(env_creds, tmp_path, capsys, make):
    error = download_error(tmp_path, FakeApi(make(403)))
    assert RULES_URL in str(error) and "I Understand and Accept" in str(error) and "403" in str(error)
    assert SECRET not in all_text(error) and SECRET not in "".join(capsys.readouterr())
    assert error.__cause__ is None and error.__context__ is None


@pytest.mark.parametrize("make", [ApiException, requests_http_error], ids=["status", "response.status_code"])
def test_401_names_the_source_and_how_to_renew(env_creds, tmp_path, capsys, make):
    error = download_error(tmp_path, FakeApi(make(401)))
    assert "401" in str(error) and "environment variables" in str(error) and "Create New Token" in str(error)
    assert SECRET not in all_text(error) and SECRET not in "".join(capsys.readouterr())


def test_401_from_kaggle_json_names_the_file(clean_env, tmp_path):
    path = write_kaggle_json(clean_env / ".kaggle")
    error = download_error(tmp_path, FakeApi(auth_error=requests_http_error(401)))
    assert str(path) in str(error) and SECRET not in all_text(error)


@pytest.mark.parametrize("make", [ApiException, requests_http_error], ids=["status", "response.status_code"])
def test_404_names_the_competition(env_creds, tmp_path, make):
    with pytest.raises(DataSourceError) as info:
        download_competition(tmp_path / "dl", competition="no-such-thing", api=FakeApi(make(404)), progress=False)
    assert "no-such-thing" in str(info.value) and "404" in str(info.value) and SECRET not in all_text(info.value)


def network_errors():
    errors = [OSError(f"[Errno 101] Network is unreachable {SECRET}"), socket.gaierror(-3, "Temporary failure")]
    try:
        import requests

        errors.append(requests.exceptions.ConnectionError(f"Max retries exceeded {SECRET}"))
    except ImportError:
        pass
    return errors


@pytest.mark.parametrize("exc", network_errors(), ids=lambda e: type(e).__name__)
def test_network_error_says_cannot_reach_kaggle(env_creds, tmp_path, capsys, exc):
    error = download_error(tmp_path, FakeApi(exc))
    message = str(error)
    assert "Cannot reach kaggle.com" in message and '"synthetic"' in message and '"local"' in message
    assert SECRET not in all_text(error) and SECRET not in "".join(capsys.readouterr())


def test_client_exit_is_turned_into_a_clear_error(env_creds, tmp_path):
    error = download_error(tmp_path, FakeApi(auth_error=SystemExit(1)))
    assert "did not accept the credentials" in str(error) and "environment variables" in str(error)


# --- success, skipping, restoring the environment --------------------------------------------------------

def test_success_writes_the_zip_and_a_rerun_skips(env_creds, tmp_path, capsys):
    api = FakeApi()
    zip_path = download_competition(tmp_path / "a" / "dl", api=api)
    assert zip_path == tmp_path / "a" / "dl" / f"{COMPETITION}.zip"
    assert zipfile.ZipFile(zip_path).namelist() == ["train/Maize/1.png"]
    assert download_competition(tmp_path / "a" / "dl", api=api) == zip_path
    assert api.downloads == 1
    assert SECRET not in "".join(capsys.readouterr())


def test_incomplete_zip_from_an_earlier_run_is_downloaded_again(env_creds, tmp_path):
    target = tmp_path / "dl"
    target.mkdir()
    (target / f"{COMPETITION}.zip").write_bytes(b"PK half")  # no completion marker
    api = FakeApi()
    assert zipfile.is_zipfile(download_competition(target, api=api, progress=False))
    assert api.downloads == 1


def test_zip_with_another_name_is_found(env_creds, tmp_path):
    (tmp_path / "dl").mkdir()
    old = tmp_path / "dl" / "unrelated.zip"
    with zipfile.ZipFile(old, "w") as z:
        z.writestr("x", "y")
    assert download_competition(tmp_path / "dl", api=FakeApi(zip_name="bundle.zip"), progress=False).name == \
        "bundle.zip"


class BrokenDownloadApi(FakeApi):
    def competition_download_files(self, competition, path=None, quiet=True):
        self.downloads += 1
        if self.zip_name:
            (Path(path) / self.zip_name).write_bytes(b"<html>an error page, not a zip</html>")


def test_a_download_that_is_no_zip_is_an_error_and_is_retried(env_creds, tmp_path):
    api = BrokenDownloadApi(zip_name=f"{COMPETITION}.zip")
    for attempt in (1, 2):
        with pytest.raises(DataSourceError, match="not a valid zip"):
            download_competition(tmp_path / "dl", api=api, progress=False)
        assert api.downloads == attempt
    with pytest.raises(DataSourceError, match="no new .zip file"):
        download_competition(tmp_path / "empty", api=BrokenDownloadApi(), progress=False)


def test_credentials_reach_the_client_only_during_the_call(clean_env, colab, monkeypatch, tmp_path):
    colab.update(KAGGLE_USERNAME="colabuser", KAGGLE_KEY=SECRET)
    monkeypatch.setenv("KAGGLE_API_TOKEN", "")  # set but empty: must come back as it was
    api = FakeApi()
    download_competition(tmp_path / "dl", api=api, progress=False)
    assert api.seen_env == {"KAGGLE_USERNAME": "colabuser", "KAGGLE_KEY": SECRET, "KAGGLE_API_TOKEN": None}
    assert "KAGGLE_USERNAME" not in os.environ and "KAGGLE_KEY" not in os.environ
    assert os.environ["KAGGLE_API_TOKEN"] == ""
    assert not any(SECRET in p.read_text(errors="ignore") for p in (tmp_path / "dl").iterdir() if p.suffix != ".zip")


def test_environment_restored_after_a_failure(monkeypatch, clean_env, tmp_path):
    write_kaggle_json(clean_env / ".kaggle")
    monkeypatch.setenv("KAGGLE_USERNAME", "half-a-pair")
    with pytest.raises(DataSourceError):
        download_competition(tmp_path / "dl", api=FakeApi(ApiException(403)), progress=False)
    assert os.environ["KAGGLE_USERNAME"] == "half-a-pair" and "KAGGLE_KEY" not in os.environ


# --- the real client ---------------------------------------------------------------------------------------

@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise socket.gaierror(-3, "network disabled in the tests")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_real_client_imports_and_builds_without_network(no_network, tmp_path, monkeypatch):
    if importlib.util.find_spec("kaggle") is None:
        pytest.skip("the kaggle client is not installed")
    import inspect

    # kaggle < 2.2.4 signs in (and exits without credentials) when imported; the course imports it only once
    # credentials are set, so give it some (no network is used)
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", "0" * 32)

    from kaggle.api.kaggle_api_extended import KaggleApi

    api = KaggleApi()
    assert callable(api.authenticate)
    parameters = inspect.signature(api.competition_download_files).parameters
    assert {"competition", "path", "quiet"} <= set(parameters)


def test_real_client_without_network_gives_the_offline_message(no_network, env_creds, tmp_path, capsys):
    if importlib.util.find_spec("kaggle") is None:
        pytest.skip("the kaggle client is not installed")
    error = download_error(tmp_path, api=None)
    assert "Cannot reach kaggle.com" in str(error)
    assert SECRET not in all_text(error) and SECRET not in "".join(capsys.readouterr())
