"""The training processes the lessons start: a job of N processes on this machine (``launcher``), the command each
runs (``python -m seedlings_utils.jobs.worker``; lesson 11's: ``jobs.resume_worker``), and what they wrote, read
back. Lesson 10 calls ``jobs.run_job``.

Nothing is imported here until it is asked for: a process started as ``python -m seedlings_utils.jobs.worker``
imports this package first, and must choose its Keras backend (and keep TensorFlow out) before Keras loads.
"""

from __future__ import annotations

__all__ = ["TF_ATTEMPT_RECORDED", "Job", "WorkerFailed", "read_problems", "run_job", "tensorflow_attempt",
           "validation_accuracy"]


def __getattr__(name: str):
    """``jobs.run_job`` and the rest of :data:`__all__`, from :mod:`seedlings_utils.jobs.launcher` when first used."""
    if name in __all__:
        from . import launcher

        return getattr(launcher, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
