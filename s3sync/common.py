"""What every command does first: find the workspace, lock it, open the remote."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from libsync.remotes import Remote
from libsync.state import State
from libsync.workspace import Workspace


@contextmanager
def opened(ctx, *, remote: bool = True, lock: bool = True, jobs: int = 8
           ) -> Iterator[tuple[Workspace, State, Remote | None]]:
    ws = Workspace.find(ctx.cwd)
    state = ws.open_state(lock=lock)
    try:
        rem = ws.open_remote(jobs=jobs) if remote else None
        try:
            yield ws, state, rem
        finally:
            if rem is not None:
                rem.close()
    finally:
        state.close()


def number(args, option: str, *, low: int = 0, high: int | None = None) -> int | None:
    """An option's whole-number value (None if not given), or a usage error."""
    value = args.get(option)
    if value is None:
        return None
    if not value.isdigit() or int(value) < low or (high is not None and int(value) > high):
        from libsync.errors import UsageError
        span = f"from {low} to {high}" if high is not None else f"of {low} or more"
        raise UsageError(f"{option} takes a whole number {span}, not {value!r}")
    return int(value)


def jobs_of(args) -> int:
    return number(args, "--jobs", low=1, high=64) or 8
