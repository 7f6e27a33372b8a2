"""Lesson 12's bucket loader in ``make bench``: the same shards read from an S3 server and from the local disk.

    python -m tools.bench_bucket serve PORT      # the S3 server alone, until its standard input closes

:func:`bucket_loaders` packs the benchmark's images into lesson 12's TFRecord shards (``pack_shards``), puts them
in a bucket of moto's S3 server (``seedlings_utils.bucket_server.LocalServer``) started in a separate process, so
that the objects it holds are not the loader's memory, and reads one epoch with lesson 12's ``ShardCache`` and
``read_epoch``; then the same shards, through the same cache and reader, from a folder on the local disk
(fsspec's local file system). Each gives a trace (:func:`seedlings_utils.profiling.trace_loader`) and what its
cache counted: requests (one ``cat_file`` per shard downloaded) and bytes, per image.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

BUCKET = "bench/shards"
S3_LOADER, LOCAL_LOADER = "bucket (S3 shards, shard cache)", "bucket (local shards, shard cache)"


def serve(port: int) -> None:
    """Run moto's server on ``port`` until standard input closes (the benchmark's child process)."""
    from seedlings_utils.bucket_server import LocalServer

    with LocalServer(port):
        print("serving", flush=True)
        sys.stdin.read()


def _wait_for(port: int, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the S3 server process ended with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the S3 server did not answer on port {port} within {timeout:.0f} s")


def _real_images(batches):
    """``read_epoch``'s batches as ``(images, labels)`` without the blank padding of a last, short batch (weight
    0), so that only images read are counted."""
    for images, labels, weights in batches:
        count = int((weights > 0).sum())  # the real images come first
        yield images[:count], labels[:count]


def bucket_loaders(image_dir, names, labels, image_size: int, batch_size: int, work_dir, seed: int = 0) -> dict:
    """``{loader name: {"trace": LoaderTrace, "requests": int, "bytes": int, "images": int, "shards": int}}`` for
    the S3 server and the local disk, one epoch of the same shards each (a fresh shard cache each)."""
    import fsspec

    from seedlings_utils.bucket import ShardCache, pack_shards, read_epoch
    from seedlings_utils.bucket_server import LOCAL_CREDENTIALS, free_port, s3_filesystem
    from seedlings_utils.profiling import trace_loader

    work_dir = Path(work_dir)
    shard_size = max(1, min(256, math.ceil(len(names) / 4)))  # at least four shards, lesson 12's 256 at most
    shard_dir = work_dir / f"bucket-shards-{len(names)}-{shard_size}"
    index_file = shard_dir / "index.json"
    index = (json.loads(index_file.read_text()) if index_file.is_file() and
             json.loads(index_file.read_text())["images"] == len(names) else
             pack_shards(image_dir, names, labels, shard_dir, shard_size, progress=False))
    shard_names = [shard["name"] for shard in index["shards"]]
    budget = sum(shard["bytes"] for shard in index["shards"]) + 3 * max(s["bytes"] for s in index["shards"])
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "tools.bench_bucket", "serve", str(port)],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                              env={**os.environ, **LOCAL_CREDENTIALS})
    results = {}
    try:
        _wait_for(port, server)
        s3 = s3_filesystem(f"http://127.0.0.1:{port}", environ=LOCAL_CREDENTIALS)
        s3.mkdir(BUCKET.split("/")[0])
        s3.put([str(shard_dir / name) for name in shard_names], [f"{BUCKET}/{name}" for name in shard_names])
        for loader, fs, prefix in ((S3_LOADER, s3, BUCKET),
                                   (LOCAL_LOADER, fsspec.filesystem("file"), str(shard_dir))):
            folder = work_dir / f"bucket-cache-{'s3' if fs is s3 else 'local'}"
            for old in folder.glob("*") if folder.is_dir() else []:
                old.unlink()  # a fresh cache: every shard is fetched once
            cache = ShardCache(fs, prefix, index, folder, budget)
            print(f"  {loader} ...", flush=True)
            trace = trace_loader(loader, lambda cache=cache: _real_images(
                read_epoch(cache, shard_names, batch_size, image_size, seed, 0)))
            cache.pool.shutdown(wait=True)
            results[loader] = {"trace": trace, "requests": int(cache.stats["downloads"]),
                               "bytes": int(cache.stats["bytes"]), "images": int(index["images"]),
                               "shards": len(shard_names), "shard_size": shard_size}
    finally:
        server.stdin.close()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return results


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"] and len(argv) == 2:
        serve(int(argv[1]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
