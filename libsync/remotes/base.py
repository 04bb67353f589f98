"""The narrow storage interface every remote implements.

Keys are relative to the remote's root and come from ``libsync.layout``.
Conditional writes are part of the interface, not an option of one
backend: ``if_none_match`` creates only if absent, ``if_match`` replaces
only the version with that etag, and a loser gets ``PreconditionFailed``.
Every remote runs the contract suite in ``tests/remotes/``.
"""

from __future__ import annotations

import abc
import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from ..errors import LocalChangedError

Progress = Callable[[int], None]
"""Called with the number of bytes moved since the last call."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    sha256: str | None = None


class Remote(abc.ABC):
    url: str
    # Whether the server itself honours the conditions of a server-side copy
    # (None: not known yet). A remote whose server does not still keeps the
    # contract of copy(), at a cost; see S3Remote.
    copy_conditions: bool | None = True

    @abc.abstractmethod
    def get(self, key: str, *, if_match: str | None = None) -> bytes:
        """Read a small object whole. NotFoundError if absent."""

    @abc.abstractmethod
    def get_into(self, key: str, out: BinaryIO, *, if_match: str | None = None,
                 progress: Progress | None = None, size: int | None = None) -> ObjectInfo:
        """Stream an object into an open file.

        ``size``, with ``if_match``, is that version's size as the caller
        knows it (the manifest's): a remote may plan its reads by it.
        """

    @abc.abstractmethod
    def put(self, key: str, data: bytes, *, if_none_match: bool = False,
            if_match: str | None = None) -> str:
        """Write a small object; returns its etag."""

    @abc.abstractmethod
    def put_file(self, key: str, path: str, *, sha256: str,
                 if_none_match: bool = False, if_match: str | None = None,
                 progress: Progress | None = None) -> str:
        """Upload a local file whose content must hash to ``sha256``.

        Bytes that do not match are never published (LocalChangedError when
        the file is seen to change, IntegrityError when the server refuses
        the checksum), so a file edited during its upload never lands torn.
        """

    def put_new_file(self, key: str, path: str, *, size: int, mtime_ns: int,
                     progress: Progress | None = None) -> tuple[str, str]:
        """Create ``key`` (PreconditionFailed if it exists) from a local file
        whose sha256 is not known yet; returns (etag, sha256 of what was sent).

        For a large new file this saves reading it twice, once to hash it
        and once to send it: the remote hashes the bytes on their way, so
        the digest and the object cannot disagree. A file that no longer
        has ``size`` and ``mtime_ns``, or changes while it is read, is not
        published (LocalChangedError). This default hashes first.
        """
        with open(path, "rb") as f:
            before = same_file(f, size, mtime_ns, path)
            sha = hashlib.file_digest(f, "sha256").hexdigest()
            same_file(f, size, mtime_ns, path, before)
        return self.put_file(key, path, sha256=sha, if_none_match=True,
                             progress=progress), sha

    @abc.abstractmethod
    def head(self, key: str) -> ObjectInfo | None:
        """The object's metadata, or None if absent."""

    @abc.abstractmethod
    def list(self, prefix: str = "", *, start_after: str | None = None
             ) -> Iterator[ObjectInfo]:
        """Every key under ``prefix`` in byte order, after ``start_after``."""

    @abc.abstractmethod
    def copy(self, src: str, dst: str, *, if_match: str | None = None,
             if_none_match: bool = False) -> str:
        """Copy the version of ``src`` with etag ``if_match`` to ``dst``.

        With ``if_none_match`` the copy is made only if ``dst`` is absent.
        Either condition unmet raises PreconditionFailed and writes nothing.
        """

    def probe_copy_conditions(self) -> bool:
        """Ask the server whether it honours copy conditions itself."""
        return True

    @abc.abstractmethod
    def delete(self, key: str, *, if_match: str | None = None) -> None:
        """Remove a key; absent keys are not an error."""

    def close(self) -> None:  # noqa: B027 - most remotes hold nothing to release
        """Release connections and threads."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def same_file(f: BinaryIO, size: int, mtime_ns: int, path: str,
              before: os.stat_result | None = None) -> os.stat_result:
    """The open file's stat, checked against the size and mtime the scan saw
    and, after the read, against ``before`` (its stat when opened)."""
    st = os.fstat(f.fileno())
    if (st.st_size, st.st_mtime_ns) != (size, mtime_ns) or before is not None and (
            st.st_ctime_ns, st.st_ino) != (before.st_ctime_ns, before.st_ino):
        when = "since it was scanned" if before is None else "while it was uploaded"
        raise LocalChangedError(f"{path} changed {when}; nothing was published")
    return st
