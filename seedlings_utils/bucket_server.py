"""Lesson 12's plumbing: an S3-compatible server on 127.0.0.1 (moto's), and an S3 file system with credentials.

The lesson's technique (shards, the index, the cache, equal steps) is in ``bucket.py``, generated from the
notebook. Here: starting and stopping the local server, and making an ``s3fs.S3FileSystem`` whose credentials
come from the usual variables or Colab's secrets, with a clear message when they are missing. No function here
prints or returns a secret.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Mapping

#: The variables the AWS clients (boto3, s3fs) read; for a GCS bucket use its HMAC keys in the same two.
KEY_VARIABLE, SECRET_VARIABLE = "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"
#: What moto's server accepts (it checks nothing): the placeholder credentials of moto's own documentation.
LOCAL_CREDENTIALS = {KEY_VARIABLE: "testing", SECRET_VARIABLE: "testing"}


class MissingCredentials(RuntimeError):
    """No key or no secret for the bucket: the message says where to put them, never what they are."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _SlowDownGate:
    """WSGI middleware in front of moto's app: while its server has "slow down" answers left, an object read (a GET
    of ``/bucket/key``) gets S3's own answer to too many requests, ``503 SlowDown`` with S3's XML error body, so
    that botocore and s3fs parse it as they parse a real store's. Everything else goes to moto."""

    BODY = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
            b"<Message>Please reduce your request rate.</Message><RequestId>local</RequestId></Error>")

    def __init__(self, app, server: LocalServer):
        self.app, self.server = app, server

    def __call__(self, environ, start_response):
        is_object = environ.get("PATH_INFO", "/").strip("/").count("/") >= 1  # /bucket/key, not /bucket
        if environ.get("REQUEST_METHOD") == "GET" and is_object and self.server._take_slow_down():
            start_response("503 Slow Down", [("Content-Type", "application/xml"),
                                             ("Content-Length", str(len(self.BODY)))])
            return [self.BODY]
        return self.app(environ, start_response)


class LocalServer:
    """moto's S3 server on ``127.0.0.1``, in a thread of this process: ``start()``, ``stop()``, ``start()`` again.

    The objects live in this process's memory and outlive a ``stop()``: a restarted server serves them again on
    the same port, as a real store that was unreachable for a while does. ``slow_down(n)``: the next ``n`` object
    reads are answered ``503 SlowDown``, as a store throttles a client (moto itself never does).
    """

    def __init__(self, port: int | None = None):
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request in the notebook
        self.port = port or free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._server_class = ThreadedMotoServer
        self._server = None
        self._lock = threading.Lock()  # a reader's threads may restart it at the same moment
        self._slow_down, self._slow_lock = 0, threading.Lock()
        self.slowed_down = 0  # object reads answered 503 SlowDown so far

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> LocalServer:
        with self._lock:
            if self._server is None:
                self._server = self._server_class(ip_address="127.0.0.1", port=self.port, verbose=False)
                self._server.start()
                wsgi = self._server._server  # werkzeug's server inside moto's thread: its app is swapped for the gate's
                wsgi.app = _SlowDownGate(wsgi.app, self)
        return self

    def slow_down(self, requests: int) -> None:
        """Answer the next ``requests`` object reads with ``503 SlowDown`` (0: none from now on)."""
        with self._slow_lock:
            self._slow_down = requests

    def _take_slow_down(self) -> bool:
        with self._slow_lock:
            if self._slow_down <= 0:
                return False
            self._slow_down -= 1
            self.slowed_down += 1
            return True

    def stop(self) -> None:
        with self._lock:
            if self._server is not None:
                self._server.stop()
                self._server = None

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"LocalServer({self.endpoint_url}, {'running' if self.running else 'stopped'})"


def credentials(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``{"key": ..., "secret": ...}`` from ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY`` in ``environ``
    (default: this process's environment), else from Colab's secrets of the same names; raises
    :class:`MissingCredentials` naming what is missing and where to put it."""
    environ = os.environ if environ is None else environ
    found = {name: environ.get(name, "") for name in (KEY_VARIABLE, SECRET_VARIABLE)}
    if not all(found.values()):
        found = {name: found[name] or _colab_secret(name) for name in found}
    missing = [name for name, value in found.items() if not value]
    if missing:
        raise MissingCredentials(
            f"No {' and no '.join(missing)} for the bucket. Set them as environment variables (os.environ[...] = "
            "... in a cell you do not share, or in the shell), or on Colab as secrets (the key icon in the left bar) "
            "with notebook access. For the lesson's local server any value works: bucket_server.LOCAL_CREDENTIALS.")
    return {"key": found[KEY_VARIABLE], "secret": found[SECRET_VARIABLE]}


def _colab_secret(name: str) -> str:
    try:
        from google.colab import userdata  # only on Colab
    except ImportError:
        return ""
    try:
        return userdata.get(name) or ""
    except Exception:  # not defined, or the notebook was not given access: the caller says what is missing
        return ""


def s3_filesystem(endpoint_url: str | None = None, environ: Mapping[str, str] | None = None, timeout: float = 5.0):
    """An ``s3fs.S3FileSystem`` on ``endpoint_url`` (``None``: AWS itself; a GCS bucket through its S3 API:
    ``https://storage.googleapis.com``), with the credentials of :func:`credentials`.

    s3fs's and botocore's own retries are turned off (one try each, ``timeout`` seconds to connect or read):
    the lesson's cache retries with its own backoff, so that what happens is visible and counted.
    """
    import s3fs

    fs = s3fs.S3FileSystem(endpoint_url=endpoint_url, skip_instance_cache=True, **credentials(environ),
                           config_kwargs={"retries": {"total_max_attempts": 1}, "connect_timeout": timeout,
                                          "read_timeout": timeout})
    fs.retries = 1  # s3fs retries some errors 5 times itself by default
    return fs
