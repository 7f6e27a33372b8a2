"""One writer at a time per output: real processes racing for DATA_DIR/raw, a holder killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from seedlings_utils.locking import OutputBusy, output_lock
from seedlings_utils.sources import count_raw_images, read_source_record

FETCH = """
import sys
from seedlings_utils.sources import fetch_raw_data
raw = fetch_raw_data(sys.argv[1], "synthetic", synthetic_per_class=int(sys.argv[2]), seed=3, progress=False)
print("fetched", raw.train_total, flush=True)
"""

HOLD = """
import sys, time
from seedlings_utils.locking import output_lock
with output_lock(sys.argv[1], "a test holding the lock"):
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def python(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def wait_for_line(process: subprocess.Popen, text: str) -> None:
    line = process.stdout.readline()
    assert text in line, f"expected {text!r}, got {line!r}"


@pytest.mark.slow
def test_two_runs_of_lesson_01_at_once_both_finish_with_one_intact_data_set(tmp_path):
    data = tmp_path / "data"
    runs = [python(FETCH, data, 30) for _ in range(2)]  # long enough to overlap: each takes about a second
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert all("fetched 360" in out for out in outputs), outputs
    assert sum(count_raw_images(data / "raw")[0].values()) == 360
    assert read_source_record(data / "raw")["per_class"] == 30 and not (data / "raw.partial").exists()


@pytest.mark.slow
def test_a_second_run_waits_for_the_first_and_names_it(tmp_path):
    data = tmp_path / "data"
    holder = python(HOLD, data / "raw", 3)
    wait_for_line(holder, "holding")
    second = python(FETCH, data, 2)
    out = second.communicate(timeout=120)[0]
    holder.communicate(timeout=30)
    assert second.returncode == 0, out
    assert f"is being written by process {holder.pid}" in out and "a test holding the lock" in out
    assert "fetched 24" in out


def test_a_lock_held_too_long_stops_with_the_holders_name(tmp_path):
    holder = python(HOLD, tmp_path / "raw", 30)
    try:
        wait_for_line(holder, "holding")
        with pytest.raises(OutputBusy, match=f"still being written by process {holder.pid} .*a test holding"):
            with output_lock(tmp_path / "raw", "the second run", timeout=0.3, poll=0.1):
                pass
    finally:
        holder.kill()
        holder.communicate()


def test_the_lock_of_a_killed_holder_is_taken_over(tmp_path, capsys):
    holder = python(HOLD, tmp_path / "raw", 60)
    wait_for_line(holder, "holding")
    os.kill(holder.pid, signal.SIGKILL)
    holder.communicate()
    with output_lock(tmp_path / "raw", "the next run", timeout=2):  # waiting for the dead would raise OutputBusy
        pass
    assert f"Taking over {tmp_path / 'raw.lock'}: process {holder.pid}" in capsys.readouterr().out


def test_a_process_may_take_its_own_lock_again(tmp_path: Path):
    with output_lock(tmp_path / "raw", "outer"), output_lock(tmp_path / "raw", "inner", timeout=0.2):
        pass
    with output_lock(tmp_path / "raw", "after", timeout=0.2):  # released once the outer block ends
        pass
