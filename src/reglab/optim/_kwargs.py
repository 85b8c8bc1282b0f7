"""Pass a factory only the settings it names."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any


def accepted(factory: Callable[..., Any], settings: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``settings`` that ``factory`` takes as keyword arguments. The engine offers
    every optimizer (schedule) setting of the run; each factory declares the ones it uses, so
    momentum means nothing to Adam and a registered factory need not accept settings it ignores."""
    params = inspect.signature(factory).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return dict(settings)
    names = {
        p.name for p in params if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    }
    return {k: v for k, v in settings.items() if k in names}
