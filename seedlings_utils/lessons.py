"""Run the numbered notebooks headless with papermill (``make lessons``) or prepare them for nbval.

    python -m seedlings_utils.lessons run -p EPOCHS 3 -p IMAGE_SIZE 64
    python -m seedlings_utils.lessons prepare --output-dir build/nbval -p DATA_DIR /tmp/x

Every ``-p NAME VALUE`` is a notebook parameter (``../shared`` contract: the cell tagged ``parameters``);
values are read as Python literals when they are one (``8``, ``0.2``, ``False``), else as text.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import re
import shutil
import sys
import threading
import time
from pathlib import Path

from .env import PACKAGE_ROOT, resolve_data_dir

NOTEBOOKS_DIR = PACKAGE_ROOT.parent / "notebooks"


def lesson_notebooks(notebooks_dir: str | Path = NOTEBOOKS_DIR, lessons: list[str] | None = None) -> list[Path]:
    """The numbered notebooks (``01_*.ipynb`` ...), in order; ``lessons`` picks some by number (``["05"]``)."""
    paths = sorted(Path(notebooks_dir).glob("[0-9][0-9]_*.ipynb"))
    return [p for p in paths if lessons is None or p.name[:2] in lessons]


def parse_value(text: str):
    """``"8"`` -> 8, ``"False"`` -> False, ``"runs/x"`` -> ``"runs/x"``."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def run_lessons(
    parameters: dict, output_dir: str | Path | None = None, notebooks_dir: str | Path = NOTEBOOKS_DIR,
    lessons: list[str] | None = None, prepare_only: bool = False, log_output: bool = False,
) -> list[Path]:
    """Execute (or, with ``prepare_only``, only parameterise) the lessons in order into ``output_dir``.

    ``DATA_DIR`` is made absolute first, so every notebook shares it whatever its working directory.
    Returns the paths of the written notebooks. Raises papermill's error (naming the failing cell) if
    a lesson fails.
    """
    import papermill as pm

    parameters = dict(parameters)
    parameters["DATA_DIR"] = str(resolve_data_dir(parameters.get("DATA_DIR", "")))
    if parameters.get("RESULTS_DIR"):  # a relative path would be read from notebooks/, the kernels' folder
        parameters["RESULTS_DIR"] = str(Path(parameters["RESULTS_DIR"]).expanduser().resolve())
    output_dir = Path(output_dir) if output_dir else Path(parameters["DATA_DIR"]) / "executed_notebooks"
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for notebook in lesson_notebooks(notebooks_dir, lessons):
        out = output_dir / notebook.name
        declared = pm.inspect_notebook(str(notebook))  # pass each lesson only the knobs it has
        print(f"{'Preparing' if prepare_only else 'Running'} {notebook.name} -> {out}", end="", flush=True)
        start = time.perf_counter()
        pm.execute_notebook(
            str(notebook), str(out), parameters={k: v for k, v in parameters.items() if k in declared},
            cwd=str(notebook.parent), kernel_name="python3", prepare_only=prepare_only,
            progress_bar=False, log_output=log_output,
        )
        print("" if prepare_only else f"  ({time.perf_counter() - start:.0f} s)", flush=True)
        written.append(out)
    return written


def prepare_for_nbval(
    output_dir: str | Path, parameters: dict, notebooks_dir: str | Path = NOTEBOOKS_DIR
) -> list[Path]:
    """Copies of every lesson with ``parameters`` injected, each with its OWN empty ``DATA_DIR``.

    nbval then runs each one as a learner opening that lesson first in a fresh runtime would.
    """
    output_dir = Path(output_dir)
    written = []
    for notebook in lesson_notebooks(notebooks_dir):
        data_dir = output_dir / f"data-{notebook.name[:2]}"
        if data_dir.exists():
            shutil.rmtree(data_dir)
        written += run_lessons({**parameters, "DATA_DIR": str(data_dir)}, output_dir, notebooks_dir,
                               lessons=[notebook.name[:2]], prepare_only=True)
    return written


def headline(data_dir: str | Path, results_dir: str | Path | None = None) -> str:
    """The numbers ``make lessons`` ends with, read from what the lessons wrote (lesson 06's results from
    ``results_dir``, its ``RESULTS_DIR``, when that is set)."""
    import numpy as np

    data_dir = Path(data_dir)
    results_dir = Path(results_dir) if results_dir else data_dir
    lines = [f"Lesson outputs:      {data_dir}"]
    if (data_dir / "filenames.npy").is_file():
        lines.append(f"Training images:     {len(np.load(data_dir / 'filenames.npy'))} "
                     f"(in {data_dir / 'all_images'})")
    for name, title in (("loader_speed.json", "Loader speed (05)"), ("cache_speed.json", "Cache speed (07)"),
                        ("tfdata_speed.json", "tf.data speed (08)")):
        if (data_dir / name).is_file():
            speeds = json.loads((data_dir / name).read_text())
            lines.append(f"{title + ':':<21}" + ", ".join(f"{k}: {v:.0f} images/s" for k, v in speeds.items()))
    if (results_dir / "metrics.json").is_file():
        metrics = json.loads((results_dir / "metrics.json").read_text())
        last = metrics.get("last_epoch_val_accuracy")
        lines.append(f"Validation accuracy: {metrics['val_accuracy']:.3f} of the best checkpoint"
                     + (f", {last:.3f} after the last epoch" if last is not None else "")
                     + f" (micro-F1 {metrics['val_micro_f1']:.3f}; chance is {1 / 12:.3f})")
    if (data_dir / "transfer_metrics.json").is_file():
        transfer = json.loads((data_dir / "transfer_metrics.json").read_text())
        lines.append(f"Transfer (09):       validation accuracy {transfer['val_accuracy']:.3f}, "
                     f"{transfer['backbone']}, {transfer['weights']}")
    if (data_dir / "wait_share.json").is_file():
        waits = json.loads((data_dir / "wait_share.json").read_text())
        lines.append(f"Waiting (09, {waits['device']}): " + ", ".join(
            f"{name} {100 * figures['median']:.0f} %" for name, figures in waits["shares"].items()))
    if (data_dir / "distributed" / "summary.json").is_file():
        jobs = json.loads((data_dir / "distributed" / "summary.json").read_text())
        lines.append("Processes (10):      " + ", ".join(
            f"{name}: {jobs['images_per_second'][name]:.0f} images/s, accuracy {accuracy:.3f}"
            for name, accuracy in jobs["validation_accuracy"].items())
            + f"; identical weights: {jobs['weights_identical']}")
    return "\n".join(lines)


#: Lines the kernels and libraries print to the terminal that say nothing to a learner: TensorFlow's C++
#: start-up lines (printed before TF_CPP_MIN_LOG_LEVEL is read), the kernel's transport notice, nbformat's
#: cell-id notice, and the kernel's shutdown message.
TERMINAL_NOISE = re.compile(
    r"absl::InitializeLog|cudart_stub\.cc|cuda_(dnn|fft|blas|executor)|Unable to register cu|computation_placer"
    r"|oneDNN custom operations|Kernel is running over TCP|MissingIDFieldWarning|_validate\(nbdict"
    r"|KeyboardInterrupt caught in kernel|This TensorFlow binary is optimized|rebuild TensorFlow with"
)


@contextlib.contextmanager
def filtered_stderr(noise: re.Pattern = TERMINAL_NOISE):
    """Drop the lines matching ``noise`` from everything written to file descriptor 2 meanwhile, this
    process's and the kernels' it starts (they inherit it); every other line is passed on unchanged."""
    sys.stderr.flush()
    saved = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def forward() -> None:
        with os.fdopen(read_end, "rb") as lines, os.fdopen(os.dup(saved), "wb", buffering=0) as out:
            for line in lines:
                if not noise.search(line.decode(errors="replace")):
                    out.write(line)

    thread = threading.Thread(target=forward, daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # closes our copy of the pipe's write end; kernels have exited by now
        os.close(saved)
        thread.join(timeout=5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("run", "prepare"))
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    parser.add_argument("--output-dir", help="where the notebooks go (default: DATA_DIR/executed_notebooks)")
    parser.add_argument("--lessons", nargs="*", help="lesson numbers to run, e.g. 01 02 (default: all)")
    parser.add_argument("--log-output", action="store_true", help="stream the notebooks' output")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # the kernels inherit it: no C++ log noise headless
    parameters = {name: parse_value(value) for name, value in args.parameter}
    with filtered_stderr():
        written = run_lessons(parameters, args.output_dir, lessons=args.lessons,
                              prepare_only=args.command == "prepare", log_output=args.log_output)
    if args.command == "run":
        print(f"\nExecuted notebooks:  {written[0].parent if written else '-'}")
        print(headline(resolve_data_dir(parameters.get("DATA_DIR", "")), parameters.get("RESULTS_DIR") or None))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
