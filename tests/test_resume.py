"""Lesson 11: an epoch's order from (seed, epoch), a loader that starts at batch k, positions that are refused when
their order changed or half-written, and real training processes killed with SIGKILL in the middle of an epoch."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from seedlings_utils import resume, resume_runs
from seedlings_utils.exercises import image_number, tiny_image_folder


def test_epoch_order_is_a_pure_function_of_seed_and_epoch():
    first = [resume.epoch_order(5, epoch, 20).tolist() for epoch in (3, 0, 1)]
    again = [resume.epoch_order(5, epoch, 20).tolist() for epoch in (1, 0, 3)][::-1]  # another history of calls
    assert first == again
    assert all(sorted(order) == list(range(20)) for order in first)
    assert first[1] != first[2], "two epochs, one order"
    assert resume.epoch_order(6, 0, 20).tolist() != first[1], "another seed, the same order"


def test_resumable_dataset_starts_at_batch_k_and_reads_nothing_before_it(tmp_path):
    names = np.array(tiny_image_folder(tmp_path, count=11))
    labels = np.arange(11) % 3
    loader = resume.ResumableDataset(tmp_path, names, labels, batch_size=4, image_size=8, seed=2)
    whole = [loader[i] for i in range(len(loader))]
    assert len(loader) == loader.batches_per_epoch == 3
    read = []
    real_load = loader.load_batch
    loader.load_batch = lambda picked: read.extend(picked.tolist()) or real_load(picked)
    loader.start(0, 2)
    assert len(loader) == 1
    images, batch_labels = loader[0]
    assert read == resume.epoch_order(2, 0, 11)[8:].tolist(), "only the last batch is read"
    assert np.array_equal(images, whole[2][0]) and np.array_equal(batch_labels, whole[2][1])
    assert [image_number(im) % 3 for im in images] == batch_labels.tolist(), "each label stays with its image"
    loader.start(1)
    assert sorted(image_number(im) for i in range(len(loader)) for im in loader[i][0]) == list(range(11))
    with pytest.raises(ValueError, match="not in an epoch of 3 batches"):
        loader.start(1, 3)


@pytest.fixture
def saved_position(tmp_path):
    """A run folder holding a position saved for 6 images in `images/`, batch size 2, seed 1."""
    image_dir = tmp_path / "images"
    names = np.array(tiny_image_folder(image_dir, count=6))
    labels = np.arange(6) % 3
    fingerprint = resume.order_fingerprint(image_dir, names, labels, 2, 1)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    position = {"epoch": 1, "next_batch": 2, "weights": "w.keras", "fingerprint": fingerprint, "loader_state": None}
    resume.write_atomically(run_dir / resume.POSITION_FILE, json.dumps(position))
    return run_dir, image_dir, names, labels


@pytest.mark.parametrize("change, phrase", [("seed", "the seed changed"), ("batch size", "the batch size changed"),
                                            ("split", "the split (other training images"),
                                            ("order", "the split (other training images"),
                                            ("file", "the file list (an image was added, removed or rewritten)")])
def test_a_position_of_another_order_is_refused_naming_what_changed(saved_position, change, phrase):
    run_dir, image_dir, names, labels = saved_position
    seed, batch_size = 1, 2
    if change == "seed":
        seed = 2
    elif change == "batch size":
        batch_size = 3
    elif change == "split":
        names, labels = names[:5], labels[:5]
    elif change == "order":
        names, labels = names[::-1], labels[::-1]
    else:  # an image rewritten in place: same name, other bytes
        path = image_dir / names[0]
        path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(resume.ResumeRefused, match="Not resuming") as refused:
        resume.read_position(run_dir, resume.order_fingerprint(image_dir, names, labels, batch_size, seed))
    assert phrase in str(refused.value)
    if change != "split":
        assert "the number of training images changed" not in str(refused.value)
    unchanged = resume.order_fingerprint(image_dir, *saved_position[2:], 2, 1) if change != "file" else None
    if unchanged:
        assert resume.read_position(run_dir, unchanged)["next_batch"] == 2


def test_a_half_written_position_is_never_read(saved_position, monkeypatch):
    run_dir, image_dir, names, labels = saved_position
    fingerprint = resume.order_fingerprint(image_dir, names, labels, 2, 1)
    path = run_dir / resume.POSITION_FILE
    before = path.read_text()

    def killed_before_the_rename(src, dst):
        raise KeyboardInterrupt("the process stops between the write and the rename")

    monkeypatch.setattr(resume.os, "replace", killed_before_the_rename)
    with pytest.raises(KeyboardInterrupt):
        resume.write_atomically(path, '{"epoch": 1, "next_ba')
    monkeypatch.undo()
    assert path.read_text() == before, "the complete position is untouched"
    assert (run_dir / (resume.POSITION_FILE + ".partial")).is_file()
    assert resume.read_position(run_dir, fingerprint)["next_batch"] == 2, "the half-written one is not read"
    path.unlink()
    assert resume.read_position(run_dir, fingerprint) is None, "a .partial file alone is no position"


# ---- real training processes (JAX, on the CPU), killed with SIGKILL after step 2 of epoch 1 ----


@pytest.fixture
def tiny_data_dir(indexed) -> Path:
    """A DATA_DIR as lessons 02-04 leave it: the conftest's 12 tiny images of 3 species, 9 for training."""
    from seedlings_utils.index import save_index
    from seedlings_utils.split import save_split, split_train_val

    all_images, filenames, labels = indexed
    data_dir = all_images.parent
    save_index(data_dir, filenames, labels, ["Charlock", "Common wheat", "Maize"])
    save_split(data_dir, *split_train_val(filenames, labels, 0.25, 3))
    return data_dir


#: 9 training images in batches of 2: 5 batches an epoch, the last one short; saved after batches 2 and 4.
TINY = dict(epochs=2, batch_size=2, image_size=16, base_filters=4, seed=3, save_every=2, timeout=300, progress=False)
KILL = (1, 2)  # after batch 2 of epoch 1: the save after batch 1 holds 2 batches of it, batch 2 is lost


@pytest.mark.slow
def test_a_grain_run_killed_mid_epoch_resumes_to_the_uninterrupted_runs_samples_and_weights(tiny_data_dir, tmp_path):
    """The Grain route with a worker process, against a reference that reads without one. (The position route, and
    the Grain route at the lesson's scale, are checked on lesson 11's own runs: test_lessons_papermill.py.)"""
    route, options = "grain", dict(TINY, workers=1)
    # the reference reads in its own process: Grain's worker processes must not change the order
    reference = resume_runs.run_training(route, tiny_data_dir, tmp_path / "reference", **dict(options, workers=0))
    assert reference == "finished"
    assert resume_runs.run_training(route, tiny_data_dir, tmp_path / "run", kill_after=KILL, **options) == "killed"
    position = json.loads((tmp_path / "run" / resume.POSITION_FILE).read_text())
    assert (position["epoch"], position["next_batch"]) == (1, 2)
    assert not (tmp_path / "run" / resume.FINAL_WEIGHTS).exists(), "the killed process never finished"
    assert resume_runs.run_training(route, tiny_data_dir, tmp_path / "run", **options) == "finished"

    killed, resumed = resume_runs.read_id_log(tmp_path / "run")
    assert killed["steps"][-1][:2] == KILL and resumed["start"] == (1, 2)
    assert resumed["steps"][0][:2] == (1, 2), "the resumed process starts at the saved batch"
    steps, reference = resume_runs.trained_steps(tmp_path / "run"), resume_runs.trained_steps(tmp_path / "reference")
    assert [step[:2] for step in reference] == [(e, b) for e in range(2) for b in range(5)]
    assert steps == reference, "the same samples, in the same order"
    assert resume_runs.once_per_epoch(steps, 9) == {0: "", 1: ""}
    weights, expected = resume_runs.final_weights(tmp_path / "run"), resume_runs.final_weights(tmp_path / "reference")
    assert len(weights) == len(expected) and all(np.array_equal(a, b) for a, b in zip(weights, expected, strict=True))
    with pytest.raises(RuntimeError, match="the seed changed"):  # the same folder, another seed: refused, and said
        resume_runs.run_training(route, tiny_data_dir, tmp_path / "run", **dict(options, seed=4))


@pytest.mark.slow
def test_backup_and_restore_alone_trains_part_of_the_cut_epoch_twice_in_another_order(tiny_data_dir, tmp_path):
    run_dir = tmp_path / "backup"
    assert resume_runs.run_training("backup", tiny_data_dir, run_dir, kill_after=KILL, **TINY) == "killed"
    assert resume.backup_position(run_dir / "backup") == (1, 3)  # Keras saved after batch 2 of epoch 1
    assert resume_runs.run_training("backup", tiny_data_dir, run_dir, **TINY) == "finished"
    killed, resumed = resume_runs.read_id_log(run_dir)
    assert resumed["steps"][0][:2] == (1, 0), "Keras restarts the cut epoch at batch 0"
    cut = [ids for epoch, _, ids in killed["steps"] if epoch == 1]
    again = [ids for epoch, _, ids in resumed["steps"] if epoch == 1]
    assert cut != again[: len(cut)], "the restarted epoch has another order"
    problems = resume_runs.once_per_epoch(resume_runs.trained_steps(run_dir), 9)
    assert problems[0] == "" and "trained twice" in problems[1], problems  # the check that passes above fails here
    assert os.path.getsize(run_dir / resume.FINAL_WEIGHTS) > 0


def test_make_lessons_headline_gives_lesson_11s_result(tmp_path):
    from tools.lessons import headline

    (tmp_path / "resume").mkdir()
    summary = {"kill_after": [1, 10], "exact": {"position": True, "grain": False},
               "backup_problems": {"0": "", "1": "128 trained twice"}}
    (tmp_path / "resume" / "summary.json").write_text(json.dumps(summary))
    line = next(line for line in headline(tmp_path).splitlines() if line.startswith("Resume (11):"))
    assert "after batch 10 of epoch 1" in line and "position True, grain False" in line
    assert "epoch 1: 128 trained twice" in line
