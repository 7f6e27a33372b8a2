"""Pretrained weights for lesson 09's backbone: where Keras fetches them, and one clear message when it cannot.

:func:`weights_help` turns a failed download of the ImageNet weights (offline) or a wrong weights file into one
message that says what to do, instead of a long traceback from deep inside Keras.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path

#: The file Keras downloads for ``MobileNetV3Small(include_top=False, weights="imagenet")``, and where from
IMAGENET_WEIGHTS_FILE = "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5"
IMAGENET_WEIGHTS_URL = f"https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v3/{IMAGENET_WEIGHTS_FILE}"


class WeightsUnavailableError(RuntimeError):
    """The backbone's weights could not be had; the message says what to do instead."""

    def _render_traceback_(self) -> list[str]:
        # IPython and Jupyter show this instead of a traceback: one message, not 40 lines from inside Keras
        return [f"{type(self).__name__}: {self}"]


def _raised_while_downloading(err: BaseException) -> bool:
    """True when ``err`` came out of Keras' download (``keras.utils.get_file``), e.g. no network."""
    tb = err.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name in ("get_file", "urlretrieve"):
            return True
        tb = tb.tb_next
    return False


@contextlib.contextmanager
def weights_help(weights) -> Iterator[None]:
    """Around building a ``keras.applications`` backbone: its weight failures become one clear message.

    ``weights="imagenet"`` without a network (or with a damaged download), a path that is not a file, or a
    file that holds another network's weights each raise :class:`WeightsUnavailableError` naming the fix:
    ``WEIGHTS = None`` (random weights, offline) or the path of a weights file already on disk.
    """
    fixes = ("Set WEIGHTS = None to train from random weights (works offline, but learns nothing from ImageNet), or "
             f"download {IMAGENET_WEIGHTS_FILE} on a machine with a network ({IMAGENET_WEIGHTS_URL}; after one "
             "successful run Keras keeps it in ~/.keras/models/), copy it here and set WEIGHTS to its path")
    if weights is not None and weights != "imagenet":
        path = Path(str(weights)).expanduser()
        if not path.is_file():
            raise WeightsUnavailableError(f"WEIGHTS = {str(weights)!r} is not a file. {fixes}.")
    # Keras warns about every layer of a file it cannot match before it fails: hold those warnings back, and
    # pass them on only if it does not fail (then they matter: some layers kept their random weights)
    with warnings.catch_warnings(record=True) as held:
        warnings.simplefilter("always")
        try:
            yield
        except Exception as err:
            explained = _explain(err, weights, fixes)
            if explained is None:
                raise
            raise explained from None  # one message; Keras' traceback says nothing more that helps
    for warning in held:
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)


def _explain(err: Exception, weights, fixes: str) -> WeightsUnavailableError | None:
    """The one message for a failure to get the weights, or ``None`` when ``err`` is about something else."""
    reason = str(err).splitlines()[0] if str(err) else type(err).__name__
    if weights == "imagenet" and _raised_while_downloading(err):
        return WeightsUnavailableError(f"Could not download the ImageNet weights ({reason[-160:]}). No network? "
                                       f"{fixes}.")
    if weights is not None and weights != "imagenet":
        return WeightsUnavailableError(f"WEIGHTS = {str(weights)!r} does not hold weights this backbone can load "
                                       f"({type(err).__name__}: {reason[:200]}). It must be a file saved from the "
                                       f"same network (MobileNetV3Small without its top): {IMAGENET_WEIGHTS_FILE}, "
                                       "or a .weights.h5 file written by backbone.save_weights(...). Or set "
                                       "WEIGHTS = None.")
    return None
