"""Walk the data folder, apply the ignore rules, and hash what changed.

A file is hashed only when its stat differs from the stat cache, or when
its cache row is racily clean: the file's mtime is not safely older than
the moment it was last hashed, so a write in the same timestamp tick could
hide behind an unchanged stat (git's "racy git" rule). Symlinks and special
files are reported and skipped, never followed.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
import unicodedata
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import pathspec

from .errors import UnsafePathError
from .manifest import STATE_DIR, check_path
from .state import CachedStat, State

IGNORE_FILE = ".s3syncignore"
PERSONAL_IGNORE = os.path.join(STATE_DIR, "ignore")

# Timestamps are coarse (ext4 ticks, FAT's 2 s): a file whose mtime lies
# within this window of the moment it was hashed may have changed unseen.
RACY_WINDOW_NS = 2_000_000_000


# Files smaller than this are hashed on the walking thread: for a few KiB a
# thread pool costs more per file than sha256 itself, and hashlib keeps the
# GIL for small buffers anyway. Larger files go to the pool.
INLINE_MAX = 1 << 20
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)


class LocalFile(NamedTuple):
    """A regular file as the scan saw it: a tuple, since a scan makes one per file."""

    path: str
    size: int
    mtime_ns: int
    sha256: str


@dataclass(frozen=True)
class ScanResult:
    files: dict[str, LocalFile]
    warnings: tuple[str, ...]
    hashed: int
    # Paths that exist but could not be read as regular files: unknown, not
    # deleted, so no plan may tombstone them.
    skipped: frozenset[str] = frozenset()
    # The ignore rules in force: ignored paths are left alone on both sides.
    rules: pathspec.PathSpec | None = None

    @cached_property
    def has_rules(self) -> bool:
        """Whether any ignore pattern is in force (else nothing needs matching)."""
        return has_patterns(self.rules)

    def ignored(self, path: str) -> bool:
        return self.has_rules and self.rules.match_file(path)


def has_patterns(rules: pathspec.PathSpec | None) -> bool:
    """False when the rules hold no pattern at all (only blanks and comments)."""
    return rules is not None and any(p.include is not None for p in rules.patterns)


def ignore_rules(data_dir: str, extra: Iterable[str] = ()) -> pathspec.PathSpec:
    """The team's rules (config, ``.s3syncignore``) and the personal ones."""
    lines = list(extra)
    for name in (IGNORE_FILE, PERSONAL_IGNORE):
        try:
            with open(os.path.join(data_dir, name), encoding="utf-8") as f:
                lines.extend(f.read().splitlines())
        except FileNotFoundError:
            pass
    return pathspec.GitIgnoreSpec.from_lines(lines)


def is_clean(cached: CachedStat | None, st: os.stat_result) -> bool:
    """Whether the cached hash may be trusted for a file with this stat."""
    return (cached is not None
            and cached.size == st.st_size
            and cached.mtime_ns == st.st_mtime_ns
            and cached.ctime_ns == st.st_ctime_ns
            and cached.inode == st.st_ino
            and st.st_mtime_ns < cached.checked_ns - RACY_WINDOW_NS)


def _hash(fs_path: str, st: os.stat_result, now_ns: Callable[[], int]
          ) -> tuple[str | None, int, str | None]:
    """(sha256, when, None) for the file the walk stat-ed, or (None, when, problem).

    One open descriptor serves the read and the second stat (``fstat``), so
    a small file costs one open, one read and one fstat. A file that changed
    while it was read is a problem, not a hash.
    """
    checked = now_ns()
    try:
        fd = os.open(fs_path, _OPEN_FLAGS)
    except OSError as exc:
        return None, checked, f"cannot read: {exc.strerror}"
    try:
        size = st.st_size
        if size < INLINE_MAX:
            data = os.read(fd, size + 1)  # one byte more than expected tells growth
            h = hashlib.sha256(data)
            if len(data) != size:  # a short read, or the file changed: read to the end
                while chunk := os.read(fd, INLINE_MAX):
                    h.update(chunk)
        else:
            with open(fd, "rb", closefd=False) as f:
                h = hashlib.file_digest(f, "sha256")
        after = os.fstat(fd)
    except OSError as exc:
        return None, checked, f"cannot read: {exc.strerror}"
    finally:
        os.close(fd)
    if after.st_size != size or after.st_mtime_ns != st.st_mtime_ns:
        return None, checked, "changed while it was read; skipped this time"
    return h.hexdigest(), checked, None


def _listing(folder: str, rel: str, on_warning: Callable[[str, str], None]
             ) -> Iterator[os.DirEntry] | None:
    """A folder's entries in the order of their paths, so the walk yields sorted paths.

    A folder sorts as its name plus "/": ``a.txt`` comes before ``a/b``.
    """
    try:
        with os.scandir(folder) as it:
            entries = list(it)
    except OSError as exc:
        on_warning(rel or ".", f"cannot read folder: {exc.strerror}")
        return None
    entries.sort(key=_order)
    return iter(entries)


def _order(entry: os.DirEntry) -> str:
    try:
        return entry.name + "/" if entry.is_dir(follow_symlinks=False) else entry.name
    except OSError:
        return entry.name


def scan(data_dir: str, state: State, *, ignore: Iterable[str] = (),
         now_ns: Callable[[], int] = time.time_ns, jobs: int = 4,
         progress: Callable[[int], None] | None = None,
         on_warning: Callable[[str], None] | None = None) -> ScanResult:
    """Every file of the data folder with its sha256, using the stat cache.

    This loop is the cost of every status and sync, so it is one flat loop:
    a path found in the stat cache was checked (safe, NFC) when it was
    stored there, ignore rules are matched only when there are some, small
    files are hashed inline and large ones in a pool with a bounded number
    in flight.
    """
    warnings: list[str] = []
    skipped: set[str] = set()

    def warn(path: str, reason: str) -> None:
        skipped.add(unicodedata.normalize("NFC", path))
        msg = f"{path}: {reason}"
        warnings.append(msg)
        if on_warning:
            on_warning(msg)

    rules = ignore_rules(data_dir, ignore)
    active = has_patterns(rules)
    match = rules.match_file
    cache = state.stat_rows()
    hits = 0  # paths found in the cache: if all are, none left the folder
    # Insertion order is path order; a large file holds its place (None)
    # until the pool has hashed it.
    files: dict[str, LocalFile | None] = {}
    fresh: dict[str, tuple] = {}  # new stat cache rows, in CachedStat's field order
    seen: dict[str, str] = {}
    resort = False  # a name changed by NFC may sort elsewhere
    is_reg = stat.S_ISREG
    new_file = tuple.__new__  # LocalFile(...) without its Python-level __new__
    hash_now = _hash
    window = RACY_WINDOW_NS
    pool: ThreadPoolExecutor | None = None
    inflight: deque[tuple[str, os.stat_result, Future]] = deque()
    limit = 2 * max(1, jobs)

    def done(path: str, st: os.stat_result, hashed: tuple) -> None:
        sha, checked, problem = hashed
        if path not in files:
            return  # dropped meanwhile: its name collided with another
        if problem:
            del files[path]
            warn(path, problem)
            return
        size, mtime = st.st_size, st.st_mtime_ns
        fresh[path] = (path, size, mtime, st.st_ctime_ns, st.st_ino, sha, checked)
        files[path] = new_file(LocalFile, (path, size, mtime, sha))
        if progress:
            progress(1)

    stack: list[tuple[str, Iterator[os.DirEntry]]] = []
    top = _listing(data_dir, "", warn)
    if top is not None:
        stack.append(("", top))
    try:
        while stack:
            prefix, entries = stack[-1]
            for entry in entries:
                rel = prefix + entry.name
                if rel == STATE_DIR:
                    continue
                try:
                    if entry.is_symlink():
                        warn(rel, "symbolic link skipped")
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        if active and match(rel + "/"):
                            continue
                        sub = _listing(entry.path, rel, warn)
                        if sub is None:
                            continue
                        stack.append((rel + "/", sub))
                        break
                    st = entry.stat(follow_symlinks=False)
                except OSError as exc:
                    warn(rel, f"cannot stat: {exc.strerror}")
                    continue
                if not is_reg(st.st_mode):
                    warn(rel, "special file skipped")
                    continue
                if active and match(rel):
                    continue
                cached = cache.get(rel)
                path = rel
                if cached is None:
                    if not rel.isascii():
                        path = unicodedata.normalize("NFC", rel)
                        if path != rel:
                            resort = True
                            cached = cache.get(path)
                    try:
                        check_path(path)
                    except UnsafePathError as exc:
                        warn(rel, f"skipped, {exc}")
                        continue
                if path in seen:
                    warn(rel, f"skipped, as is {seen[path]!r}: their names differ only in "
                              "Unicode form")
                    files.pop(path, None)
                    fresh.pop(path, None)
                    continue
                seen[path] = rel
                if cached is not None:
                    hits += 1
                    _, size, mtime, ctime, inode, sha, checked = cached
                    m = st.st_mtime_ns
                    if (m == mtime and st.st_size == size and st.st_ctime_ns == ctime
                            and st.st_ino == inode and m < checked - window):
                        files[path] = new_file(LocalFile, (path, size, mtime, sha))
                        if progress:
                            progress(1)
                        continue
                if st.st_size < INLINE_MAX:
                    files[path] = None
                    done(path, st, hash_now(entry.path, st, now_ns))
                    continue
                files[path] = None
                if pool is None:
                    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
                inflight.append((path, st, pool.submit(_hash, entry.path, st, now_ns)))
                while len(inflight) >= limit:
                    p, s, f = inflight.popleft()
                    done(p, s, f.result())
            else:
                stack.pop()
        while inflight:
            p, s, f = inflight.popleft()
            done(p, s, f.result())
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)

    gone = ([] if hits == len(cache)
            else [p for p in cache if p not in files and p not in skipped])
    if fresh or gone:
        state.update_stat_cache(fresh.values(), drop=gone)
    if resort:
        files = dict(sorted(files.items()))
    return ScanResult(files, tuple(warnings), len(fresh), frozenset(skipped), rules)
