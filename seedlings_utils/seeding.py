"""A lesson's start: its ``DATA_DIR`` resolved and every random generator seeded (repeatable ops if asked)."""

from __future__ import annotations

from pathlib import Path

from .data_dirs import resolve_data_dir


def set_seed(seed: int, deterministic: bool = False, tensorflow: bool = True) -> None:
    """Seed Python, NumPy and TensorFlow; with ``deterministic``, ask TensorFlow for repeatable ops too.

    Seeds alone fix the starting weights, the shuffles and the augmentation draws. ``deterministic``
    also makes TensorFlow pick only ops that give bit-identical results run after run, which costs
    speed: some GPU kernels have slower deterministic versions, and ``tf.data`` then keeps every map's
    output order and gives up part of its parallelism. It stays on for the rest of the process.
    ``tensorflow=False`` (lessons 01-04) seeds Python and NumPy as Keras would, without importing TensorFlow.
    """
    if not tensorflow:
        if deterministic:
            raise ValueError("deterministic=True is about TensorFlow's ops: it needs tensorflow=True")
        import random

        import numpy as np

        random.seed(seed)
        np.random.seed(seed)  # noqa: NPY002 - NumPy's global generator, the one keras.utils.set_random_seed seeds
        return
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()



def start_lesson(data_dir: str | Path | None, seed: int = 42, deterministic: bool = False,
                 tensorflow: bool = True) -> Path:
    """The call after a notebook's parameters: resolve ``DATA_DIR``, seed everything, say where files go.

    ``deterministic`` is the lesson's ``DETERMINISTIC`` parameter (see :func:`set_seed`): off by
    default, so that the lessons' speed figures are measured the way ``make bench`` measures them.
    ``tensorflow=False``: a lesson that never uses TensorFlow (01-04) seeds without importing it.
    """
    path = resolve_data_dir(data_dir)
    set_seed(seed, deterministic, tensorflow)
    print(f"DATA_DIR = {path}" + ("  (deterministic TensorFlow ops: repeatable, slower)" if deterministic else ""))
    return path
