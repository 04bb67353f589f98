"""log and restore: the journal as history, and the trash as its memory."""

from __future__ import annotations

import time as _time
from dataclasses import dataclass

from libsync import journal, layout, transfer
from libsync.errors import LocalChangedError, NotFoundError, SyncError, UsageError
from libsync.manifest import Commit, Entry, Record, check_path
from libsync.scan import scan
from libsync.workspace import Workspace


@dataclass(frozen=True)
class Logged:
    """A commit, and what each of its changes did: A added, M modified, D deleted."""

    commit: Commit
    kinds: tuple[str, ...]  # one a change, in the commit's order


def log(ws: Workspace, *, limit: int | None = None, path: str | None = None) -> list[Logged]:
    """Commits newest first; with ``path``, only those that changed it."""
    if path is not None:
        check_path(path)
    with ws.open_remote() as remote:
        commits = journal.log(remote)
    live: set[str] = set()  # replayed from the first commit, to tell A from M
    logged = []
    for c in commits:
        kinds = []
        for r in c.changes:
            kinds.append("D" if r.deleted else "M" if r.path in live else "A")
            (live.discard if r.deleted else live.add)(r.path)
        logged.append(Logged(c, tuple(kinds)))
    if path is not None:
        logged = [x for x in logged if any(r.path == path for r in x.commit.changes)]
    logged.reverse()
    return logged[:limit] if limit is not None else logged


def history(commits: list[Commit], path: str) -> list[tuple[int, Record]]:
    """(generation, record) of every change to ``path``, oldest first."""
    return [(c.generation, r) for c in commits for r in c.changes if r.path == path]


@dataclass(frozen=True)
class RestoreResult:
    path: str
    sha256: str
    size: int
    generation: int   # the generation whose version was brought back
    source: str       # the remote key it was read from


def choose_version(changes: list[tuple[int, Record]], path: str,
                   generation: int | None) -> tuple[int, Record]:
    """The version to restore: as of ``generation``, else the last one lost."""
    if not changes:
        raise UsageError(f"{path} has no history on the remote")
    if generation is not None:
        before = [(g, r) for g, r in changes if g <= generation]
        if not before:
            raise UsageError(f"{path} did not exist at generation {generation}")
        g, rec = before[-1]
        if rec.deleted:
            raise UsageError(f"{path} was deleted at generation {g}; pick an earlier one")
        return g, rec
    g, current = changes[-1]
    if current.deleted:
        return g, current  # its sha256 names the deleted content
    earlier = [(g, r) for g, r in changes[:-1] if not r.deleted and r.sha256 != current.sha256]
    if not earlier:
        raise UsageError(f"{path} has no deleted or replaced version to restore")
    return earlier[-1]


def restore(ws: Workspace, path: str, *, generation: int | None = None) -> RestoreResult:
    """Bring a deleted or replaced version back as a local change to push."""
    check_path(path)
    with ws.open_state() as state, ws.open_remote() as remote:
        changes = history(journal.log(remote), path)
        g, rec = choose_version(changes, path, generation)
        current = changes[-1][1]
        if not current.deleted and current.sha256 == rec.sha256:
            source, etag = layout.data_key(path), current.etag
        else:
            source, etag = layout.trash_key(path, rec.sha256), ""
        scanned = scan(ws.data_dir, state, ignore=ws.config.ignore)
        local = scanned.files.get(path)
        base = state.base().get(path)
        base_sha = None if base is None or base.deleted else base.sha256
        if local is not None and local.sha256 not in (base_sha, rec.sha256):
            raise LocalChangedError(f"{path} has local changes; push or move them first")
        mtime = _time.time_ns()
        entry = Entry(path, rec.size, rec.sha256, mtime, "", "", etag)
        try:
            transfer.download(remote, ws.data_dir, state.tmp_dir, entry, local, key=source)
        except NotFoundError:
            raise SyncError(f"the version of {path} from generation {g} is not in the "
                            "trash any more") from None
    return RestoreResult(path, rec.sha256, rec.size, g, source)
