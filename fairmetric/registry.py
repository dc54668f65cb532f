"""Small name → object registries: how fairness terms, reducers, samplers, batch hooks, datasets
and audit metrics plug in (the pattern of timm's and pytorch-metric-learning's registries).

A plug-in is registered where it is defined, with a decorator::

    TERMS = Registry("fairness term")

    @TERMS.register("spectral")
    class SpectralTerm(...): ...

and looked up by name (``TERMS.get("spectral")``), with an error that lists the valid names.
Registering a name twice is an error unless ``replace=True`` (tests and notebooks re-run cells).
Iteration follows registration order, so tables built from a registry are stable.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """An ordered mapping of names to plug-ins of one kind.

    Args:
        kind: what the entries are, for error messages (``"fairness term"``).
    """

    def __init__(self, kind: str) -> None:
        if not isinstance(kind, str) or not kind:
            raise ValueError(f"kind must be a non-empty string, got {kind!r}")
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None, *, replace: bool = False):
        """Register ``obj`` under ``name``; without ``obj``, return a decorator that does.

        Raises:
            ValueError: ``name`` is not a non-empty identifier-like string, or is taken and
                ``replace`` is False.
        """
        if not isinstance(name, str) or not name or not name.replace("_", "a").isalnum():
            raise ValueError(
                f"{self.kind} name must be a non-empty string of letters, digits and '_', "
                f"got {name!r}"
            )

        def add(entry: T) -> T:
            if name in self._entries and not replace and self._entries[name] is not entry:
                raise ValueError(
                    f"a {self.kind} named {name!r} is already registered "
                    f"({self._entries[name]!r}); choose another name or pass replace=True"
                )
            self._entries[name] = entry
            return entry

        if obj is None:
            return add
        return add(obj)

    def unregister(self, name: str) -> T:
        """Remove and return the entry ``name``."""
        self.get(name)
        return self._entries.pop(name)

    def get(self, name: str) -> T:
        """The entry ``name``; a ``ValueError`` naming the valid names when there is none."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            valid = ", ".join(self._entries) or "none registered"
            raise ValueError(f"unknown {self.kind} {name!r}; valid names: {valid}") from None

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries) or 'empty'})"
