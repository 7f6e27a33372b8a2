"""The command each of lesson 11's training processes runs: ``python -m seedlings_utils.jobs.resume_worker --route ...``
(one run of :func:`seedlings_utils.resume.train_run`, resumed from ``--run-dir`` when a checkpoint is there)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

# These processes run Keras on JAX and never use TensorFlow, yet keras.utils.set_random_seed imports it (when it
# is installed) only to seed it: seconds of every process's start. Marked missing here, it is skipped.
sys.modules.setdefault("tensorflow", None)

import keras  # noqa: E402

from ..killed_runs import HOLDING_FILE  # noqa: E402
from ..resume import ID_LOG, ROUTES, train_run  # noqa: E402


class HoldAt(keras.callbacks.Callback):
    """Once the id log in ``run_dir`` shows step ``batch`` of epoch ``epoch`` (and its save is done), the process
    waits, as if that long epoch went on, until it is killed: the kill lands at a known step on any machine."""

    def __init__(self, run_dir: str | Path, epoch: int, batch: int, seconds: float = 600.0):
        super().__init__()
        self.log, self.at, self.seconds = Path(run_dir) / ID_LOG, [epoch, batch], seconds
        self.holding = Path(run_dir) / HOLDING_FILE

    def on_train_batch_end(self, batch, logs=None):
        last = json.loads(self.log.read_text(encoding="utf-8").splitlines()[-1])
        if [last.get("epoch"), last.get("batch")] == self.at:
            print(f"holding after epoch {self.at[0]} batch {self.at[1]}: waiting to be killed", flush=True)
            self.holding.write_text(f"{self.at[0]} {self.at[1]}")  # every callback of the step is done
            time.sleep(self.seconds)
            raise SystemExit(f"nobody killed this process within {self.seconds:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="One training run of lesson 11, resumed from --run-dir if possible.")
    parser.add_argument("--route", choices=ROUTES, required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--run-dir", required=True)
    for name, default in (("epochs", 2), ("batch-size", 16), ("image-size", 32), ("seed", 42), ("save-every", 4),
                          ("workers", 0), ("base-filters", 8)):
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--hold-at", help="EPOCH,BATCH: wait after that step until killed")
    args = parser.parse_args(argv)
    if keras.config.backend() != "jax":
        raise SystemExit(f"Keras runs on {keras.config.backend()!r} here: set KERAS_BACKEND=jax before Python starts")
    callbacks = []
    if args.hold_at:
        epoch, batch = (int(part) for part in args.hold_at.split(","))
        callbacks.append(HoldAt(args.run_dir, epoch, batch))
    options = {k: v for k, v in vars(args).items() if k not in ("route", "data_dir", "run_dir", "hold_at")}
    train_run(args.route, args.data_dir, args.run_dir, callbacks=callbacks, **options)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
