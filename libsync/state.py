"""The workspace's local state: one SQLite database in ``<data>/.s3sync/``.

It holds the merge base (what this workspace last agreed with the remote
on, per path), a cache of the remote manifest at the last generation read,
uploads not yet committed, and the stat cache. Every change is a
transaction written as each file finishes, so an interrupted run resumes
from what was really done; WAL mode keeps that safe through ``kill -9``.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import sqlite3
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import NamedTuple

from .errors import FormatError, LockedError
from .manifest import STATE_DIR, Entry, Manifest, Record, Tombstone, dumps
from .storedview import StoredRecords

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS base (path TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS remote (path TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pending (path TEXT PRIMARY KEY, record TEXT NOT NULL,
    based_on TEXT);
CREATE TABLE IF NOT EXISTS sending (path TEXT PRIMARY KEY, sha256 TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trash_todo (path TEXT PRIMARY KEY, record TEXT NOT NULL,
    etag TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stat_cache (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, sha256 TEXT NOT NULL,
    checked_ns INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS scan_snapshot (id INTEGER PRIMARY KEY CHECK (id = 1),
    rules TEXT NOT NULL, listing BLOB NOT NULL, result BLOB NOT NULL);
"""


# The most of the database the snapshot's read maps (see State.scan_snapshot).
_SNAPSHOT_MAP_BYTES = 1 << 30

_STAT_SELECT = ("SELECT path, size, mtime_ns, ctime_ns, inode, sha256, checked_ns "
                "FROM stat_cache")
_STAT_INSERT = "INSERT OR REPLACE INTO stat_cache VALUES (?,?,?,?,?,?,?)"


class CachedStat(NamedTuple):
    """What a file's stat was when it was last hashed, and when that was.

    A tuple, read straight from SQLite: a scan loads one per file.
    """

    path: str
    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    sha256: str
    checked_ns: int


def _decode(text: str) -> Record:
    """A record this database holds: checked (record_from_dict) before it was
    written, so not checked again; 100,000 checks would double a no-op."""
    d = json.loads(text)
    return Tombstone(**d) if d.pop("deleted", False) else Entry(**d)


def _sha_of(text: str) -> str | None:
    """A stored record's sha256 (None for a tombstone) without decoding it.

    Rows are written by ``manifest.dumps`` (sorted keys, no spaces), where
    ``"sha256":"`` can only be the key: a quote inside a value is escaped.
    A row of any other shape, or a tombstone, is decoded.
    """
    i = text.find('"sha256":"')
    if i < 0 or text[i + 74:i + 75] != '"' or '"deleted":' in text:
        rec = _decode(text)
        return None if rec.deleted else rec.sha256
    return text[i + 10:i + 74]


class Comparison(NamedTuple):
    """``State.compare()``: the base and the cached remote, path by path."""

    agreed: dict[str, str | None]  # same record on both sides: its sha256, None if deleted
    base: dict[str, Record]        # the base's records of every other path
    remote: dict[str, Record]      # the remote's records of every other path


class StatCacheWriter:
    """Stat cache rows written as they come, in one transaction begun by the first."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db
        self.open = False  # a transaction begun and neither committed nor rolled back

    def _begin(self) -> None:
        if not self.open:
            self._db.execute("BEGIN IMMEDIATE")
            self.open = True

    def add(self, rows: Iterable[tuple]) -> None:
        self._begin()
        self._db.executemany(_STAT_INSERT, rows)

    def finish(self, *, drop: Iterable[str] = (),
               snapshot: tuple[str, bytes, bytes] | None = None) -> None:
        """Drop rows, replace the snapshot (or drop it), and commit it all."""
        self._begin()
        db = self._db
        db.executemany("DELETE FROM stat_cache WHERE path=?", ((p,) for p in drop))
        db.execute("DELETE FROM scan_snapshot")
        if snapshot is not None:
            # Written through blob handles: binding them would copy 15 MB
            # or so at 100,000 files, at the scan's peak of memory.
            key, listing, result = snapshot
            db.execute("INSERT INTO scan_snapshot VALUES (1, ?, zeroblob(?), zeroblob(?))",
                       (key, len(listing), len(result)))
            for column, data in (("listing", listing), ("result", result)):
                with db.blobopen("scan_snapshot", column, 1) as blob:
                    blob.write(data)
        db.execute("COMMIT")
        self.open = False


def state_dir(data_dir: str) -> str:
    return os.path.join(data_dir, STATE_DIR)


class State:
    def __init__(self, data_dir: str):
        self.dir = state_dir(data_dir)
        os.makedirs(self.dir, exist_ok=True)
        self.tmp_dir = os.path.join(self.dir, "tmp")
        self.db = sqlite3.connect(os.path.join(self.dir, "state.db"),
                                  isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        version = self.get_meta("schema")
        if version is None:
            self.set_meta("schema", str(SCHEMA_VERSION))
        elif version != str(SCHEMA_VERSION):
            raise FormatError(f"local state has schema {version}, this s3sync reads "
                              f"{SCHEMA_VERSION}; run 's3sync reset --local-only'")
        self._lock_fd: int | None = None
        self._views: list[weakref.ref[StoredRecords]] = []  # unhashable: a Mapping

    def close(self) -> None:
        self.unlock()
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- the workspace lock --------------------------------------------
    def lock(self) -> None:
        """Keep other s3sync processes off this workspace until close()."""
        fd = os.open(os.path.join(self.dir, "lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise LockedError("another s3sync is running in this workspace") from exc
            raise
        self._lock_fd = fd
        # Half-done downloads of a run that was killed: nobody else can be
        # writing them now that the lock is ours.
        shutil.rmtree(self.tmp_dir, ignore_errors=True)

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- meta -----------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # -- records: base, remote cache, pending uploads -------------------
    # Rows were checked (record_from_dict) before they were written here;
    # re-checking 100,000 of them on every run would double a no-op.
    def _records(self, table: str) -> dict[str, Record]:
        out: dict[str, Record] = {}
        for (text,) in self.db.execute(f"SELECT record FROM {table}"):  # noqa: S608
            rec = _decode(text)
            out[rec.path] = rec
        return out

    def _record(self, table: str, path: str) -> Record | None:
        row = self.db.execute(f"SELECT record FROM {table} WHERE path=?",  # noqa: S608
                              (path,)).fetchone()
        return _decode(row[0]) if row else None

    def records(self, table: str, paths: Iterable[str]) -> dict[str, Record]:
        """The records of just these paths in ``base`` or ``remote``."""
        if table not in ("base", "remote"):
            raise ValueError(table)
        out = {}
        for path in paths:
            rec = self._record(table, path)
            if rec is not None:
                out[path] = rec
        return out

    def _count(self, table: str) -> int:
        return self.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608

    def _live_paths(self) -> list[str]:
        # Only a tombstone's row holds the key "deleted" (see _sha_of), so a
        # substring test spares parsing the JSON of every live row.
        rows = self.db.execute("SELECT path FROM remote WHERE instr(record, '\"deleted\":') = 0 "
                               "OR NOT json_extract(record, '$.deleted')").fetchall()
        return [p for (p,) in rows]

    def compare(self) -> Comparison:
        """Base against cached remote in one pass over the tables.

        A path whose base and remote rows are the same text is agreed and
        only its sha256 is read; the records of every other path are
        decoded. That is what lets a no-op plan skip decoding 100,000 rows.
        """
        agreed: dict[str, str | None] = {}
        base: dict[str, Record] = {}
        remote: dict[str, Record] = {}
        rows = self.db.execute(
            "SELECT b.path, b.record, CASE WHEN r.record IS b.record THEN NULL "
            "ELSE coalesce(r.record, '') END FROM base b LEFT JOIN remote r ON r.path = b.path")
        for path, ours, theirs in rows:
            if theirs is None:
                agreed[path] = _sha_of(ours)
            else:
                base[path] = _decode(ours)
                if theirs:
                    remote[path] = _decode(theirs)
        for (text,) in self.db.execute("SELECT r.record FROM remote r WHERE NOT EXISTS "
                                       "(SELECT 1 FROM base b WHERE b.path = r.path)"):
            rec = _decode(text)
            remote[rec.path] = rec
        return Comparison(agreed, base, remote)

    def _put_records(self, db, table: str, records: Iterable[Record]) -> None:
        db.executemany(f"INSERT OR REPLACE INTO {table} VALUES (?, ?)",  # noqa: S608
                       ((r.path, dumps(r.to_dict()).decode()) for r in records))

    def base(self) -> dict[str, Record]:
        return self._records("base")

    def set_base(self, records: Iterable[Record] = (), *, drop: Iterable[str] = (),
                 stats: Iterable[tuple] = ()) -> None:
        """``stats``: stat cache rows of files just written with these
        records' content (a download). The scan's tree snapshot is kept:
        those files' listing lines changed, so it is not replayed whole, and
        the scan looks their rows up (``cached_stats``)."""
        with self.transaction() as db:
            self._put_records(db, "base", records)
            db.executemany("DELETE FROM base WHERE path=?", ((p,) for p in drop))
            db.executemany(_STAT_INSERT, stats)

    def remote(self) -> Manifest:
        """The remote manifest as last read (generation 0 if never read)."""
        generation, head_etag = self.remote_head()
        return Manifest(generation, self._records("remote"), head_etag)

    def remote_head(self) -> tuple[int, str | None]:
        """The generation and head etag of the cached remote manifest, from meta alone."""
        return int(self.get_meta("remote_generation") or 0), self.get_meta("remote_head_etag")

    def remote_view(self) -> Manifest:
        """``remote()`` with records decoded only when used (see ``storedview``)."""
        generation, head_etag = self.remote_head()
        view = StoredRecords(self)
        self._views = [r for r in self._views if r() is not None]
        self._views.append(weakref.ref(view))
        return Manifest(generation, view, head_etag)

    def _freeze_views(self) -> None:
        # The remote table is about to change: views made before keep theirs.
        for ref in self._views:
            view = ref()
            if view is not None:
                view.freeze()
        self._views = []

    def save_remote(self, manifest: Manifest, *, changed: Iterable[Record] | None = None) -> None:
        """Store the remote manifest; ``changed`` alone is written when given."""
        if isinstance(manifest.records, StoredRecords) and manifest.records.owned_by(self):
            manifest = Manifest(manifest.generation, manifest.records.freeze(),
                                manifest.head_etag)
        self._freeze_views()
        with self.transaction() as db:
            if changed is None:
                db.execute("DELETE FROM remote")
                changed = manifest.records.values()
            self._put_remote(db, manifest, changed)

    def _put_remote(self, db, manifest: Manifest, changed: Iterable[Record]) -> None:
        self._put_records(db, "remote", changed)
        db.execute("INSERT OR REPLACE INTO meta VALUES ('remote_generation', ?)",
                   (str(manifest.generation),))
        if manifest.head_etag is not None:
            db.execute("INSERT OR REPLACE INTO meta VALUES ('remote_head_etag', ?)",
                       (manifest.head_etag,))

    def pending(self) -> dict[str, tuple[Record, str | None]]:
        """Uploads and deletions not yet committed, with the remote sha256
        each was based on (None: the path was absent)."""
        rows = self.db.execute("SELECT record, based_on FROM pending")
        out = {}
        for record, based_on in rows:
            rec = _decode(record)
            out[rec.path] = (rec, based_on)
        return out

    def has_pending(self) -> bool:
        return self.db.execute("SELECT 1 FROM pending LIMIT 1").fetchone() is not None

    def add_pending(self, record: Record, based_on: str | None, *,
                    stats: Iterable[tuple] = ()) -> None:
        """``stats``: the stat cache row of a file hashed as it was uploaded."""
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO pending VALUES (?, ?, ?)",
                       (record.path, dumps(record.to_dict()).decode(), based_on))
            db.execute("DELETE FROM sending WHERE path=?", (record.path,))
            db.executemany(_STAT_INSERT, stats)

    def sending(self) -> dict[str, str]:
        """Uploads an earlier run set out to make and never recorded: path -> sha256."""
        return dict(self.db.execute("SELECT path, sha256 FROM sending"))

    def will_send(self, files: Iterable[tuple[str, str]]) -> None:
        """Note (path, sha256) of uploads about to start, before any byte is sent.

        A run killed after its upload landed but before add_pending() leaves
        the row, and the next run looks at the key before sending again.
        """
        with self.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO sending VALUES (?, ?)", files)

    def drop_pending(self, paths: Iterable[str]) -> None:
        with self.transaction() as db:
            db.executemany("DELETE FROM pending WHERE path=?", ((p,) for p in paths))

    def committed(self, manifest: Manifest, changes: Iterable[Record],
                  trash: Iterable[tuple[Record, str]] = ()) -> None:
        """A commit landed: one transaction for the remote view, the base,
        the staged rows it consumed, and the trash moves it still owes."""
        changes = list(changes)
        self._freeze_views()
        with self.transaction() as db:
            self._put_remote(db, manifest, changes)
            self._put_records(db, "base", changes)
            db.executemany("DELETE FROM pending WHERE path=?", ((r.path,) for r in changes))
            db.executemany("INSERT OR REPLACE INTO trash_todo VALUES (?, ?, ?)",
                           ((r.path, dumps(r.to_dict()).decode(), etag) for r, etag in trash))

    def trash_todo(self) -> list[tuple[Record, str]]:
        """Committed deletions whose move to the trash is not known to be done."""
        rows = self.db.execute("SELECT record, etag FROM trash_todo ORDER BY path")
        return [(_decode(r), etag) for r, etag in rows]

    def trash_done(self, path: str) -> None:
        self.db.execute("DELETE FROM trash_todo WHERE path=?", (path,))

    # -- the stat cache -----------------------------------------------------
    def stat_cache(self) -> dict[str, CachedStat]:
        return {p: CachedStat._make(r) for p, r in self.stat_rows().items()}

    def stat_rows(self) -> dict[str, tuple]:
        """The stat cache as plain tuples in CachedStat's field order.

        What the scan reads on every run: a tuple per row costs a fifth of
        a named one, and one ``fetchall`` is the fastest way out of SQLite.
        """
        rows = self.db.execute(_STAT_SELECT).fetchall()
        return {r[0]: r for r in rows}

    def cached_stats(self, paths: Iterable[str]) -> dict[str, tuple]:
        """The stat cache rows of a few paths, as ``stat_rows()`` gives them."""
        rows = (self.db.execute(_STAT_SELECT + " WHERE path=?", (p,)).fetchone()
                for p in paths)
        return {r[0]: r for r in rows if r is not None}

    def update_stat_cache(self, rows: Iterable[tuple], *, drop: Iterable[str] = (),
                          snapshot: tuple[str, bytes, bytes] | None = None) -> None:
        """Store rows in CachedStat's field order (CachedStat or plain tuples).

        The scan's tree snapshot (rules key, listing, packed result) is
        replaced by ``snapshot`` in the same transaction, or dropped: a
        snapshot is only as good as the stat cache it was made with.
        """
        with self.stat_cache_writer() as writer:
            writer.add(rows)
            writer.finish(drop=drop, snapshot=snapshot)

    @contextmanager
    def stat_cache_writer(self) -> Iterator[StatCacheWriter]:
        """``update_stat_cache`` in steps: rows added as a scan hashes them,
        one transaction, committed by ``finish``; rolled back if left before."""
        writer = StatCacheWriter(self.db)
        try:
            yield writer
        finally:
            if writer.open and self.db.in_transaction:
                self.db.execute("ROLLBACK")

    def scan_snapshot(self) -> tuple[str, bytes, bytes] | None:
        """The last scan's (rules key, listing, packed result), if it left one.

        Read through blob handles from a memory map of the database: a
        SELECT copies the 20 MB of a 100,000-file snapshot twice (SQLite's
        buffer, then Python's) after reading it a page per system call, 35
        to 50 ms of a warm scan, against 15. The map is dropped after.
        """
        db = self.db
        own = not db.in_transaction
        if own:
            db.execute("BEGIN")  # the three columns of one snapshot, whoever writes meanwhile
        try:
            row = db.execute("SELECT rules FROM scan_snapshot").fetchone()
            if row is None:
                return None
            db.execute(f"PRAGMA mmap_size={_SNAPSHOT_MAP_BYTES}")
            try:
                columns = []
                for column in ("listing", "result"):
                    with db.blobopen("scan_snapshot", column, 1, readonly=True) as blob:
                        columns.append(blob.read())
            finally:
                db.execute("PRAGMA mmap_size=0")
            return row[0], *columns
        finally:
            if own:
                db.execute("COMMIT")
