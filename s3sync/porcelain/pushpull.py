"""push, pull and sync: fetch, scan, plan, confirm, transfer, commit.

One engine serves the three verbs; they differ only in which actions of
the plan they carry out. Everything here composes the plumbing in
``libsync.ops``: a shell pipeline of plumbing commands can do the same.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import random
import time as _time
from dataclasses import dataclass
from datetime import UTC, datetime

from libsync import journal, layout, ops, transfer
from libsync.diff import CONFLICT, DELETE_LOCAL, DELETE_REMOTE, DOWNLOAD, RECORD, UPLOAD, Action
from libsync.errors import (
    AbortedError,
    NotFoundError,
    PreconditionFailed,
    SyncError,
    UsageError,
)
from libsync.listing import Listing, listing_ahead
from libsync.scan import UNHASHED, scan
from libsync.workspace import Workspace

from .conflicts import CHOICES, Resolution, resolve
from .progress import Choose, Confirm, Progress, Quiet

DIRECTIONS = {
    "push": frozenset({UPLOAD, DELETE_REMOTE, RECORD}),
    "pull": frozenset({DOWNLOAD, DELETE_LOCAL, RECORD}),
    "sync": frozenset({UPLOAD, DELETE_REMOTE, DOWNLOAD, DELETE_LOCAL, RECORD}),
}
COMMIT_PATIENCE = 60.0  # seconds of lost commit races before giving up


@dataclass(frozen=True)
class SyncResult:
    direction: str
    plan: tuple[Action, ...]            # what was to be done, conflicts resolved
    conflicts: tuple[Action, ...]       # left unresolved
    uploaded: tuple[str, ...] = ()
    deleted_remote: tuple[str, ...] = ()
    downloaded: tuple[str, ...] = ()
    deleted_local: tuple[str, ...] = ()
    recorded: tuple[str, ...] = ()
    kept: tuple[tuple[str, str], ...] = ()   # (path, its conflict copy)
    failed: tuple[tuple[str, str], ...] = ()
    errors: tuple[SyncError, ...] = ()       # what failed, in the order of failed
    declined_deletions: tuple[str, ...] = ()
    bytes_up: int = 0
    bytes_down: int = 0
    generation: int = 0
    seconds: float = 0.0
    dry_run: bool = False
    warnings: tuple[str, ...] = ()

    @property
    def clean(self) -> bool:
        return not (self.conflicts or self.failed)


def parse_max_delete(value: str | None, total: int) -> int | None:
    """``--max-delete``: a count, or a percentage of the files tracked."""
    if value is None:
        return None
    text = value.strip()
    try:
        if text.endswith("%"):
            pct = float(text[:-1])
            if not 0 <= pct <= 100:
                raise ValueError
            return int(total * pct / 100)
        n = int(text)
        if n < 0:
            raise ValueError
        return n
    except ValueError:
        raise UsageError(f"--max-delete takes a count or a percentage, not {value!r}") from None


def moved(plan) -> list[Action]:
    """Deletions whose content arrives under another name in the same plan.

    A rename is a deletion and an addition of the same bytes; it loses
    nothing, so the deletion limit does not count it.
    """
    arriving = {a.local for a in plan if a.kind == UPLOAD}
    arriving |= {a.remote_sha for a in plan if a.kind == DOWNLOAD}
    return [a for a in plan if a.kind in (DELETE_REMOTE, DELETE_LOCAL)
            and a.base is not None and not a.base.deleted and a.base.sha256 in arriving]


def _large(path: str, size: int) -> bool:
    return size >= transfer.HASH_ON_UPLOAD


def _stamp(now: datetime) -> str:
    return now.strftime("%Y%m%dT%H%M%S")


def run(ws: Workspace, direction: str, *, paths=None, dry_run: bool = False,
        on_conflict: str = "skip", max_delete: str | None = None, jobs: int = 8,
        message: str = "", confirm: Confirm | None = None, choose: Choose | None = None,
        progress: Progress | None = None, now: datetime | None = None,
        listing: Listing | None = None) -> SyncResult:
    """Carry out the ``direction`` part of the plan.

    ``confirm`` is None when nobody can be asked (no terminal, or --yes):
    then nothing is asked, and ``max_delete`` (default 50%) guards
    deletions. With a ``confirm``, the plan and then the deletions are
    each put to the user. ``listing`` is as for ``status``.
    """
    ops.pathspecs(paths)  # a path outside the data folder: refused before any reading
    if on_conflict not in CHOICES:
        raise UsageError(f"--on-conflict must be one of {', '.join(CHOICES)}")
    if on_conflict == "ask" and (choose is None or dry_run):
        on_conflict = "skip"  # a dry run asks nothing
    started = _time.monotonic()
    progress = progress or Quiet()
    now = now or datetime.now(UTC)
    author = ws.author()
    warnings: list[str] = []
    with ws.open_state() as state, listing_ahead(ws.data_dir, listing) as lister, \
            ws.open_remote(jobs=jobs) as remote:
        if dry_run:
            manifest, _ = journal.fetch_manifest(remote, state.remote(), jobs=jobs,
                                                 on_warning=warnings.append)
        else:
            manifest = ops.fetch(state, remote, jobs=jobs,
                                 on_warning=warnings.append).manifest
        # Large new files are hashed on their way up, not read twice; those
        # the plan must compare are hashed now (ops.settle).
        defer = _large if UPLOAD in DIRECTIONS[direction] and not dry_run else None
        scanned = scan(ws.data_dir, state, ignore=ws.config.ignore, on_warning=warnings.append,
                       defer=defer, lister=lister)
        if defer:
            scanned = ops.settle(state, ws.data_dir, scanned, on_warning=warnings.append)
        wanted = DIRECTIONS[direction]

        def planned():
            return [a for a in ops.plan(state, scanned, paths, remote=manifest)
                    if a.kind in wanted or a.kind == CONFLICT]

        raw = planned()
        gone = {a.base.size for a in raw if a.kind == DELETE_REMOTE and not a.base.deleted}
        if gone and any(a.kind == UPLOAD and a.local == UNHASHED
                        and scanned.files[a.path].size in gone for a in raw):
            # Possibly a move: its hash tells (see moved), so it is hashed now.
            scanned = ops.settle(state, ws.data_dir, scanned, also=lambda f: f.size in gone,
                                 on_warning=warnings.append)
            raw = planned()
        if not dry_run and direction != "pull":
            # The remote moved past a dead run's upload: take it back, once
            # the plan (and so each path argument) has been accepted.
            ops.withdraw_stale(state, remote)

        # Conflicts first: each becomes an action, or stays a conflict.
        resolutions: dict[str, Resolution] = {}
        conflicts, plan = [], []
        for a in raw:
            if a.kind != CONFLICT:
                plan.append(a)
                continue
            choice = choose(a) if on_conflict == "ask" else on_conflict
            res = resolve(a, choice, user=author, stamp=_stamp(now))
            # push never changes local files and pull never the remote's:
            # a resolution that needs the other direction waits for it.
            if res is None or res.action.kind not in wanted or (
                    res.rename_to and direction == "push"):
                conflicts.append(a)
            else:
                resolutions[a.path] = res
                plan.append(res.action)
        plan.sort(key=lambda a: a.path)

        deletions = [a for a in plan if a.kind in (DELETE_REMOTE, DELETE_LOCAL)]
        limit_text = max_delete if max_delete is not None or confirm is not None else "50%"
        known = set(manifest.entries()) | set(scanned.files)
        limit = parse_max_delete(limit_text, len(known))
        lost = len(deletions) - len(moved(plan))
        if limit is not None and lost > limit:
            too_many = f"{lost} deletions exceed --max-delete={limit_text} ({limit} files)"
            if not dry_run:
                raise AbortedError(f"{too_many}; nothing was changed")
            warnings.append(f"{too_many}: this run would stop before changing anything")

        blocked = ops.unreachable(state, scanned, manifest) if direction != "push" else []
        result = SyncResult(direction, tuple(plan), tuple(conflicts),
                            generation=manifest.generation, dry_run=dry_run,
                            warnings=tuple(warnings),
                            failed=tuple((p, str(e)) for p, e in blocked),
                            errors=tuple(e for _, e in blocked))
        if dry_run or not plan:
            return dataclasses.replace(result, seconds=_time.monotonic() - started)

        declined: tuple[str, ...] = ()
        if confirm is not None:
            moving = tuple(a for a in plan if a.kind not in (DELETE_REMOTE, DELETE_LOCAL))
            if moving and not confirm("proceed", moving):
                raise AbortedError("nothing was changed")
            if deletions and not confirm("delete", tuple(deletions)):
                declined = tuple(a.path for a in deletions)
                plan = [a for a in plan if a.kind not in (DELETE_REMOTE, DELETE_LOCAL)]
        result = _execute(ws, state, remote, plan, resolutions, scanned, author=author,
                          now=now, jobs=jobs, message=message, progress=progress,
                          result=result)
    return dataclasses.replace(result, declined_deletions=declined,
                               seconds=_time.monotonic() - started)


def _execute(ws, state, remote, plan, resolutions, scanned, *, author, now, jobs, message,
             progress, result: SyncResult) -> SyncResult:
    when = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    failed: list[tuple[str, str]] = list(result.failed)
    errors: list[SyncError] = list(result.errors)
    conflicts = list(result.conflicts)
    files = dict(scanned.files)

    # Local preparations for resolved conflicts: nothing of either side lost.
    kept = []
    for path, res in sorted(resolutions.items()):
        if res.keep_local and path in files:
            transfer.keep_in_trash(remote, ws.data_dir, files[path])
        if res.rename_to:
            src = transfer.local_path(ws.data_dir, path)
            name = res.rename_to
            stem, ext = os.path.splitext(name)
            for n in itertools.count(2):  # two copies in one second keep both
                dst = transfer.local_path(ws.data_dir, name)
                if not os.path.lexists(dst):
                    break
                name = f"{stem}-{n}{ext}"
            os.rename(src, dst)
            kept.append((path, name))
            copy = files.pop(path)._replace(path=name)
            if UPLOAD in DIRECTIONS[result.direction]:
                files[name] = copy  # a sync shares the copy at once
                plan = [*plan, Action(UPLOAD, name, copy.sha256, None, None)]
    scanned = dataclasses.replace(scanned, files=files)

    # Push: upload and stage, then commit (retrying a lost race).
    ups = [files[a.path] for a in plan if a.kind == UPLOAD]
    dels = [a.path for a in plan if a.kind == DELETE_REMOTE]
    uploaded, deleted_remote, bytes_up, generation = (), (), 0, result.generation
    if ups or dels:
        bar = progress.start("push", sum(f.size for f in ups))
        up = ops.upload(state, remote, ws.data_dir, ups, author=author, time=when, jobs=jobs,
                        progress=bar)
        progress.stop()
        by_path = {a.path: a for a in plan}
        raced = []
        for (path, message), error in zip(up.failed, up.errors, strict=True):
            if isinstance(error, (PreconditionFailed, NotFoundError)):
                raced.append(path)  # someone else wrote (or deleted) the path since the fetch
            else:
                failed.append((path, message))
                errors.append(error)
        for path, reason in _why_raced(state, remote, raced).items():
            conflicts.append(dataclasses.replace(by_path[path], kind=CONFLICT, conflict=reason))
        ops.tombstone(state, ws.data_dir, dels, author=author, time=when)
        committed = _commit(state, remote, author=author, time=when, message=message,
                            conflicts=conflicts, plan=plan)
        if committed is not None:
            paths = {r.path for r in committed.commit.changes}
            uploaded = tuple(sorted(f.path for f in ups if f.path in paths))
            deleted_remote = tuple(sorted(p for p in dels if p in paths))
            bytes_up = up.bytes
            generation = committed.manifest.generation

    # Pull: local deletions and records, then downloads (so that a rename
    # differing only in case works on a case-insensitive disk), forced where
    # a conflict was resolved in the remote's favour (the local copy is safe).
    pulls = [a for a in plan if a.kind in (DOWNLOAD, DELETE_LOCAL, RECORD)]
    downloaded, deleted_local, recorded, bytes_down = [], [], [], 0
    if pulls:
        fetched = {a.path for a in pulls if a.kind == DOWNLOAD}
        total = sum(a.remote.size for a in pulls if a.kind == DOWNLOAD)
        bar = progress.start("pull", total)
        for kinds, force in itertools.product(((DELETE_LOCAL, RECORD), (DOWNLOAD,)),
                                              (False, True)):
            batch = [a.path for a in pulls
                     if a.kind in kinds and (a.path in resolutions) == force]
            if not batch:
                continue
            down = ops.download(state, remote, ws.data_dir, batch, scanned, force=force,
                                jobs=jobs, progress=bar)
            failed.extend(down.failed)
            errors.extend(down.errors)
            # Sets, not the lists: a pull of 100,000 files would otherwise
            # compare some 10^10 strings here.
            done = {r.path for r in down.done}.intersection(batch)
            for a in pulls:
                if a.path in done:
                    {DOWNLOAD: downloaded, DELETE_LOCAL: deleted_local,
                     RECORD: recorded}[a.kind].append(a.path)
            bytes_down += sum(r.size for r in down.done if not r.deleted and r.path in fetched)
        progress.stop()
    return dataclasses.replace(
        result, conflicts=tuple(conflicts), uploaded=uploaded, deleted_remote=deleted_remote,
        downloaded=tuple(downloaded), deleted_local=tuple(deleted_local),
        recorded=tuple(recorded), kept=tuple(kept), failed=tuple(failed),
        errors=tuple(errors),
        bytes_up=bytes_up, bytes_down=bytes_down, generation=generation)


RACED = "changed here, changed on the remote meanwhile"
UNCOMMITTED = ("the remote holds an upload that no commit names (a push under way, or one "
               "that died; if nobody is pushing, 's3sync fsck --repair' moves it to the trash)")


def _why_raced(state, remote, paths) -> dict[str, str]:
    """Why each upload lost its conditional write: a conflict to resolve, or an
    upload nobody committed standing in the way (one LIST and a HEAD each)."""
    if not paths:
        return {}
    manifest = ops.fetch(state, remote).manifest
    out = {}
    for path in paths:
        info = remote.head(layout.data_key(path))
        named = manifest.records.get(path)
        stray = info is not None and (named is None or named.deleted or named.etag != info.etag)
        out[path] = UNCOMMITTED if stray else RACED
    return out


def _commit(state, remote, *, author, time, message, conflicts, plan):
    """Commit what is staged; on a lost race read the winner's commit and retry.

    A staged change whose path the winner changed too becomes a conflict
    (it is unstaged; the next sync shows it), the rest is committed.
    """
    deadline = _time.monotonic() + COMMIT_PATIENCE
    for attempt in itertools.count():
        if attempt and _time.monotonic() > deadline:
            break
        if attempt:
            _time.sleep(random.uniform(0, min(1.0, 0.05 * 2 ** attempt)))
        if not state.has_pending():
            return None
        try:
            return ops.commit(state, remote, author=author, time=time, message=message,
                              fetched=True)
        except PreconditionFailed:  # a lost race, or a staged path changed meanwhile
            fetched = ops.fetch(state, remote)
            moved = ops.withdraw_stale(state, remote)
            by_path = {a.path: a for a in plan}
            for p in moved:
                a = by_path.get(p)
                conflicts.append(Action(CONFLICT, p, a.local if a else None,
                                        a.base if a else None, fetched.manifest.records.get(p),
                                        RACED))
    raise PreconditionFailed(f"lost the race to commit for {COMMIT_PATIENCE:.0f} s; try again")


def push(ws: Workspace, **kw) -> SyncResult:
    """Send local changes to the remote; never changes local files."""
    return run(ws, "push", **kw)


def pull(ws: Workspace, **kw) -> SyncResult:
    """Bring remote changes here; never changes the remote."""
    return run(ws, "pull", **kw)


def sync(ws: Workspace, **kw) -> SyncResult:
    """Push and pull in one go (the old tool's smart_sync)."""
    return run(ws, "sync", **kw)


__all__ = ["SyncResult", "pull", "push", "run", "sync"]
