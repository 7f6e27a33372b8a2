"""``python -m tools.check_env``: OK or FAIL for every package the course needs, and which Python runs it.

``make`` runs it after building the virtual environment (and ``make test-oldest`` in the oldest one).
"""

from __future__ import annotations

import platform
import sys

from seedlings_utils.platform_info import check_environment


def main() -> int:
    """Print one line per requirement; returns 1 when one is missing or too old."""
    rows = check_environment()
    for name, wanted, installed, ok in rows:
        print(f"{'OK  ' if ok else 'FAIL'} {name:<14} {installed:<12} (needs {wanted})")
    print(f"Python {platform.python_version()} at {sys.executable}")
    return 0 if all(ok for *_, ok in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
