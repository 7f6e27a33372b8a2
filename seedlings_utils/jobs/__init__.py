"""The training processes the lessons start: a job of N processes on this machine (``launcher``), the command each
runs (``python -m seedlings_utils.jobs.worker``), and what they wrote, read back. Lesson 10 calls ``jobs.run_job``.
"""

from .launcher import (
    TF_ATTEMPT_RECORDED,
    Job,
    WorkerFailed,
    read_problems,
    run_job,
    tensorflow_attempt,
    validation_accuracy,
)

__all__ = ["TF_ATTEMPT_RECORDED", "Job", "WorkerFailed", "read_problems", "run_job", "tensorflow_attempt",
           "validation_accuracy"]
