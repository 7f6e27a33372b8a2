"""Exercises that check themselves, one module per lesson (``lesson05.py`` ...).

In a notebook::

    from seedlings_utils.exercises import lesson05 as ex

    class KeepLastBatch(...):      # the learner's code
        ...
    ex.q1.check(KeepLastBatch)     # Correct / Incorrect: <what is wrong> / Not attempted yet
    ex.q1.hint()
    ex.q1.solution()

A check runs the learner's code on a tiny data set of its own, so it never depends on what else the
notebook did, and says precisely what is wrong. An untouched exercise (a ``None`` answer, or code that
still raises ``NotImplementedError``) prints "Not attempted yet" and never stops "Run all".
Tests call :meth:`Exercise.evaluate` with each reference solution and with typical wrong answers.
"""

from __future__ import annotations

import textwrap
import traceback
from collections.abc import Callable
from dataclasses import dataclass

CORRECT, INCORRECT, NOT_ATTEMPTED = "Correct", "Incorrect", "Not attempted yet"


class Incorrect(Exception):  # noqa: N818 (what a learner reads: "Incorrect: ...")
    """Raised by a checker with the message the learner sees."""


@dataclass
class Outcome:
    """What a check found: ``status`` (Correct, Incorrect, Not attempted yet) and the message."""

    status: str
    message: str = ""

    def __bool__(self) -> bool:
        return self.status == CORRECT

    def __str__(self) -> str:
        return f"{self.status}: {self.message}" if self.message else self.status


def _show(text: str, markdown: str | None = None) -> None:
    """Print ``text``, or render ``markdown`` when IPython is there to render it."""
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display

        if markdown is not None and get_ipython() is not None:
            display(Markdown(markdown))
            return
    except ImportError:
        pass
    print(text)


@dataclass
class Exercise:
    """One exercise: what to do, a checker, a hint and a reference solution (Python source).

    ``checker(answer)`` returns a short success note (or ``None``) when the answer is right and raises
    :class:`Incorrect` with the reason otherwise. ``answer_name`` is the name the solution defines and
    the learner's cell is expected to define.
    """

    name: str
    task: str
    checker: Callable[..., str | None]
    hint_text: str
    solution_code: str
    answer_name: str

    def evaluate(self, answer) -> Outcome:
        """Run the checker on ``answer`` without printing: the :class:`Outcome`."""
        if answer is None:
            return Outcome(NOT_ATTEMPTED, f"write your answer as `{self.answer_name}`, then run the check again. "
                                          f"`{self.name}.hint()` helps, `{self.name}.solution()` shows one answer.")
        try:
            note = self.checker(answer)
        except Incorrect as err:
            return Outcome(INCORRECT, str(err))
        except NotImplementedError:
            return Outcome(NOT_ATTEMPTED, f"`{self.answer_name}` still raises NotImplementedError: replace that "
                                          "line with your code.")
        except Exception as err:  # the learner's code crashed: say where, briefly
            where = traceback.extract_tb(err.__traceback__)[-1]
            return Outcome(INCORRECT, f"your code raised {type(err).__name__}: {err} "
                                      f"(line {where.lineno}: `{(where.line or '').strip()}`)")
        return Outcome(CORRECT, note or "")

    def check(self, answer=None) -> None:
        """Check the learner's answer and say what is wrong, if anything (never raises)."""
        outcome = self.evaluate(answer)
        icon = {CORRECT: "✅", INCORRECT: "❌", NOT_ATTEMPTED: "✏️"}[outcome.status]
        _show(f"{icon} {outcome}", f"{icon} **{outcome.status}**" + (f": {outcome.message}" if outcome.message else ""))

    def hint(self) -> None:
        _show(f"Hint: {self.hint_text}", f"💡 **Hint:** {self.hint_text}")

    def solution(self) -> None:
        code = textwrap.dedent(self.solution_code).strip()
        _show(f"Solution:\n{code}", f"**Solution:**\n```python\n{code}\n```")

    def solution_namespace(self) -> dict:
        """Run the reference solution in a fresh namespace and return it (the tests use this)."""
        namespace: dict = {}
        exec(compile(textwrap.dedent(self.solution_code), f"<solution {self.name}>", "exec"), namespace)
        return namespace

    def __repr__(self) -> str:
        return f"{self.name}: {self.task}"


def lesson_exercises(module) -> list[Exercise]:
    """The exercises a lesson module defines (``q1``, ``q2`` ...), in order."""
    return [getattr(module, name) for name in sorted(dir(module)) if isinstance(getattr(module, name), Exercise)]


def tiny_image_folder(folder, count: int = 10, size: tuple[int, int] = (24, 18)) -> list[str]:
    """``count`` small PNGs in ``folder`` whose red channel encodes their number (``pixel_value(i)``).

    Checkers use them as a data set of their own: which image landed in which batch can be read back
    from the pixels with :func:`image_number`.
    """
    from pathlib import Path

    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(count):
        name = f"img_{i:04d}.png"
        Image.new("RGB", size, (pixel_value(i), 128, 64)).save(folder / name)
        names.append(name)
    return names


def pixel_value(number: int) -> int:
    """The red value (0-255) that :func:`tiny_image_folder` gives image ``number`` (up to 50 images)."""
    return 5 * number + 3


def image_number(image) -> int:
    """Inverse of :func:`pixel_value` for an image as uint8 (0-255) or float in [0, 1]."""
    import numpy as np

    red = float(np.asarray(image, dtype=np.float64)[..., 0].mean())
    red = red * 255 if red <= 1.0 else red
    return int(round((red - 3) / 5))
