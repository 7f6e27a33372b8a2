"""Download one file (the data set's zip, from a mirror) robustly: streamed, resumable, verified, atomic.

The bytes go to ``dest + ".part"`` in chunks; an interrupted run (or a dropped connection) resumes from
what is on disk with an HTTP ``Range`` request. Only a complete file whose size (and SHA-256, when one
is given) checks out is renamed to ``dest``, so ``dest`` never exists half-written. A small sidecar
``dest + ".sha256"`` records the digest and size of a finished download, so a later run can trust the
file without downloading it again. URLs may carry secrets (``user:pass@``, ``?token=...``): every message
shows :func:`redact_url`'s form instead.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from tqdm.auto import tqdm

from .files import write_text_atomically
from .sources import DataSourceError

SCHEMES = ("http", "https", "file")
PART_SUFFIX = ".part"
SIDECAR_SUFFIX = ".sha256"
USER_AGENT = "seedlings-utils-download/0.1"
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)
_UNSATISFIED_RANGE = re.compile(r"^\s*bytes\s+\*/(\d+)\s*$", re.IGNORECASE)


class _Dropped(Exception):
    """The connection ended before the whole body arrived (resumable)."""


class _Restart(Exception):
    """What is on disk cannot be resumed: it was removed, start again from byte 0."""


def redact_url(url: str) -> str:
    """``url`` safe to print: user name and password removed, every query value (and any fragment) ``***``."""
    try:
        parts = urlsplit(str(url))
        netloc = parts.netloc.rpartition("@")[2]
        query = "&".join(
            f"{item.partition('=')[0]}=***" if "=" in item else "***" for item in parts.query.split("&") if item
        )
        return urlunsplit((parts.scheme, netloc, parts.path, query, "***" if parts.fragment else ""))
    except ValueError:  # e.g. an unbalanced IPv6 bracket: show nothing of it rather than risk a secret
        return "<unparseable URL>"


def _secrets(url: str) -> list[str]:
    """The pieces of ``url`` that :func:`redact_url` hides, longest first (to scrub them from other text)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    userinfo = parts.netloc.rpartition("@")[0]
    found = [userinfo, *userinfo.split(":"), parts.query, parts.fragment]
    found += [item.partition("=")[2] if "=" in item else item for item in parts.query.split("&")]
    found += [unquote(s) for s in found]
    return sorted({s for s in found if len(s) >= 3}, key=len, reverse=True)


def _scrub(text: str, url: str) -> str:
    """``text`` (e.g. an exception message from the standard library) with the secrets of ``url`` replaced."""
    for secret in _secrets(url):
        text = text.replace(secret, "***")
    return text


def sha256_of(path: str | Path) -> str:
    """Hex SHA-256 of a file (read in chunks by ``hashlib.file_digest``)."""
    with Path(path).open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _sidecar(dest: Path) -> Path:
    return dest.with_name(dest.name + SIDECAR_SUFFIX)


def _write_sidecar(dest: Path, digest: str, size: int, safe_url: str) -> None:
    """Record a finished download next to it (written under a temporary name, then renamed)."""
    sidecar = _sidecar(dest)
    write_text_atomically(sidecar, json.dumps({"sha256": digest, "size": size, "file": dest.name, "url": safe_url},
                                              indent=1) + "\n")


def _existing_copy_is_good(dest: Path, expected: str | None, safe_url: str) -> bool:
    """True when ``dest`` can be used as it is: it matches ``expected``, or (without one) its sidecar."""
    if not dest.is_file():
        raise DataSourceError(f"{dest} exists but is not a file: give download_url a file path to write to.")
    if expected is not None:
        actual = sha256_of(dest)
        if actual == expected:
            if not _sidecar(dest).is_file():
                _write_sidecar(dest, actual, dest.stat().st_size, safe_url)
            return True
        print(f"{dest} does not match the expected SHA-256 ({actual} instead of {expected}): downloading it again.")
        return False
    try:
        record = json.loads(_sidecar(dest).read_text())
        size, digest = int(record["size"]), str(record["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        print(f"{dest} exists but there is no record ({_sidecar(dest).name}) of a complete download: "
              "downloading it again.")
        return False
    if dest.stat().st_size == size and sha256_of(dest) == digest:
        return True
    print(f"{dest} does not match its record {_sidecar(dest).name} (changed or incomplete): downloading it again.")
    return False


class _SafeRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects to http(s) only; messages about them show redacted URLs."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        scheme = urlsplit(newurl).scheme.lower()
        if scheme not in ("http", "https"):
            raise DataSourceError(f"{redact_url(req.full_url)} redirected to {redact_url(newurl)}, which is not "
                                  "http(s): the mirror looks misconfigured; check the URL.")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _request(url: str, offset: int) -> urllib.request.Request:
    """A GET for ``url`` without its credentials (:func:`_opener` sends them) and from byte ``offset`` on."""
    parts = urlsplit(url)
    request = urllib.request.Request(urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2], fragment="")),
                                     headers={"User-Agent": USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    return request


def _opener(url: str) -> urllib.request.OpenerDirector:
    """urllib's opener, following only http(s) redirects, sending the URL's ``user:password`` (if any) as Basic
    authentication with the first request, and only to that host."""
    parts = urlsplit(url)
    handlers: list[urllib.request.BaseHandler] = [_SafeRedirects()]
    if "@" in parts.netloc:
        passwords = urllib.request.HTTPPasswordMgrWithPriorAuth()
        site = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], "/", "", ""))
        passwords.add_password(None, site, unquote(parts.username or ""), unquote(parts.password or ""),
                               is_authenticated=True)
        handlers.append(urllib.request.HTTPBasicAuthHandler(passwords))
    return urllib.request.build_opener(*handlers)


def _check_url(url: str) -> str:
    """The lower-case scheme of ``url``, after checking that the URL can be downloaded at all."""
    safe = redact_url(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError:
        raise DataSourceError(f"Cannot download {safe}: the URL is malformed. Check the mirror URL.") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise DataSourceError(f"Cannot download {safe}: the scheme {scheme or '(none)'!r} is not supported. "
                              f"Use an http://, https:// or file:// URL.")
    if scheme != "file" and not parts.hostname:
        raise DataSourceError(f"Cannot download {safe}: the URL names no host. Check the mirror URL.")
    return scheme


def _one_attempt(opener, url: str, scheme: str, part: Path, bar, timeout: float, chunk_size: int) -> int | None:
    """One request: stream the body into ``part`` (appending when the server resumes). The full size, if known.

    Raises ``_Dropped`` when the body stops short (resumable), ``_Restart`` when ``part`` had to be removed.
    """
    safe = redact_url(url)
    offset = part.stat().st_size if part.exists() else 0
    try:
        response = opener.open(_request(url, offset), timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            match = _UNSATISFIED_RANGE.match(exc.headers.get("Content-Range", "") if exc.headers else "")
            if match and int(match.group(1)) == offset:
                bar.reset(total=offset)
                bar.update(offset)
                return offset  # the part file already holds every byte: the caller verifies it
            part.unlink()
            raise _Restart(f"the server could not resume at byte {offset:,} (416)") from None
        raise DataSourceError(f"Downloading {safe} failed: the server answered HTTP {exc.code} ({exc.reason}). "
                              "Check the URL (and any credentials or token in it); if it is right, the mirror may "
                              "be down or have moved: try again later or use another mirror.") from None
    except urllib.error.URLError as exc:
        reason = _scrub(str(exc.reason), url)
        kept = (f" The partial file is kept at {part}; running this again resumes it." if offset else "")
        if scheme == "file":
            raise DataSourceError(f"Cannot read {safe}: {reason}. Check the path.") from None
        host = urlsplit(url).hostname
        raise DataSourceError(f"Cannot download {safe}: the host {host} could not be reached ({reason}). Check "
                              "the network connection and the URL. The course's default DATA_SOURCE=\"synthetic\" "
                              f"works offline.{kept}") from None
    except http.client.InvalidURL as exc:
        raise DataSourceError(f"Cannot download {safe}: the URL is malformed ({_scrub(str(exc), url)}). "
                              "Check the mirror URL.") from None
    except (OSError, http.client.HTTPException) as exc:  # reset, timeout or closed before the headers
        raise _Dropped(_scrub(f"{type(exc).__name__}: {exc}", url)) from None

    with response:
        status = response.status if scheme != "file" else 200  # urllib gives file:// responses no status
        length = response.headers.get("Content-Length")
        length = int(length) if length and length.strip().isdigit() else None
        if status == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if match is None or int(match.group(1)) not in (offset, 0):
                part.unlink(missing_ok=True)
                raise _Restart(f"the server resumed at the wrong place "
                               f"(Content-Range {response.headers.get('Content-Range')!r} for byte {offset:,})")
            start = int(match.group(1))
            total = None if match.group(3) == "*" else int(match.group(3))
            length = int(match.group(2)) - start + 1
        elif status == 200:
            if offset:
                tqdm.write(f"{safe} does not resume downloads: starting again from byte 0.")
            start, total = 0, length
        else:
            raise DataSourceError(f"Downloading {safe} failed: unexpected HTTP status {status}. "
                                  "Check the URL; the mirror may be misconfigured.")
        bar.reset(total=total)
        bar.update(start)
        received = 0
        with part.open("ab" if start else "wb") as f:
            while True:
                try:
                    chunk = response.read(chunk_size)
                except (OSError, http.client.HTTPException) as exc:  # IncompleteRead, reset, timeout
                    raise _Dropped(_scrub(f"{type(exc).__name__}: {exc}", url)) from None
                if not chunk:
                    break
                try:
                    f.write(chunk)
                except OSError as exc:
                    raise DataSourceError(f"Cannot write to {part} ({exc}): check the free disk space and "
                                          "permissions; running this again resumes the download.") from None
                received += len(chunk)
                bar.update(len(chunk))
        if length is not None and received < length:
            raise _Dropped(f"the server closed the connection after {received:,} of {length:,} bytes")
        return total


def download_url(url: str, dest: str | Path, sha256: str | None = None, progress: bool = True,
                 retries: int = 3, timeout: float = 60.0, chunk_size: int = 1 << 20) -> Path:
    """Download ``url`` to ``dest`` and return ``dest``, resuming, retrying and verifying as needed.

    - Streamed in ``chunk_size`` pieces to ``dest + ".part"``, renamed to ``dest`` only once complete and
      verified; a ``.part`` left by an earlier run is resumed (HTTP ``Range``) when the server allows it.
    - A dropped connection is retried ``retries`` times, each resuming from what is on disk.
    - Checked against ``sha256`` when given (and against the size the server announced); nothing is
      downloaded when ``dest`` already matches ``sha256``, or (without one) the sidecar ``dest + ".sha256"``
      written by an earlier complete download.
    - Only ``http://``, ``https://`` and ``file://`` URLs; messages never show credentials or query values.
    """
    safe = redact_url(url)
    scheme = _check_url(url)
    expected = None
    if sha256 is not None and str(sha256).strip():  # an empty SOURCE_SHA256 means "not given"
        expected = str(sha256).strip().lower()
        if not re.fullmatch(r"[0-9a-f]{64}", expected):
            raise DataSourceError(f"The expected SHA-256 for {safe} is not 64 hexadecimal digits: {sha256!r}. "
                                  "Copy the digest published with the mirror.")
    if retries < 0 or chunk_size < 1 or timeout <= 0:
        raise DataSourceError(f"Cannot download {safe}: retries must be >= 0, chunk_size >= 1 and timeout > 0 "
                              f"(got retries={retries}, chunk_size={chunk_size}, timeout={timeout}).")
    dest = Path(dest)
    part = dest.with_name(dest.name + PART_SUFFIX)
    if dest.exists() and _existing_copy_is_good(dest, expected, safe):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    if scheme == "file":
        part.unlink(missing_ok=True)  # a local copy is quick to redo: no resuming

    opener = _opener(url)
    failures = restarts = 0
    with tqdm(total=None, unit="B", unit_scale=True, unit_divisor=1024, desc=f"Downloading {dest.name}",
              disable=not progress) as bar:
        while True:
            try:
                total = _one_attempt(opener, url, scheme, part, bar, timeout, chunk_size)
                have = part.stat().st_size
                if total is not None and have < total:
                    raise _Dropped(f"the response ended after byte {have:,} of {total:,}")
                break
            except _Restart as exc:
                restarts += 1
                if restarts > 2:
                    raise DataSourceError(f"Downloading {safe} failed: {exc}, again after starting over. The "
                                          "mirror handles resumed downloads wrongly: try another mirror.") from None
                tqdm.write(f"Starting the download of {safe} again from byte 0: {exc}.")
            except _Dropped as exc:
                failures += 1
                have = part.stat().st_size if part.exists() else 0
                if failures > retries:
                    of = f"{bar.total:,}" if bar.total else "an unknown number of"
                    raise DataSourceError(
                        f"Downloading {safe} to {dest} failed: only {have:,} of {of} bytes arrived, the connection "
                        f"dropped {failures} times (last: {exc}). The partial file is kept at {part}; running "
                        "this again resumes it from there.") from None
                tqdm.write(f"Connection to {safe} dropped after {have:,} bytes ({exc}); resuming "
                           f"(retry {failures} of {retries}).")

    size = part.stat().st_size
    if total is not None and size != total:
        part.unlink()
        raise DataSourceError(f"Downloading {safe} gave {size:,} bytes but the server announced {total:,}: the "
                              "file was removed. The mirror may be corrupt or have changed: run this again, "
                              "or try another mirror.")
    actual = sha256_of(part)
    if expected is not None and actual != expected:
        part.unlink()
        raise DataSourceError(f"The file downloaded from {safe} has SHA-256 {actual}, not the expected {expected}: "
                              "it was removed. The mirror's copy may be corrupt or have changed: check the "
                              "expected digest, try again, or use another mirror.")
    os.replace(part, dest)
    _write_sidecar(dest, actual, size, safe)
    return dest
