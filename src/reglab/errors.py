"""User-facing errors. The CLI prints them as one line and exits 2, never with a traceback."""

from __future__ import annotations


class ReglabError(Exception):
    """An error caused by the user's input or environment (bad value, missing file, ...)."""


class ConfigError(ReglabError):
    """An invalid configuration value; the message names the field and what is allowed."""


class DataError(ReglabError):
    """A missing, corrupt or unverifiable data file; the message names the file and what to do."""
