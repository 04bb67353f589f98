"""Check a remote against its manifest, and repair what can be repaired safely.

Finds entries whose object is missing, changed behind s3sync's back (the
console, ``aws s3 cp``) or does not hash to its sha256; orphans (objects no
commit names, e.g. from a push that died before committing); deletions
whose move to the trash was not finished; trash versions that are gone.
A repair never deletes a version: what it takes out of the way goes to the
trash first, and what it adopts is recorded in one new commit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import journal, layout, transfer
from .errors import NotFoundError, PreconditionFailed, UnsafePathError
from .manifest import Entry, Manifest, Record, check_path
from .remotes.base import ObjectInfo, Remote

MISSING = "missing"          # an entry's object is gone
CHANGED = "changed"          # an entry's object was replaced outside s3sync
CORRUPT = "corrupt"          # an entry's object does not hash to its sha256
ORPHAN = "orphan"            # an object no entry names
UNTRASHED = "untrashed"      # a committed deletion whose object is still in place
TRASH_GONE = "trash-gone"    # a deleted version missing from the trash

REPAIRABLE = {CHANGED: "adopt the object found as the current version",
              MISSING: "copy the version back from the trash",
              ORPHAN: "move the object to the trash",
              UNTRASHED: "finish the move to the trash"}


@dataclass(frozen=True)
class Problem:
    kind: str
    path: str
    detail: str


@dataclass(frozen=True)
class FsckResult:
    generation: int
    checked: int
    problems: tuple[Problem, ...]
    repaired: tuple[Problem, ...] = ()


def check(remote: Remote, manifest: Manifest, *, verify: bool = False,
          ignored: Callable[[str], bool] = lambda key: False) -> FsckResult:
    """Every inconsistency between ``manifest`` and the remote's objects.

    ``verify`` reads every object to hash it; otherwise the checksum the
    object carries is trusted where the server keeps one. Objects that the
    ignore rules cover and no commit names are not s3sync's: they are not
    orphans, and a repair leaves them alone.
    """
    problems: list[Problem] = []
    objects = {i.key: i for i in remote.list("")
               if not i.key.startswith(layout.META)
               and (i.key in manifest.records or not ignored(i.key))}
    trash = {i.key for i in remote.list(layout.TRASH_PREFIX)}
    for path, rec in sorted(manifest.records.items()):
        info = objects.pop(layout.data_key(path), None)
        if rec.deleted:
            if info is not None:
                kind = UNTRASHED if transfer.sha_of(remote, info) == rec.sha256 else ORPHAN
                problems.append(Problem(kind, path, "deleted at the remote's generation "
                                        "but still in place"))
            elif rec.trash not in trash:
                problems.append(Problem(TRASH_GONE, path, f"{rec.trash} is missing"))
            continue
        if info is None:
            problems.append(Problem(MISSING, path, f"no object for sha256 {rec.sha256[:12]}"))
            continue
        head = remote.head(info.key) if not verify else None
        sha = transfer.sha_of(remote, head or ObjectInfo(info.key, info.size, info.etag))
        if sha != rec.sha256:
            kind = CHANGED if info.etag != rec.etag else CORRUPT
            problems.append(Problem(kind, path, f"holds sha256 {sha[:12]}, the manifest "
                                    f"says {rec.sha256[:12]}"))
        elif info.etag != rec.etag:
            problems.append(Problem(CHANGED, path, "same content, rewritten outside s3sync"))
    for key, info in sorted(objects.items()):
        problems.append(Problem(ORPHAN, key, f"{info.size} bytes that no commit names"))
    return FsckResult(manifest.generation, len(manifest.records), tuple(problems))


def repair(remote: Remote, manifest: Manifest, result: FsckResult, *, author: str,
           time: str, on_commit: Callable[[Manifest, tuple[Record, ...]], None] | None = None
           ) -> FsckResult:
    """Mend what is safe to mend; returns the result with ``repaired`` filled in."""
    repaired, changes = [], []
    for p in result.problems:
        try:
            if p.kind == ORPHAN:
                check_path(p.path)
                info = remote.head(p.path)
                if info is not None and not transfer.move_to_trash(
                        remote, p.path, transfer.sha_of(remote, info), info.etag):
                    continue  # changed meanwhile: left for the next fsck
                repaired.append(p)
            elif p.kind == UNTRASHED:
                rec = manifest.records[p.path]
                info = remote.head(p.path)
                if info is not None and transfer.trash(remote, rec, info.etag):
                    repaired.append(p)
            elif p.kind == MISSING:
                rec = manifest.records[p.path]
                src = remote.head(layout.trash_key(p.path, rec.sha256))
                if src is None or transfer.sha_of(remote, src) != rec.sha256:
                    continue  # not in the trash, or not that version: lost
                etag = remote.copy(src.key, layout.data_key(p.path), if_match=src.etag)
                changes.append(_entry(rec, etag, author, time))
                repaired.append(p)
            elif p.kind == CHANGED:
                rec = manifest.records[p.path]
                info = remote.head(p.path)
                if info is None:
                    continue  # gone meanwhile: the next fsck sees it as missing
                sha = transfer.sha_of(remote, info)
                changes.append(Entry(p.path, info.size, sha, rec.mtime_ns, author, time,
                                     info.etag))
                repaired.append(p)
        except (NotFoundError, PreconditionFailed, UnsafePathError):
            continue  # changed meanwhile, or gone: left for the next fsck
    if changes:
        new, commit = journal.write_commit(remote, manifest, changes, author=author, time=time,
                                           message="fsck --repair")
        if on_commit:
            on_commit(new, commit.changes)
    return FsckResult(result.generation, result.checked, result.problems, tuple(repaired))


def _entry(rec: Entry, etag: str, author: str, time: str) -> Entry:
    return Entry(rec.path, rec.size, rec.sha256, rec.mtime_ns, author, time, etag)
