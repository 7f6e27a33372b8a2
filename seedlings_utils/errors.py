"""The course's own exceptions: each message says what happened, where, and what to do next."""


class DataSourceError(RuntimeError):
    """The raw data could not be obtained (missing credentials, a failed download, a bad archive...)."""
