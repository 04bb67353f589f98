"""The cached remote manifest as a mapping read from the state database on demand.

A no-op sync never needs every record of the remote: the plan compares
the base and the remote in SQL and decodes only the paths that differ
(``ops.plan``), and a lookup reads one row. Decoding 100,000 records costs
seconds and most of a status's memory, so it happens only when a caller
really iterates them. Before the table is next written the state makes
each view read it all (``freeze``), so a view stays the snapshot it was.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, Mapping, ValuesView
from typing import TYPE_CHECKING

from .manifest import Entry, Record

if TYPE_CHECKING:
    from .state import State


class StoredRecords(Mapping[str, Record]):
    """The rows of the state's ``remote`` table, decoded when asked for."""

    def __init__(self, state: State):
        self._state = state
        self._all: dict[str, Record] | None = None

    @property
    def unread(self) -> bool:
        """Nothing decoded yet: the table still holds exactly this view."""
        return self._all is None

    def owned_by(self, state: State) -> bool:
        return self._state is state

    def freeze(self) -> dict[str, Record]:
        if self._all is None:
            self._all = self._state._records("remote")
        return self._all

    def __getitem__(self, path: str) -> Record:
        if self._all is not None:
            return self._all[path]
        rec = self._state._record("remote", path)
        if rec is None:
            raise KeyError(path)
        return rec

    def __iter__(self) -> Iterator[str]:
        return iter(self.freeze())

    def __len__(self) -> int:
        if self._all is not None:
            return len(self._all)
        return self._state._count("remote")

    def live(self) -> Mapping[str, Entry]:
        """The records that are not tombstones (``Manifest.entries``)."""
        if self._all is not None:
            return {p: r for p, r in self._all.items() if not r.deleted}
        return _Live(self)

    def __repr__(self) -> str:
        return f"StoredRecords({'unread' if self._all is None else len(self._all)})"


class _Live(Mapping[str, Entry]):
    """Live paths of an unread view: iterating lists paths, not records."""

    def __init__(self, view: StoredRecords):
        self._view = view

    def __getitem__(self, path: str) -> Entry:
        rec = self._view[path]
        if rec.deleted:
            raise KeyError(path)
        return rec

    def __iter__(self) -> Iterator[str]:
        if not self._view.unread:
            return iter(self._view.live())
        return iter(self._view._state._live_paths())

    def __len__(self) -> int:
        return sum(1 for _ in self)

    # Every record is wanted: one bulk decode beats a query per path.
    def items(self) -> ItemsView[str, Entry]:
        self._view.freeze()
        return self._view.live().items()

    def values(self) -> ValuesView[Entry]:
        self._view.freeze()
        return self._view.live().values()
