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


def jobs_of(args) -> int:
    value = args.get("--jobs") or "8"
    try:
        jobs = int(value)
    except ValueError:
        jobs = 0
    if not 1 <= jobs <= 64:
        from libsync.errors import UsageError
        raise UsageError(f"--jobs must be a number from 1 to 64, not {value!r}")
    return jobs
