"""Bytes a download fetches again after an interruption: ``seedlings_utils.download`` vs ``keras.utils.get_file``.

The measurement behind the "downloads" row of docs/library-or-ours.md. A server on 127.0.0.1 serves a random file
(honouring ``Range: bytes=N-``) and counts the body bytes it sends. Each downloader meets two interruptions:

- ``drop``: the connection closes after half the file; the caller runs the download again if it raised;
- ``kill``: the process is killed (SIGKILL, as a Colab runtime that disconnects) once half the file is on disk; a
  new process then runs the same download.

It prints, per case, the bytes served in all, the bytes fetched again (served minus the file's size), whether the
result is the complete file, and whether the secret in the URL's query string was shown (printed, or in an error
message). No network is used.

    python -m tools.measure_download_resume [--size-mib 8]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tools.paths import REPO_ROOT

SECRET = "SECRETTOKEN"


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        server: _Server = self.server  # type: ignore[assignment]
        data, start = server.data, 0
        wanted = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if wanted:
            start = int(wanted.group(1))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if server.interrupt is not None:
            server.interrupt, how = None, server.interrupt
            half = len(data) // 2 - start
            self.wfile.write(body[:half])
            self.wfile.flush()
            server.served += half
            if how == "kill":
                server.release.wait(60)  # the client is killed meanwhile
            self.close_connection = True
            return
        self.wfile.write(body)
        server.served += len(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, data: bytes) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.data, self.served, self.interrupt, self.release = data, 0, None, threading.Event()


def _download(tool: str, url: str, dest: Path, digest: str | None) -> None:
    """One download with ``tool`` ("ours" or "keras"); raises what the tool raises."""
    if tool == "ours":
        from seedlings_utils.download import download_url

        download_url(url, dest, sha256=digest, progress=False, retries=3, chunk_size=1 << 16)
    else:
        import keras

        keras.utils.get_file(dest.name, origin=url, file_hash=digest, hash_algorithm="sha256",
                             cache_dir=str(dest.parent), cache_subdir=".")


def _in_a_child(tool: str, url: str, dest: Path, digest: str | None) -> subprocess.Popen:
    code = (f"from pathlib import Path; from tools.measure_download_resume import _download; "
            f"_download({tool!r}, {url!r}, Path({str(dest)!r}), {digest!r})")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def measure(tool: str, interruption: str, data: bytes, digest: str | None) -> dict:
    """Bytes served and fetched again for one tool and one interruption, and what the caller ends up with."""
    server = _Server(data)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/data.zip?token={SECRET}"
    printed = io.StringIO()
    with tempfile.TemporaryDirectory() as folder:
        dest = Path(folder) / "data.zip"
        server.interrupt = interruption
        if interruption == "kill":
            child = _in_a_child(tool, url, dest, digest)
            on_disk = (dest, dest.with_name(dest.name + ".part"))
            while sum(p.stat().st_size for p in on_disk if p.exists()) < len(data) // 2 and child.poll() is None:
                time.sleep(0.05)
            child.send_signal(signal.SIGKILL)
            child.wait()
            server.release.set()
        attempts = 0
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            while attempts < 3:
                attempts += 1
                try:
                    _download(tool, url, dest, digest)
                    break
                except Exception as exc:  # the caller's "run it again"
                    print(f"{type(exc).__name__}: {exc}")
        complete = dest.is_file() and dest.read_bytes() == data
    server.shutdown()
    server.server_close()
    return {"tool": tool, "interruption": interruption, "hash given": digest is not None,
            "bytes served": server.served,
            "fetched again": server.served - len(data) if complete else "- (file incomplete)",
            "complete file": complete, "secret shown": SECRET in printed.getvalue()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=float, default=8.0, help="size of the served file (default 8 MiB)")
    args = parser.parse_args(argv)
    data = random.Random(0).randbytes(int(args.size_mib * (1 << 20)))
    digest = hashlib.sha256(data).hexdigest()
    rows = [measure(tool, interruption, data, given)
            for interruption in ("drop", "kill") for tool in ("ours", "keras") for given in (digest, None)]
    print(f"file: {len(data):,} bytes, interrupted after {len(data) // 2:,}\n")
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)
                                 for v in row.values()) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
