"""Lesson 10's training script (the notebook's cell tagged first-version writes it to ``train_job.py``), kept here.

What every process runs when no ``--script`` is given: the benchmark and the tests run this copy, and
``tests/test_distributed.py`` checks that it says the same as the notebook's. Join the job, spread the model over
all processes' devices, train on this process's shard in step with the others, resume from process 0's last
checkpoint when there is one.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import keras

from .distributed import ReadLog, SaveOnProcessZero, ShardDataset, join_job
from .index import load_classes
from .model import build_cnn
from .split import load_split


def train_process(data_dir, out_dir, epochs, global_batch, image_size, base_filters=16, learning_rate=1e-3, seed=42,
                  augment=False, workers=1, callbacks=(), read_log=None):
    process_id, num_processes = join_job()  # this process's index and the job's size, from the environment
    if global_batch % num_processes:
        raise ValueError(f"the global batch ({global_batch}) must split evenly over {num_processes} processes")
    devices = keras.distribution.list_devices()  # the devices of every process in the job
    data_parallel = keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)
    keras.distribution.set_distribution(data_parallel)
    keras.utils.set_random_seed(seed)  # the same seed everywhere: the same starting weights in every process

    x_train, _, y_train, _ = load_split(data_dir)
    train = ShardDataset(Path(data_dir) / "all_images", x_train, y_train, process_id, num_processes,
                         batch_size=global_batch // num_processes, image_size=image_size, seed=seed, workers=workers)
    out_dir = Path(out_dir)
    checkpoint = out_dir / "checkpoint.json"
    done = json.loads(checkpoint.read_text())["epochs_done"] if checkpoint.is_file() else 0
    with jax.set_mesh(data_parallel.device_mesh.backend_mesh):  # the model built and trained inside the mesh
        if done:  # a restarted job: every process goes on from process 0's checkpoint
            model = keras.models.load_model(out_dir / "checkpoint.keras")
        else:
            model = build_cnn(len(load_classes(data_dir)), image_size, base_filters=base_filters, augment=augment,
                              learning_rate=learning_rate, seed=seed)
        history = model.fit(train, epochs=epochs, initial_epoch=done, verbose=2 if process_id == 0 else 0,
                            callbacks=[*([ReadLog(train, read_log)] if read_log else []),
                                       SaveOnProcessZero(out_dir, process_id), *callbacks])
    return model, history, train
