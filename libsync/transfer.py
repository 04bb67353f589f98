"""Moving bytes: upload, download, tombstone, and the trash moves.

Every write to a shared object is conditional on the version this side
saw, and every version that is replaced or deleted is first copied to the
trash under a key named by its content. Downloads land in a temporary file,
are checked against the manifest's sha256, and replace the target only if
the local file is still what the plan saw.
"""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from time import time_ns

from . import layout
from .errors import (
    IntegrityError,
    LocalChangedError,
    LocalFileError,
    PreconditionFailed,
    UnsafePathError,
)
from .manifest import Entry, Record, Tombstone, check_path
from .remotes.base import Remote
from .scan import LocalFile
from .state import CachedStat

Progress = Callable[[int], None]


def local_path(data_dir: str, path: str) -> str:
    """The file system path for a data path, refusing any way out of the folder.

    Besides the textual checks, no folder on the way may be a symlink: a
    link planted in the data folder could otherwise redirect a download.
    """
    check_path(path)
    # The data folder itself may be a link (the user's choice); only what is
    # below it is checked, so abspath (no system calls) is root enough.
    root = os.path.abspath(data_dir)
    target = os.path.join(root, *path.split("/"))
    parent = os.path.dirname(target)
    while parent != root:
        if os.path.islink(parent):
            link = os.path.relpath(parent, root)
            raise UnsafePathError(f"unsafe path {path!r}: {link} is a symlink")
        parent = os.path.dirname(parent)
    return target


def upload(remote: Remote, data_dir: str, file: LocalFile, current: Record | None, *,
           author: str, time: str, pending: Record | None = None, maybe_sent: bool = False,
           progress: Progress | None = None) -> Entry:
    """Put a local file at its key, conditional on the remote version ``current``.

    ``pending`` is this workspace's own earlier upload of the path that no
    commit names yet; if the object is still that upload it is adopted
    rather than sent twice. ``maybe_sent`` says an earlier run set out to
    send these very bytes and died before recording the outcome: what
    stands at the key is looked at first, and adopted if it is them.
    """
    key = layout.data_key(file.path)

    def entry(etag: str) -> Entry:
        return Entry(file.path, file.size, file.sha256, file.mtime_ns, author, time, etag)

    source = local_path(data_dir, file.path)
    live = current is not None and not current.deleted
    mine = pending is not None and not pending.deleted
    if mine or maybe_sent:
        info = remote.head(key)
        if info is not None and mine and info.etag == pending.etag:
            if pending.sha256 == file.sha256:
                return entry(info.etag)
            # Our own uncommitted upload is in the way of a newer edit: no
            # commit names it, and the version it replaced is in the trash.
            return entry(_put(remote, key, source, file, if_match=info.etag,
                              progress=progress))
        if maybe_sent and not (live and info is not None and info.etag == current.etag) \
                and _holds(remote, info, file):
            return entry(info.etag)
    try:
        if live and not keep_version(remote, file.path, current.sha256, current.etag):
            raise PreconditionFailed(key)
        etag = _put(remote, key, source, file, if_none_match=not live,
                    if_match=current.etag if live else None, progress=progress)
    except PreconditionFailed:
        # Our own upload from a run that died before recording it?
        info = remote.head(key)
        if _holds(remote, info, file):
            return entry(info.etag)
        raise PreconditionFailed(
            f"{file.path} was changed on the remote by someone else; fetch and try again"
        ) from None
    return entry(etag)


# A push leaves new files this large unhashed in its scan and hashes them as
# they are sent (upload_new): hashing 1 GiB first held its first part back
# by 0.7 s, and reading it twice cost that much CPU again (bench/README).
HASH_ON_UPLOAD = 64 << 20


def upload_new(remote: Remote, data_dir: str, file: LocalFile, *, author: str, time: str,
               progress: Progress | None = None) -> tuple[Entry, CachedStat | None]:
    """Create the object of a file new on both sides, hashed as it is sent
    (the scan deferred it: ``UNHASHED``); one read of the file instead of two.

    Returns its entry and, if the file kept its stat from before the read
    to after it, its stat cache row, so the next scan need not read it.
    PreconditionFailed if someone else created the path meanwhile.
    """
    source = local_path(data_dir, file.path)
    checked = time_ns()  # as the scan's: taken before the read
    try:
        before = os.stat(source, follow_symlinks=False)
        etag, sha = remote.put_new_file(layout.data_key(file.path), source, size=file.size,
                                        mtime_ns=file.mtime_ns, progress=progress)
        after = os.stat(source, follow_symlinks=False)
    except PreconditionFailed:
        raise PreconditionFailed(
            f"{file.path} was created on the remote by someone else; fetch and try again"
        ) from None
    except OSError as exc:  # the local file, not the remote: remotes raise SyncErrors
        raise LocalChangedError(f"{file.path} cannot be read any more: {exc.strerror}"
                                ) from exc
    entry = Entry(file.path, file.size, sha, file.mtime_ns, author, time, etag)
    same = (after.st_size, after.st_mtime_ns, after.st_ctime_ns, after.st_ino) == (
        before.st_size, before.st_mtime_ns, before.st_ctime_ns, before.st_ino)
    if not same or (before.st_size, before.st_mtime_ns) != (file.size, file.mtime_ns):
        return entry, None
    return entry, CachedStat(file.path, file.size, file.mtime_ns, before.st_ctime_ns,
                             before.st_ino, sha, checked)


def _put(remote: Remote, key: str, source: str, file: LocalFile, **kw) -> str:
    try:
        return remote.put_file(key, source, sha256=file.sha256, **kw)
    except OSError as exc:  # the local file, not the remote: remotes raise SyncErrors
        raise LocalChangedError(f"{file.path} cannot be read any more: {exc.strerror}") from exc


def _holds(remote: Remote, info, file: LocalFile) -> bool:
    """Whether the object ``info`` (None: absent) holds exactly the local file."""
    return (info is not None and info.size == file.size
            and sha_of(remote, info) == file.sha256)


def keep_version(remote: Remote, path: str, sha256: str, etag: str) -> bool:
    """Copy the version ``etag`` of a path's object to the trash before it goes.

    The trash key is named by content, so one already there holds this very
    version and is never overwritten. False if the object is no longer that
    version (then nothing was copied and it must not be replaced).
    """
    key = layout.data_key(path)
    try:
        remote.copy(key, layout.trash_key(path, sha256), if_match=etag, if_none_match=True)
        return True
    except PreconditionFailed:
        info = remote.head(key)  # which condition failed? rare, so one request to ask
        return info is not None and info.etag == etag


def move_to_trash(remote: Remote, path: str, sha256: str, etag: str) -> bool:
    """Move the version ``etag`` of a path's object to the trash; False if it
    changed meanwhile (then it is left where it is)."""
    if not keep_version(remote, path, sha256, etag):
        return False
    try:
        remote.delete(layout.data_key(path), if_match=etag)
    except PreconditionFailed:
        return False
    return True


def sha_of(remote: Remote, info) -> str:
    """An object's sha256: from its metadata where kept, else by reading it."""
    if info.sha256:
        return info.sha256
    sink = HashingWriter()
    remote.get_into(info.key, sink, if_match=info.etag)
    return sink.hexdigest()


def keep_in_trash(remote: Remote, data_dir: str, file: LocalFile) -> str:
    """Copy a local version to the remote trash before it is replaced.

    Used when a conflict is resolved in the remote's favour: the local
    version is not lost, and ``s3sync restore`` can bring it back.
    """
    key = layout.trash_key(file.path, file.sha256)
    try:
        remote.put_file(key, local_path(data_dir, file.path), sha256=file.sha256,
                        if_none_match=True)
    except PreconditionFailed:
        pass  # that very version is already in the trash
    return key


def tombstone(current: Record, *, author: str, time: str) -> Tombstone:
    """The record that deletes ``current``, naming where its content goes."""
    return Tombstone(current.path, current.size, current.sha256, author, time,
                     layout.trash_key(current.path, current.sha256))


def trash(remote: Remote, deleted: Tombstone, etag: str) -> bool:
    """Move a committed deletion's object to the trash; False if it changed meanwhile.

    Runs after the commit: a changed object is left alone for the next
    reconcile, never trashed in place of the version the commit deleted.
    """
    return move_to_trash(remote, deleted.path, deleted.sha256, etag)


def download(remote: Remote, data_dir: str, tmp_dir: str, entry: Entry,
             expected: LocalFile | None, *, progress: Progress | None = None,
             key: str | None = None) -> CachedStat:
    """Make the local file ``entry``'s content, verified, atomically.

    ``expected`` is the local file as the plan saw it (None: absent); if the
    file is no longer that, nothing is replaced and LocalChangedError says so.
    ``key`` reads another object than the path's own (a version in the trash).
    Returns the file's stat cache row: its bytes
    were hashed on their way in, so the next scan need not read them again.
    """
    target = local_path(data_dir, entry.path)
    try:
        return _download(remote, target, tmp_dir, entry, expected, progress, key)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise LocalFileError(f"{entry.path}: the disk is full; nothing was replaced") from exc
        raise LocalFileError(f"{entry.path}: {exc.strerror or exc}; nothing was replaced"
                             ) from exc


def _download(remote, target, tmp_dir, entry, expected, progress, key):
    os.makedirs(tmp_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=tmp_dir, prefix="download-")
    try:
        with os.fdopen(fd, "wb") as out:
            digest = HashingWriter(out)
            try:
                remote.get_into(key or layout.data_key(entry.path), digest,
                                if_match=entry.etag or None, progress=progress,
                                size=entry.size)
            except PreconditionFailed:
                if key is not None:
                    raise
                # A teammate's push is replacing the object right now; the
                # committed version was copied to the trash first.
                out.seek(0)
                out.truncate()
                digest = HashingWriter(out)
                remote.get_into(layout.trash_key(entry.path, entry.sha256), digest,
                                progress=progress)
        if digest.hexdigest() != entry.sha256:
            raise IntegrityError(f"{entry.path}: downloaded bytes do not match the manifest")
        os.utime(tmp, ns=(entry.mtime_ns, entry.mtime_ns))
        _check_unchanged(target, expected, entry.path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.replace(tmp, target)
        st = os.stat(target, follow_symlinks=False)
        # Taken after the stat: a write that slipped in since the rename has
        # an mtime within the scan's racy window of this, so it is hashed.
        checked = time_ns()
        return CachedStat(entry.path, st.st_size, st.st_mtime_ns, st.st_ctime_ns,
                          st.st_ino, entry.sha256, checked)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def delete_local(data_dir: str, path: str, expected: LocalFile) -> None:
    """Remove a local file the remote deleted, if it is still what the plan saw."""
    target = local_path(data_dir, path)
    _check_unchanged(target, expected, path)
    os.unlink(target)
    root = os.path.abspath(data_dir)
    parent = os.path.dirname(target)
    while parent != root:
        try:
            os.rmdir(parent)
        except OSError:
            break
        parent = os.path.dirname(parent)


def _check_unchanged(target: str, expected: LocalFile | None, path: str) -> None:
    try:
        st = os.stat(target, follow_symlinks=False)
    except FileNotFoundError:
        if expected is None:
            return
        raise LocalChangedError(f"{path} was deleted locally since the plan was made") from None
    if expected is None:
        raise LocalChangedError(f"{path} was created locally since the plan was made")
    if (st.st_size, st.st_mtime_ns) != (expected.size, expected.mtime_ns):
        raise LocalChangedError(f"{path} was changed locally since the plan was made")


# Local files are written at most this many bytes a call, as aws s3 cp
# writes them. Linux (6.x, ext4) gives a larger write larger page-cache
# folios, and on a virtual machine whose free memory is handed back to the
# host those cost up to twice the system time per byte: a 1 GiB download
# written 8 MiB at a time took 4.7 s, 1 MiB at a time 3.3 s, and once the
# page cache had been churned 1 MiB writes still cost three times the
# system time of 256 KiB ones (bench/README, item 5).
WRITE_SIZE = 256 << 10


# Pieces of bytes this large or larger are hashed on a thread of their own
# while they are written, so that the hash (0.7 s of CPU a GiB) and the
# writes into the page cache (up to 1.5 s a GiB here) overlap on the two
# cores instead of adding up on the thread that receives the object.
HASH_ASIDE = 1 << 20


class HashingWriter:
    """A file-like sink that hashes what passes through, to ``out`` if given."""

    def __init__(self, out=None):
        self._out = out
        self._hash = hashlib.sha256()
        self._hasher: ThreadPoolExecutor | None = None  # made for the first large piece
        self._hashing: Future | None = None  # the piece being hashed aside

    def write(self, data: bytes) -> int:
        self._wait()
        # Only bytes, which nobody can change, are hashed after write() returns.
        if self._out is None or len(data) < HASH_ASIDE or type(data) is not bytes:
            self._hash.update(data)
        else:
            if self._hasher is None:
                self._hasher = ThreadPoolExecutor(1, thread_name_prefix="s3sync-hash")
            self._hashing = self._hasher.submit(self._hash.update, data)
        if self._out is not None:
            view = memoryview(data)
            for start in range(0, len(view), WRITE_SIZE):
                self._out.write(view[start:start + WRITE_SIZE])
        return len(data)

    def _wait(self) -> None:
        if self._hashing is not None:
            hashing, self._hashing = self._hashing, None
            hashing.result()

    def hexdigest(self) -> str:
        self._wait()
        if self._hasher is not None:
            self._hasher.shutdown()
            self._hasher = None
        return self._hash.hexdigest()
