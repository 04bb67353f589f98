"""The plumbing operations with their local bookkeeping.

Each function is one plumbing command: it calls the primitives in
``journal``, ``diff`` and ``transfer`` and records in the workspace state
what it did, file by file, so that an interrupted run resumes from what
was really done. Results are plain frozen data; nothing here prints.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime

from . import diff, journal, transfer
from .errors import (
    AccessDeniedError,
    CommitRaceError,
    LocalChangedError,
    PathspecError,
    PreconditionFailed,
    RemoteNotFoundError,
    SyncError,
    UnsafePathError,
    UsageError,
)
from .manifest import Commit, Entry, Manifest, Record, Tombstone, check_path
from .remotes.base import Remote
from .scan import UNHASHED, LocalFile, ScanResult, hash_deferred
from .state import State
from .storedview import StoredRecords

OnDone = Callable[[str, "str | None"], None]
"""Called with a path and None when it finished, or the error message."""


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class FetchResult:
    manifest: Manifest
    commits: tuple[Commit, ...]
    previous: int


@dataclass(frozen=True)
class TransferResult:
    done: tuple[Record, ...]
    failed: tuple[tuple[str, str], ...]  # (path, one-line reason)
    bytes: int = 0
    errors: tuple[SyncError, ...] = ()   # what failed, for callers that sort failures


@dataclass(frozen=True)
class CommitResult:
    commit: Commit
    manifest: Manifest
    trashed: tuple[str, ...]
    left: tuple[str, ...]  # deletions whose object changed before the trash move


def fetch(state: State, remote: Remote, *, jobs: int = 8,
          on_warning: Callable[[str], None] | None = None) -> FetchResult:
    """Bring the cached remote manifest up to date: one LIST when nothing changed."""
    known = state.remote_view()  # records are read only if new commits apply to them
    manifest, commits = journal.fetch_manifest(remote, known, jobs=jobs, on_warning=on_warning)
    if manifest.generation != known.generation:
        changed = None
        if commits and manifest.generation - len(commits) == known.generation:
            changed = {r.path: r for c in commits for r in c.changes}.values()
        state.save_remote(manifest, changed=changed)
        _adopt_own_commit(state, remote, manifest)
    finish_trash(state, remote)
    return FetchResult(manifest, tuple(commits), known.generation)


def _adopt_own_commit(state: State, remote: Remote, manifest: Manifest) -> None:
    """Staged changes the remote already holds: our commit landed, then we died.

    Their bookkeeping is finished now, trash moves included, so they are
    neither committed twice nor taken for someone else's change.
    """
    landed = [rec for rec, _ in state.pending().values()
              if manifest.records.get(rec.path) == rec]
    if not landed:
        return
    owed = []
    for rec in landed:
        if rec.deleted:
            info = remote.head(rec.path)
            if info is not None and transfer.sha_of(remote, info) == rec.sha256:
                owed.append((rec, info.etag))
    state.committed(manifest, landed, owed)


def learn_server(state: State, remote: Remote) -> None:
    """Tell the remote whether its server honours copy conditions, probing once.

    The answer is kept in the local state, so that only the first run of a
    workspace that copies anything pays for the probe.
    """
    if remote.copy_conditions is not None:
        return
    key = f"copy_conditions {remote.url}"
    known = state.get_meta(key)
    if known is None:
        known = "1" if remote.probe_copy_conditions() else "0"
        state.set_meta(key, known)
    remote.copy_conditions = known == "1"


def finish_trash(state: State, remote: Remote) -> tuple[list[str], list[str]]:
    """Move committed deletions to the trash; those changed meanwhile are left."""
    trashed, left = [], []
    todo = state.trash_todo()
    if todo:
        learn_server(state, remote)
    for rec, etag in todo:
        (trashed if transfer.trash(remote, rec, etag) else left).append(rec.path)
        state.trash_done(rec.path)
    return trashed, left


def pathspecs(paths: Iterable[str] | None) -> tuple[tuple[str, str], ...] | None:
    """Command-line paths as data-folder paths, each after the argument it came from.

    ``./a/``, ``a//b`` and ``a/x/../b`` become ``a``, ``a/b`` and ``a/b``;
    ``.`` and the empty path are the whole data folder. An absolute path,
    or one that leaves the data folder, raises PathspecError; callers check
    this before they read anything. No paths (None or none given) is None:
    the whole folder.
    """
    if paths is None:
        return None
    out = []
    for arg in paths:
        path = arg.replace(os.sep, "/") if os.sep != "/" else arg
        if posixpath.isabs(path) or os.path.splitdrive(arg)[0]:
            raise PathspecError(f"{arg!r} is absolute; paths are relative to the data folder")
        path = posixpath.normpath(unicodedata.normalize("NFC", path))  # "" and "./" are "."
        if path == ".." or path.startswith("../"):
            raise PathspecError(f"{arg!r} is outside the data folder")
        out.append((arg, path))
    return tuple(out) or None


def settle(state: State, data_dir: str, scanned: ScanResult, *,
           also: Callable[[LocalFile], bool] | None = None,
           on_warning: Callable[[str], None] | None = None) -> ScanResult:
    """Hash the files the scan deferred (``scan``'s ``defer``) that a plan
    must compare: those whose path the base, the remote, a staged upload or
    an unfinished one knows, and those ``also`` picks. The rest are new on
    both sides, to be uploaded whatever their content, and stay unhashed.
    A file that changed meanwhile is skipped this time, as the scan would.
    """
    deferred = [f for f in scanned.files.values() if f.sha256 == UNHASHED]
    if not deferred:
        return scanned
    paths = [f.path for f in deferred]
    known = {*state.records("base", paths), *state.records("remote", paths),
             *state.pending(), *state.sending()}
    todo = [f for f in deferred if f.path in known or (also is not None and also(f))]
    if not todo:
        return scanned
    hashed, problems = hash_deferred(data_dir, state, todo)
    files = {**scanned.files, **hashed}
    warnings = []
    for path, problem in problems.items():
        del files[path]
        warnings.append(f"{path}: {problem}")
        if on_warning:
            on_warning(warnings[-1])
    return dataclasses.replace(scanned, files=files, warnings=(*scanned.warnings, *warnings),
                               skipped=scanned.skipped.union(problems))


def plan(state: State, scanned: ScanResult, paths: Iterable[str] | None = None,
         remote: Manifest | None = None) -> tuple[diff.Action, ...]:
    """Reconcile the scan against the base and the remote manifest.

    ``remote`` defaults to the cached one; a dry run passes a freshly read
    manifest it did not store. With the cached one, paths on which base and
    remote agree are compared by sha256 alone, and records are decoded
    only for the paths that may need an action.

    ``paths``, as given on the command line, limit the plan to those files
    and folders (see ``pathspecs``). Each must name a file, or a folder
    holding one, that the scan found or that the base or the remote holds
    (deleted ones do not count), and must not be ignored: else
    PathspecError, and no plan. Only what is read here anyway is looked
    at, so the check costs no request.
    """
    specs = pathspecs(paths)
    local = {p: f.sha256 for p, f in scanned.files.items()}
    remote = remote if remote is not None else state.remote_view()
    among = None
    if _unread_view(state, remote):
        agreed, base, theirs = state.compare()
        if specs:
            _check_matched(specs, scanned, agreed, base, theirs)
        among = diff.unsettled(local, agreed, base, theirs)
        both = state.records("base", [p for p in among if p in agreed])
        base.update(both)
        theirs.update(both)  # the same row on both sides
        candidates: Iterable[str] = (p for p in among if p in base or p in theirs)
    else:
        base, theirs = state.base(), remote.records
        if specs:
            _check_matched(specs, scanned, {}, base, theirs)
        candidates = set(base) | set(theirs)
    # Ignored paths are left alone on both sides: ignoring a synced file
    # neither deletes it remotely nor brings it down again.
    ignored = [p for p in candidates if scanned.ignored(p)] if scanned.has_rules else []
    wanted = None if specs is None or any(p == "." for _, p in specs) else [p for _, p in specs]
    return diff.reconcile(local, base, theirs, skipped=[*scanned.skipped, *ignored],
                          paths=wanted, among=among)


def _check_matched(specs: Sequence[tuple[str, str]], scanned: ScanResult,
                   agreed: Mapping[str, str | None], base: Mapping[str, Record],
                   theirs: Mapping[str, Record]) -> None:
    """Raise PathspecError for a path that is ignored, or that names nothing.

    A path names something if it is a file of the scan or a live record of
    the base or the remote (``agreed`` maps the paths on which both agree
    to the sha256, None for a tombstone), or a folder above one; or if it
    is, is under or is above a path the scan skipped (a symbolic link, an
    unreadable file or folder: the scan warns of it, and what lies under
    it is unknown).
    """
    def known_file(path: str) -> bool:
        return (path in scanned.files or agreed.get(path) is not None
                or any(r is not None and not r.deleted for r in (base.get(path),
                                                                theirs.get(path))))

    def names() -> Iterator[str]:
        yield from scanned.files
        yield from scanned.skipped
        yield from (p for p, sha in agreed.items() if sha is not None)
        yield from (p for p, r in base.items() if not r.deleted)
        yield from (p for p, r in theirs.items() if not r.deleted)

    specs = [(arg, path) for arg, path in specs if path != "."]
    if scanned.has_rules:
        for arg, path in specs:
            # As the walk decides: a folder is ignored if the rules match it
            # with a slash (``logs/``), a file if they match its path.
            if scanned.ignored(path) or (not known_file(path)
                                         and scanned.ignored_folder(path)):
                raise PathspecError(f"pathspec {arg!r} is ignored by the ignore rules; "
                                    "s3sync leaves it alone")
    left = [(arg, path) for arg, path in specs
            if not known_file(path)
            and not any(path == s or path.startswith(s + "/") for s in scanned.skipped)]
    if left:  # folders, or nothing: one pass over every name for each
        left = [(arg, path) for arg, path in left
                if not any(n.startswith(path + "/") for n in names())]
    if left:
        more = f" (and {len(left) - 1} more)" if len(left) > 1 else ""
        raise PathspecError(f"pathspec {left[0][0]!r}{more} did not match any file(s) "
                            "known to s3sync")


def _unread_view(state: State, manifest: Manifest) -> bool:
    """Whether the manifest's records are this state's remote table, not yet decoded."""
    records = manifest.records
    return isinstance(records, StoredRecords) and records.owned_by(state) and records.unread


def unreachable(state: State, scanned: ScanResult, remote: Manifest
                ) -> list[tuple[str, UnsafePathError]]:
    """Remote changes under a local folder the scan could not enter.

    Nothing is written through a symlinked or unreadable folder; each such
    change is reported rather than silently left behind.
    """
    if not scanned.skipped:
        return []
    if _unread_view(state, remote):
        _, base, theirs = state.compare()  # where base and remote agree nothing changed
    else:
        base, theirs = state.base(), remote.records
    out = []
    for path, rec in sorted(theirs.items()):
        folder = next((s for s in scanned.skipped if path == s or path.startswith(s + "/")),
                      None)
        if folder is None or scanned.ignored(path):
            continue
        old = base.get(path)
        if (None if rec.deleted else rec.sha256) != (None if old is None or old.deleted
                                                     else old.sha256):
            out.append((path, UnsafePathError(
                f"{path}: not pulled: {folder} is a symbolic link, a special file or cannot "
                "be read")))
    return out


def _run(items: Sequence, work: Callable, jobs: int, record: Callable,
         on_done: OnDone | None) -> TransferResult:
    """Run ``work`` on items in a pool; ``record`` each result on this thread."""
    done, failed, errors = [], [], []
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(work, item): item for item in items}
        try:
            for future in as_completed(futures):
                path = futures[future].path
                try:
                    result = future.result()
                except (AccessDeniedError, RemoteNotFoundError):
                    raise  # the same for every file: stop, and say it once
                except SyncError as exc:
                    failed.append((path, str(exc)))
                    errors.append(exc)
                    if on_done:
                        on_done(path, str(exc))
                    continue
                record(result)
                done.append(result)
                if on_done:
                    on_done(path, None)
        except BaseException:
            for f in futures:
                f.cancel()
            raise
    return TransferResult(tuple(sorted(done, key=lambda r: r.path)),
                          tuple(sorted(failed)),
                          sum(r.size for r in done if not r.deleted), tuple(errors))


def upload(state: State, remote: Remote, data_dir: str, files: Sequence[LocalFile], *,
           author: str, time: str, jobs: int = 8,
           progress: Callable[[int], None] | None = None,
           on_done: OnDone | None = None) -> TransferResult:
    """Upload files and stage them for the next commit.

    Each upload is conditional on the cached remote version of its path.
    A finished upload stays staged (pending) until a commit names it, so a
    run that dies before committing does not send it again. A file the
    scan left ``UNHASHED`` (new on both sides: see ``settle``) is hashed as
    it is sent, and its stat cache row is recorded with it.
    """
    # The cached remote records of these paths only: one changed file in a
    # remote of 100,000 decodes one record, not the whole table.
    current = state.records("remote", [f.path for f in files])
    live = {p: r.sha256 for p, r in current.items() if not r.deleted}
    pending = state.pending()
    tried = state.sending()
    for f in files:
        if f.sha256 == UNHASHED and (f.path in current or f.path in pending
                                     or f.path in tried):
            raise ValueError(f"{f.path}: not hashed, but not new either (see settle)")
    state.will_send((f.path, f.sha256) for f in files)
    if live:
        learn_server(state, remote)  # a replaced version is copied to the trash
    stats = {}  # path -> the stat cache row of a file hashed on its way up

    def work(f: LocalFile) -> Entry:
        if f.sha256 == UNHASHED:
            entry, stats[f.path] = transfer.upload_new(remote, data_dir, f, author=author,
                                                       time=time, progress=progress)
            return entry
        mine = pending.get(f.path, (None, None))[0]
        # An earlier run that died sending a deferred file noted no sha256.
        was = tried.get(f.path)
        return transfer.upload(remote, data_dir, f, current.get(f.path),
                               author=author, time=time, pending=mine,
                               maybe_sent=was in (f.sha256, UNHASHED), progress=progress)

    def record(entry: Entry) -> None:
        row = stats.pop(entry.path, None)
        state.add_pending(entry, live.get(entry.path), stats=[row] if row else ())

    return _run(files, work, jobs, record, on_done)


def withdraw_stale(state: State, remote: Remote) -> list[str]:
    """Take back staged uploads that the remote has moved past.

    A staged change based on a version the cached manifest no longer holds
    can never be committed: someone else changed or deleted the path first.
    Its object would stand at the key as an orphan and block every other
    push of the path, so it goes to the trash (the local file keeps the
    content too) and off the key, unless the manifest names it after all.
    """
    if not state.has_pending():
        return []  # the usual case: no need to read the cached manifest
    manifest = state.remote()
    stale = {p: rec for p, (rec, based_on) in state.pending().items()
             if manifest.sha(p) != based_on}
    for path, rec in stale.items():
        named = manifest.records.get(path)
        if rec.deleted or (named is not None and not named.deleted and named.etag == rec.etag):
            continue
        learn_server(state, remote)
        transfer.move_to_trash(remote, path, rec.sha256, rec.etag)  # False: no longer ours
    state.drop_pending(stale)
    return sorted(stale)


def tombstone(state: State, data_dir: str, paths: Iterable[str], *, author: str,
              time: str) -> list[Tombstone]:
    """Stage the deletion of paths that are gone locally and live on the remote."""
    current = state.remote()
    out = []
    for path in paths:
        if os.path.lexists(transfer.local_path(data_dir, path)):
            raise LocalChangedError(f"{path} still exists locally; not deleting it remotely")
        rec = current.records.get(path)
        if rec is None or rec.deleted:
            raise SyncError(f"{path} is not on the remote")
        out.append(transfer.tombstone(rec, author=author, time=time))
    for t in out:
        state.add_pending(t, t.sha256)
    return out


def commit(state: State, remote: Remote, *, author: str, time: str,
           message: str = "", fetched: bool = False) -> CommitResult:
    """Commit every staged change as the next generation, then tidy up.

    The commit goes on top of the cached remote manifest. If a staged
    change was based on a version that is no longer the remote's, this
    raises PreconditionFailed; if another push took the generation first,
    CommitRaceError. Either way nothing is written: fetch, and try again.
    Unless the caller has just ``fetched``, one LIST first checks that the
    cached manifest is still the remote's head, so a stale or reset
    workspace can never leave a gap in the journal.
    """
    before = state.remote()
    if not fetched:
        newer, _ = journal.new_generations(remote, before.generation,
                                           after_etag=before.head_etag)
        if newer:
            raise CommitRaceError(
                f"another push committed generation {before.generation + 1} first")
    staged = state.pending()
    if not staged:
        raise UsageError("nothing to commit: upload or tombstone something first")
    moved = sorted(p for p, (_, based_on) in staged.items() if before.sha(p) != based_on)
    if moved:
        raise PreconditionFailed(f"{moved[0]} was changed on the remote after it was staged"
                                 + (f" (and {len(moved) - 1} more)" if len(moved) > 1 else ""))
    changes = [rec for rec, _ in staged.values()]
    manifest, done = journal.write_commit(remote, before, changes, author=author,
                                          time=time, message=message)
    owed = [(rec, before.records[rec.path].etag) for rec in done.changes
            if rec.deleted and before.sha(rec.path) is not None]
    state.committed(manifest, done.changes, owed)
    trashed, left = finish_trash(state, remote)
    journal.maybe_snapshot(remote, manifest)
    return CommitResult(done, manifest, tuple(trashed), tuple(left))


def download(state: State, remote: Remote, data_dir: str, paths: Iterable[str],
             scanned: ScanResult, *, force: bool = False, jobs: int = 8,
             progress: Callable[[int], None] | None = None,
             on_done: OnDone | None = None) -> TransferResult:
    """Make each local path what the cached remote manifest says, and record it.

    A local file that differs from both the base and the remote holds work
    of its own and is not replaced unless ``force``. Deleted remote paths
    are removed locally; files already equal to the remote are only
    recorded in the base.
    """
    remote_records = state.remote().records
    base = state.base()
    tmp_dir = state.tmp_dir
    stats = {}  # path -> the stat cache row of the file downloaded there

    def work(rec: Record) -> Record:
        path = rec.path
        local = scanned.files.get(path)
        local_sha = local.sha256 if local else None
        remote_sha = None if rec.deleted else rec.sha256
        base_rec = base.get(path)
        base_sha = None if base_rec is None or base_rec.deleted else base_rec.sha256
        if local_sha != remote_sha and not force and local_sha not in (base_sha, None):
            raise LocalChangedError(f"{path} has local changes; not overwriting it")
        if remote_sha is None:
            if local is not None:
                transfer.delete_local(data_dir, path, local)
        elif local_sha != remote_sha:
            stats[path] = transfer.download(remote, data_dir, tmp_dir, rec, local,
                                            progress=progress)
        return rec

    records = []
    for p in paths:
        rec = remote_records.get(check_path(p))
        if rec is None:
            raise SyncError(f"{p} is not on the remote")
        records.append(rec)
    def record(rec: Record) -> None:
        row = stats.pop(rec.path, None)
        state.set_base([rec], stats=[row] if row else ())

    return _run(records, work, jobs, record, on_done)
