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
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pathspec

from .errors import UnsafePathError
from .manifest import STATE_DIR, check_path
from .state import CachedStat, State

IGNORE_FILE = ".s3syncignore"
PERSONAL_IGNORE = os.path.join(STATE_DIR, "ignore")

# Timestamps are coarse (ext4 ticks, FAT's 2 s): a file whose mtime lies
# within this window of the moment it was hashed may have changed unseen.
RACY_WINDOW_NS = 2_000_000_000


@dataclass(frozen=True)
class LocalFile:
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

    def ignored(self, path: str) -> bool:
        return self.rules is not None and self.rules.match_file(path)


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


def hash_file(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def walk(data_dir: str, rules: pathspec.PathSpec, on_warning: Callable[[str, str], None]
         ) -> Iterable[tuple[str, str, os.stat_result]]:
    """Yield (path, file system path, stat) of every regular file not ignored."""
    stack = [("", data_dir)]
    while stack:
        prefix, folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            on_warning(prefix.rstrip("/") or ".", f"cannot read folder: {exc.strerror}")
            continue
        for entry in entries:
            rel = prefix + entry.name
            if rel == STATE_DIR:
                continue
            try:
                if entry.is_symlink():
                    on_warning(rel, "symbolic link skipped")
                    continue
                if entry.is_dir(follow_symlinks=False):
                    if not rules.match_file(rel + "/"):
                        stack.append((rel + "/", entry.path))
                    continue
                st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                on_warning(rel, f"cannot stat: {exc.strerror}")
                continue
            if not stat.S_ISREG(st.st_mode):
                on_warning(rel, "special file skipped")
                continue
            if rules.match_file(rel):
                continue
            yield rel, entry.path, st


def scan(data_dir: str, state: State, *, ignore: Iterable[str] = (),
         now_ns: Callable[[], int] = time.time_ns, jobs: int = 4,
         progress: Callable[[int], None] | None = None,
         on_warning: Callable[[str], None] | None = None) -> ScanResult:
    """Every file of the data folder with its sha256, using the stat cache."""
    warnings: list[str] = []
    skipped: set[str] = set()

    def warn(path: str, reason: str) -> None:
        skipped.add(unicodedata.normalize("NFC", path))
        msg = f"{path}: {reason}"
        warnings.append(msg)
        if on_warning:
            on_warning(msg)

    rules = ignore_rules(data_dir, ignore)
    cache = state.stat_cache()
    files: dict[str, LocalFile] = {}
    to_hash: list[tuple[str, str, os.stat_result]] = []
    seen: dict[str, str] = {}
    for rel, fs_path, st in walk(data_dir, rules, warn):
        path = unicodedata.normalize("NFC", rel)
        try:
            check_path(path)
        except UnsafePathError as exc:
            warn(rel, f"skipped, {exc}")
            continue
        if path in seen:
            warn(rel, f"skipped, as is {seen[path]!r}: their names differ only in "
                      "Unicode form")
            files.pop(path, None)
            to_hash = [t for t in to_hash if t[0] != path]
            continue
        seen[path] = rel
        cached = cache.get(path)
        if is_clean(cached, st):
            files[path] = LocalFile(path, st.st_size, st.st_mtime_ns, cached.sha256)
            if progress:
                progress(1)
        else:
            to_hash.append((path, fs_path, st))

    fresh: list[CachedStat] = []

    def hash_one(item):
        path, fs_path, st = item
        checked = now_ns()
        try:
            sha = hash_file(fs_path)
            after = os.stat(fs_path, follow_symlinks=False)
        except OSError as exc:
            return path, None, f"cannot read: {exc.strerror}"
        if (after.st_size, after.st_mtime_ns) != (st.st_size, st.st_mtime_ns):
            return path, None, "changed while it was read; skipped this time"
        return path, CachedStat(path, st.st_size, st.st_mtime_ns, st.st_ctime_ns,
                                st.st_ino, sha, checked), None

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for path, row, problem in pool.map(hash_one, to_hash):
            if problem:
                warn(path, problem)
                continue
            fresh.append(row)
            files[path] = LocalFile(path, row.size, row.mtime_ns, row.sha256)
            if progress:
                progress(1)

    gone = [p for p in cache if p not in files and p not in skipped]
    if fresh or gone:
        state.update_stat_cache(fresh, drop=gone)
    return ScanResult(dict(sorted(files.items())), tuple(warnings), len(fresh),
                      frozenset(skipped), rules)
