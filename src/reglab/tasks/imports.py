"""``module.path:Name`` -> the object, with one-line errors (the current directory is importable,
as with ``python -m``)."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from reglab.errors import ConfigError


def load_object(path: str, where: str) -> Any:
    """Import ``module:attr`` (or ``module.attr``) or raise a :class:`ConfigError` naming ``where``."""
    if not isinstance(path, str) or not path.strip():
        raise ConfigError(f"{where}: expected 'module:Name', got {path!r}")
    mod, sep, attr = path.partition(":")
    if not sep:
        mod, _, attr = path.rpartition(".")
    if not mod or not attr:
        raise ConfigError(f"{where}: {path!r} must be 'module:Name' (e.g. my_pkg.losses:FocalLoss)")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(mod)
    except Exception as e:
        raise ConfigError(f"{where}: cannot import {mod!r} ({type(e).__name__}: {e}); is it on PYTHONPATH?") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"{where}: module {mod!r} has no {attr!r}") from None
