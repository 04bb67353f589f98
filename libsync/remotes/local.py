"""A plain folder as a remote: a shared drive, or the zero-set-up default.

Conditional writes must be as atomic here as on S3, so every change takes
an exclusive ``flock`` on a lock file inside the folder, and new bytes are
written to a temporary file beside their target and renamed into place.
The etag is derived from the file's identity (inode, mtime, size): a
rename-into-place always gives a new one, and reading it costs one stat.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO
from urllib.parse import unquote, urlparse

from ..errors import (
    AccessDeniedError,
    LocalChangedError,
    NotFoundError,
    PreconditionFailed,
    RemoteError,
    RemoteNotFoundError,
    SyncError,
)
from ..transfer import WRITE_SIZE
from .base import ObjectInfo, Progress, Remote, same_file

# Kept inside the metadata prefix and hidden from list(): the folder's own
# bookkeeping is not an object.
_PRIVATE = ".s3sync/.folder/"
_CHUNK = WRITE_SIZE  # transfer.WRITE_SIZE says why


def folder_of(url: str) -> str:
    if url.startswith("file://"):
        parsed = urlparse(url)
        if parsed.netloc not in ("", "localhost"):
            raise RemoteError(f"file URL with a host is not supported: {url}")
        return unquote(parsed.path)
    return url


class LocalRemote(Remote):
    def __init__(self, url: str, *, create: bool = False):
        self.url = url
        self.root = os.path.abspath(folder_of(url))
        if create:
            os.makedirs(self.root, exist_ok=True)
        if not os.path.isdir(self.root):
            raise RemoteNotFoundError(f"remote folder {self.root} does not exist")

    # -- helpers -------------------------------------------------------
    def _path(self, key: str) -> str:
        if not key or key.startswith("/") or ".." in key.split("/"):
            raise RemoteError(f"bad key {key!r}")
        return os.path.join(self.root, *key.split("/"))

    @contextmanager
    def _locked(self):
        private = os.path.join(self.root, *_PRIVATE.split("/"))
        with _oserrors(self.root):
            os.makedirs(private, exist_ok=True)
            fd = os.open(os.path.join(private, "lock"), os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _tmpfile(self):
        private = os.path.join(self.root, *_PRIVATE.split("/"), "tmp")
        with _oserrors(self.root):
            os.makedirs(private, exist_ok=True)
            return tempfile.NamedTemporaryFile(dir=private, delete=False)

    @staticmethod
    def _etag(st: os.stat_result) -> str:
        return f"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"

    def _current_etag(self, path: str) -> str | None:
        try:
            return self._etag(os.stat(path))
        except FileNotFoundError:
            return None

    def _check(self, path: str, key: str, if_none_match: bool, if_match: str | None):
        current = self._current_etag(path)
        if if_none_match and current is not None:
            raise PreconditionFailed(f"{key} already exists")
        if if_match is not None and current != if_match:
            raise PreconditionFailed(f"{key} changed (etag {current}, expected {if_match})")

    def _install(self, tmp: str, key: str, if_none_match: bool, if_match: str | None) -> str:
        path = self._path(key)
        try:
            with self._locked(), _oserrors(key):
                self._check(path, key, if_none_match, if_match)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                os.replace(tmp, path)
                return self._etag(os.stat(path))
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    # -- interface -----------------------------------------------------
    def get(self, key, *, if_match=None):
        path = self._path(key)
        with _oserrors(key):
            try:
                with open(path, "rb") as f:
                    if if_match is not None and self._etag(os.fstat(f.fileno())) != if_match:
                        raise PreconditionFailed(f"{key} changed")
                    return f.read()
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                raise NotFoundError(f"{key} not found on {self.url}") from None

    def get_into(self, key, out: BinaryIO, *, if_match=None, progress: Progress | None = None,
                 size=None):
        path = self._path(key)
        with _oserrors(key):
            try:
                f = open(path, "rb")
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                raise NotFoundError(f"{key} not found on {self.url}") from None
        with f:
            st = os.fstat(f.fileno())
            etag = self._etag(st)
            if if_match is not None and etag != if_match:
                raise PreconditionFailed(f"{key} changed")
            while True:
                with _oserrors(key):
                    chunk = f.read(_CHUNK)
                if not chunk:
                    break
                out.write(chunk)  # errors writing are the reader's, not the remote's
                if progress:
                    progress(len(chunk))
        return ObjectInfo(key, st.st_size, etag)

    def put(self, key, data, *, if_none_match=False, if_match=None):
        tmp = self._tmpfile()
        with tmp, _oserrors(key):
            tmp.write(data)
        return self._install(tmp.name, key, if_none_match, if_match)

    def put_file(self, key, path, *, sha256, if_none_match=False, if_match=None,
                 progress=None):
        tmp, digest = self._copy_in(key, path, progress)
        if digest != sha256:
            os.unlink(tmp)
            raise LocalChangedError(f"{path} changed while it was uploaded; nothing was "
                                    "published")
        return self._install(tmp, key, if_none_match, if_match)

    def put_new_file(self, key, path, *, size, mtime_ns, progress=None):
        tmp, digest = self._copy_in(key, path, progress, (size, mtime_ns))
        return self._install(tmp, key, True, None), digest

    def _copy_in(self, key, path, progress, expect=None) -> tuple[str, str]:
        """A private copy of a local file, hashed as it is copied: (its path, sha256).
        With ``expect`` (size, mtime), the file must keep that stat throughout."""
        tmp = self._tmpfile()
        digest = hashlib.sha256()
        try:
            with tmp, open(path, "rb") as src, _oserrors(key):
                before = same_file(src, *expect, path) if expect else None
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    tmp.write(chunk)
                    if progress:
                        progress(len(chunk))
                if expect:
                    same_file(src, *expect, path, before)
        except BaseException:
            os.unlink(tmp.name)
            raise
        return tmp.name, digest.hexdigest()

    def head(self, key):
        try:
            st = os.stat(self._path(key))
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not os.path.isfile(self._path(key)):
            return None
        return ObjectInfo(key, st.st_size, self._etag(st))

    def list(self, prefix="", *, start_after=None) -> Iterator[ObjectInfo]:
        # Start the walk at the deepest folder the prefix names.
        top = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        base = os.path.join(self.root, *top.split("/")) if top else self.root
        keys = []
        for dirpath, _dirs, filenames in os.walk(base):
            rel = os.path.relpath(dirpath, self.root)
            rel = "" if rel == "." else rel.replace(os.sep, "/") + "/"
            for name in filenames:
                key = rel + name
                if key.startswith(prefix) and not key.startswith(_PRIVATE):
                    if start_after is None or key.encode() > start_after.encode():
                        keys.append(key)
        for key in sorted(keys, key=str.encode):
            info = self.head(key)
            if info is not None:
                yield info

    def copy(self, src, dst, *, if_match=None, if_none_match=False):
        src_path = self._path(src)
        tmp = self._tmpfile()
        with tmp, _oserrors(src):
            try:
                f = open(src_path, "rb")
            except FileNotFoundError:
                os.unlink(tmp.name)
                if if_match is not None:  # as for put(): the version is gone
                    raise PreconditionFailed(f"{src} was deleted") from None
                raise NotFoundError(f"{src} not found on {self.url}") from None
            with f:
                if if_match is not None and self._etag(os.fstat(f.fileno())) != if_match:
                    os.unlink(tmp.name)
                    raise PreconditionFailed(f"{src} changed")
                shutil.copyfileobj(f, tmp, _CHUNK)
        return self._install(tmp.name, dst, if_none_match, None)

    def delete(self, key, *, if_match=None):
        path = self._path(key)
        with self._locked(), _oserrors(key):
            current = self._current_etag(path)
            if current is None:
                return
            if if_match is not None and current != if_match:
                raise PreconditionFailed(f"{key} changed")
            os.unlink(path)
            # Drop folders the key leaves empty, as S3 has no folders.
            parent = os.path.dirname(path)
            while parent != self.root:
                try:
                    os.rmdir(parent)
                except OSError:
                    break
                parent = os.path.dirname(parent)


@contextmanager
def _oserrors(what: str):
    """Turn OS errors into the library's kinds, naming the object."""
    try:
        yield
    except SyncError:
        raise
    except PermissionError as exc:
        raise AccessDeniedError(f"permission denied on {what}: {exc.strerror}") from exc
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise RemoteError(f"remote folder is full writing {what}") from exc
        raise RemoteError(f"{what}: {exc.strerror or exc}") from exc
