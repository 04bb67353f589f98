"""Entries, tombstones, commits and manifests, and their JSON form.

The JSON written here is the storage format documented in
``man/s3sync-format.5``; ``FORMAT`` is its version, and every reader refuses
a document of another version rather than guess at it. Serialisation is
deterministic (sorted keys, no spaces) so equal states give equal bytes.
"""

from __future__ import annotations

import gzip
import json
import re
import unicodedata
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .errors import FormatError, UnknownFormatError, UnsafePathError
from .paths import STATE_DIR

FORMAT = 1


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
# The common case in one match: printable ASCII segments, none empty, "." or
# "..", no drive, not under .s3sync/. Anything else takes the checks below,
# which also say what is wrong.
_SEGMENT = r"(?!\.\.?(?:/|\Z))[ -.0-\[\]-~]+"
_SAFE_ASCII = re.compile(rf"(?![A-Za-z]:)(?!\.[sS]3[sS][yY][nN][cC](?:/|\Z)){_SEGMENT}"
                         rf"(?:/{_SEGMENT})*")


def check_path(path: str) -> str:
    """Return ``path`` if it is a safe data path, else raise UnsafePathError.

    Every path read from a manifest, a journal or the command line passes
    here before it touches the disk, so a hostile remote cannot make s3sync
    write outside the data folder or into its own state.
    """
    if type(path) is str and _SAFE_ASCII.fullmatch(path):
        return path
    if not isinstance(path, str) or not path:
        raise UnsafePathError(f"unsafe path {path!r}: empty or not text")
    if _CONTROL.search(path):
        raise UnsafePathError(f"unsafe path {path!r}: control character")
    if "\\" in path:
        raise UnsafePathError(f"unsafe path {path!r}: backslash")
    if path.startswith("/") or (len(path) >= 2 and path[0].isalpha() and path[1] == ":"):
        raise UnsafePathError(f"unsafe path {path!r}: absolute or a drive")
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise UnsafePathError(f"unsafe path {path!r}: empty, '.' or '..' segment")
    if parts[0].lower() == STATE_DIR:  # also on case-insensitive disks
        raise UnsafePathError(f"unsafe path {path!r}: inside {STATE_DIR}/")
    if unicodedata.normalize("NFC", path) != path:
        raise UnsafePathError(f"unsafe path {path!r}: not NFC-normalised")
    return path


@dataclass(frozen=True)
class Entry:
    """A file as one push left it on the remote."""

    path: str
    size: int
    sha256: str
    mtime_ns: int
    author: str
    time: str
    etag: str

    deleted = False

    def to_dict(self) -> dict:
        return dict(vars(self))  # every field is a scalar: no deep copy needed


@dataclass(frozen=True)
class Tombstone:
    """A deleted file: who deleted it, what it held, and where that went."""

    path: str
    size: int
    sha256: str
    author: str
    time: str
    trash: str

    deleted = True

    def to_dict(self) -> dict:
        return {**vars(self), "deleted": True}


Record = Entry | Tombstone


_TYPES = {"path": str, "size": int, "sha256": str, "mtime_ns": int, "author": str,
          "time": str, "etag": str, "trash": str}


def record_from_dict(d: Mapping) -> Record:
    """A record read from the remote, every field checked before it is trusted."""
    try:
        d = dict(d)
        check_path(d["path"])
        cls = Tombstone if d.pop("deleted", False) is True else Entry
        _check_sha(d["sha256"])
        size = d["size"]
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise FormatError(f"bad size for {d['path']!r}")
        for name, value in d.items():
            kind = _TYPES.get(name)
            if kind is None or not isinstance(value, kind) or isinstance(value, bool):
                raise FormatError(f"malformed manifest record for {d['path']!r}: "
                                  f"bad field {name!r}")
        return cls(**d)
    except (KeyError, TypeError, ValueError) as exc:
        raise FormatError(f"malformed manifest record {d!r}: {exc}") from exc


def _check_sha(sha: str) -> None:
    if not (isinstance(sha, str) and len(sha) == 64
            and all(c in "0123456789abcdef" for c in sha)):
        raise FormatError(f"malformed sha256 {sha!r}")


@dataclass(frozen=True)
class Commit:
    """One push: the records it changed, at the generation it created."""

    generation: int
    author: str
    time: str
    message: str
    changes: tuple[Record, ...]
    # Random, so that a pusher whose answer was lost can tell its own
    # commit from another made by the same person in the same second.
    id: str = ""

    def to_json(self) -> bytes:
        doc = {"format": FORMAT, "generation": self.generation,
               "author": self.author, "time": self.time,
               "message": self.message,
               "changes": [c.to_dict() for c in self.changes]}
        if self.id:
            doc["id"] = self.id
        return dumps(doc)

    @classmethod
    def from_json(cls, data: bytes, *, where: str = "commit") -> "Commit":
        doc = loads(data, where=where)
        try:
            changes = tuple(record_from_dict(c) for c in doc["changes"])
            commit = cls(int(doc["generation"]), str(doc["author"]),
                         str(doc["time"]), str(doc.get("message", "")), changes,
                         str(doc.get("id", "")))
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"malformed {where}: {exc}") from exc
        _check_unique(r.path for r in commit.changes if not r.deleted)
        return commit


@dataclass(frozen=True)
class Manifest:
    """Every path's record at one generation."""

    generation: int = 0
    records: Mapping[str, Record] = field(default_factory=dict)
    # The etag of journal/<generation> as read: tells this history from a
    # new one after the remote was reset. None when not known.
    head_etag: str | None = field(default=None, compare=False)

    def entries(self) -> Mapping[str, Entry]:
        """The live files, without tombstones.

        Records read lazily from the local state (``storedview``) answer
        this without decoding every record.
        """
        live = getattr(self.records, "live", None)
        if live is not None:
            return live()
        return {p: r for p, r in self.records.items() if not r.deleted}

    def sha(self, path: str) -> str | None:
        rec = self.records.get(path)
        return None if rec is None or rec.deleted else rec.sha256

    def apply(self, commit: Commit) -> "Manifest":
        if commit.generation != self.generation + 1:
            raise FormatError(
                f"commit {commit.generation} does not follow generation "
                f"{self.generation}")
        records = dict(self.records)
        records.update((r.path, r) for r in commit.changes)
        _check_unique(p for p, r in records.items() if not r.deleted)
        return Manifest(commit.generation, records)

    def to_snapshot(self) -> bytes:
        doc = {"format": FORMAT, "generation": self.generation,
               "records": [self.records[p].to_dict() for p in sorted(self.records)]}
        return gzip.compress(dumps(doc), mtime=0)

    @classmethod
    def from_snapshot(cls, data: bytes) -> "Manifest":
        try:
            raw = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise FormatError(f"corrupt snapshot: {exc}") from exc
        doc = loads(raw, where="snapshot")
        try:
            records = [record_from_dict(r) for r in doc["records"]]
            generation = int(doc["generation"])
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"malformed snapshot: {exc}") from exc
        _check_unique(r.path for r in records if not r.deleted)
        return cls(generation, {r.path: r for r in records})


def _check_unique(paths: Iterable[str]) -> None:
    """Refuse live paths that collide on a case-insensitive disk.

    Two such files would overwrite each other on macOS or Windows, so a
    manifest holding both is refused rather than half-applied. Tombstones
    do not count: renaming ``Report.csv`` to ``report.csv`` is allowed.
    """
    seen: dict[str, str] = {}
    for p in paths:
        key = unicodedata.normalize("NFC", p).lower()
        if key in seen and seen[key] != p:
            raise FormatError(f"paths {seen[key]!r} and {p!r} differ only in case")
        seen[key] = p


def dumps(doc) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()


def loads(data: bytes, *, where: str) -> dict:
    """Parse a stored document and check its format version."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FormatError(f"corrupt {where}: {exc}") from exc
    if not isinstance(doc, dict):
        raise FormatError(f"corrupt {where}: not a JSON object")
    check_format(doc.get("format"), where=where)
    return doc


def check_format(version, *, where: str) -> None:
    if version != FORMAT:
        raise UnknownFormatError(
            f"{where} has format {version!r}, this s3sync reads format {FORMAT}; "
            "upgrade s3sync")
