"""download_url against a real HTTP server on 127.0.0.1 that can drop, stall, reset, ignore ranges or fail."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import socket
import struct
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from seedlings_utils import download as download_module
from seedlings_utils.download import download_url, redact_url, sha256_of
from seedlings_utils.sources import DataSourceError

DATA = random.Random(0).randbytes(300_000)
DIGEST = hashlib.sha256(DATA).hexdigest()
ALTERED = DATA[:-1] + bytes([DATA[-1] ^ 1])  # same size, one bit different
NAME = "plant-seedlings.zip"
QUICK = {"progress": False, "timeout": 5.0, "chunk_size": 8192}


@dataclass
class Mirror:
    """What the test server serves and how it misbehaves; it records every GET it answers."""

    data: bytes = DATA
    ranges: bool = True  # honour ``Range: bytes=N-`` (206) or ignore it (200)
    drop_after: int | None = None  # send this many body bytes, then end the connection...
    drop_times: int = 0  # ...on the first this many requests
    drop_how: str = "close"  # "close" (FIN), "reset" (RST) or "stall" (send nothing more until released)
    pause_after: int | None = None  # send this many bytes, wait until released, send the rest
    status: int | None = None  # answer every request with this error status
    misalign: int = 0  # shift the start reported in Content-Range
    total_shift: int = 0  # shift the total reported in Content-Range
    hide_total: bool = False  # report the total in Content-Range as "*" (unknown)
    requests: list[dict] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    port: int = 0

    def url(self, path: str = f"/{NAME}") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def ranges_seen(self) -> list[str | None]:
        return [r["range"] for r in self.requests]


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet: no access log on stderr
        pass

    def do_GET(self):
        mirror: Mirror = self.server.mirror
        mirror.requests.append({"path": self.path, "range": self.headers.get("Range"),
                                "auth": self.headers.get("Authorization")})
        index = len(mirror.requests)
        if mirror.status:
            self.send_error(mirror.status)
            return
        data, start = mirror.data, 0
        wanted = self.headers.get("Range") if mirror.ranges else None
        if wanted:
            start = int(re.fullmatch(r"bytes=(\d+)-", wanted).group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range",
                             f"bytes {start + mirror.misalign}-{len(data) - 1}/"
                             f"{'*' if mirror.hide_total else len(data) + mirror.total_shift}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mirror.drop_after is not None and index <= mirror.drop_times:
            self.wfile.write(body[: mirror.drop_after])
            self.wfile.flush()
            if mirror.drop_how == "stall":
                mirror.release.wait(5)
            elif mirror.drop_how == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.server.reset_these.add(self.connection)
            self.close_connection = True
            return
        if mirror.pause_after is not None:
            self.wfile.write(body[: mirror.pause_after])
            self.wfile.flush()
            mirror.release.wait(5)
            body = body[mirror.pause_after:]
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def shutdown_request(self, request):
        if request in self.reset_these:  # close with SO_LINGER 0 and no FIN first: the client sees a reset
            self.reset_these.discard(request)
            request.close()
        else:
            super().shutdown_request(request)


@pytest.fixture(autouse=True)
def no_proxies(monkeypatch):
    """urllib would send even 127.0.0.1 through a proxy named in the environment."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def mirror():
    state = Mirror()
    server = _Server(("127.0.0.1", 0), _Handler)
    server.mirror, server.reset_these = state, set()
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def closed_port():
    """A port on 127.0.0.1 that refuses connections: bound (so no one else can take it) but not listening."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def part_of(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def sidecar_of(dest: Path) -> Path:
    return dest.with_name(dest.name + ".sha256")


# --- redact_url -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "expected"), [
    ("https://user:pass@host.example/a.zip?token=abc&x=1", "https://host.example/a.zip?token=***&x=***"),
    ("https://host.example:8443/d/a.zip", "https://host.example:8443/d/a.zip"),
    ("https://b.s3.amazonaws.com/a.zip?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIA%2F1",
     "https://b.s3.amazonaws.com/a.zip?X-Amz-Signature=***&X-Amz-Credential=***"),
    ("http://only-user@127.0.0.1:8000/a.zip?bare-secret", "http://127.0.0.1:8000/a.zip?***"),
    ("https://host.example/a.zip#access_token=abc", "https://host.example/a.zip#***"),
    ("file:///tmp/seedlings.zip", "file:///tmp/seedlings.zip"),
    ("http://[::1/a.zip?token=abc", "<unparseable URL>"),
])
def test_redact_url(url, expected):
    assert redact_url(url) == expected


def test_sha256_of_matches_the_known_digest(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(DATA)
    assert sha256_of(path) == DIGEST
    assert sha256_of(str(path)) == DIGEST


# --- healthy downloads --------------------------------------------------------------------------------------------


def test_plain_download_is_verified_and_leaves_a_sidecar(mirror, tmp_path):
    dest = tmp_path / "sub" / NAME
    assert download_url(mirror.url(), dest, sha256=DIGEST.upper(), **QUICK) == dest
    assert dest.read_bytes() == DATA
    assert not part_of(dest).exists()
    record = json.loads(sidecar_of(dest).read_text())
    assert (record["sha256"], record["size"]) == (DIGEST, len(DATA))
    assert mirror.ranges_seen == [None]


@pytest.mark.parametrize("progress", [False, True])
def test_streamed_in_chunks_with_a_byte_progress_bar(mirror, tmp_path, monkeypatch, capsys, progress):
    bars = []

    class RecordingBar(download_module.tqdm):
        def __init__(self, *args, **kwargs):
            self.kwargs, self.updates = kwargs, []
            bars.append(self)
            super().__init__(*args, **kwargs)

        def update(self, n=1):
            self.updates.append(n)
            return super().update(n)

    monkeypatch.setattr(download_module, "tqdm", RecordingBar)
    download_url(mirror.url(), tmp_path / NAME, progress=progress, chunk_size=4096, timeout=5.0)
    [bar] = bars
    assert (bar.kwargs["unit"], bar.kwargs["unit_scale"], bar.kwargs["disable"]) == ("B", True, not progress)
    assert bar.total == len(DATA)  # from Content-Length
    assert sum(bar.updates) == len(DATA)
    assert max(bar.updates) <= 4096 and len(bar.updates) >= len(DATA) // 4096
    err = capsys.readouterr().err
    assert (NAME in err) == progress


def test_bytes_go_to_the_part_file_and_dest_appears_only_when_complete(mirror, tmp_path):
    mirror.pause_after = 100_000
    dest = tmp_path / NAME
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(download_url, mirror.url(), dest, DIGEST, False, 0, 30.0, 4096)
        deadline = time.monotonic() + 60  # generous: a busy 2-core machine can stall a thread for seconds
        while not (part_of(dest).exists() and part_of(dest).stat().st_size >= 80_000):
            assert time.monotonic() < deadline and not future.done(), "no bytes reached the .part file"
            time.sleep(0.01)
        assert part_of(dest).stat().st_size < len(DATA)
        assert not dest.exists()  # the server is paused half-way: nothing at dest yet
        mirror.release.set()
        assert future.result(timeout=10) == dest
    assert dest.read_bytes() == DATA and not part_of(dest).exists()


def test_file_urls_are_accepted(tmp_path):
    source = tmp_path / "mirror" / NAME
    source.parent.mkdir()
    source.write_bytes(DATA)
    dest = download_url(source.as_uri(), tmp_path / "out" / NAME, sha256=DIGEST, **QUICK)
    assert dest.read_bytes() == DATA
    with pytest.raises(DataSourceError, match="Cannot read"):
        download_url((tmp_path / "missing.zip").as_uri(), tmp_path / "out" / "other.zip", **QUICK)


# --- resuming -------------------------------------------------------------------------------------------------


def test_resumes_a_part_file_left_by_an_earlier_run(mirror, tmp_path):
    dest = tmp_path / NAME
    part_of(dest).write_bytes(DATA[:123_457])
    download_url(mirror.url(), dest, sha256=DIGEST, **QUICK)
    assert mirror.ranges_seen == ["bytes=123457-"]
    assert dest.read_bytes() == DATA and not part_of(dest).exists()


def test_server_without_range_support_starts_again_from_zero(mirror, tmp_path, capsys):
    mirror.ranges = False
    dest = tmp_path / NAME
    part_of(dest).write_bytes(b"not the start of the file" * 400)  # appending to this would corrupt the result
    download_url(mirror.url(), dest, **QUICK)
    assert mirror.ranges_seen == ["bytes=10000-"]
    assert dest.read_bytes() == DATA
    assert "starting again from byte 0" in capsys.readouterr().out


def test_416_for_a_part_that_is_already_complete_just_verifies_it(mirror, tmp_path):
    dest = tmp_path / NAME
    part_of(dest).write_bytes(DATA)
    download_url(mirror.url(), dest, sha256=DIGEST, **QUICK)
    assert mirror.ranges_seen == [f"bytes={len(DATA)}-"]
    assert dest.read_bytes() == DATA and not part_of(dest).exists()


def test_416_for_a_part_longer_than_the_file_starts_again(mirror, tmp_path):
    dest = tmp_path / NAME
    part_of(dest).write_bytes(DATA + b"junk")
    download_url(mirror.url(), dest, **QUICK)
    assert mirror.ranges_seen == [f"bytes={len(DATA) + 4}-", None]
    assert dest.read_bytes() == DATA


def test_a_206_for_the_wrong_range_is_discarded(mirror, tmp_path):
    mirror.misalign = -10
    dest = tmp_path / NAME
    part_of(dest).write_bytes(DATA[:50_000])
    download_url(mirror.url(), dest, **QUICK)
    assert mirror.ranges_seen == ["bytes=50000-", None]
    assert dest.read_bytes() == DATA


# --- dropped connections ------------------------------------------------------------------------------------------


def test_dropped_connection_is_retried_and_resumed_within_one_call(mirror, tmp_path, capsys):
    mirror.drop_after, mirror.drop_times = 50_000, 2
    dest = tmp_path / NAME
    download_url(mirror.url(), dest, sha256=DIGEST, retries=3, **QUICK)
    assert mirror.ranges_seen == [None, "bytes=50000-", "bytes=100000-"]
    assert dest.read_bytes() == DATA
    assert capsys.readouterr().out.count("resuming (retry") == 2


def test_a_short_206_of_unknown_total_is_resumed_not_accepted(mirror, tmp_path):
    mirror.hide_total, mirror.drop_after, mirror.drop_times = True, 50_000, 1
    dest = tmp_path / NAME
    part_of(dest).write_bytes(DATA[:1000])
    download_url(mirror.url(), dest, retries=1, **QUICK)  # no digest: only the Content-Length tells it is short
    assert mirror.ranges_seen == ["bytes=1000-", "bytes=51000-"]
    assert dest.read_bytes() == DATA


def test_reset_connection_is_retried(mirror, tmp_path):
    mirror.drop_after, mirror.drop_times, mirror.drop_how = 50_000, 1, "reset"
    dest = tmp_path / NAME
    download_url(mirror.url(), dest, sha256=DIGEST, retries=1, **QUICK)
    assert len(mirror.requests) == 2
    assert dest.read_bytes() == DATA


def test_stalled_connection_times_out_and_is_resumed(mirror, tmp_path):
    mirror.drop_after, mirror.drop_times, mirror.drop_how = 50_000, 1, "stall"
    dest = tmp_path / NAME
    download_url(mirror.url(), dest, sha256=DIGEST, retries=1, progress=False, timeout=0.5, chunk_size=8192)
    assert len(mirror.requests) == 2 and mirror.ranges_seen[1].startswith("bytes=")
    assert dest.read_bytes() == DATA


def test_dropped_every_time_keeps_the_part_and_a_later_run_resumes_it(mirror, tmp_path):
    mirror.drop_after, mirror.drop_times = 50_000, 100
    dest = tmp_path / NAME
    with pytest.raises(DataSourceError) as excinfo:
        download_url(mirror.url(), dest, sha256=DIGEST, retries=2, **QUICK)
    message = str(excinfo.value)
    assert "150,000 of 300,000 bytes" in message
    assert str(part_of(dest)) in message and "resumes" in message
    assert len(mirror.requests) == 3
    assert not dest.exists() and part_of(dest).read_bytes() == DATA[:150_000]

    mirror.drop_times = 0  # the mirror is healthy again
    download_url(mirror.url(), dest, sha256=DIGEST, retries=0, **QUICK)
    assert mirror.ranges_seen[3:] == ["bytes=150000-"]
    assert dest.read_bytes() == DATA and not part_of(dest).exists()


# --- verification ---------------------------------------------------------------------------------------------


def test_wrong_checksum_removes_the_file_and_names_both_digests(mirror, tmp_path):
    dest = tmp_path / NAME
    with pytest.raises(DataSourceError) as excinfo:
        download_url(mirror.url(), dest, sha256="0" * 64, **QUICK)
    message = str(excinfo.value)
    assert "0" * 64 in message and DIGEST in message and "corrupt" in message
    assert not dest.exists() and not part_of(dest).exists() and not sidecar_of(dest).exists()


def test_size_is_checked_against_the_announced_total(mirror, tmp_path):
    mirror.total_shift = -5  # the server's Content-Range says the file is 5 bytes shorter than what it sends
    dest = tmp_path / NAME
    part_of(dest).write_bytes(DATA[:1000])
    with pytest.raises(DataSourceError, match=f"{len(DATA):,} bytes but the server announced {len(DATA) - 5:,}"):
        download_url(mirror.url(), dest, **QUICK)
    assert not dest.exists() and not part_of(dest).exists()


@pytest.mark.parametrize("empty", ["", "  "])
def test_an_empty_expected_digest_means_not_given(mirror, tmp_path, empty):
    # the notebooks' SOURCE_SHA256 = "" default, passed through make lessons, must not be read as a digest
    assert download_url(mirror.url(), tmp_path / NAME, sha256=empty, **QUICK).read_bytes() == DATA


def test_malformed_expected_digest_is_refused(mirror, tmp_path):
    with pytest.raises(DataSourceError, match="64 hexadecimal"):
        download_url(mirror.url(), tmp_path / NAME, sha256="abc", **QUICK)
    assert mirror.requests == []


# --- skipping what is already there ---------------------------------------------------------------------------


def test_a_verified_copy_is_not_downloaded_again(mirror, tmp_path):
    dest = tmp_path / NAME
    dest.write_bytes(DATA)
    assert download_url(mirror.url(), dest, sha256=DIGEST, **QUICK) == dest
    assert mirror.requests == []


def test_a_copy_that_does_not_match_the_digest_is_downloaded_again(mirror, tmp_path, capsys):
    dest = tmp_path / NAME
    dest.write_bytes(ALTERED)
    download_url(mirror.url(), dest, sha256=DIGEST, **QUICK)
    assert len(mirror.requests) == 1 and dest.read_bytes() == DATA
    assert "does not match the expected SHA-256" in capsys.readouterr().out


def test_without_a_digest_the_sidecar_decides(mirror, tmp_path, capsys):
    dest = tmp_path / NAME
    download_url(mirror.url(), dest, **QUICK)
    download_url(mirror.url(), dest, **QUICK)
    assert len(mirror.requests) == 1  # the sidecar vouches for the file

    dest.write_bytes(ALTERED)  # same size, different bytes
    download_url(mirror.url(), dest, **QUICK)
    assert len(mirror.requests) == 2 and dest.read_bytes() == DATA
    assert "does not match its record" in capsys.readouterr().out

    sidecar_of(dest).unlink()  # a file of unknown origin is not trusted
    download_url(mirror.url(), dest, **QUICK)
    assert len(mirror.requests) == 3 and sidecar_of(dest).is_file()
    assert "no record" in capsys.readouterr().out


# --- failures -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [403, 404, 500])
def test_http_errors_name_the_status_and_the_url(mirror, tmp_path, status):
    mirror.status = status
    dest = tmp_path / NAME
    with pytest.raises(DataSourceError) as excinfo:
        download_url(mirror.url(), dest, retries=3, **QUICK)
    message = str(excinfo.value)
    assert f"HTTP {status}" in message and mirror.url() in message and "Check the URL" in message
    assert len(mirror.requests) == 1  # an HTTP error is an answer, not a dropped connection: no retries
    assert not dest.exists() and not part_of(dest).exists()


def test_unreachable_host_points_to_the_offline_source(closed_port, tmp_path):
    with pytest.raises(DataSourceError) as excinfo:
        download_url(f"http://127.0.0.1:{closed_port}/{NAME}", tmp_path / NAME, **QUICK)
    message = str(excinfo.value)
    assert "could not be reached" in message and 'DATA_SOURCE="synthetic"' in message


@pytest.mark.parametrize("url", ["ftp://user:s3cretpw@127.0.0.1/a.zip", "s3://bucket/a.zip", "seedlings.zip"])
def test_unsupported_schemes_are_refused(tmp_path, url):
    with pytest.raises(DataSourceError, match="not supported") as excinfo:
        download_url(url, tmp_path / NAME, **QUICK)
    assert "s3cretpw" not in str(excinfo.value)
    assert not (tmp_path / NAME).exists()


# --- secrets --------------------------------------------------------------------------------------------------

SECRETS = ("alice", "hunter2pw", "SECRETTOKEN", "SIGSECRET")


def secret_url(port: int) -> str:
    return f"http://alice:hunter2pw@127.0.0.1:{port}/{NAME}?token=SECRETTOKEN&X-Amz-Signature=SIGSECRET"


def test_a_successful_download_prints_no_secret_and_uses_the_credentials(mirror, tmp_path, capsys):
    mirror.ranges, mirror.drop_after, mirror.drop_times = False, 50_000, 1
    dest = tmp_path / NAME
    dest.write_bytes(b"stale")  # "downloading it again"
    part_of(dest).write_bytes(b"x" * 10)  # "does not resume downloads" (names the URL)
    download_url(secret_url(mirror.port), dest, sha256=DIGEST, progress=True, timeout=5.0, chunk_size=8192)
    assert dest.read_bytes() == DATA
    printed = "".join(capsys.readouterr())
    assert f"127.0.0.1:{mirror.port}/{NAME}?token=***&X-Amz-Signature=***" in printed
    assert NAME in printed and "dropped" in printed  # the progress bar and the retry message were shown
    assert not any(secret in printed for secret in SECRETS)
    assert sidecar_of(dest).is_file() and not any(secret in sidecar_of(dest).read_text() for secret in SECRETS)
    assert {r["auth"] for r in mirror.requests} == {"Basic " + base64.b64encode(b"alice:hunter2pw").decode()}
    assert all("SECRETTOKEN" in r["path"] for r in mirror.requests)  # the query string still reaches the server


@pytest.mark.parametrize("failure", ["404", "dropped", "refused", "malformed"])
def test_failure_messages_show_no_secret(mirror, closed_port, tmp_path, capsys, failure):
    port = closed_port if failure == "refused" else mirror.port
    url = secret_url(port).replace("SECRETTOKEN", "SECRETTOKEN x" if failure == "malformed" else "SECRETTOKEN")
    mirror.status = 404 if failure == "404" else None
    mirror.drop_after, mirror.drop_times = 1000, 100
    with pytest.raises(DataSourceError) as excinfo:
        download_url(url, tmp_path / NAME, sha256=DIGEST, retries=1, progress=True, timeout=5.0)
    shown = "".join(traceback.format_exception(excinfo.value)) + "".join(capsys.readouterr())
    assert f"127.0.0.1:{port}/{NAME}?token=***" in str(excinfo.value)
    assert not any(secret in shown for secret in SECRETS)
    assert len(mirror.requests) == {"404": 1, "dropped": 2, "refused": 0, "malformed": 0}[failure]
