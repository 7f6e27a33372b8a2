"""Run the numbered notebooks headless with papermill (``make lessons``) or prepare them for nbval.

    python -m tools.lessons run -p EPOCHS 3 -p IMAGE_SIZE 64
    python -m tools.lessons prepare --output-dir build/nbval -p DATA_DIR /tmp/x

Every ``-p NAME VALUE`` is a notebook parameter (docs/parameters.md: the cell tagged ``parameters``);
values are read as Python literals when they are one (``8``, ``0.2``, ``False``), else as text.

``run`` ends with each executed lesson's title and its result: what the lesson's cell tagged ``headline`` printed
(:func:`headline`). It goes on after a failing lesson: it prints the notebook's own error and the path of a log
with the full traceback, skips the later lessons that need the failed one (see ``lesson_needs``), runs the others,
and exits with 1 after a summary.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import difflib
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path

from seedlings_utils.data_dirs import resolve_data_dir
from seedlings_utils.parameters import KNOBS, quick_parameters
from seedlings_utils.platform_info import TERMINAL_NOISE

from .pages import TITLE
from .paths import NOTEBOOKS_DIR, lesson_notebooks


def parse_value(text: str):
    """``"8"`` -> 8, ``"False"`` -> False, ``"runs/x"`` -> ``"runs/x"``."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


#: What a notebook's code calls to rebuild an earlier lesson's output (``seedlings_utils.earlier_lessons``).
ENSURE_CALL = re.compile(r"\bensure_\w+")
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def lesson_needs(notebooks: list[Path]) -> dict[str, set[str]]:
    """The earlier lessons (by number) each lesson needs: those whose step it re-runs if their output is missing.

    Read from the ``ensure_*`` names in each notebook's code cells: an ``ensure_*`` rebuilds the output of the
    lesson just before the first one that uses it (``ensure_raw``, first used in 02, is lesson 01's step), and
    with it whatever that lesson needs in turn.
    """
    import nbformat

    calls = {}
    for path in notebooks:
        try:
            cells = nbformat.read(path, as_version=4).cells
        except (OSError, ValueError):  # not a notebook: run_lessons reports it as that lesson's failure
            cells = []
        calls[path.name[:2]] = set(ENSURE_CALL.findall("\n".join(c.source for c in cells if c.cell_type == "code")))
    order, producer, needs = list(calls), {}, {}
    for i, lesson in enumerate(order):
        for name in calls[lesson]:
            producer.setdefault(name, order[i - 1] if i else None)
        direct = {producer[name] for name in calls[lesson]} - {None, lesson}
        needs[lesson] = direct.union(*(needs[p] for p in direct))
    return needs


class LessonsFailed(Exception):
    """Raised by ``run_lessons(keep_going=True)`` after the last lesson when one failed; its text is the summary."""

    def __init__(self, written: list[Path], failed: dict[str, str], skipped: dict[str, str]) -> None:
        self.written, self.failed, self.skipped = written, failed, skipped  # skipped: name -> reason
        lines = [f"Lessons: {len(written)} passed, {len(failed)} failed, {len(skipped)} skipped"]
        if written:
            lines.append("  passed   " + ", ".join(p.name for p in written))
        lines += [f"  FAILED   {name}: {why}" for name, why in failed.items()]
        for reason in dict.fromkeys(skipped.values()):
            lines.append(f"  skipped  {', '.join(n for n, r in skipped.items() if r == reason)} ({reason})")
        super().__init__("\n".join(lines))


def describe_failure(error: Exception) -> str:
    """The failing cell's own error, e.g. ``In [3], line 2 `x = f()`: ValueError: bad``; any other error's first
    line."""
    from papermill.exceptions import PapermillExecutionError

    if isinstance(error, PapermillExecutionError):
        found = re.search(r"Cell In\[\d+\], line (\d+)", ANSI_ESCAPE.sub("", "\n".join(error.traceback)))
        lines = error.source.splitlines() or [""]
        number = min(int(found[1]), len(lines)) if found else 1  # IPython names the cell's line that raised
        return f"In [{error.exec_count}], line {number} `{lines[number - 1].strip()}`: {error.ename}: {error.evalue}"
    return f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0]}"


#: A lesson's optional depth: a markdown cell opening with this heading starts a section a learner may skip; it
#: ends at the next level-1 or level-2 heading that is not one (``## Check``, ``## Exercises``, the next topic).
GOING_DEEPER = re.compile(r"^##\s+Going deeper\b")
SECTION_START = re.compile(r"^#{1,2}\s")
#: The tag of the code cell where a lesson's shortest complete version of its technique runs.
FIRST_VERSION_TAG = "first-version"


def going_deeper_cells(cells: list) -> list[bool]:
    """For each cell of a notebook, True when it belongs to a "Going deeper" section."""
    flags, inside = [], False
    for cell in cells:
        text = "".join(cell["source"]).lstrip()
        if cell["cell_type"] == "markdown" and SECTION_START.match(text):
            inside = bool(GOING_DEEPER.match(text))
        flags.append(inside)
    return flags


def core_only(notebook: dict) -> dict:
    """A copy of ``notebook`` (nbformat JSON) without its "Going deeper" sections: the core path."""
    kept = [c for c, deeper in zip(notebook["cells"], going_deeper_cells(notebook["cells"]), strict=True)
            if not deeper]
    return {**notebook, "cells": kept}


def prose_words(cell: dict) -> int:
    """Words of prose in a markdown cell: fenced code and HTML tags left out."""
    if cell["cell_type"] != "markdown":
        return 0
    text = re.sub(r"```.*?```", " ", "".join(cell["source"]), flags=re.S)
    return len(re.sub(r"<[^>]+>", " ", text).split())


def lesson_words(path: str | Path) -> dict:
    """How a lesson reads: prose words on the core path and in "Going deeper" sections, and the words and cells a
    learner meets before the first complete version of the technique (the cell tagged ``first-version``)."""
    cells = json.loads(Path(path).read_text(encoding="utf-8"))["cells"]
    deeper = going_deeper_cells(cells)
    first = next((i for i, c in enumerate(cells) if FIRST_VERSION_TAG in c["metadata"].get("tags", [])), None)
    before = cells[:first] if first is not None else cells
    return {
        "core_words": sum(prose_words(c) for c, d in zip(cells, deeper, strict=True) if not d),
        "deeper_words": sum(prose_words(c) for c, d in zip(cells, deeper, strict=True) if d),
        "first_version_cell": first,
        "words_before_first_version": sum(prose_words(c) for c in before),
        "cells_before_first_version": len(before),
        "deeper_sections": sum(1 for c in cells if c["cell_type"] == "markdown"
                               and GOING_DEEPER.match("".join(c["source"]).lstrip())),
    }


def words_table(notebooks: list[Path]) -> str:
    """``python -m tools.lessons words``: each lesson's prose on the core path and in "Going deeper"."""
    lines = [f"{'lesson':<44} {'core':>6} {'deeper':>7} {'before first version (words, cells)':>37}"]
    totals = [0, 0]
    for path in notebooks:
        w = lesson_words(path)
        totals = [totals[0] + w["core_words"], totals[1] + w["deeper_words"]]
        first = (f"{w['words_before_first_version']:>6}, {w['cells_before_first_version']:>3}"
                 if w["first_version_cell"] is not None else "no cell tagged first-version")
        lines.append(f"{path.name:<44} {w['core_words']:>6} {w['deeper_words']:>7} {first:>37}")
    lines.append(f"{'all lessons':<44} {totals[0]:>6} {totals[1]:>7}")
    return "\n".join(lines)


def run_lessons(
    parameters: dict, output_dir: str | Path | None = None, notebooks_dir: str | Path = NOTEBOOKS_DIR,
    lessons: list[str] | None = None, prepare_only: bool = False, log_output: bool = False, keep_going: bool = False,
    core: bool = False,
) -> list[Path]:
    """Execute (or, with ``prepare_only``, only parameterise) the lessons in order into ``output_dir``.

    ``DATA_DIR`` (and ``COURSE_DIR``, ``RESULTS_DIR`` when set) are made absolute first, so every notebook shares
    them whatever its working directory.
    Returns the paths of the written notebooks. Raises papermill's error (naming the failing cell) if
    a lesson fails; with ``keep_going`` prints that lesson's own error and writes the full traceback to
    ``output_dir/NN_name.log`` instead, skips the later lessons that need it (``lesson_needs``), runs the
    rest, and then raises :class:`LessonsFailed`. ``core`` runs each lesson without its "Going deeper" sections
    (:func:`core_only`), as a learner who skips them would.
    """
    import papermill as pm

    parameters = dict(parameters)
    parameters["DATA_DIR"] = str(resolve_data_dir(parameters.get("DATA_DIR", "")))
    for name in ("RESULTS_DIR", "COURSE_DIR"):  # a relative path would be read from notebooks/, the kernels' folder
        if parameters.get(name):
            parameters[name] = str(Path(parameters[name]).expanduser().resolve())
    output_dir = Path(output_dir) if output_dir else Path(parameters["DATA_DIR"]) / "executed_notebooks"
    output_dir.mkdir(parents=True, exist_ok=True)
    needs = lesson_needs(lesson_notebooks(notebooks_dir)) if keep_going else {}
    written, failed, skipped = [], {}, {}
    scratch = tempfile.TemporaryDirectory(prefix="core-lessons-")  # removed when run_lessons returns
    for notebook in lesson_notebooks(notebooks_dir, lessons):
        out, log = output_dir / notebook.name, output_dir / f"{notebook.stem}.log"
        log.unlink(missing_ok=True)
        failed_needs = sorted(n for n in needs.get(notebook.name[:2], ()) if n in {f[:2] for f in failed})
        if failed_needs:
            skipped[notebook.name] = f"needs lesson {', '.join(failed_needs)}, which failed"
            print(f"Skipping {notebook.name}: {skipped[notebook.name]}", flush=True)
            out.unlink(missing_ok=True)  # an earlier run's copy would pass for this run's
            continue
        print(f"{'Preparing' if prepare_only else 'Running'} {notebook.name} -> {out}", end="", flush=True)
        start = time.perf_counter()
        try:
            source = notebook
            if core:  # the lesson as a learner who skips every "Going deeper" section runs it
                source = Path(scratch.name) / notebook.name  # beside no output: nbval collects output_dir
                source.write_text(json.dumps(core_only(json.loads(notebook.read_text(encoding="utf-8")))),
                                  encoding="utf-8")
            declared = pm.inspect_notebook(str(source))  # pass each lesson only the knobs it has
            pm.execute_notebook(
                str(source), str(out), parameters={k: v for k, v in parameters.items() if k in declared},
                cwd=str(notebook.parent), kernel_name="python3", prepare_only=prepare_only,
                progress_bar=False, log_output=log_output,
            )
        except Exception as error:
            if not keep_going:
                raise
            log.write_text(f"{notebook} failed:\n\n{traceback.format_exc()}", encoding="utf-8")
            failed[notebook.name] = f"{describe_failure(error)} (full log: {log})"
            print(f"  FAILED\n  {describe_failure(error)}\n  Full log: {log}"
                  + (f"; the executed notebook: {out}" if out.is_file() else ""), flush=True)
            continue
        print("" if prepare_only else f"  ({time.perf_counter() - start:.0f} s)", flush=True)
        written.append(out)
    if failed:
        raise LessonsFailed(written, failed, skipped)
    return written


def prepare_for_nbval(
    output_dir: str | Path, parameters: dict | Callable[[str], dict], notebooks_dir: str | Path = NOTEBOOKS_DIR,
    core: bool = False,
) -> list[Path]:
    """Copies of every lesson with ``parameters`` injected (a dict, or a function of the lesson's number that
    returns that lesson's), each with its OWN empty ``DATA_DIR``.

    nbval then runs each one as a learner opening that lesson first in a fresh runtime would; with ``core``,
    as one who also skips every "Going deeper" section (:func:`core_only`).
    """
    output_dir = Path(output_dir)
    written = []
    for notebook in lesson_notebooks(notebooks_dir):
        data_dir = output_dir / f"data-{notebook.name[:2]}"
        if data_dir.exists():
            shutil.rmtree(data_dir)
        lesson = parameters(notebook.name[:2]) if callable(parameters) else parameters
        written += run_lessons({**lesson, "DATA_DIR": str(data_dir)}, output_dir, notebooks_dir,
                               lessons=[notebook.name[:2]], prepare_only=True, core=core)
    return written


#: The tag of a lesson's one core cell whose printed output is the lesson's result (its check): what ``make lessons``
#: ends with, under the lesson's title.
HEADLINE_TAG = "headline"


def headline_text(notebook: dict) -> str | None:
    """What the cell tagged ``headline`` of an executed ``notebook`` printed (its standard output), or ``None`` when
    no cell is tagged."""
    for cell in notebook["cells"]:
        if HEADLINE_TAG in cell.get("metadata", {}).get("tags", []):
            return "".join("".join(out.get("text", "")) for out in cell.get("outputs", [])
                           if out.get("output_type") == "stream" and out.get("name") == "stdout")
    return None


def headline(executed: list[Path], data_dir: str | Path) -> str:
    """The lines ``make lessons`` ends with: for each executed lesson, its title (from its first cell) and what its
    cell tagged ``headline`` printed."""
    lines = [f"Lesson outputs:      {data_dir}"]
    for path in executed:
        notebook = json.loads(Path(path).read_text(encoding="utf-8"))
        first = "".join(notebook["cells"][0]["source"]) if notebook["cells"] else ""
        title = TITLE.search(first)  # ``# NN · Title``
        lines.append(f"{title[1]} · {title[2]}" if title else Path(path).stem)
        text = headline_text(notebook)
        if text is None:
            text = f"(no cell tagged {HEADLINE_TAG})"
        lines += [f"    {line}" for line in text.strip("\n").splitlines()]
    return "\n".join(lines)


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


def knobs_from_make(overrides: str, environment: Mapping[str, str]) -> dict[str, object]:
    """The knobs set on make's command line: ``overrides`` is make's ``MAKEOVERRIDES`` (``EPOCHS=3 DATA_DIR=a\\ b``),
    whose names are read from it and values from ``environment`` (where make puts them, exactly as typed).

    A name that is no knob but close to one (``EPOCH=3``) is a ValueError naming the knob it resembles; make's own
    variables (``TEST_WORKERS``, ``BENCH_ARGS``...) are left alone.
    """
    names = re.findall(r"(?:^|(?<=\s))([A-Za-z_][A-Za-z0-9_]*)=", overrides)
    knobs, unknown = {}, []
    for name in names:
        if name in KNOBS and name in environment:
            knobs[name] = parse_value(environment[name])
        elif name not in KNOBS and (close := difflib.get_close_matches(name, KNOBS, n=1, cutoff=0.8)):
            unknown.append(f"{name} is not a knob of the lessons; did you mean {close[0]}?")
    if unknown:
        raise ValueError("\n".join(unknown) + " (docs/parameters.md lists every knob)")
    return knobs


def main(argv: list[str] | None = None) -> int:
    """The command line (``run`` or ``prepare``); returns the exit status, 1 when a lesson failed."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("run", "prepare", "words"))
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    parser.add_argument("--output-dir", help="where the notebooks go (default: DATA_DIR/executed_notebooks)")
    parser.add_argument("--lessons", nargs="*", help="lesson numbers to run, e.g. 01 02 (default: all)")
    parser.add_argument("--log-output", action="store_true", help="stream the notebooks' output")
    parser.add_argument("--notebooks-dir", default=NOTEBOOKS_DIR, help="where the lessons are (default: notebooks/)")
    parser.add_argument("--core", action="store_true", help='run the lessons without their "Going deeper" sections')
    parser.add_argument("--quick", action="store_true", help="start from the quick settings (KNOBS' quick values)")
    parser.add_argument("--from-make", metavar="MAKEOVERRIDES", default=None,
                        help="make's command-line variables: each one that is a knob is passed, its value read from "
                             "the environment (make lessons)")
    args = parser.parse_args(argv)
    if args.command == "words":
        print(words_table(lesson_notebooks(args.notebooks_dir, args.lessons)))
        return 0
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # the kernels inherit it: no C++ log noise headless
    parameters = quick_parameters() if args.quick else {}
    if args.from_make is not None:
        try:
            parameters.update(knobs_from_make(args.from_make, os.environ))
        except ValueError as error:
            print(error, file=sys.stderr)
            return 2
    parameters.update({name: parse_value(value) for name, value in args.parameter})
    failure = None
    try:
        with filtered_stderr():
            written = run_lessons(parameters, args.output_dir, args.notebooks_dir, lessons=args.lessons,
                                  prepare_only=args.command == "prepare", log_output=args.log_output,
                                  keep_going=args.command == "run", core=args.core)
    except LessonsFailed as error:
        written, failure = error.written, error
    if args.command == "run":
        print(f"\nExecuted notebooks:  {written[0].parent if written else '-'}")
        print(headline(written, resolve_data_dir(parameters.get("DATA_DIR", ""))))
    if failure:
        print(f"\n{failure}")
    return 1 if failure else 0


if __name__ == "__main__":
    raise SystemExit(main())
