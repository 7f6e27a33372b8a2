"""One writer at a time: a lock file beside each shared output (``raw/``, ``all_images/``, a cache).

Two notebooks (or a notebook and ``make lessons``) working in one ``DATA_DIR`` would otherwise delete each
other's half-built folders. The first to arrive takes ``<output>.lock`` and writes its process id and what it
does into it; a second one waits, saying who it waits for, and gives up with a message naming the first after
``timeout`` seconds. The lock is the operating system's (``flock``, or ``msvcrt.locking`` on Windows), so it
goes away with its holder however that ends, ``kill -9`` included: a dead holder's lock is simply taken over.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

LOCK_SUFFIX = ".lock"
_held: dict[str, int] = {}  # lock files this process holds, and how deeply (a step may call another one)
_held_guard = threading.Lock()


class OutputBusy(RuntimeError):
    """Another process has been writing the same output for longer than we were willing to wait."""


def lock_path(output: str | Path) -> Path:
    """The lock file of ``output``: ``DATA_DIR/raw`` -> ``DATA_DIR/raw.lock``."""
    output = Path(output)
    return output.with_name(output.name + LOCK_SUFFIX)


def describe_holder(path: str | Path) -> str:
    """Who holds (or last held) the lock file ``path``, in words."""
    try:
        holder = json.loads(Path(path).read_text(encoding="utf-8"))
        return (f"process {holder['pid']} on {holder['host']} ({holder['what']}, since {holder['since']}; "
                f"started as: {holder['command']})")
    except (OSError, ValueError, KeyError):
        return "another process (its lock file says nothing more)"


def _try_lock(fd: int) -> bool:
    """Take the OS lock on ``fd`` without waiting; False when another process has it."""
    try:
        if sys.platform == "win32":  # pragma: no cover - no Windows runner
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except PermissionError:  # msvcrt's "already locked"
        return False


@contextlib.contextmanager
def output_lock(output: str | Path, what: str, timeout: float = 1800.0, poll: float = 0.5) -> Iterator[Path]:
    """Hold ``<output>.lock`` while the ``with`` block writes ``output``; ``what`` says what for (in messages).

    A process that already holds it may take it again (nested steps). When another process holds it, prints
    once who that is and waits; after ``timeout`` seconds raises :class:`OutputBusy` naming it. The holder
    removes the lock file as it lets go; one left by a killed holder is taken over.
    """
    path = lock_path(output)
    key = str(path.resolve())
    with _held_guard:
        if key in _held:
            _held[key] += 1
            nested = True
        else:
            nested = False
    if nested:
        try:
            yield path
        finally:
            with _held_guard:
                _held[key] -= 1
        return

    path.parent.mkdir(parents=True, exist_ok=True)
    deadline, told = time.monotonic() + timeout, False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if _try_lock(fd):
            if _same_file(fd, path):
                break
            os.close(fd)  # the holder removed this file as it let go: lock the one that is there now
            continue
        os.close(fd)
        if not told:
            print(f"{output} is being written by {describe_holder(path)}. Waiting for it to finish "
                  f"(up to {timeout:.0f} s; stop this cell to give up).", flush=True)
            told = True
        if time.monotonic() > deadline:
            raise OutputBusy(f"{output} is still being written by {describe_holder(path)} after {timeout:.0f} s. "
                             "Let that run finish (or stop it), then run this again; or use another DATA_DIR.")
        time.sleep(poll)
    try:
        if told:
            print(f"{path.name} is free now: going on.", flush=True)
        elif os.fstat(fd).st_size:  # a holder that ended without letting go (a killed kernel): its lock died with it
            print(f"Taking over {path}: {describe_holder(path)} stopped before it finished.", flush=True)
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "what": what,
                  "since": time.strftime("%H:%M:%S"), "command": " ".join(sys.argv[:2])[:200]}
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(holder).encode())
        with _held_guard:
            _held[key] = 1
        try:
            yield path
        finally:
            with _held_guard:
                del _held[key]
            with contextlib.suppress(OSError):  # Windows keeps an open file; an empty one left there is harmless
                os.ftruncate(fd, 0)
                path.unlink(missing_ok=True)  # still ours: a newcomer checks it locked the file that is there
    finally:
        os.close(fd)  # closing the file releases the OS lock


def _same_file(fd: int, path: Path) -> bool:
    """True when ``path`` still names the file open as ``fd`` (a holder removes its lock file as it lets go)."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False
