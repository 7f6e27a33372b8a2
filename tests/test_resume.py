"""Lesson 11: an epoch's order from (seed, epoch), a loader that starts at batch k, positions saved whole and refused
when their order changed, the notebook's cells as edited changing its run, and real training processes killed with
SIGKILL in the middle of an epoch."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from seedlings_utils import killed_runs, resume
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
    assert loader.start(0, 2) is loader, "start gives what fit reads"
    assert len(loader) == 1
    images, batch_labels = loader[0]
    assert read == resume.epoch_order(2, 0, 11)[8:].tolist(), "only the last batch is read"
    assert loader.served[(0, 2)] == read, "what it served, under (epoch, batch)"
    assert np.array_equal(images, whole[2][0]) and np.array_equal(batch_labels, whole[2][1])
    assert [image_number(im) % 3 for im in images] == batch_labels.tolist(), "each label stays with its image"
    loader.start(1)
    assert sorted(image_number(im) for i in range(len(loader)) for im in loader[i][0]) == list(range(11))


class _Loader:
    """What SavePosition reads of a loader: the epoch, the batch it started at, the batches in an epoch."""

    epoch, first_batch, batches_per_epoch = 1, 0, 5


class _Model:
    """What SavePosition calls of a model: ``save`` (a file of one line)."""

    def save(self, path):
        Path(path).write_text("weights")


def test_save_position_writes_the_next_batch_and_names_its_weights_and_a_cut_write_leaves_the_old_pair(tmp_path,
                                                                                                  monkeypatch):
    saver = resume.SavePosition(_Loader(), tmp_path, every=2)
    saver.set_model(_Model())
    saver.on_train_batch_end(0)  # 1 batch done: no save (every 2)
    assert not (tmp_path / "position.json").exists()
    saver.on_train_batch_end(1)  # 2 done: the next batch is 2
    position = json.loads((tmp_path / "position.json").read_text())
    assert (position["epoch"], position["next_batch"]) == (1, 2) and (tmp_path / position["weights"]).is_file()
    saver.on_train_batch_end(4)  # the epoch's last batch: the next epoch, from its batch 0
    position = json.loads((tmp_path / "position.json").read_text())
    assert (position["epoch"], position["next_batch"]) == (2, 0)
    assert sorted(p.name for p in tmp_path.glob("*.keras")) == [position["weights"]], "the old weights are gone"

    def killed_before_the_rename(src, dst):
        raise KeyboardInterrupt("the process stops between the write and the rename")

    monkeypatch.setattr(resume.os, "replace", killed_before_the_rename)
    with pytest.raises(KeyboardInterrupt):
        saver.on_train_batch_end(1)
    monkeypatch.undo()
    assert json.loads((tmp_path / "position.json").read_text()) == position, "the complete position is untouched"
    assert (tmp_path / position["weights"]).is_file(), "and so are the weights it names"
    assert (tmp_path / "position.json.partial").is_file()


@pytest.fixture
def saved_position(tmp_path):
    """A run folder holding a position saved for 6 images in `images/`, batch size 2, seed 1, and its fingerprint."""
    image_dir = tmp_path / "images"
    names = np.array(tiny_image_folder(image_dir, count=6))
    labels = np.arange(6) % 3
    fingerprint = resume.order_fingerprint(image_dir, names, labels, 2, 1)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    assert resume.read_position(run_dir, fingerprint) is None, "nothing saved yet: start afresh"
    (run_dir / "position.json").write_text(json.dumps({"epoch": 1, "next_batch": 2, "weights": "w.keras"}))
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


def test_a_half_written_position_alone_is_no_position(saved_position):
    run_dir, image_dir, names, labels = saved_position
    fingerprint = resume.order_fingerprint(image_dir, names, labels, 2, 1)
    (run_dir / "position.json.partial").write_text('{"epoch": 1, "next_ba')
    assert resume.read_position(run_dir, fingerprint)["next_batch"] == 2, "the half-written one is not read"
    (run_dir / "position.json").unlink()
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
    reference = killed_runs.run_training(route, tiny_data_dir, tmp_path / "reference", **dict(options, workers=0))
    assert reference == "finished"
    assert killed_runs.run_training(route, tiny_data_dir, tmp_path / "run", kill_after=KILL, **options) == "killed"
    position = json.loads((tmp_path / "run" / "position.json").read_text())
    assert (position["epoch"], position["next_batch"]) == (1, 2)
    assert not (tmp_path / "run" / resume.FINAL_WEIGHTS).exists(), "the killed process never finished"
    assert killed_runs.run_training(route, tiny_data_dir, tmp_path / "run", **options) == "finished"

    killed, resumed = killed_runs.read_id_log(tmp_path / "run")
    assert killed["steps"][-1][:2] == KILL and resumed["start"] == (1, 2)
    assert resumed["steps"][0][:2] == (1, 2), "the resumed process starts at the saved batch"
    steps, reference = killed_runs.trained_steps(tmp_path / "run"), killed_runs.trained_steps(tmp_path / "reference")
    assert [step[:2] for step in reference] == [(e, b) for e in range(2) for b in range(5)]
    assert steps == reference, "the same samples, in the same order"
    assert killed_runs.once_per_epoch(steps, 9) == {0: "", 1: ""}
    weights, expected = killed_runs.final_weights(tmp_path / "run"), killed_runs.final_weights(tmp_path / "reference")
    assert len(weights) == len(expected) and all(np.array_equal(a, b) for a, b in zip(weights, expected, strict=True))
    with pytest.raises(RuntimeError, match="the seed changed"):  # the same folder, another seed: refused, and said
        killed_runs.run_training(route, tiny_data_dir, tmp_path / "run", **dict(options, seed=4))


@pytest.mark.slow
def test_backup_and_restore_alone_trains_part_of_the_cut_epoch_twice_in_another_order(tiny_data_dir, tmp_path):
    run_dir = tmp_path / "backup"
    assert killed_runs.run_training("backup", tiny_data_dir, run_dir, kill_after=KILL, **TINY) == "killed"
    assert resume.backup_position(run_dir / "backup") == (1, 3)  # Keras saved after batch 2 of epoch 1
    assert killed_runs.run_training("backup", tiny_data_dir, run_dir, **TINY) == "finished"
    killed, resumed = killed_runs.read_id_log(run_dir)
    assert resumed["steps"][0][:2] == (1, 0), "Keras restarts the cut epoch at batch 0"
    cut = [ids for epoch, _, ids in killed["steps"] if epoch == 1]
    again = [ids for epoch, _, ids in resumed["steps"] if epoch == 1]
    assert cut != again[: len(cut)], "the restarted epoch has another order"
    problems = killed_runs.once_per_epoch(killed_runs.trained_steps(run_dir), 9)
    assert problems[0] == "" and "trained twice" in problems[1], problems  # the check that passes above fails here
    assert os.path.getsize(run_dir / resume.FINAL_WEIGHTS) > 0


def test_make_lessons_headline_gives_lesson_11s_result(tmp_path):
    from tools.lessons import headline

    (tmp_path / "resume").mkdir()
    summary = {"kill_after": [1, 10], "exact": {"position": True, "grain": False}}
    (tmp_path / "resume" / "summary.json").write_text(json.dumps(summary))
    line = next(line for line in headline(tmp_path).splitlines() if line.startswith("Resume (11):"))
    assert "after batch 10 of epoch 1" in line and "position True, grain False" in line
    assert "BackupAndRestore alone: not run (GOING_DEEPER = False)" in line
    summary["exact"]["grain (killed process)"] = True
    summary["backup_problems"] = {"0": "", "1": "128 trained twice"}
    (tmp_path / "resume" / "summary.json").write_text(json.dumps(summary))
    line = next(line for line in headline(tmp_path).splitlines() if line.startswith("Resume (11):"))
    assert "grain (killed process) True" in line and "BackupAndRestore alone: epoch 1: 128 trained twice" in line


# ---- the notebook's own cells train: edited, the run changes ----

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "11_resume_a_long_epoch_exactly.ipynb"
#: 12 synthetic classes of 10 images, 96 for training: 6 batches of 16 an epoch; saved every 2, cut after batch 3.
SMALL = dict(SYNTHETIC_PER_CLASS=10, IMAGE_SIZE=16, BATCH_SIZE=16, BASE_FILTERS=4, SAVE_EVERY=2, KILL_AFTER_BATCH=3,
             RESUME_EPOCHS=2, SEED=3, GOING_DEEPER=False)


@pytest.mark.slow
def test_the_notebook_trains_its_own_cells_as_edited(tmp_path):
    """Edit the position lesson 11's SavePosition cell saves (the last batch trained, not the next one) and run the
    lesson's core path: its runs resume one batch early, so that batch is trained twice, the weights differ from the
    uninterrupted run's, and the lesson fails."""
    from tools.lessons import LessonsFailed, run_lessons

    notebook = json.loads(NOTEBOOK.read_text())
    right = '        return {"epoch": self.loader.epoch, "next_batch": done}\n'
    cells = [c for c in notebook["cells"] if right in c["source"]]
    assert len(cells) == 1 and "first-version" in cells[0]["metadata"]["tags"], "the first version saves positions"
    edit = right.replace('"next_batch": done}', '"next_batch": done - 1}')
    cells[0]["source"][cells[0]["source"].index(right)] = edit
    edited = tmp_path / "notebooks" / NOTEBOOK.name
    edited.parent.mkdir()
    edited.write_text(json.dumps(notebook))
    data_dir = tmp_path / "data"
    with pytest.raises(LessonsFailed) as failure:
        run_lessons({**SMALL, "DATA_DIR": str(data_dir)}, tmp_path / "out", notebooks_dir=edited.parent,
                    lessons=["11"], keep_going=True, core=True)
    assert NOTEBOOK.name in failure.value.failed  # the check, or the Grain route running past its iterator's end
    run = data_dir / "resume" / "position"
    record = json.loads((run / killed_runs.STEPS_FILE).read_text())
    assert record["resumed_from"] == [1, 3], "saved after batches 0-3 of epoch 1, as edited: batch 3 comes again"
    assert [tuple(step[:2]) for step in record["resumed"]][-3:] == [(1, 3), (1, 4), (1, 5)]
    weights, reference = killed_runs.final_weights(run), killed_runs.final_weights(run, killed_runs.REFERENCE_WEIGHTS)
    assert not all(np.array_equal(a, b) for a, b in zip(weights, reference, strict=True)), "batch 3 trained twice"
