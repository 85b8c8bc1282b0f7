"""The one registry shape: name -> factory, create(), choices in errors, lazy "module:attr" entries."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest

from reglab.errors import ConfigError
from reglab.registry import Registry


def test_create_looks_up_and_calls_the_factory() -> None:
    reg: Registry[Callable[..., int]] = Registry("widget")

    @reg.register("double")
    def double(x: int, *, times: int = 2) -> int:
        return x * times

    reg.add("neg", lambda x: -x)
    assert reg.create("double", 4) == 8
    assert reg.create("double", 4, times=3) == 12
    assert reg.create("neg", 4) == -4
    assert reg.names() == ["double", "neg"] == list(reg)
    assert "neg" in reg and "pos" not in reg and len(reg) == 2
    assert dict(reg.items()) == {"double": double, "neg": reg.get("neg")}


def test_unknown_and_duplicate_names() -> None:
    reg: Registry[Callable[[], int]] = Registry("widget")
    reg.add("a", lambda: 1)
    reg.add("b", lambda: 2)
    with pytest.raises(ConfigError, match=r"^unknown widget 'c'; valid choices: a, b$"):
        reg.create("c")
    assert reg.unknown("c", "csv:PATH") == "unknown widget 'c'; valid choices: a, b, csv:PATH"
    with pytest.raises(ValueError, match="already registered"):
        reg.add("a", lambda: 3)
    reg.remove("a")
    assert reg.names() == ["b"]
    with pytest.raises(ConfigError):
        reg.remove("a")


def test_lazy_entries_import_their_module_on_first_use_only() -> None:
    code = (
        "import sys\n"
        "from reglab.registry import Registry\n"
        "r = Registry('thing'); r.add_lazy('json', 'json.decoder:JSONDecoder'); r.add_lazy('ws', 'textwrap:dedent')\n"
        "assert 'textwrap' not in sys.modules and r.names() == ['json', 'ws']\n"
        "print(r.create('ws', '  x'), 'textwrap' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["x", "True"]


def test_a_lazy_reference_must_name_module_and_attribute() -> None:
    reg: Registry[Callable[[], int]] = Registry("widget")
    for bad in ("nocolon", "a:b:c", ":attr", "mod:"):
        with pytest.raises(ValueError, match="module:attr"):
            reg.add_lazy("x", bad)
    reg.add_lazy("missing", "reglab.errors:NoSuchThing")
    with pytest.raises(AttributeError):
        reg.get("missing")
