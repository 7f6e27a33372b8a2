"""Lesson 12's shards, cache and equal steps: on a file system in memory (quick), and on moto's S3 server on
127.0.0.1 stopped and restarted mid-epoch (slow: it starts a server). No network."""

from __future__ import annotations

import math
from pathlib import Path

import fsspec
import pytest

from seedlings_utils import bucket, bucket_server

from .helpers import make_photo_folder

IMAGE_SIZE, BATCH = 16, 4
PREFIX = "course/train"


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """A learner's own folder (2 classes, JPEG and PNG of mixed sizes) packed into 7 shards of 5 images (the last
    of 2): ``(index, shard folder, number of images)``."""
    root = tmp_path_factory.mktemp("photos")
    photos = make_photo_folder(root, per_class=16, formats=("jpg", "png"), val_per_class=0)
    files = sorted((photos / "train").rglob("*.*"))
    names = [str(path.relative_to(photos / "train")) for path in files]
    labels = [0 if name.startswith("cats") else 1 for name in names]
    index = bucket.pack_shards(photos / "train", names, labels, root / "shards", shard_size=5, progress=False)
    return index, root / "shards", len(names)


def memory_bucket(shard_dir, name):
    """The shards in an fsspec memory file system (a bucket without a server)."""
    fs = fsspec.filesystem("memory")
    for path in Path(shard_dir).iterdir():
        fs.pipe_file(f"/{name}/{PREFIX}/{path.name}", path.read_bytes())
    return fs, f"/{name}/{PREFIX}"


def read_all(cache, index, epoch, steps=None, names=None):
    log = []
    names = names or [shard["name"] for shard in index["shards"]]
    batches = list(bucket.read_epoch(cache, names, BATCH, IMAGE_SIZE, seed=3, epoch=epoch, steps=steps, log=log))
    return batches, [i for ids in log for i in ids]


def test_index_counts_bytes_and_hashes_every_shard(shards):
    index, folder, count = shards
    assert [shard["count"] for shard in index["shards"]] == [5] * 6 + [2]
    assert index["images"] == count == 32
    for shard in index["shards"]:
        assert bucket.verified((folder / shard["name"]).read_bytes(), shard)
    _, _, ids = bucket.read_shard(folder / index["shards"][-1]["name"], IMAGE_SIZE)
    assert ids.tolist() == [30, 31]


def test_a_budget_of_one_epoch_downloads_nothing_in_epoch_two(shards, tmp_path):
    index, folder, count = shards
    fs, prefix = memory_bucket(folder, "whole")
    total = sum(shard["bytes"] for shard in index["shards"])
    cache = bucket.ShardCache(fs, prefix, index, tmp_path / "cache", budget=total)
    downloads = []
    for epoch in range(2):
        cache.reset_stats()
        batches, ids = read_all(cache, index, epoch)
        assert sorted(ids) == list(range(count)), "every image once in every epoch"
        downloads.append((cache.stats["downloads"], cache.stats["hits"]))
    assert downloads == [(len(index["shards"]), 0), (0, len(index["shards"]))]


def test_a_small_budget_is_never_exceeded_and_evicts(shards, tmp_path):
    index, folder, count = shards
    fs, prefix = memory_bucket(folder, "small")
    largest = max(shard["bytes"] for shard in index["shards"])
    cache = bucket.ShardCache(fs, prefix, index, tmp_path / "cache", budget=3 * largest)
    seen = []
    original = cache._keep

    def keep_and_measure(name, data):
        original(name, data)
        seen.append(sum(path.stat().st_size for path in (tmp_path / "cache").iterdir()))

    cache._keep = keep_and_measure
    downloads, evicted = [], 0
    for epoch in range(2):
        cache.reset_stats()
        _, ids = read_all(cache, index, epoch)
        assert sorted(ids) == list(range(count))
        downloads.append(cache.stats["downloads"])
        evicted += cache.stats["evicted"]
    assert max(seen) <= 3 * largest and evicted > 0
    assert downloads[0] == len(index["shards"]) >= downloads[1], "a shard fetched ahead was evicted before its use"
    assert downloads[1] > 0, "a budget below the data set downloads again in epoch 2"
    with pytest.raises(ValueError, match="cannot hold"):
        bucket.ShardCache(fs, prefix, index, tmp_path / "too_small", budget=2 * largest, ahead=2)


class CutOnce:
    """A file system whose first answer for ``name`` is cut short."""

    def __init__(self, fs, name):
        self.fs, self.name, self.cuts = fs, name, 0

    def cat_file(self, key):
        data = self.fs.cat_file(key)
        if key.endswith(self.name) and not self.cuts:
            self.cuts += 1
            return data[:-50]
        return data


def test_a_cut_download_is_fetched_again_and_a_corrupt_object_never_trained_on(shards, tmp_path):
    index, folder, count = shards
    fs, prefix = memory_bucket(folder, "corrupt")
    names = [shard["name"] for shard in index["shards"]]
    cut = CutOnce(fs, names[2])
    cache = bucket.ShardCache(cut, prefix, index, tmp_path / "cut", budget=10**9, backoff=0)
    _, ids = read_all(cache, index, 0)
    assert cut.cuts == 1 and cache.stats["corrupt"] == 1 and sorted(ids) == list(range(count))

    bad = names[4]
    good = fs.cat_file(f"{prefix}/{bad}")
    fs.pipe_file(f"{prefix}/{bad}", good[:100] + bytes([good[100] ^ 1]) + good[101:])  # one bit, same size
    cache = bucket.ShardCache(fs, prefix, index, tmp_path / "flipped", budget=10**9, retries=2, backoff=0)
    log = []
    with pytest.raises(bucket.BucketError, match=bad):
        for _ in bucket.read_epoch(cache, names, BATCH, IMAGE_SIZE, seed=3, epoch=0, log=log):
            pass
    trained = {i for ids in log for i in ids}
    assert not trained & set(range(20, 25)), "no image of the corrupt shard was served"
    assert cache.stats["corrupt"] == 3 and not (tmp_path / "flipped" / bad).exists()


@pytest.mark.parametrize("counts, processes", [([5, 5, 5, 5, 5, 3, 0], 2), ([5, 5, 5], 2), ([7, 1, 1, 1, 1], 3),
                                               ([4, 4], 3), ([9, 2, 2, 2, 2, 2, 2], 2)])
def test_shards_assigned_for_equal_steps(counts, processes):
    shards = bucket.assign_shards(counts, processes)
    assert sorted(i for mine in shards for i in mine) == list(range(len(counts)))
    loads = [sum(counts[i] for i in mine) for mine in shards]
    assert max(loads) - min(loads) <= max(counts)
    steps = bucket.equal_steps(counts, shards, local_batch=2)
    assert steps == max(math.ceil(load / 2) for load in loads)


def test_two_processes_with_an_odd_number_of_shards_run_equal_steps(shards, tmp_path):
    index, folder, count = shards
    fs, prefix = memory_bucket(folder, "processes")
    counts = [shard["count"] for shard in index["shards"]]
    names = [shard["name"] for shard in index["shards"]]
    assert len(counts) % 2 == 1
    mine = bucket.assign_shards(counts, 2)
    naive = [math.ceil(sum(counts[p::2]) / BATCH) for p in range(2)]
    steps = bucket.equal_steps(counts, mine, BATCH)
    cache = bucket.ShardCache(fs, prefix, index, tmp_path / "cache", budget=10**9)
    served, read = [], []
    for p in range(2):
        batches, ids = read_all(cache, index, 0, steps=steps, names=[names[i] for i in mine[p]])
        served.append(len(batches))
        read += ids
        assert all(x.shape == (BATCH, IMAGE_SIZE, IMAGE_SIZE, 3) for x, _, _ in batches), "one shape for every step"
        assert sum(float(w.sum()) for _, _, w in batches) == len(ids), "blanks weigh 0"
    assert naive[0] != naive[1], "the round-robin split of this data would hang"
    assert served == [steps, steps]
    assert sorted(read) == list(range(count))


def test_missing_credentials_say_where_to_put_them_and_never_show_a_secret():
    with pytest.raises(bucket_server.MissingCredentials) as missing:
        bucket_server.credentials({})
    assert "AWS_ACCESS_KEY_ID" in str(missing.value) and "AWS_SECRET_ACCESS_KEY" in str(missing.value)
    with pytest.raises(bucket_server.MissingCredentials) as half:
        bucket_server.credentials({"AWS_ACCESS_KEY_ID": "AKIA-DO-NOT-SHOW"})
    assert "AWS_SECRET_ACCESS_KEY" in str(half.value) and "AKIA-DO-NOT-SHOW" not in str(half.value)
    found = bucket_server.credentials({"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"})
    assert found == {"key": "k", "secret": "s"}


class RestartOnFailure:
    """The bucket's file system; when a request fails because the server is down, the server is started again
    (after the failure is raised, so the cache counts a retry)."""

    def __init__(self, fs, server):
        self.fs, self.server, self.failures = fs, server, 0

    def cat_file(self, key):
        try:
            return self.fs.cat_file(key)
        except Exception:
            self.failures += 1
            self.server.start()
            raise


@pytest.mark.slow
def test_server_stopped_and_restarted_mid_epoch_every_image_read_once(shards, tmp_path):
    index, folder, count = shards
    environ = dict(bucket_server.LOCAL_CREDENTIALS)
    with bucket_server.LocalServer() as server:
        fs = bucket_server.s3_filesystem(server.endpoint_url, environ=environ, timeout=2)
        fs.mkdir("seedlings")
        fs.put(str(folder) + "/", f"seedlings/{PREFIX}/", recursive=True)
        flaky = RestartOnFailure(fs, server)
        largest = max(shard["bytes"] for shard in index["shards"])
        cache = bucket.ShardCache(flaky, f"seedlings/{PREFIX}", index, tmp_path / "cache", 2 * largest, ahead=1,
                                  backoff=0.05)
        names = [shard["name"] for shard in index["shards"]]
        log, stopped = [], False
        for step, _ in enumerate(bucket.read_epoch(cache, names, BATCH, IMAGE_SIZE, 3, 0, log=log)):
            if step == 2:
                server.stop()  # the next download fails, then the server comes back
                stopped = True
        assert stopped and flaky.failures >= 1 and cache.stats["retries"] == flaky.failures
        assert sorted(i for ids in log for i in ids) == list(range(count)), "every image of the epoch exactly once"

        server.stop()  # and now it stays down: the error names the object
        cache = bucket.ShardCache(fs, f"seedlings/{PREFIX}", index, tmp_path / "down", 10**9, retries=1, backoff=0)
        with pytest.raises(bucket.BucketError, match=f"seedlings/{PREFIX}/{names[3]}.*2 tries"):
            cache.get(names[3])


def test_a_resume_from_epoch_shard_offset_reads_what_the_uninterrupted_epoch_read(shards, tmp_path):
    index, folder, count = shards
    fs, prefix = memory_bucket(folder, "resume")
    names = [shard["name"] for shard in index["shards"]]
    cache = bucket.ShardCache(fs, prefix, index, tmp_path / "whole", budget=10**9)
    whole = []
    for _ in bucket.read_epoch(cache, names, BATCH, IMAGE_SIZE, 3, 1, log=whole):
        pass
    for cut in (1, 3, len(whole) - 1):  # a batch that ends mid-shard, at a shard's end, the epoch's last but one
        first, saved = [], []
        for step, _ in enumerate(bucket.read_epoch(cache, names, BATCH, IMAGE_SIZE, 3, 1, log=first,
                                                 positions=saved)):
            if step + 1 == cut:
                break
        fresh = bucket.ShardCache(fs, prefix, index, tmp_path / f"resumed_{cut}", budget=10**9, ahead=0)
        rest = []
        for _ in bucket.read_epoch(fresh, names, BATCH, IMAGE_SIZE, 3, 1, log=rest, start=saved[-1]):
            pass
        assert first + rest == whole, f"cut after batch {cut} at {saved[-1]}"
        assert fresh.stats["downloads"] == len(names) - saved[-1][0], "no shard before the position is fetched"
    assert sorted(i for ids in whole for i in ids) == list(range(count))
