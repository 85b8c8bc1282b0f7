"""User-facing errors. The CLI prints them as one line and exits 2, never with a traceback."""

from __future__ import annotations


class ReglabError(Exception):
    """An error caused by the user's input or environment (bad value, missing file, ...)."""


class ConfigError(ReglabError):
    """An invalid configuration value; the message names the field and what is allowed."""


class DataError(ReglabError):
    """A missing, corrupt or unverifiable data file; the message names the file and what to do."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM reached the driver (``reglab.cli`` raises it from its signal handler).

    A BaseException, so that no ``except Exception`` swallows it, and not a KeyboardInterrupt, which
    Click turns into "Aborted!". ``stored`` is filled on the way out by the study that was running:
    what is kept, e.g. "3 of 12 runs stored in out/"."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.stored: str | None = None
