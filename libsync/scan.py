"""Walk the data folder, apply the ignore rules, and hash what changed.

A file is hashed only when its stat differs from the stat cache, or when
its cache row is racily clean: the file's mtime is not safely older than
the moment it was last hashed, so a write in the same timestamp tick could
hide behind an unchanged stat (git's "racy git" rule). Symlinks and special
files are reported and skipped, never followed.

Going through the tree costs more in Python than the rest of a no-op
sync, so where GNU find is installed it lists the tree first (in C, two
processes), and a listing equal to the one stored with the last result
gives that result back whole (the tree snapshot, in the local state); one
that differs in a few plain files has just those hashed. Any other
difference, or no find, means the Python walk, which also serves as the
reference the shortcuts are tested against.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import marshal
import os
import stat
import sys
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, NamedTuple

from .errors import ConfigError, UnsafePathError
from .hashworker import CHANGED, LARGE, NOT_REGULAR, HashWorkers, hash_one
from .listing import Listing
from .manifest import STATE_DIR, check_path
from .state import CachedStat, State

if TYPE_CHECKING:
    # A warm scan hashes nothing and matches no path against the ignore
    # rules: neither the pool's module (8 ms) nor pathspec (25 ms) is loaded.
    from concurrent.futures import Future, ThreadPoolExecutor

    import pathspec

IGNORE_FILE = ".s3syncignore"
PERSONAL_IGNORE = os.path.join(STATE_DIR, "ignore")

# Timestamps are coarse (ext4 ticks, FAT's 2 s): a file whose mtime lies
# within this window of the moment it was hashed may have changed unseen.
RACY_WINDOW_NS = 2_000_000_000


# Files to hash go in batches of about this many bytes, to the pool when
# their average size is at least POOL_MIN_SIZE.
BATCH_BYTES = 1 << 20
POOL_MIN_SIZE = 64 << 10
# Small files go to helper processes (see hashworker), one per core up to
# ``jobs``, in batches of this many bytes: fewer hand-overs, less GIL.
HELPER_BATCH_BYTES = 4 << 20
# No helpers for a tree find lists fewer entries in: starting them costs more
# than they save (5,000 files of 4 KiB: 0.22 s with, 0.19 s without).
HELPER_MIN_ENTRIES = 10_000
# A helper reads files up to this size; a larger one it only stats, and the
# scan hashes it in its pool (or defers it), so no helper is stuck on it.
HELPER_READ_MAX = 1 << 20
# What a file not yet stat'ed counts for in a batch's bytes.
UNSTATED_BYTES = 8 << 10
CHANGED_WHILE_READ = "changed while it was read; skipped this time"


# The sha256 of a file the scan was asked not to hash (see ``scan``'s
# ``defer``): its upload hashes it. Never written to a manifest or a cache.
UNHASHED = ""


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
    # The lines of the ignore rules in force (config, .s3syncignore, the
    # personal file): ignored paths are left alone on both sides.
    rule_lines: tuple[str, ...] = ()
    # How the tree was read: "snapshot" (unchanged since the last scan),
    # "changes" (a few files changed since) or "walk". Never part of
    # equality: all give the same result.
    source: str = field(default="walk", compare=False)

    @cached_property
    def rules(self) -> pathspec.PathSpec:
        """The ignore rules, compiled when first matched."""
        return compile_rules(self.rule_lines)

    @cached_property
    def folders(self) -> pathspec.PathSpec:
        """The rules a folder must match too to be left out (see folder_rules)."""
        return folder_rules(self.rule_lines)

    @cached_property
    def has_rules(self) -> bool:
        """Whether any ignore pattern is in force (else nothing needs matching)."""
        return has_patterns(self.rules)

    def ignored(self, path: str) -> bool:
        return self.has_rules and self.rules.match_file(path)

    def ignored_folder(self, path: str) -> bool:
        """Whether the scan left the folder ``path`` out, unentered."""
        return self.has_rules and _left_out(self.rules, self.folders, path + "/")


def has_patterns(rules: pathspec.PathSpec | None) -> bool:
    """False when the rules hold no pattern at all (only blanks and comments)."""
    return rules is not None and any(p.include is not None for p in rules.patterns)


def ignore_rules(data_dir: str, extra: Iterable[str] = ()) -> pathspec.PathSpec:
    """The team's rules (config, ``.s3syncignore``) and the personal ones."""
    return compile_rules(_rule_lines(data_dir, extra))


def compile_rules(lines: Iterable[str]) -> pathspec.PathSpec:
    """Ignore rules as pathspec reads them (git's), or ConfigError naming
    the line it cannot read."""
    import pathspec
    lines = list(lines)
    try:
        return pathspec.GitIgnoreSpec.from_lines(lines)
    except ValueError as exc:
        what = "the ignore rules"
        for line in lines:  # which one: compiled alone, it fails too
            try:
                pathspec.GitIgnoreSpec.from_lines([line])
            except ValueError:
                what = f"ignore rule {line!r}"
                break
        raise ConfigError(f"{what} is not a valid pattern (from s3sync.json \"ignore\", "
                          f"{IGNORE_FILE} or {PERSONAL_IGNORE})") from exc


def may_have_patterns(lines: Iterable[str]) -> bool:
    """False when no line can be a pattern (blanks and comments only): a
    check on the lines, without compiling them."""
    return any(line.strip() and not line.startswith("#") for line in lines)


def folder_rules(lines: Iterable[str]) -> pathspec.PathSpec:
    """The rules a folder must match, as well, to be left out unentered.

    pathspec matches the folder ``data/`` itself with ``data/**``, which in
    git matches only what is inside it, so that ``!data/keep.csv`` can
    bring one file back. Read with each trailing ``/**`` as ``/*``, the
    rules no longer match ``data/``: the folder is entered and its files
    are matched one by one.
    """
    out = []
    for line in lines:
        bare = line.rstrip(" ")
        out.append(bare[:-1] if bare.endswith("/**") else line)
    return compile_rules(out)


def _left_out(rules: pathspec.PathSpec, folders: pathspec.PathSpec, folder: str) -> bool:
    """Whether the scan leaves ``folder`` (with its trailing "/") unentered."""
    return rules.match_file(folder) and folders.match_file(folder)


def _rule_lines(data_dir: str, extra: Iterable[str]) -> list[str]:
    lines = list(extra)
    for name in (IGNORE_FILE, PERSONAL_IGNORE):
        try:
            with open(os.path.join(data_dir, name), encoding="utf-8") as f:
                lines.extend(f.read().splitlines())
        except FileNotFoundError:
            pass
    return lines


def is_clean(cached: CachedStat | None, st: os.stat_result) -> bool:
    """Whether the cached hash may be trusted for a file with this stat."""
    return cached is not None and _fresh(cached, st.st_size, st.st_mtime_ns,
                                         st.st_ctime_ns, st.st_ino)


def _fresh(row: tuple, size: int, mtime: int, ctime: int, inode: int) -> bool:
    """``is_clean`` for a stat cache row (CachedStat's field order) and the
    fields of a stat; the walk's ``take`` inlines the same test."""
    return row[1:5] == (size, mtime, ctime, inode) and mtime < row[6] - RACY_WINDOW_NS


def _answer(size: int | None, mtime: int | None, answer: tuple, checked: int) -> tuple:
    """A ``hash_one`` answer as the scan takes it in:
    (sha256 or None, when, problem or None, (size, mtime, ctime, inode) or None).

    ``size`` and ``mtime`` are the walk's stat, which the file must still
    have; None if the walk took none (the answer's stat stands). A sha256 of
    None with no problem is a file larger than the limit it was read with.
    """
    digest, a_size, a_mtime, a_ctime, a_inode, code = answer
    if code > 0:
        return None, checked, f"cannot read: {os.strerror(code)}", None
    if code == NOT_REGULAR:
        return None, checked, "special file skipped", None
    if code == CHANGED or (size is not None and (a_size, a_mtime) != (size, mtime)):
        return None, checked, CHANGED_WHILE_READ, None
    return (None if code == LARGE else digest.hex()), checked, None, (
        a_size, a_mtime, a_ctime, a_inode)


def _hash(fs_path: str, size: int, mtime_ns: int, now_ns: Callable[[], int]
          ) -> tuple[str | None, int, str | None]:
    """(sha256, when, None) for a file of the size and mtime listed, or (None, when, problem).

    A file that changed while it was read is a problem, not a hash.
    """
    checked = now_ns()  # before the read
    return _answer(size, mtime_ns, hash_one(fs_path, sys.maxsize), checked)[:3]


def _hash_batch(batch: list[tuple], now_ns: Callable[[], int]) -> list[tuple]:
    return [(*_hash(fs_path, size, mtime, now_ns), None)
            for _, fs_path, size, mtime, _, _ in batch]


def _hash_by(workers: HashWorkers, batch: list[tuple], now_ns: Callable[[], int]
             ) -> list[tuple]:
    """``_hash_batch`` in a helper process; here if no helper can take it.

    A job whose stat the walk did not take (size None) is answered with the
    helper's (see ``_answer``); a file over HELPER_READ_MAX is only stat'ed.
    """
    checked = now_ns()
    paths = [job[1] for job in batch]
    answers = workers.hash(paths, HELPER_READ_MAX)
    if answers is None:
        answers = [hash_one(p, HELPER_READ_MAX) for p in paths]
    return [_answer(job[2], job[3], answer, checked)
            for job, answer in zip(batch, answers, strict=True)]


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


# -- the tree snapshot, over GNU find's listing (see listing) ---------------------------

# Bump when a scan of the same listing could give another result (new
# warnings, other path checks): snapshots of an older format are then unused.
SNAPSHOT_FORMAT = 2  # 2: folders matched only by "x/**" are entered


def _ns(text: bytes) -> int:
    """Nanoseconds from find's ``%T@``: seconds, floored even before 1970, and a fraction."""
    sec, _, frac = text.partition(b".")
    return int(sec) * 1_000_000_000 + int(frac.ljust(9, b"0")[:9])


def _snapshot_key(lines: list[str]) -> str:
    """What else the result of a listing depends on: rules, format, Python's Unicode."""
    text = "\0".join([str(SNAPSHOT_FORMAT), sys.version.split()[0],
                      unicodedata.unidata_version, *lines])
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _pack(result: ScanResult) -> bytes:
    """The result as columns, by marshal's version 2: no table of the objects
    written (version 3 keeps one, some 20 MB at 100,000 files)."""
    columns = tuple(zip(*result.files.values(), strict=True)) or ((), (), (), ())
    return marshal.dumps((*columns, result.warnings, tuple(sorted(result.skipped))), 2)


def _unpack(blob: bytes) -> tuple[dict[str, LocalFile], tuple[str, ...], frozenset[str]]:
    with _no_gc():
        paths, sizes, mtimes, shas, warnings, skipped = marshal.loads(blob)
        rows = zip(paths, sizes, mtimes, shas, strict=True)
        files = dict(zip(paths, map(_new_file, rows), strict=True))
    return files, tuple(warnings), frozenset(skipped)


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """Hold off the cyclic GC while making 100,000 tuples that cannot be in a cycle.

    Otherwise it runs some hundred times for nothing, and its full passes
    over every object double the time of a scan.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


_new_file = functools.partial(tuple.__new__, LocalFile)  # LocalFile(...) at C speed


# -- the scan ------------------------------------------------------------------------------

def scan(data_dir: str, state: State, *, ignore: Iterable[str] = (),
         now_ns: Callable[[], int] = time.time_ns, jobs: int = 4,
         progress: Callable[[int], None] | None = None,
         on_warning: Callable[[str], None] | None = None,
         lister: Callable[[str], bytes | None] | None = None,
         defer: Callable[[str, int], bool] | None = None) -> ScanResult:
    """Every file of the data folder with its sha256, using the stat cache.

    With GNU find (``lister``, by default a ``listing.Listing``) the tree is
    listed first, before anything is hashed. A listing equal byte for byte
    to the one stored with the last result (the tree snapshot), under the
    same rules, gives that result back without a look at any file: every
    size, mtime, ctime and inode is as it was, and a snapshot is stored only
    when no file in it was racily clean or unreadable. A listing that
    differs in a few plain files has those hashed and applied to that
    result. Otherwise the Python walk reads the tree, and the listing, taken
    before it, is stored with its result.

    A file to hash for which ``defer(path, size)`` is true is left unhashed
    (sha256 ``UNHASHED``; no stat cache row, no snapshot stored): a push
    hashes a large new file as it sends it rather than read it twice.
    """
    lines = tuple(_rule_lines(data_dir, ignore))
    # The listing runs (in other processes) while the last snapshot is read.
    finish = functools.partial(lister or Listing(data_dir), data_dir)
    replay = None
    try:
        key = _snapshot_key(lines)
        old = state.scan_snapshot()
        if old is not None and old[0] == key:
            try:
                replay = _unpack(old[2])
            except (ValueError, EOFError, TypeError):
                replay = None
        if old is not None:
            old = old[:2]  # the packed result is read: 10 MB at 100,000 files
    finally:
        listing = finish()
    if listing is not None and replay is not None and listing == old[1]:
        files, warnings, skipped = replay
        if on_warning:
            for msg in warnings:
                on_warning(msg)
        if progress:
            for _ in files:
                progress(1)
        return ScanResult(files, warnings, 0, skipped, lines, source="snapshot")
    rules = compile_rules(lines) if may_have_patterns(lines) else None
    folders = folder_rules(lines) if rules is not None else None
    if listing is not None and replay is not None:
        changes = _changed_files(old[1], listing, replay[2],
                                 (rules, folders) if has_patterns(rules) else None)
        if changes is not None:
            del old  # the last listing and result, both read: 17 MB at 100,000 files
            return _apply_changes(data_dir, state, key, listing, replay, changes,
                                  lines, now_ns, progress, on_warning, defer)
    # The rest is the walk, with the listing kept for the next snapshot; the
    # old snapshot is let go first (some 40 MB at 100,000 files).
    had_snapshot = old is not None
    del replay, old

    warnings: list[str] = []
    skipped: set[str] = set()

    def warn(path: str, reason: str) -> None:
        skipped.add(unicodedata.normalize("NFC", path))
        msg = f"{path}: {reason}"
        warnings.append(msg)
        if on_warning:
            on_warning(msg)

    active = has_patterns(rules)
    match = rules.match_file if active else None
    match_folder = functools.partial(_left_out, rules, folders) if active else None
    cache = state.stat_rows()
    # Insertion order is path order; a file to hash holds its place (None)
    # until it is hashed.
    files: dict[str, LocalFile | None] = {}
    # Paths hashed: their stat cache rows are written as each batch comes
    # back, while the helpers hash the next ones, not all at the end.
    fresh: set[str] = set()
    collided: list[str] = []  # hashed, then dropped: another name had the same NFC form
    # Files to hash, (path, fs_path, size, mtime, ctime, inode), in batches
    # of about BATCH_BYTES, hashed as they fill: in the pool when their files
    # are large; when small, in helper processes (threads would fight over
    # the GIL and lose: 100,000 files of 4 KiB take longer with 2 or 4
    # threads than with one), or on this thread if just one batch is small.
    batches: list[list[tuple] | None] = []
    hashed: list[list[tuple] | Future | None] = []  # a batch's results, or their future
    handled = 0  # batches taken in (see collect)
    problems: list[tuple[str, str]] = []
    batch: list[tuple] = []
    batch_bytes = 0
    pool: ThreadPoolExecutor | None = None
    # Helpers pay off from some thousands of files on; a first scan of a
    # large tree (find counted its entries) starts them at once.
    helpers = min(jobs, os.cpu_count() or 1) if HashWorkers.available() else 0
    entries = listing.count(b"\0") if listing is not None else None
    workers = (HashWorkers(helpers) if helpers > 1
               and (entries is None or entries >= HELPER_MIN_ENTRIES) else None)
    if workers is not None and entries is not None and not cache:
        workers.start()
    small_batch = HELPER_BATCH_BYTES if workers else BATCH_BYTES
    seen: dict[str, str] = {}
    resort = False  # a name changed by NFC may sort elsewhere
    window = RACY_WINDOW_NS
    storable = listing is not None  # no racy, unreadable or changing file
    is_reg = stat.S_ISREG

    unstated = 0  # jobs in ``batch`` whose stat the helpers take
    later: list[tuple] = []  # files a helper only stat'ed: too large for it
    later_bytes = 0

    def take(rel: str, entry: os.DirEntry) -> None:
        """One regular file, not ignored: from the cache if clean, else to hash.

        A file the cache does not know is hashed whatever its stat: while
        helpers run, they take its stat on the descriptor they read, and
        this thread takes none.
        """
        nonlocal resort, batch_bytes, storable, unstated
        # Popped, not read: a row is let go as its file is seen, so the cache
        # and the result are not both whole in memory (some 40 MB at 100,000
        # files); what is left at the end is what left the folder.
        cached = cache.pop(rel, None)
        path = rel
        if cached is None:
            if not rel.isascii():
                path = unicodedata.normalize("NFC", rel)
                if path != rel:
                    resort = True
                    cached = cache.pop(path, None)
            try:
                check_path(path)
            except UnsafePathError as exc:
                warn(rel, f"skipped, {exc}")
                return
        st = None
        if cached is not None or workers is None or not workers.running:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                warn(rel, f"cannot stat: {exc.strerror}")
                return
            if not is_reg(st.st_mode):
                warn(rel, "special file skipped")
                return
        if path in seen:
            warn(rel, f"skipped, as is {seen[path]!r}: their names differ only in "
                      "Unicode form")
            files.pop(path, None)
            if path in fresh:
                fresh.discard(path)
                collided.append(path)
            return
        seen[path] = rel
        if st is None:
            files[path] = None
            batch.append((path, entry.path, None, None, None, None))
            batch_bytes += UNSTATED_BYTES
            unstated += 1
            if batch_bytes >= small_batch:
                send(full=True)
            return
        size, mtime = st.st_size, st.st_mtime_ns
        if cached is not None:
            _, c_size, c_mtime, c_ctime, c_inode, sha, checked = cached
            if (mtime == c_mtime and size == c_size and st.st_ctime_ns == c_ctime
                    and st.st_ino == c_inode and mtime < checked - window):
                files[path] = _new_file((path, size, mtime, sha))
                if progress:
                    progress(1)
                return
        if defer is not None and defer(path, size):
            storable = False  # the next scan must hash it, if its upload did not
            files[path] = _new_file((path, size, mtime, UNHASHED))
            if progress:
                progress(1)
            return
        files[path] = None
        batch.append((path, entry.path, size, mtime, st.st_ctime_ns, st.st_ino))
        batch_bytes += size + 4096
        if batch_bytes >= BATCH_BYTES and (batch_bytes >= small_batch
                                           or batch_bytes >= POOL_MIN_SIZE * len(batch)):
            send(full=True)

    def submit(jobs_: list[tuple], nbytes: int, full: bool, unknown: bool,
               large: bool = False) -> None:
        nonlocal pool
        large = large or not unknown and nbytes >= POOL_MIN_SIZE * len(jobs_)
        # Otherwise a helper is started for the first full batch of small
        # files: a few changed files are hashed here sooner than it starts.
        # Files not stat'ed go to helpers, which are running.
        helped = workers is not None and not large and (unknown or full or pool is not None
                                                        or workers.running)
        if jobs > 1 and (large or helped):
            if pool is None:
                from concurrent.futures import ThreadPoolExecutor

                pool = ThreadPoolExecutor(max_workers=jobs)
            hashed.append(pool.submit(_hash_by, workers, jobs_, now_ns) if helped
                          else pool.submit(_hash_batch, jobs_, now_ns))
        else:
            hashed.append(_hash_batch(jobs_, now_ns))
        batches.append(jobs_)

    def send(full: bool) -> None:
        nonlocal batch, batch_bytes, unstated
        submit(batch, batch_bytes, full, unstated > 0)
        batch, batch_bytes, unstated = [], 0, 0
        collect(wait=False)

    def collect(wait: bool) -> None:
        """Take in the results of the batches hashed so far, in order.

        During the walk, while helpers hash the next batches, this thread
        takes in what is ready rather than leave it all for the end. Files
        too large for a helper go on to the pool in batches of their own.
        """
        nonlocal handled, later, later_bytes
        while handled < len(hashed):
            results = hashed[handled]
            if not isinstance(results, list):
                if not wait and not results.done():
                    return
                results = results.result()
            rows = [row for one, result in zip(batches[handled], results, strict=True)
                    if (row := done(one, result)) is not None]
            if rows:
                writer.add(rows)
            batches[handled] = hashed[handled] = None  # let go
            handled += 1
            if later and (later_bytes >= BATCH_BYTES or wait and handled == len(hashed)):
                submit(later, later_bytes, True, False, large=True)
                later, later_bytes = [], 0

    def done(job: tuple, hashed: tuple) -> tuple | None:
        """Take in one file's hash: its stat cache row, if it was hashed."""
        nonlocal storable, later_bytes
        path, fs_path, size, mtime, ctime, inode = job
        sha, checked, problem, st = hashed
        if path not in files:
            return None  # dropped meanwhile: its name collided with another
        if problem:
            storable = False
            del files[path]
            problems.append((path, problem))  # warned of after the walk's own warnings
            return None
        if st is not None:
            size, mtime, ctime, inode = st
        if sha is None:  # stat'ed by a helper, too large for it to read
            if defer is not None and defer(path, size):
                storable = False
                files[path] = _new_file((path, size, mtime, UNHASHED))
                if progress:
                    progress(1)
            else:
                later.append((path, fs_path, size, mtime, ctime, inode))
                later_bytes += size + 4096
            return None
        if mtime >= checked - window:
            storable = False  # racily clean: the next scan must look again
        fresh.add(path)
        files[path] = _new_file((path, size, mtime, sha))
        if progress:
            progress(1)
        return (path, size, mtime, ctime, inode, sha, checked)

    with _no_gc(), state.stat_cache_writer() as writer:
        try:
            _walk(data_dir, take, warn, match, match_folder)
            if batch:
                send(full=False)
            collect(wait=True)
            for path, problem in problems:
                warn(path, problem)
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
            if workers is not None:
                workers.close()

        gone = [p for p in cache if p not in files and p not in skipped]
        cache.clear()  # a tuple and a key per file: let go before the snapshot is packed
        seen.clear()
        if resort:
            files = dict(sorted(files.items()))
        result = ScanResult(files, tuple(warnings), len(fresh), frozenset(skipped), lines)
        snapshot = (key, listing, _pack(result)) if storable else None
        if fresh or gone or collided or snapshot is not None or had_snapshot:
            writer.finish(drop=gone + collided, snapshot=snapshot)
    return result


def hash_deferred(data_dir: str, state: State, files: Iterable[LocalFile], *,
                  now_ns: Callable[[], int] = time.time_ns
                  ) -> tuple[dict[str, LocalFile], dict[str, str]]:
    """Hash files a scan deferred after all, as the scan would have, writing
    their stat cache rows: (path -> hashed LocalFile, path -> problem)."""
    done, problems, rows = {}, {}, []
    for f in files:
        fs_path = os.path.join(data_dir, *f.path.split("/"))
        try:
            st = os.stat(fs_path, follow_symlinks=False)
        except OSError as exc:
            problems[f.path] = f"cannot read: {exc.strerror}"
            continue
        if (st.st_size, st.st_mtime_ns) != (f.size, f.mtime_ns):
            problems[f.path] = CHANGED_WHILE_READ
            continue
        sha, checked, problem = _hash(fs_path, f.size, f.mtime_ns, now_ns)
        if problem:
            problems[f.path] = problem
            continue
        rows.append((f.path, f.size, f.mtime_ns, st.st_ctime_ns, st.st_ino, sha, checked))
        done[f.path] = f._replace(sha256=sha)
    if rows:
        state.update_stat_cache(rows)
    return done, problems


# A listing that differs from the snapshot's in at most this many records
# is applied to the snapshot's result; more, and the tree is gone through.
MAX_CHANGES = 256


def _changed_files(old: bytes, new: bytes, skipped: frozenset[str],
                   rules: tuple[pathspec.PathSpec, pathspec.PathSpec] | None
                   ) -> tuple[dict[str, tuple], set[str]] | None:
    """The regular files whose records differ between two listings, as
    (path -> (size, mtime, ctime, inode) now, paths gone), or None when the
    change is not one this shortcut takes: too many records, or anything
    but plain regular files whose names pass every check (links, special
    files, new folders under ignore rules, non-ASCII or unsafe names, and
    paths with a warning of their own go the long way)."""
    old, new = _middles(old, new)
    old_set, new_set = set(old.split(b"\0")), set(new.split(b"\0"))
    added, removed = new_set - old_set, old_set - new_set
    added.discard(b"")
    removed.discard(b"")
    if len(added) + len(removed) > MAX_CHANGES:
        return None
    encoding = sys.getfilesystemencoding()
    now: dict[str, tuple] = {}
    folders_before = set()
    gone = set()
    for record in removed:
        kind, *_, path = record.split(b" ", 5)
        rel = str(path[2:], encoding, "surrogateescape")
        if kind == b"d":
            folders_before.add(rel)
        elif kind != b"f" or rel in skipped:
            return None
        else:
            gone.add(rel)
    for record in added:
        kind, size, mtime, ctime, inode, path = record.split(b" ", 5)
        rel = str(path[2:], encoding, "surrogateescape")
        if kind == b"d":
            if rules is not None and rel not in folders_before:
                return None  # a new folder: whether it is ignored decides for its files
            continue
        if kind != b"f" or not rel.isascii() or rel in skipped:
            return None
        if rules is not None and _ignored(*rules, rel):
            continue
        try:
            check_path(rel)
        except UnsafePathError:
            return None
        now[rel] = (int(size), _ns(mtime), _ns(ctime), int(inode))
    return now, gone - now.keys()


def _middles(old: bytes, new: bytes) -> tuple[bytes, bytes]:
    """Two listings without the whole records they begin and end with alike.

    Folders list in a stable order, so a few changed files leave most of a
    listing in place: comparing in blocks from both ends costs a few
    milliseconds and spares sets of 100,000 records (some 30 MB).
    """
    head = _common_head(old, new)
    head = old.rfind(b"\0", 0, head) + 1             # back to a record's start
    tail = _common_tail(old, new, min(len(old), len(new)) - head)
    if tail:
        # Forward to a record's end that lies within the common tail, so it is
        # one in both listings.
        end = old.find(b"\0", len(old) - tail)
        tail = len(old) - end - 1 if end >= 0 else 0
    return old[head:len(old) - tail], new[head:len(new) - tail]


_BLOCK = 1 << 16


def _common_head(a: bytes, b: bytes) -> int:
    """The length of the longest common prefix."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i:i + _BLOCK] == b[i:i + _BLOCK]:
        i += _BLOCK
    if i >= n:
        return n
    step = _BLOCK
    while step > 1:  # the first difference is in [i, i + step)
        step //= 2
        if a[i:i + step] == b[i:i + step]:
            i += step
    return i


def _common_tail(a: bytes, b: bytes, limit: int) -> int:
    """The length of the longest common suffix, at most ``limit``."""
    la, lb = len(a), len(b)
    k = 0
    while k < limit:
        m = min(_BLOCK, limit - k)
        if a[la - k - m:la - k] != b[lb - k - m:lb - k]:
            break
        k += m
    else:
        return limit
    while m > 1:  # a difference is in the m bytes before the last k
        h = m // 2
        if a[la - k - h:la - k] == b[lb - k - h:lb - k]:
            k += h
            m -= h
        else:
            m = h
    return k


def _ignored(rules: pathspec.PathSpec, folders: pathspec.PathSpec, rel: str) -> bool:
    """As the walk decides: a folder both rules match is not entered."""
    parts = rel.split("/")
    return (any(_left_out(rules, folders, "/".join(parts[:i]) + "/")
                for i in range(1, len(parts)))
            or rules.match_file(rel))


def _apply_changes(data_dir, state, key, listing, replay, changes, lines, now_ns, progress,
                   on_warning, defer=None) -> ScanResult:
    """The snapshot's result with a few files changed, added or gone: only
    those are hashed, and only their stat cache rows are written.
    ``lines`` are the ignore rules' lines."""
    files, warnings, skipped = replay
    now, gone = changes
    for path in gone:
        files.pop(path, None)
    if on_warning:
        for msg in warnings:
            on_warning(msg)
    problems = []
    fresh = []
    storable = True
    prefix = data_dir + os.sep
    resort = False
    cached = state.cached_stats(now)  # a download leaves its file's row
    for path, (size, mtime, ctime, inode) in sorted(now.items()):
        row = cached.get(path)
        if row is not None and _fresh(row, size, mtime, ctime, inode):
            resort = resort or path not in files
            files[path] = _new_file((path, size, mtime, row[5]))
            continue
        if defer is not None and defer(path, size):
            storable = False
            resort = resort or path not in files
            files[path] = _new_file((path, size, mtime, UNHASHED))
            continue
        sha, checked, problem = _hash(prefix + path, size, mtime, now_ns)
        if problem:
            storable = False
            files.pop(path, None)
            problems.append(path)
            msg = f"{path}: {problem}"
            warnings += (msg,)
            if on_warning:
                on_warning(msg)
            continue
        if mtime >= checked - RACY_WINDOW_NS:
            storable = False
        fresh.append((path, size, mtime, ctime, inode, sha, checked))
        resort = resort or path not in files
        files[path] = _new_file((path, size, mtime, sha))
    if resort:
        files = dict(sorted(files.items()))
    if progress:
        for _ in files:
            progress(1)
    result = ScanResult(files, warnings, len(fresh), skipped.union(problems), lines,
                        source="changes")
    state.update_stat_cache(fresh, drop=gone,
                            snapshot=(key, listing, _pack(result)) if storable else None)
    return result


def _walk(data_dir: str, take: Callable, warn: Callable,
          match: Callable[[str], bool] | None,
          match_folder: Callable[[str], bool] | None = None) -> None:
    """Feed the Python walk's regular files to ``take``, in path order, with
    their entries: a file's type comes with the listing (``d_type``), and
    ``take`` stats it only if it must.

    Symbolic links and special files are reported, folders matched by the
    ignore rules and symbolic links to folders are not entered.
    """
    stack: list[tuple[str, Iterator[os.DirEntry]]] = []
    top = _listing(data_dir, "", warn)
    if top is not None:
        stack.append(("", top))
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
                    if match_folder is not None and match_folder(rel + "/"):
                        continue
                    sub = _listing(entry.path, rel, warn)
                    if sub is None:
                        continue
                    stack.append((rel + "/", sub))
                    break
                regular = entry.is_file(follow_symlinks=False)
            except OSError as exc:
                warn(rel, f"cannot stat: {exc.strerror}")
                continue
            if not regular:
                warn(rel, "special file skipped")
                continue
            if match is not None and match(rel):
                continue
            take(rel, entry)
        else:
            stack.pop()
