"""Download the official competition files with the Kaggle client, with clear errors and no leaked secrets.

The key is never printed, logged, written to disk or put into an exception: credentials found anywhere
(environment, Colab secrets, ``kaggle.json``) reach the client through ``KAGGLE_*`` environment variables
set only for the duration of the call. Extraction is not done here (``sources`` extracts safely).
"""

from __future__ import annotations

import errno
import json
import os
import socket
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .files import write_text_atomically
from .platform_info import is_colab
from .sources import DataSourceError

COMPETITION = "plant-seedlings-classification"
RULES_URL = f"https://www.kaggle.com/c/{COMPETITION}/rules"
SETTINGS_URL = "https://www.kaggle.com/settings"
COMPLETE_SUFFIX = ".download-complete.json"

_ENV_NAMES = ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN")
_OFFLINE_HINT = ('Meanwhile DATA_SOURCE = "synthetic" (the default) works offline without any account, and '
                 'DATA_SOURCE = "local" works with the competition zip downloaded elsewhere.')
_TOKEN_STEPS = (
    f'Create a token: sign in to Kaggle, open {SETTINGS_URL}, section "API", click "Create New Token" '
    "(it downloads kaggle.json, which holds your username and key)."
)


@dataclass(frozen=True)
class KaggleCredentials:
    """A Kaggle username and key, and where they were found. The key never appears in ``str``/``repr``.

    ``username`` is empty for a new-style API token (``KAGGLE_API_TOKEN``), which carries no username.
    """

    username: str
    key: str = field(repr=False)
    source: str = ""

    @property
    def is_token(self) -> bool:
        """True for a new-style API token (no username), False for a kaggle.json username/key pair."""
        return not self.username

    def __str__(self) -> str:
        who = f"user {self.username!r}" if self.username else "an API token"
        return f"Kaggle credentials for {who} from {self.source}"


def _kaggle_json_candidates() -> list[Path]:
    """Where ``kaggle.json`` may live, in the order the Kaggle clients look."""
    home = Path.home()
    dirs = []
    if os.environ.get("KAGGLE_CONFIG_DIR"):
        dirs.append(Path(os.environ["KAGGLE_CONFIG_DIR"]).expanduser())
    dirs.append(home / ".kaggle")
    dirs.append(Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config") / "kaggle")
    unique: list[Path] = []
    for d in dirs:
        if d / "kaggle.json" not in unique:
            unique.append(d / "kaggle.json")
    return unique


def _read_kaggle_json(path: Path) -> KaggleCredentials:
    """Username and key from a kaggle.json; a malformed file raises (naming the file, never its content)."""
    fix = (f"Download a fresh kaggle.json from {SETTINGS_URL} (API > Create New Token) and replace {path} with it "
           f"(then: chmod 600 {path}).")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problem = f"could not be read ({type(exc).__name__})"
    else:
        try:
            data = json.loads(text)
        except ValueError:
            problem = "is not valid JSON"
        else:
            if not isinstance(data, dict):
                problem = "is not a JSON object"
            elif not all(isinstance(data.get(k), str) and data.get(k).strip() for k in ("username", "key")):
                problem = 'lacks a non-empty "username" or "key" entry'
            else:
                return KaggleCredentials(data["username"].strip(), data["key"].strip(), str(path))
    raise DataSourceError(f"The Kaggle credentials file {path} {problem}. {fix}") from None


def _colab_secret(userdata: object, name: str, notes: list[str]) -> str | None:
    """One Colab secret, or None when it is missing or the notebook was not granted access."""
    try:
        value = userdata.get(name)  # type: ignore[attr-defined]
    except Exception as exc:  # SecretNotFoundError, NotebookAccessError, TimeoutException...
        if "access" in type(exc).__name__.lower():
            notes.append(f'The Colab secret {name} exists but this notebook has no access to it: open the key '
                         'icon in the left bar and switch on "Notebook access" for it.')
        return None
    return value.strip() if isinstance(value, str) and value.strip() else None


def _client_token(notes: list[str]) -> KaggleCredentials | None:
    """A new-style API token where the Kaggle client itself looks (``kagglesdk``'s search: ``KAGGLE_API_TOKEN``,
    holding the token or a file's path; ``~/.kaggle/access_token`` or ``.txt``; a Kaggle notebook's token)."""
    try:
        from kagglesdk.kaggle_env import get_access_token_from_env  # type: ignore[import-not-found]
    except ImportError:  # kaggle < 2.0 (no kagglesdk): no new-style tokens either
        return None
    try:
        token, where = get_access_token_from_env()
    except (OSError, UnicodeDecodeError) as exc:
        notes.append(f"A Kaggle API token file could not be read ({type(exc).__name__}).")
        return None
    if not token or not token.strip():
        return None
    token = token.strip()
    if where == "KAGGLE_API_TOKEN":
        return KaggleCredentials("", token, "environment variable KAGGLE_API_TOKEN")
    if where == "access_token":  # ~/.kaggle/access_token, or the same with .txt: name the one that holds it
        files = [Path.home() / ".kaggle" / name for name in ("access_token", "access_token.txt")]
        where = next((str(f) for f in files if f.is_file() and f.read_text(errors="replace").strip() == token),
                     str(files[0]))
    return KaggleCredentials("", token, where)


def _find(notes: list[str]) -> KaggleCredentials | None:
    env_user, env_key = os.environ.get("KAGGLE_USERNAME", "").strip(), os.environ.get("KAGGLE_KEY", "").strip()
    if env_user and env_key:
        return KaggleCredentials(env_user, env_key, "environment variables")
    if env_user or env_key:
        missing = "KAGGLE_KEY" if env_user else "KAGGLE_USERNAME"
        notes.append(f"Only one of KAGGLE_USERNAME / KAGGLE_KEY is set in the environment: {missing} is missing.")
    token = _client_token(notes)
    if token is not None and token.source.startswith("environment variable"):
        return token

    if is_colab():  # the Kaggle client does not read Colab's secrets
        try:
            from google.colab import userdata  # type: ignore[import-not-found]
        except Exception:
            userdata = None
        if userdata is not None:
            user, key = _colab_secret(userdata, "KAGGLE_USERNAME", notes), _colab_secret(userdata, "KAGGLE_KEY", notes)
            if user and key:
                return KaggleCredentials(user, key, "Colab secrets")
            colab_token = _colab_secret(userdata, "KAGGLE_API_TOKEN", notes)
            if colab_token:
                return KaggleCredentials("", colab_token, "Colab secret KAGGLE_API_TOKEN")

    for path in _kaggle_json_candidates():
        if path.is_file():
            return _read_kaggle_json(path)
    return token


def find_kaggle_credentials() -> KaggleCredentials | None:
    """Kaggle credentials from the usual places, in this order, or None.

    1. ``KAGGLE_USERNAME`` + ``KAGGLE_KEY`` environment variables (then ``KAGGLE_API_TOKEN``);
    2. on Colab, the secrets ``KAGGLE_USERNAME`` + ``KAGGLE_KEY`` (then ``KAGGLE_API_TOKEN``), when the notebook
       was granted access;
    3. ``kaggle.json`` in ``$KAGGLE_CONFIG_DIR``, ``~/.kaggle/`` or ``~/.config/kaggle/`` (then the token files
       the Kaggle client's own search finds, e.g. ``~/.kaggle/access_token``).

    API tokens are found by the Kaggle client's own search (``kagglesdk``); ours adds Colab's secrets, the
    kaggle.json places read at call time, and one clear error for a malformed kaggle.json (the client ignores it).

    A malformed kaggle.json raises :class:`DataSourceError` naming the file (never its content).
    """
    return _find([])


def _no_credentials_message(notes: list[str]) -> str:
    places = ", ".join(str(p) for p in _kaggle_json_candidates())
    lines = [
        "No Kaggle credentials found (looked at the environment variables KAGGLE_USERNAME / KAGGLE_KEY, "
        f"Colab secrets{'' if is_colab() else ' (not on Colab)'} and kaggle.json in: {places}).",
        *notes,
        "To download the real competition data:",
        f"  1. {_TOKEN_STEPS}",
        "  2. Then do ONE of:",
        "     - put kaggle.json in ~/.kaggle/ and run: chmod 600 ~/.kaggle/kaggle.json",
        "     - set the environment variables KAGGLE_USERNAME and KAGGLE_KEY to the two values in kaggle.json",
        "     - on Colab: click the key icon (Secrets) in the left bar, add two secrets named KAGGLE_USERNAME and "
        'KAGGLE_KEY with those values, and switch on "Notebook access" for both.',
        "     (A new-style API token works too: as KAGGLE_API_TOKEN, environment variable or Colab secret, or in "
        "~/.kaggle/access_token.)",
        "  3. Run this cell again.",
        _OFFLINE_HINT,
    ]
    return "\n".join(lines)


@contextmanager
def _credentials_in_environment(creds: KaggleCredentials) -> Iterator[None]:
    """Expose ``creds`` to the Kaggle client as ``KAGGLE_*`` variables for the block only, then restore."""
    saved = {name: os.environ.get(name) for name in _ENV_NAMES}
    try:
        for name in _ENV_NAMES:
            os.environ.pop(name, None)
        if creds.is_token:
            os.environ["KAGGLE_API_TOKEN"] = creds.key
        else:
            os.environ["KAGGLE_USERNAME"] = creds.username
            os.environ["KAGGLE_KEY"] = creds.key
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _real_api() -> object:
    """The official client's ``KaggleApi`` (imported here: kaggle 1.x authenticates when imported)."""
    try:
        from kaggle.api.kaggle_api_extended import KaggleApi  # type: ignore[import-not-found]
    except ImportError:
        raise DataSourceError(
            'The Kaggle client is not installed. Run: pip install "kaggle>=2.0" (then restart the kernel), '
            "and run this cell again. " + _OFFLINE_HINT
        ) from None
    return KaggleApi()


def _http_status(exc: BaseException) -> int | None:
    """HTTP status of a client error: ``.status`` (kaggle 1.6, ApiException) or ``.response.status_code``
    (kaggle >= 1.7, requests.HTTPError)."""
    for value in (getattr(exc, "status", None), getattr(getattr(exc, "response", None), "status_code", None)):
        try:
            if value is not None:
                return int(value)
        except (TypeError, ValueError):
            continue
    return None


_NETWORK_CLASS_NAMES = {"MaxRetryError", "NewConnectionError", "NameResolutionError", "ConnectTimeoutError",
                        "ReadTimeoutError", "ProtocolError", "ProxyError", "SSLError", "Timeout", "ConnectionError"}


def _is_network_error(exc: BaseException) -> bool:
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 5:
        if isinstance(current, (ConnectionError, TimeoutError, socket.gaierror, socket.timeout)):
            return True
        names = {cls.__name__ for cls in type(current).__mro__}
        module = type(current).__module__.split(".")[0]
        if names & _NETWORK_CLASS_NAMES or module in ("requests", "urllib3"):
            return True
        current, seen = current.__cause__ or current.__context__, seen + 1
    return False


def _redact(text: str, creds: KaggleCredentials) -> str:
    return text.replace(creds.key, "***") if creds.key else text


def _fix_credentials_hint(creds: KaggleCredentials) -> str:
    if creds.source == "environment variables":
        where = "set KAGGLE_USERNAME and KAGGLE_KEY to the values in the new kaggle.json"
    elif creds.source.startswith("environment variable"):
        where = "set KAGGLE_API_TOKEN to the new token"
    elif creds.source.startswith("Colab secret"):
        where = 'update the Colab secrets (key icon in the left bar) with the new values, "Notebook access" on'
    else:
        where = f"replace {creds.source} with the new file (then: chmod 600 {creds.source})"
    return f"{_TOKEN_STEPS} Creating a new token expires the old one. Then {where}, and run this cell again."


def _translate(exc: BaseException, creds: KaggleCredentials, competition: str, target: Path) -> DataSourceError:
    """A DataSourceError saying what happened and what to do; never carries the key."""
    status = _http_status(exc)
    rules_url = f"https://www.kaggle.com/c/{competition}/rules"
    account = f"the Kaggle account {creds.username!r}" if creds.username else "your Kaggle account"
    if isinstance(exc, SystemExit):
        return DataSourceError(
            f"The Kaggle client did not accept the credentials from {creds.source}. " + _fix_credentials_hint(creds))
    if status == 403:
        return DataSourceError(
            f"Kaggle refused the download of {competition!r} (HTTP 403 Forbidden): {account} has not accepted "
            f"the competition rules yet. Open {rules_url} (signed in as that account), click "
            '"I Understand and Accept", then run this cell again.')
    if status == 401:
        return DataSourceError(
            f"Kaggle rejected the credentials from {creds.source} (HTTP 401 Unauthorized): the key is wrong, "
            "expired or revoked. " + _fix_credentials_hint(creds))
    if status == 404:
        return DataSourceError(
            f"Kaggle has no competition named {competition!r} (HTTP 404 Not Found). Check the spelling: it is "
            f"the part after /c/ in the competition's address, e.g. {COMPETITION!r}.")
    if status == 429 or (status is not None and status >= 500):
        return DataSourceError(
            f"Kaggle could not serve {competition!r} right now (HTTP {status}). Wait a few minutes and run this "
            f"cell again. {_OFFLINE_HINT}")
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return DataSourceError(
            f"The disk holding {target} is full: the competition zip (well over 1 GB) did not fit. Free some "
            "space (or choose another DATA_DIR) and run this cell again.")
    if isinstance(exc, (PermissionError, IsADirectoryError)) or getattr(exc, "errno", None) == errno.EROFS:
        return DataSourceError(
            f"Could not write the download into {target} ({type(exc).__name__}). Choose a writable DATA_DIR "
            "and run this cell again.")
    detail = _redact(f"{type(exc).__name__}: {exc}", creds).strip()[:500]
    if status in (None, 0) and (_is_network_error(exc) or isinstance(exc, OSError)):
        return DataSourceError(
            f"Cannot reach kaggle.com to download {competition!r} ({detail}). Check the internet connection "
            f"(on Colab: Runtime > Reconnect) and run this cell again. {_OFFLINE_HINT}")
    what = f"HTTP {status}" if status else detail
    return DataSourceError(
        f"The Kaggle download of {competition!r} failed ({what}). Run this cell again; if it keeps failing, "
        f"download the zip in a browser from https://www.kaggle.com/c/{competition}/data and use "
        'DATA_DIR with DATA_SOURCE = "local".')


def _zip_states(folder: Path) -> dict[Path, tuple[int, int]]:
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.glob("*.zip") if p.is_file()}


def _completed_zip(target: Path, competition: str) -> Path | None:
    """The zip recorded by an earlier successful download, if it is still there and the same size."""
    marker = target / f".{competition}{COMPLETE_SUFFIX}"
    try:
        record = json.loads(marker.read_text(encoding="utf-8"))
        zip_path = target / record["zip"]
        if zip_path.is_file() and zip_path.stat().st_size == int(record["size"]):
            return zip_path
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _find_new_zip(target: Path, competition: str, before: dict[Path, tuple[int, int]]) -> Path:
    expected = target / f"{competition}.zip"
    if expected.is_file():
        return expected
    changed = [p for p, state in _zip_states(target).items() if before.get(p) != state]
    if len(changed) == 1:
        return changed[0]
    names = ", ".join(p.name for p in changed)
    found = f"{len(changed)} new .zip files ({names})" if changed else "no new .zip file"
    raise DataSourceError(
        f"The Kaggle client finished but {target} holds {found} instead of {expected.name}. Delete the .zip "
        "files there and run this cell again.")


def download_competition(target_dir: str | Path, competition: str = COMPETITION, api: object | None = None,
                         progress: bool = True) -> Path:
    """Download the competition's zip into ``target_dir`` and return the zip's path.

    Skips the download when a complete zip from an earlier run is already there (a marker file is written
    after each successful download). ``api`` is an object with ``authenticate()`` and
    ``competition_download_files(competition, path=..., quiet=...)``; by default the official client's.
    """
    target = Path(target_dir)
    done = _completed_zip(target, competition)
    if done is not None:
        if progress:
            print(f"{done} is already complete: skipping the download.")
        return done
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataSourceError(f"Could not create {target} ({type(exc).__name__}). Choose a writable DATA_DIR "
                              "and run this cell again.") from None

    notes: list[str] = []
    creds = _find(notes)
    if creds is None:
        raise DataSourceError(_no_credentials_message(notes))

    before = _zip_states(target)
    error: DataSourceError | None = None
    with _credentials_in_environment(creds):
        try:
            client = api if api is not None else _real_api()
            client.authenticate()  # type: ignore[attr-defined]
            if progress:
                print(f"Downloading {competition!r} from Kaggle into {target} ({creds}) ...")
            client.competition_download_files(competition, path=str(target), quiet=not progress)  # type: ignore[attr-defined]
        except DataSourceError as exc:
            error = DataSourceError(_redact(str(exc), creds))
        except (Exception, SystemExit) as exc:
            error = _translate(exc, creds, competition, target)
    if error is not None:
        raise error  # outside the except blocks: no __context__ that could carry the client's own text

    zip_path = _find_new_zip(target, competition, before)
    if not zipfile.is_zipfile(zip_path):
        raise DataSourceError(
            f"{zip_path} is not a valid zip file (an interrupted or failed download). Delete it and run this cell "
            "again.")
    record = {"competition": competition, "zip": zip_path.name, "size": zip_path.stat().st_size}
    marker = target / f".{competition}{COMPLETE_SUFFIX}"
    write_text_atomically(marker, json.dumps(record))
    if progress:
        print(f"Downloaded {zip_path} ({zip_path.stat().st_size / 1e6:.1f} MB).")
    return zip_path
