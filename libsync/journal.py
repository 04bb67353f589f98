"""The commit journal: how the remote's state is read and how a push lands.

A push is committed when ``journal/<g+1>`` is written create-if-absent;
of two pushers racing for one generation exactly one wins. Reading from a
known generation costs one LIST when nothing changed. The snapshot is a
cache of the manifest at some generation that saves replaying a long
journal; it is never the truth on its own, and a broken one is skipped.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from . import layout
from .errors import (
    CommitRaceError,
    FormatError,
    NotFoundError,
    PreconditionFailed,
    RemoteError,
    RemoteHistoryError,
    UnknownFormatError,
    UnsafePathError,
)
from .manifest import FORMAT, Commit, Manifest, Record, check_format, dumps, loads
from .remotes.base import Remote

# Past this many new commits, reading the snapshot first is cheaper.
REPLAY_LIMIT = 64
SNAPSHOT_EVERY = 50


def init_remote(remote: Remote) -> bool:
    """Write the format marker unless present; True if this call wrote it."""
    try:
        remote.put(layout.FORMAT_KEY, dumps({"format": FORMAT}), if_none_match=True)
        return True
    except PreconditionFailed:
        read_format(remote)
        return False


def read_format(remote: Remote) -> int:
    try:
        data = remote.get(layout.FORMAT_KEY)
    except NotFoundError:
        raise RemoteError(f"{remote.url} is not an s3sync remote yet: "
                          "run 's3sync init' first") from None
    return loads(data, where=f"{remote.url} format marker")["format"]


def read_commit(remote: Remote, generation: int) -> Commit:
    key = layout.journal_key(generation)
    commit = Commit.from_json(remote.get(key), where=key)
    if commit.generation != generation:
        raise FormatError(f"{key} claims generation {commit.generation}")
    return commit


def read_snapshot(remote: Remote, on_warning: Callable[[str], None] | None = None
                  ) -> Manifest | None:
    try:
        return Manifest.from_snapshot(remote.get(layout.SNAPSHOT_KEY))
    except NotFoundError:
        return None
    except UnknownFormatError:
        raise
    except (FormatError, UnsafePathError) as exc:
        if on_warning:
            on_warning(f"ignoring the remote snapshot: {exc}")
        return None


def new_generations(remote: Remote, after: int, *, after_etag: str | None = None,
                    require: bool = False) -> tuple[list[int], str | None]:
    """The generations committed after ``after``, and the newest one's etag.

    This is the one LIST a no-op costs. Given ``after_etag`` (or with
    ``require``), the listing starts one key earlier so that the same
    request checks that ``journal/<after>`` exists and is still the commit
    this workspace read: a remote that was reset and pushed to again is
    told apart from the old one.
    """
    check = after > 0 and (after_etag is not None or require)
    start = layout.journal_key(after - 1 if check else after)
    found = {}
    for info in remote.list(layout.JOURNAL_PREFIX, start_after=start):
        g = layout.generation_of(info.key)
        if g is not None:
            found[g] = info.etag
    if check:
        seen = found.pop(after, None)
        if seen is None or (after_etag is not None and seen != after_etag):
            raise RemoteHistoryError(
                f"the remote's journal no longer holds generation {after} as this workspace "
                "read it (was the remote reset?); run 's3sync reset --local-only' and "
                "'s3sync init' to start again from the files")
        after_etag = seen
    gens = sorted(found)
    for expected, g in enumerate(gens, after + 1):
        if g != expected:
            raise FormatError(f"the journal is missing generation {expected}")
    return gens, (found[gens[-1]] if gens else after_etag)


def fetch_manifest(remote: Remote, known: Manifest, *, jobs: int = 8,
                   on_warning: Callable[[str], None] | None = None
                   ) -> tuple[Manifest, list[Commit]]:
    """The remote's current manifest, read from ``known`` onwards.

    Returns the manifest and the commits applied to reach it. With nothing
    new this sends exactly one request, whatever the number of files.
    """
    start = known
    gens = None
    if known.generation == 0:
        check_format(read_format(remote), where=f"{remote.url} format marker")
        snap = read_snapshot(remote, on_warning)
        if snap is not None:
            try:  # a snapshot is believed only if the journal has its generation
                gens, etag = new_generations(remote, snap.generation, require=True)
                start = snap
            except RemoteHistoryError:
                if on_warning:
                    on_warning(f"ignoring the remote snapshot: the journal has no "
                               f"generation {snap.generation}")
    if gens is None:
        gens, etag = new_generations(remote, start.generation, after_etag=start.head_etag)
    if len(gens) > REPLAY_LIMIT and start is known and known.generation > 0:
        snap = read_snapshot(remote, on_warning)
        if snap is not None and known.generation < snap.generation <= gens[-1]:
            start = snap
            gens = [g for g in gens if g > snap.generation]
    if not gens:
        return (start if etag == start.head_etag
                else dataclasses.replace(start, head_etag=etag)), []
    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(gens)))) as pool:
        commits = list(pool.map(lambda g: read_commit(remote, g), gens))
    manifest = start
    for commit in commits:
        manifest = manifest.apply(commit)
    return dataclasses.replace(manifest, head_etag=etag), commits


def write_commit(remote: Remote, current: Manifest, changes: Iterable[Record], *,
                 author: str, time: str, message: str = "") -> tuple[Manifest, Commit]:
    """Commit ``changes`` on top of ``current``: the push's single commit point.

    Raises CommitRaceError when another push took the generation first;
    the caller reads the new commits and reconciles again.
    """
    commit = Commit(current.generation + 1, author, time, message,
                    tuple(sorted(changes, key=lambda r: r.path)), uuid.uuid4().hex)
    # Read back what readers will read: a commit they would refuse must
    # never be written, or the whole team's remote is broken.
    commit = Commit.from_json(commit.to_json(), where="the new commit")
    manifest = current.apply(commit)
    key, data = layout.journal_key(commit.generation), commit.to_json()
    try:
        etag = remote.put(key, data, if_none_match=True)
    except PreconditionFailed:
        # Either a lost race, or our own write whose answer was lost and
        # retried: the bytes tell, since every commit carries a random id.
        try:
            ours = remote.get(key) == data
        except NotFoundError:
            ours = False
        if not ours:
            raise CommitRaceError(
                f"another push committed generation {commit.generation} first") from None
        etag = remote.head(key).etag
    return dataclasses.replace(manifest, head_etag=etag), commit


def maybe_snapshot(remote: Remote, manifest: Manifest, *, every: int = SNAPSHOT_EVERY) -> bool:
    """Refresh the snapshot cache now and then; any pusher may do it."""
    if manifest.generation % every:
        return False
    remote.put(layout.SNAPSHOT_KEY, manifest.to_snapshot())
    return True


def log(remote: Remote, *, after: int = 0, jobs: int = 8) -> list[Commit]:
    """Every commit after ``after``, oldest first."""
    gens, _ = new_generations(remote, after)
    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(gens) or 1))) as pool:
        return list(pool.map(lambda g: read_commit(remote, g), gens))
