"""Lesson 12's shards, cache and equal steps: on a file system in memory (quick), and on moto's S3 server on
127.0.0.1 stopped and restarted mid-epoch (slow: it starts a server). No network."""

from __future__ import annotations

import json
import math
from pathlib import Path

import fsspec
import numpy as np
import pytest

from seedlings_utils import bucket, bucket_server

from .helpers import make_photo_folder

IMAGE_SIZE, BATCH = 16, 4
PREFIX = "course/train"


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A learner's own folder (2 classes, JPEG and PNG of mixed sizes): ``(image folder, names, labels, root)``."""
    root = tmp_path_factory.mktemp("photos")
    photos = make_photo_folder(root, per_class=16, formats=("jpg", "png"), val_per_class=0)
    files = sorted((photos / "train").rglob("*.*"))
    names = [str(path.relative_to(photos / "train")) for path in files]
    labels = [0 if name.startswith("cats") else 1 for name in names]
    return photos / "train", names, labels, root


@pytest.fixture(scope="module")
def shards(photos):
    """The photos packed into 7 TFRecord shards of 5 images (the last of 2): ``(index, shard folder, images)``."""
    image_dir, names, labels, root = photos
    index = bucket.pack_shards(image_dir, names, labels, root / "shards", shard_size=5, progress=False)
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


@pytest.fixture(scope="module")
def array_records(photos):
    """The same images packed into 7 ArrayRecord shards of 5: ``(index, shard folder)``."""
    image_dir, names, labels, root = photos
    out = root / "array_records"
    return bucket.pack_array_records(image_dir, names, labels, out, shard_size=5, progress=False), out


def test_array_record_shards_hold_the_same_images_with_the_same_index(shards, array_records, tmp_path):
    index, folder, count = shards
    ar_index, ar_folder = array_records
    assert ar_index["format"] == "array_record" and ar_index["images"] == count
    assert [s["count"] for s in ar_index["shards"]] == [s["count"] for s in index["shards"]]
    assert all(bucket.verified((ar_folder / s["name"]).read_bytes(), s) for s in ar_index["shards"])
    for tf_shard, ar_shard in zip(index["shards"], ar_index["shards"], strict=True):
        tf_images, tf_labels, tf_ids = bucket.read_shard(folder / tf_shard["name"], IMAGE_SIZE)
        ar_images, ar_labels, ar_ids = bucket.read_array_record_shard(ar_folder / ar_shard["name"], IMAGE_SIZE)
        assert np.array_equal(tf_ids, ar_ids) and np.array_equal(tf_labels, ar_labels)
        assert np.array_equal(tf_images, ar_images), "the same bytes, decoded the same way"
    fs, prefix = memory_bucket(ar_folder, "array_records")
    cache = bucket.ShardCache(fs, prefix, ar_index, tmp_path / "cache", budget=10**9)
    log = []
    names = [s["name"] for s in ar_index["shards"]]
    for _ in bucket.read_epoch(cache, names, BATCH, IMAGE_SIZE, 3, 0, log=log, reader=bucket.read_array_record_shard):
        pass
    assert sorted(i for ids in log for i in ids) == list(range(count))
    again = bucket.ShardCache(fs, prefix, ar_index, tmp_path / "cache", budget=10**9)
    assert set(again.kept) == set(names), "a new cache on the same folder keeps the verified ArrayRecord shards"


def test_grain_reads_the_cached_array_records_with_a_global_shuffle_and_resumes_from_its_state(shards, array_records):
    import grain

    _, _, count = shards
    ar_index, ar_folder = array_records
    paths = [str(ar_folder / s["name"]) for s in ar_index["shards"]]
    epoch = (grain.MapDataset.source(grain.sources.ArrayRecordDataSource(paths)).shuffle(seed=3)
             .map(lambda record: bucket.decode_record(record, IMAGE_SIZE)).batch(BATCH))
    whole = [ids.tolist() for _, _, ids in epoch.to_iter_dataset()]
    assert sorted(i for ids in whole for i in ids) == list(range(count))
    assert sum(ids != sorted(ids) for ids in whole) > 0 and len({i // 5 for i in whole[0]}) > 1, "shuffled globally"
    iterator = iter(epoch.to_iter_dataset())
    for _ in range(3):
        next(iterator)
    state = iterator.get_state()
    resumed = iter(epoch.to_iter_dataset())
    resumed.set_state(state)
    assert [ids.tolist() for _, _, ids in resumed] == whole[3:]


@pytest.mark.slow
def test_a_slow_down_answer_is_retried_and_too_many_say_what_to_do(shards, tmp_path):
    """moto's server answers the next object reads "503 SlowDown" (a real HTTP answer, parsed by botocore)."""
    index, folder, count = shards
    names = [shard["name"] for shard in index["shards"]]
    with bucket_server.LocalServer() as server:
        fs = bucket_server.s3_filesystem(server.endpoint_url, environ=dict(bucket_server.LOCAL_CREDENTIALS))
        fs.mkdir("slow")
        fs.put(str(folder) + "/", f"slow/{PREFIX}/", recursive=True)
        server.slow_down(3)
        cache = bucket.ShardCache(fs, f"slow/{PREFIX}", index, tmp_path / "cache", 10**9, ahead=0, retries=4,
                                  backoff=0.01)
        path = cache.get(names[1])
        assert bucket.verified(path.read_bytes(), index["shards"][1])
        assert server.slowed_down == 3 and cache.stats["slow_down"] == cache.stats["retries"] == 3
        assert cache.stats["downloads"] == 1

        server.slow_down(100)
        cache = bucket.ShardCache(fs, f"slow/{PREFIX}", index, tmp_path / "cache2", 10**9, ahead=0, retries=2,
                                  backoff=0.01)
        with pytest.raises(bucket.BucketError, match=f"slow/{PREFIX}/{names[2]} \\(3 tries\\).*fewer threads") as error:
            cache.get(names[2])
        assert server.slowed_down == 6 and not (tmp_path / "cache2" / names[2]).exists()
        server.slow_down(0)
        other = bucket.ShardCache(fs, f"slow/{PREFIX}", index, tmp_path / "cache3", 10**9, ahead=0, retries=0)
        server.stop()
        with pytest.raises(bucket.BucketError) as down:
            other.get(names[2])
        assert "fewer threads" not in str(down.value), "a server that is down is not told to slow down"
    assert "fewer threads" in str(error.value)


def bucket_fit(cache, index, run_dir, disconnect_after=None, position=None, every=2):
    """One epoch of a tiny CNN trained from the cache (from ``position`` if given); its steps (epoch, batch, ids)."""
    import keras

    from seedlings_utils import resume
    from seedlings_utils.model import build_cnn

    run_dir.mkdir(parents=True, exist_ok=True)
    names = [shard["name"] for shard in index["shards"]]
    loader = bucket.BucketLoader(cache, names, BATCH, IMAGE_SIZE, 3, resume=position)
    if position:
        model = keras.models.load_model(run_dir / position["weights"])
    else:
        model = build_cnn(2, IMAGE_SIZE, base_filters=4, blocks=1, augment=False, seed=3)
    log = resume.LogSteps(loader)
    callbacks = [log, bucket.SaveBucketPosition(loader, run_dir, every=every)]
    if disconnect_after is not None:
        callbacks.append(resume.Disconnect(loader, 0, disconnect_after))
    try:
        resume.train(model, loader, 1, callbacks, (position["epoch"], position["next_batch"]) if position else (0, 0))
    except resume.Disconnected:
        pass
    return log.steps


@pytest.mark.slow
def test_a_fit_resumed_from_the_checkpoints_position_trains_on_what_the_uninterrupted_fit_did(shards, tmp_path):
    """The (epoch, shard, offset) saved with the weights by SaveBucketPosition: lesson 11's train goes on from it."""
    index, folder, count = shards
    fs, prefix = memory_bucket(folder, "fit")
    cache = bucket.ShardCache(fs, prefix, index, tmp_path / "cache", budget=10**9)
    whole = bucket_fit(cache, index, tmp_path / "whole")
    assert sorted(i for _, _, ids in whole for i in ids) == list(range(count)) and len(whole) == 8
    before = bucket_fit(cache, index, tmp_path / "cut", disconnect_after=1)  # batches 0-1: saved after batch 1
    saved = json.loads((tmp_path / "cut" / "position.json").read_text())
    assert (saved["epoch"], saved["next_batch"]) == (0, 2) and saved["offset"] > 0, "8 images: mid-shard (5 or 2)"
    fresh = bucket.ShardCache(fs, prefix, index, tmp_path / "fresh", budget=10**9)  # a new machine: an empty cache
    after = bucket_fit(fresh, index, tmp_path / "cut", position=saved)
    assert before + after == whole
    assert fresh.stats["downloads"] == len(index["shards"]) - saved["shard"], "no shard before the position fetched"


@pytest.mark.slow
def test_two_processes_with_an_odd_number_of_shards_finish_with_equal_steps(photos, array_records, tmp_path):
    """Lesson 10's processes run lesson 12's script: each reads its own ArrayRecord shards from moto's server on
    127.0.0.1 and runs the same number of steps (the one with fewer images pads). Cost: two JAX processes, one
    epoch of 9 steps of 2 images of 16 x 16 pixels each."""
    from seedlings_utils import bucket_job, jobs
    from seedlings_utils.index import CLASSES_FILE

    ar_index, ar_folder = array_records
    counts = [shard["count"] for shard in ar_index["shards"]]
    assert len(counts) % 2 == 1
    mine = bucket.assign_shards(counts, 2)
    loads = [sum(counts[i] for i in shards) for shards in mine]
    assert loads[0] != loads[1], "one process has fewer images: without padding it would run fewer steps"
    (tmp_path / CLASSES_FILE).write_text(json.dumps(["cats", "dogs"]))
    with bucket_server.LocalServer() as server:
        fs = bucket_server.s3_filesystem(server.endpoint_url, environ=dict(bucket_server.LOCAL_CREDENTIALS))
        fs.mkdir("jobs")
        fs.put(str(ar_folder) + "/", "jobs/array_records/", recursive=True)
        env = {**bucket_server.LOCAL_CREDENTIALS, "BUCKET_ENDPOINT": server.endpoint_url,
               "BUCKET_PREFIX": "jobs/array_records"}
        job = jobs.run_job(tmp_path, tmp_path / "job", 2, script=bucket_job.__file__, env=env, show="none",
                           timeout=300, timeout_name="this test's timeout (a process left waiting for a step)",
                           epochs=1, global_batch=4, image_size=IMAGE_SIZE, base_filters=4, seed=3)
    steps = bucket.equal_steps(counts, mine, 2)
    assert [job.epochs[p][0]["steps"] for p in range(2)] == [steps, steps]
    assert [s["shard_images"] for s in job.summaries] == loads
    assert not jobs.read_problems(job.reads, [str(i) for i in range(sum(counts))])
    assert job.weights_identical()
