"""The lines TensorFlow, JAX and Jupyter print to a terminal at start-up that say nothing to a learner.

The one home of that list: the lesson runner and the site hide these lines from the lessons' stderr, and the
training-process launcher hides them from the processes' logs as it prints them.
"""

from __future__ import annotations

import re

#: TensorFlow's and XLA's C++ start-up lines (glog's ``I0000 ...``, printed before TF_CPP_MIN_LOG_LEVEL is read),
#: the kernel's transport notice, nbformat's cell-id notice, and the kernel's shutdown message.
TERMINAL_NOISE = re.compile(
    r"^[EWI]\d{4} |absl::InitializeLog|All log messages before absl|cudart_stub\.cc|cuda_(dnn|fft|blas|executor)"
    r"|cuInit|Unable to register cu|computation_placer|oneDNN custom operations|Kernel is running over TCP"
    r"|MissingIDFieldWarning|_validate\(nbdict|KeyboardInterrupt caught in kernel"
    r"|This TensorFlow binary is optimized|rebuild TensorFlow with"
)


def is_noise(line: str) -> bool:
    """True for a start-up line of :data:`TERMINAL_NOISE`."""
    return bool(TERMINAL_NOISE.search(line))
