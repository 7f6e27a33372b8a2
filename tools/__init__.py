"""What a maintainer runs: the lesson runner, the site, the benchmark, notebook export and version checks.

Not installed with ``seedlings_utils`` (a learner's runtime never needs them); run from the repository root,
e.g. ``python -m tools.lessons run``. They import the learner's package; it never imports them.
"""
