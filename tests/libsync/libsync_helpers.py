"""Small builders shared by the libsync unit tests.

Named ``libsync_helpers`` rather than ``helpers``: test folders have no
``__init__.py``, so a module's basename must be unique across ``tests/``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from libsync.manifest import Entry, Tombstone

TIME = "2024-05-01T12:00:00Z"
# An mtime safely in the past (2023-11-14), far from any racy window.
OLD_NS = 1_700_000_000_000_000_000


def sha(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode()
    return hashlib.sha256(data).hexdigest()


def entry(path: str, content: bytes | str = "x", *, etag: str = "etag-1",
          author: str = "ann", mtime_ns: int = OLD_NS, time: str = TIME) -> Entry:
    size = len(content.encode() if isinstance(content, str) else content)
    return Entry(path, size, sha(content), mtime_ns, author, time, etag)


def tombstone(path: str, content: bytes | str = "x", *, author: str = "bob",
              time: str = TIME) -> Tombstone:
    size = len(content.encode() if isinstance(content, str) else content)
    digest = sha(content)
    return Tombstone(path, size, digest, author, time, f".s3sync/trash/{path}/{digest}")


def write(root: str | Path, rel: str, content: bytes | str, *,
          mtime_ns: int | None = OLD_NS) -> Path:
    """Write a file under ``root``; its mtime is set to ``mtime_ns`` unless None."""
    p = Path(root, *rel.split("/"))
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(content.encode() if isinstance(content, str) else content)
    if mtime_ns is not None:
        os.utime(p, ns=(mtime_ns, mtime_ns))
    return p


def tree(root: str | Path) -> dict[str, bytes]:
    """Every regular file under ``root`` by its POSIX relative path."""
    root = Path(root)
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}
