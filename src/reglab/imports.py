"""Objects named by reference (``package.module:Name``, Lightning CLI's ``class_path``): the user's
model, loss or data loader. One import rule for all of them: the current directory is importable
(as with ``python -m``), and every failure is one line naming the setting and what to do."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from reglab.errors import ConfigError, ReglabError, from_user_code


def split_reference(ref: str) -> tuple[str, str]:
    """``"pkg.mod:Outer.Name"`` or ``"pkg.mod.Name"`` -> (module, attribute path)."""
    if ":" in ref:
        module, _, attr = ref.partition(":")
    else:
        module, _, attr = ref.rpartition(".")
    return module, attr


def import_object(
    ref: Any, where: str, example: str = "my_pkg.nets:Net", error: type[ReglabError] = ConfigError
) -> Any:
    """Import the object ``ref`` names, or raise ``error`` naming ``where`` (the setting)."""
    if not isinstance(ref, str) or not ref.strip():
        raise error(f"{where}: expected 'package.module:Name' (e.g. {example}), got {ref!r}")
    module_name, attr = split_reference(ref)
    if not module_name or not attr:
        raise error(f"{where}: {ref!r} is not 'package.module:Name' (e.g. {example})")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        missing = err.name or module_name
        if not (module_name == missing or module_name.startswith(missing + ".")):
            raise error(f"{where}: importing {module_name!r} failed: {err}") from None
        cwd = os.getcwd()
        if cwd in sys.path or "" in sys.path:
            raise error(
                f"{where}: cannot import {module_name!r} ({err}); run from the folder that holds it "
                "(the current directory is importable) or install it"
            ) from None
        sys.path.insert(0, cwd)  # as `python -m` does
        return import_object(ref, where, example, error)
    except BaseException as err:  # the user's module itself fails while importing (a sys.exit too)
        if not from_user_code(err):
            raise
        raise error(f"{where}: importing {module_name!r} failed: {type(err).__name__}: {err}") from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            names = sorted(n for n, v in vars(module).items() if not n.startswith("_") and callable(v))
            raise error(
                f"{where}: module {module_name!r} has no {attr!r}; its classes and functions: "
                f"{', '.join(names[:20]) or 'none'}"
            ) from None
    return obj
