"""seedlings_utils: the code behind the course's notebooks."""

__version__ = "0.1.0"
