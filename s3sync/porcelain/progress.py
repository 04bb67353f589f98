"""How porcelain reports progress and asks questions without printing itself.

The CLI passes an implementation drawing tqdm bars and reading answers
from the terminal; the Python API and tests pass ``Quiet`` or their own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from libsync.diff import Action


class Progress(Protocol):
    def start(self, what: str, total: int, unit: str = "B") -> Callable[[int], None]:
        """Begin a phase; the returned callable is told each increment."""

    def stop(self) -> None:
        """End the current phase."""


class Quiet:
    def start(self, what, total, unit="B"):
        return lambda n: None

    def stop(self):
        pass


Confirm = Callable[[str, tuple[Action, ...]], bool]
"""Asked a question about some actions; True to go ahead."""

Choose = Callable[[Action], str]
"""Asked how to resolve one conflict: local, remote, keep-both or skip."""
