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


MAX_LISTED = 16  # a list of valid names up to this long is shown in full (13 datasets and schemes); not longer


def suggest(name: object, choices: list[str] | tuple[str, ...], more: str = "") -> str:
    """The hint after "unknown ... 'x'": every valid choice when there are few (<= :data:`MAX_LISTED`),
    else the close ones (``difflib``, as git and argparse suggest) and where to find the rest (``more``,
    e.g. "`reglab schema` lists them") - a typo should not dump fifty names."""
    import difflib

    close = difflib.get_close_matches(str(name), list(choices), n=3, cutoff=0.7)
    mean = f"did you mean {' or '.join(close)}?" if close else ""
    if len(choices) <= MAX_LISTED:
        listed = f"valid choices: {', '.join(choices)}"
        return f"{mean} {listed}" if mean else listed
    rest = more or f"{len(choices)} valid choices"
    return f"{mean} ({rest})" if mean else rest


def from_user_code(err: BaseException) -> bool:
    """Whether ``err``, caught around the user's code (a model, a loss, a data loader), is that
    code's own failure - to be reported as the run's failure - rather than a request to stop the
    program: a ``SystemExit`` or ``KeyboardInterrupt`` the code raised itself fails only its run.

    Stops are reglab's :class:`Interrupted` (the CLI's signal handler) and a ``KeyboardInterrupt``
    that a real Ctrl-C can have raised: Python raises it only in the main thread and only while
    SIGINT has its default handler (worker processes ignore SIGINT; runs of the in-process executor
    train in another thread)."""
    import signal
    import threading

    if isinstance(err, Interrupted):
        return False
    if isinstance(err, KeyboardInterrupt):
        main = threading.current_thread() is threading.main_thread()
        return not (main and signal.getsignal(signal.SIGINT) is signal.default_int_handler)
    return True
