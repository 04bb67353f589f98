"""status: what would be pushed, pulled, deleted on either side, and conflicts."""

from __future__ import annotations

from dataclasses import dataclass

from libsync import diff, ops
from libsync.listing import Listing, listing_ahead
from libsync.scan import scan
from libsync.workspace import Workspace


@dataclass(frozen=True)
class StatusResult:
    generation: int
    actions: tuple[diff.Action, ...]
    warnings: tuple[str, ...]

    @property
    def in_step(self) -> bool:
        return not self.actions


def status(ws: Workspace, paths=None, *, fetch: bool = True,
           listing: Listing | None = None) -> StatusResult:
    """Fetch the remote's new commits (one request if none), scan, and plan.

    ``listing``: find's listing of the data folder, started earlier (see
    ``listing_ahead``); else it starts here, before the remote is opened.
    """
    ops.pathspecs(paths)  # a path outside the data folder: refused before any reading
    warnings: list[str] = []
    with ws.open_state() as state, listing_ahead(ws.data_dir, listing) as lister:
        if fetch:
            with ws.open_remote() as remote:
                manifest = ops.fetch(state, remote, on_warning=warnings.append).manifest
        else:
            manifest = state.remote_view()
        scanned = scan(ws.data_dir, state, ignore=ws.config.ignore, on_warning=warnings.append,
                       lister=lister)
        # A change made alike on both sides is in step; only the base lags.
        actions = tuple(a for a in ops.plan(state, scanned, paths, remote=manifest)
                        if a.kind != diff.RECORD)
    return StatusResult(manifest.generation, actions, tuple(warnings))


def change_codes(a: diff.Action) -> tuple[str, str]:
    """Two letters like git's short status: the local side, then the remote side.

    A added, M modified, D deleted, ' ' unchanged, each against the base.
    """
    base = a.base.sha256 if a.base is not None and not a.base.deleted else None

    def code(now: str | None) -> str:
        if now == base:
            return " "
        if base is None:
            return "A"
        return "D" if now is None else "M"

    return code(a.local), code(a.remote_sha)


__all__ = ["StatusResult", "change_codes", "status"]
