"""The three-way reconcile: local, base and remote in, a plan out.

Pure: no disk, no network, no clock. Direction is decided by content hash
against the base (the last state this workspace agreed on with the
remote), never by modification times, so clocks and ``cp -p`` cannot make
an old file win. The rules are Unison's:

========  ========  ==============================================
L vs B    R vs B    action
========  ========  ==============================================
same      same      nothing
changed   same      upload, or delete-remote if L is absent
same      changed   download, or delete-local if R is absent
changed   changed   record if L == R, else conflict
========  ========  ==============================================
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .manifest import Record

UPLOAD = "upload"
DELETE_REMOTE = "delete-remote"
DOWNLOAD = "download"
DELETE_LOCAL = "delete-local"
RECORD = "record"
CONFLICT = "conflict"

KINDS = (UPLOAD, DELETE_REMOTE, DOWNLOAD, DELETE_LOCAL, RECORD, CONFLICT)
PUSH = frozenset({UPLOAD, DELETE_REMOTE})
PULL = frozenset({DOWNLOAD, DELETE_LOCAL, RECORD})


@dataclass(frozen=True)
class Action:
    kind: str
    path: str
    local: str | None          # sha256 of the local file, None if absent
    base: Record | None        # the merge base's record (may be a tombstone)
    remote: Record | None      # the remote's record (may be a tombstone)
    conflict: str | None = None  # for CONFLICT: what each side did

    @property
    def remote_sha(self) -> str | None:
        return _sha(self.remote)


def _sha(rec: Record | None) -> str | None:
    return None if rec is None or rec.deleted else rec.sha256


def _what(before: str | None, after: str | None) -> str:
    if before is None:
        return "added"
    return "deleted" if after is None else "modified"


def reconcile_path(path: str, local: str | None, base: Record | None,
                   remote: Record | None) -> Action | None:
    """The action for one path, or None when both sides agree with the base."""
    b, r = _sha(base), _sha(remote)
    local_changed, remote_changed = local != b, r != b
    if not local_changed and not remote_changed:
        return None
    if local_changed and not remote_changed:
        kind = DELETE_REMOTE if local is None else UPLOAD
    elif remote_changed and not local_changed:
        kind = DELETE_LOCAL if r is None else DOWNLOAD
    elif local == r:
        kind = RECORD
    else:
        what = f"{_what(b, local)} here, {_what(b, r)} on the remote"
        return Action(CONFLICT, path, local, base, remote, what)
    return Action(kind, path, local, base, remote)


def reconcile(local: Mapping[str, str], base: Mapping[str, Record],
              remote: Mapping[str, Record], *, skipped: Iterable[str] = (),
              paths: Iterable[str] | None = None,
              among: Iterable[str] | None = None) -> tuple[Action, ...]:
    """Every path's action, sorted by path.

    ``local`` maps paths to sha256; ``skipped`` files and folders exist
    locally but could not be read (or are ignored), so nothing is planned
    for them or anything under them; ``paths`` limits the plan to those
    files and folders. ``among``, sorted, are the only paths that may need
    an action (see ``unsettled``); by default every path of the three.
    """
    skip = list(skipped)
    wanted = list(paths) if paths is not None else None
    plan = []
    for path in sorted(set(local) | set(base) | set(remote)) if among is None else among:
        if _under(path, skip) or (wanted is not None and not _under(path, wanted)):
            continue
        action = reconcile_path(path, local.get(path), base.get(path), remote.get(path))
        if action is not None:
            plan.append(action)
    return tuple(plan)


def unsettled(local: Mapping[str, str], agreed: Mapping[str, str | None],
              base: Mapping[str, Record], remote: Mapping[str, Record]) -> list[str]:
    """The sorted paths that may need an action, when base and remote agree on
    the paths of ``agreed`` (path to sha256, None for a tombstone) and
    ``base`` and ``remote`` hold the records of every other path.

    An agreed path needs nothing while the local file matches, so a no-op
    over 100,000 files looks at no record at all.
    """
    todo = {p for p, sha in local.items() if agreed.get(p, _ABSENT) != sha}
    todo.update(p for p, sha in agreed.items() if sha is not None and p not in local)
    todo.update(base)
    todo.update(remote)
    return sorted(todo)


_ABSENT = object()


def _under(path: str, prefixes: list[str]) -> bool:
    for p in prefixes:
        p = p.strip("/")
        if p in ("", ".") or path == p or path.startswith(p + "/"):
            return True
    return False
