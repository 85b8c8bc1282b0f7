"""Name -> factory registries, one per family (datasets, models, regularizers, optimizers, ...).

Every registry has the same shape: a name maps to a factory callable, ``create(name, ...)`` looks
it up and calls it, and an unknown name raises a :class:`ConfigError` that lists the valid choices.
An entry may be registered as a lazy reference ``"module:attr"`` (:meth:`Registry.add_lazy`),
imported on first use, so that registering a factory does not import torch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from reglab.errors import ConfigError

F = TypeVar("F")
R = TypeVar("R")


class _Lazy:
    """A ``"module:attr"`` reference, resolved on first lookup."""

    __slots__ = ("ref",)

    def __init__(self, ref: str) -> None:
        if ref.count(":") != 1 or not all(ref.split(":")):
            raise ValueError(f"a lazy reference is 'module:attr', got {ref!r}")
        self.ref = ref

    def resolve(self) -> Any:
        import importlib

        module, attr = self.ref.split(":")
        return getattr(importlib.import_module(module), attr)


class Registry(Generic[F]):
    """An ordered mapping from names to factories; registration order is preserved."""

    def __init__(self, family: str) -> None:
        self.family = family
        self._items: dict[str, F | _Lazy] = {}

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator form of :meth:`add`."""

        def deco(obj: F) -> F:
            self.add(name, obj)
            return obj

        return deco

    def add(self, name: str, obj: F) -> None:
        self._put(name, obj)

    def add_lazy(self, name: str, ref: str) -> None:
        """Register ``"module:attr"``; the module is imported when the entry is first looked up."""
        self._put(name, _Lazy(ref))

    def _put(self, name: str, obj: F | _Lazy) -> None:
        if name in self._items:
            raise ValueError(f"{self.family} {name!r} is already registered")
        self._items[name] = obj

    def remove(self, name: str) -> None:
        """Unregister ``name`` (tests that register temporary entries clean up with this)."""
        self.get(name)  # the usual error for an unknown name
        del self._items[name]

    def unknown(self, name: object, *extra: str) -> str:
        """The message for an unknown ``name``: ``unknown <family> 'x'; valid choices: a, b`` (or,
        for a long list, ``did you mean ...?``)."""
        from reglab.errors import suggest

        return f"unknown {self.family} {name!r}; {suggest(name, [*self._items, *extra])}"

    def check(self, name: str) -> str:
        """``name`` when registered, else ValueError (for pydantic field validators)."""
        if name not in self._items:
            raise ValueError(self.unknown(name))
        return name

    def schema_enum(self) -> Callable[[dict[str, Any]], None]:
        """A pydantic ``json_schema_extra`` listing the names as the field's ``enum``, read when the
        schema is generated (so entries registered after import appear too)."""

        def extra(schema: dict[str, Any]) -> None:
            schema["enum"] = self.names()

        return extra

    def get(self, name: str) -> F:
        try:
            obj = self._items[name]
        except KeyError:
            raise ConfigError(self.unknown(name)) from None
        if isinstance(obj, _Lazy):
            obj = self._items[name] = obj.resolve()
        return obj

    def create(self: Registry[Callable[..., R]], name: str, /, *args: Any, **kwargs: Any) -> R:
        """Look up the factory ``name`` and call it with the given arguments."""
        return self.get(name)(*args, **kwargs)

    def names(self) -> list[str]:
        return list(self._items)

    def items(self) -> Iterator[tuple[str, F]]:
        """(name, factory) pairs in registration order (lazy entries are resolved)."""
        return iter([(name, self.get(name)) for name in self._items])

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)
