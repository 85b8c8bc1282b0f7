"""What a test does when a component it needs is missing: on a developer's machine it is skipped
with the reason; under ``CI=true`` (``.ci/run`` installs Chromium, PostgreSQL, Ray and MLflow) it
fails, so a component that did not install or start can never pass as a row of skips."""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str) -> NoReturn:
    """Skip with ``reason`` - or, under CI, fail with it."""
    if in_ci():
        pytest.fail(f"CI=true requires this component: {reason}", pytrace=False)
    pytest.skip(reason)


def need_module(name: str, extra: str) -> ModuleType:
    """``importorskip`` that fails under CI; ``extra`` names the optional extra that installs it."""
    try:
        return importlib.import_module(name)
    except ImportError as err:
        unavailable(f"{name} is not importable ({err}): pip install 'reglab[{extra}]'")
