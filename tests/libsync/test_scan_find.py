"""GNU find's listing and the tree snapshot give what the Python walk gives.

Every case runs the scan twice from the same local state, once with
find's listing (and the snapshot or the changes when they apply) and once
with no listing, through the walk alone, and requires equal results and
equal stat caches.
"""

from __future__ import annotations

import os
import sqlite3
import time

import pytest
from libsync_helpers import sha, write

from libsync import listing as listing_module
from libsync import scan as scan_module
from libsync.listing import Listing, find_listing, gnu_find, listing_ahead
from libsync.scan import RACY_WINDOW_NS, ScanResult, scan
from libsync.state import State

pytestmark = pytest.mark.skipif(gnu_find() is None, reason="needs GNU find")

# The clock of every scan here: an hour after now, so that files written by
# the tests with a real mtime are safely old, unless a test says otherwise.
NOW = time.time_ns() + 3600 * 1_000_000_000
NFC_NAME = "caf\u00e9.txt"
NFD_NAME = "cafe\u0301.txt"


@pytest.fixture
def data(tmp_path):
    d = tmp_path / "Data"
    d.mkdir()
    for rel in ["a.txt", "a-b/c.txt", "a/b.txt", "a/deep/er.bin", "b c/with space.txt",
                "-dash.txt", "-dir/x", "new\nline.txt", f"dir/{NFD_NAME}", "z/last"]:
        write(d, rel, rel)
    (d / "empty").mkdir()
    os.symlink("a.txt", d / "link")
    return d


@pytest.fixture
def state(data):
    with State(str(data)) as s:
        yield s


def no_find(data_dir: str) -> None:
    return None


class Counting:
    """A lister that counts its calls: the fast path must still list the tree."""

    def __init__(self):
        self.calls = 0

    def __call__(self, data_dir: str) -> bytes | None:
        self.calls += 1
        return find_listing(data_dir)


def copy_of(state: State) -> sqlite3.Connection:
    saved = sqlite3.connect(":memory:")
    state.db.backup(saved)
    return saved


def both(data, state: State, **kw) -> ScanResult:
    """Scan through find, then from the same state through the walk; both must agree.

    The state is left as the find scan left it, snapshot included.
    """
    before = copy_of(state)
    fast = scan(str(data), state, now_ns=lambda: NOW, **kw)
    fast_cache = state.stat_cache()
    after = copy_of(state)
    before.backup(state.db)
    walked = scan(str(data), state, now_ns=lambda: NOW, lister=no_find, **kw)
    assert walked.source == "walk"
    assert fast.source in ("walk", "snapshot", "changes")
    assert fast == walked          # files, warnings, hashed, skipped, rules
    assert list(fast.files) == list(walked.files)      # the same order too
    assert state.stat_cache() == fast_cache
    after.backup(state.db)
    return fast


def settled(data, state, **kw) -> ScanResult:
    """Scan until the snapshot is used, and check that it is."""
    first = both(data, state, **kw)
    again = both(data, state, **kw)
    assert (again.source, again.hashed) == ("snapshot", 0)
    assert again.files == first.files and again.warnings == first.warnings
    return again


def test_an_unchanged_tree_is_returned_from_the_snapshot(data, state):
    first = both(data, state)
    assert first.source == "walk" and first.hashed == 9
    assert first.warnings == ("link: symbolic link skipped", "new\nline.txt: skipped, "
                              "unsafe path 'new\\nline.txt': control character")
    lister, warnings = Counting(), []
    again = scan(str(data), state, now_ns=lambda: NOW, lister=lister,
                 on_warning=warnings.append)
    assert (again.source, again.hashed, lister.calls) == ("snapshot", 0, 1)
    assert list(again.files.items()) == list(first.files.items())
    assert (again.warnings, again.skipped, again.rules) == (first.warnings, first.skipped,
                                                            first.rules)
    assert warnings == list(first.warnings)               # replayed
    assert again.files[f"dir/{NFC_NAME}"].sha256 == sha(f"dir/{NFD_NAME}")
    assert again.files["-dir/x"].sha256 == sha("-dir/x")
    assert again.skipped == {"link", "new\nline.txt"}


def rewrite_same_size_and_mtime(data):
    p = data / "a" / "b.txt"
    st = os.stat(p)
    time.sleep(0.01)                  # let the ctime move on
    p.write_bytes(b"A/B.TXT")
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = os.stat(p)
    if after.st_ctime_ns == st.st_ctime_ns:
        pytest.skip("the file system's ctime did not move")


def replace_by_symlink(data):
    os.unlink(data / "a.txt")
    os.symlink("z/last", data / "a.txt")


def add_ignore_rule(data):
    write(data, ".s3syncignore", "*.bin\nb c/\n")


CHANGES = {
    "rewrite keeping size and mtime": (rewrite_same_size_and_mtime, 1),
    "file added": (lambda d: write(d, "a/new.txt", "new"), 1),
    "file deleted": (lambda d: os.unlink(d / "a-b" / "c.txt"), 0),
    "file replaced by a symlink": (replace_by_symlink, 0),
    "fifo": (lambda d: os.mkfifo(d / "a" / "pipe"), 0),
    "new folder": (lambda d: write(d, "new/deeper/f.txt", "f"), 1),
    "new empty folder": (lambda d: (d / "void").mkdir(), 0),
    "ignore rule in .s3syncignore": (add_ignore_rule, 1),
    "personal ignore rule": (lambda d: write(d, ".s3sync/ignore", "a/\n"), 0),
    "NFC twin of an NFD name": (lambda d: write(d, f"dir/{NFC_NAME}", "twin"), 0),
    "unsafe name": (lambda d: write(d, "back\\slash.txt", "b"), 0),
    "state folder changes": (lambda d: write(d, ".s3sync/tmp/x", "x"), 0),
}


SHORT = {"rewrite keeping size and mtime", "file added", "file deleted", "new folder"}


@pytest.mark.parametrize("change", CHANGES)
def test_a_change_is_seen_as_the_walk_sees_it(data, state, change):
    apply, hashed = CHANGES[change]
    before = settled(data, state)
    apply(data)
    result = both(data, state)
    if change == "state folder changes":
        assert result.source == "snapshot"
    elif change == "new empty folder":
        assert result.source == "changes" and result == before
    else:
        # A few plain files changed: applied to the snapshot's result; links,
        # special files, other rules and odd names: the whole listing.
        assert result.source == ("changes" if change in SHORT else "walk")
        assert result.hashed == hashed
        assert (result.files, result.warnings) != (before.files, before.warnings)
    after = settled(data, state)
    assert after.files == result.files


def test_rewrite_keeping_size_and_mtime_is_hashed_again(data, state):
    settled(data, state)
    rewrite_same_size_and_mtime(data)
    result = both(data, state)
    assert result.files["a/b.txt"].sha256 == sha("A/B.TXT")


def test_ignore_argument_changes_the_rules_key_not_the_listing(data, state):
    settled(data, state)
    result = both(data, state, ignore=["a/"])
    assert result.source == "walk" and "a/b.txt" not in result.files
    assert settled(data, state, ignore=["a/"]).files == result.files
    assert both(data, state).source == "walk"       # and back


def test_a_racily_clean_file_is_not_trusted(data, state):
    settled(data, state)
    write(data, "hot.txt", "hot", mtime_ns=NOW - RACY_WINDOW_NS // 2)
    first = both(data, state)
    assert first.source == "changes" and first.hashed == 1
    assert state.scan_snapshot() is None            # no snapshot with a racy file
    again = both(data, state)
    assert again.source == "walk" and again.hashed == 1
    later = scan(str(data), state, now_ns=lambda: NOW + RACY_WINDOW_NS)
    assert later.source == "walk" and later.hashed == 1
    assert scan(str(data), state, now_ns=lambda: NOW + RACY_WINDOW_NS).source == "snapshot"


def refuse_to_open(monkeypatch, suffix: str):
    """os.open fails with EACCES for paths ending in ``suffix`` (root reads
    anything, so chmod cannot make a file unreadable here); returns the real one.
    No hashing helper, which would open it in a process of its own, is started."""
    real_open = os.open
    monkeypatch.setattr(scan_module.HashWorkers, "available", staticmethod(lambda: False))

    def failing_open(path, flags, *args):
        if str(path).endswith(suffix):
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", failing_open)
    return real_open


def test_no_snapshot_while_a_file_cannot_be_read(data, state, monkeypatch):
    real_open = refuse_to_open(monkeypatch, "z/last")
    result = scan(str(data), state, now_ns=lambda: NOW)
    assert result.source == "walk"
    assert "z/last: cannot read: Permission denied" in result.warnings
    assert "z/last" in result.skipped and state.scan_snapshot() is None
    assert scan(str(data), state, now_ns=lambda: NOW).source == "walk"
    monkeypatch.setattr(os, "open", real_open)
    assert both(data, state).files["z/last"].sha256 == sha("z/last")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a folder of mode 000")
def test_an_unreadable_folder_falls_back_to_the_walk(data, state):
    settled(data, state)
    os.chmod(data / "a", 0)
    try:
        assert find_listing(str(data)) is None
        result = scan(str(data), state, now_ns=lambda: NOW)
        assert result.source == "walk"
        assert result.warnings == ("a: cannot read folder: Permission denied",
                                   "link: symbolic link skipped")
        assert "a/b.txt" not in result.files and state.scan_snapshot() is None
    finally:
        os.chmod(data / "a", 0o755)


def fake_find(tmp_path, script: str) -> str:
    path = tmp_path / "find"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return str(path)


def test_find_complaining_on_stderr_means_the_walk(data, state, tmp_path, monkeypatch):
    # What find does on an unreadable folder, whoever runs the test.
    monkeypatch.setattr(listing_module, "_find", fake_find(
        tmp_path, "echo \"find: './a': Permission denied\" >&2\nexit 1\n"))
    assert find_listing(str(data)) is None
    result = scan(str(data), state, now_ns=lambda: NOW)
    assert result.source == "walk" and state.scan_snapshot() is None
    monkeypatch.setattr(listing_module, "_find", fake_find(
        tmp_path, "echo 'odd' >&2\nexit 0\n"))   # stderr alone is enough
    assert find_listing(str(data)) is None


def test_without_gnu_find_the_walk_is_used(data, state, tmp_path, monkeypatch):
    monkeypatch.setattr(listing_module, "_find", listing_module._UNKNOWN)
    fake_find(tmp_path, "echo 'find (BSD) 1.0'\n")
    monkeypatch.setenv("PATH", str(tmp_path))  # the "find" the PATH gives
    assert gnu_find() is None
    first = scan(str(data), state, now_ns=lambda: NOW)
    again = scan(str(data), state, now_ns=lambda: NOW)
    assert (first.source, again.source) == ("walk", "walk")
    assert again.hashed == 0 and again.files == first.files
    monkeypatch.setattr(listing_module, "_find", listing_module._UNKNOWN)
    monkeypatch.undo()
    assert gnu_find() is not None


def test_no_find_on_the_path_means_the_walk(data, state, tmp_path, monkeypatch):
    monkeypatch.setattr(listing_module, "_find", listing_module._UNKNOWN)
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))
    assert gnu_find() is None and find_listing(str(data)) is None
    assert scan(str(data), state, now_ns=lambda: NOW).source == "walk"


def test_find_writes_to_unnamed_files_with_or_without_a_state_folder(tmp_path):
    data = tmp_path / "Data"
    write(data, "a/x.txt", "x")
    write(data, "b/y.txt", "y")
    before = find_listing(str(data))  # no .s3sync yet: in the temporary folder
    (data / ".s3sync").mkdir()
    assert find_listing(str(data)) == before and before.count(b"\0") == 4
    assert os.listdir(data / ".s3sync") == []  # nothing named, nothing left


@pytest.mark.parametrize("procs, max_args", [(1, 1 << 16), (2, 0), (2, 1 << 16), (3, 1 << 16)])
def test_one_or_several_finds_list_the_same_records(data, monkeypatch, procs, max_args):
    monkeypatch.setattr(listing_module, "_MAX_ARGS", max_args)
    listing = find_listing(str(data), procs)
    records = sorted(listing.split(b"\0"))
    assert records == sorted(find_listing(str(data), 2).split(b"\0"))
    assert not any(b"./.s3sync" in r for r in records)
    assert any(r.endswith(b" ./new\nline.txt") for r in records)
    assert listing == find_listing(str(data), procs)      # stable bytes


def test_find_listing_of_an_empty_folder(tmp_path):
    assert find_listing(str(tmp_path)) == b""


def test_gitignore_tree_through_find(data, state):
    write(data, ".s3syncignore", "*.tmp\n!keep.tmp\nbuild/\nlogs/\n!logs/wanted.txt\n"
                                 "/top-only.txt\n**/cache/*.bin\n")
    for rel in ["x.tmp", "keep.tmp", "sub/y.tmp", "build/out.o", "sub/build/out.o",
                "logs/wanted.txt", "top-only.txt", "sub/top-only.txt", "deep/cache/b.bin"]:
        write(data, rel, rel)
    os.symlink("x", data / "build" / "link")       # not reported: its folder is ignored
    result = settled(data, state)
    assert "logs/wanted.txt" not in result.files and "sub/keep.tmp" not in result.files
    assert "keep.tmp" in result.files and "sub/top-only.txt" in result.files


def test_old_timestamps_are_read_exactly(data, state):
    write(data, "old.txt", "o", mtime_ns=-750_000_000)          # 1969, before the epoch
    write(data, "older.txt", "o", mtime_ns=-315_619_199_250_000_000)
    result = settled(data, state)
    assert result.files["old.txt"].mtime_ns == -750_000_000
    assert result.files["older.txt"].mtime_ns == -315_619_199_250_000_000
    write(data, "oldest.txt", "o", mtime_ns=-315_619_199_999_999_999)   # read from find's text
    write(data, "newer.txt", "n", mtime_ns=1_700_000_000_123_456_789)
    changed = both(data, state)
    assert changed.source == "changes"
    assert changed.files["oldest.txt"].mtime_ns == -315_619_199_999_999_999
    assert changed.files["newer.txt"].mtime_ns == 1_700_000_000_123_456_789


def test_a_stat_cache_update_by_others_drops_the_snapshot(data, state):
    settled(data, state)
    state.update_stat_cache([])
    assert state.scan_snapshot() is None
    assert both(data, state).source == "walk"


def test_a_damaged_snapshot_is_not_used(data, state):
    settled(data, state)
    state.db.execute("UPDATE scan_snapshot SET result = x'00'")
    assert both(data, state).source == "walk"
    assert scan(str(data), state, now_ns=lambda: NOW).source == "snapshot"


def test_large_files_hashed_in_the_pool_keep_their_order(data, state, monkeypatch):
    monkeypatch.setattr(scan_module, "BATCH_BYTES", 5000)
    monkeypatch.setattr(scan_module, "POOL_MIN_SIZE", 0)
    for i in range(30):
        write(data, f"p/f{i:02d}", "x" * (i * 300))
    result = both(data, state, jobs=3)
    assert result.hashed == 39
    assert all(result.files[f"p/f{i:02d}"].sha256 == sha("x" * (i * 300)) for i in range(30))


def test_a_few_changed_files_under_ignore_rules_take_the_short_way(data, state):
    write(data, ".s3syncignore", "*.tmp\nbuild/\n")
    write(data, "build/old.o", "o")
    settled(data, state)
    write(data, "build/new.o", "n")                 # in an ignored folder
    write(data, "a/scratch.tmp", "t")               # an ignored name
    write(data, "a/kept.txt", "k")
    result = both(data, state)
    assert (result.source, result.hashed) == ("changes", 1)
    assert "a/kept.txt" in result.files and "a/scratch.tmp" not in result.files
    assert not [p for p in result.files if p.startswith("build/")]
    write(data, "fresh/f.txt", "f")                 # a new folder: the rules decide
    assert both(data, state).source == "walk"


def test_a_changed_file_re_included_under_a_double_star_rule(data, state):
    write(data, ".s3syncignore", "a/**\n!a/b.txt\n")
    first = settled(data, state)
    assert "a/b.txt" in first.files and "a/deep/er.bin" not in first.files
    write(data, "a/b.txt", "changed")
    write(data, "a/new.txt", "ignored")
    again = both(data, state)
    assert again.source == "changes" and again.hashed == 1
    assert again.files["a/b.txt"].sha256 == sha("changed") and "a/new.txt" not in again.files


def test_many_changes_take_the_whole_listing(data, state, monkeypatch):
    monkeypatch.setattr(scan_module, "MAX_CHANGES", 3)
    settled(data, state)
    for n in range(3):
        write(data, f"many/{n}.txt", str(n))
    result = both(data, state)
    assert (result.source, result.hashed) == ("walk", 3)


def test_a_changed_file_that_cannot_be_read_on_the_short_way(data, state, monkeypatch):
    settled(data, state)
    write(data, "z/last", "changed")
    real_open = refuse_to_open(monkeypatch, "z/last")
    result = both(data, state)
    assert result.source == "changes" and "z/last" not in result.files
    assert result.warnings[-1] == "z/last: cannot read: Permission denied"
    assert state.scan_snapshot() is None
    monkeypatch.setattr(os, "open", real_open)
    assert both(data, state).files["z/last"].sha256 == sha("changed")


@pytest.mark.parametrize("block", [1, 2, 16, 1 << 16])
def test_trimming_alike_records_keeps_every_difference(monkeypatch, block):
    """The listings' common head and tail go before the set difference; the
    records that differ must be exactly those of the whole listings."""
    import random
    monkeypatch.setattr(scan_module, "_BLOCK", block)
    rnd = random.Random(block)
    for _ in range(1500):
        old = [b"f %d 1.0 2.0 %d ./d/%d" % (rnd.randrange(99), i, i)
               for i in range(rnd.randrange(60))]
        new = list(old)
        for _ in range(rnd.randrange(4)):
            at = rnd.randrange(len(new) + 1)
            op = rnd.randrange(3)
            if op == 0 and at < len(new):
                new[at] += b"x"                     # changed
            elif op == 1:
                new.insert(at, b"f 1 1.0 1.0 1 ./n%d" % rnd.randrange(99))
            elif at < len(new):
                del new[at]
        a, b = (b"".join(r + b"\0" for r in side) for side in (old, new))
        ma, mb = scan_module._middles(a, b)
        whole = (set(a.split(b"\0")), set(b.split(b"\0")))
        part = (set(ma.split(b"\0")), set(mb.split(b"\0")))
        assert (whole[1] - whole[0]) - {b""} == (part[1] - part[0]) - {b""}
        assert (whole[0] - whole[1]) - {b""} == (part[0] - part[1]) - {b""}
        assert len(ma) <= len(a) and len(mb) <= len(b)


@pytest.mark.parametrize("first", [True, False], ids=["walk", "changes"])
def test_a_deferred_file_is_left_unhashed_and_uncached(data, state, first):
    """A push's scan leaves large new files to their upload (``defer``)."""
    from libsync.scan import UNHASHED
    if not first:
        settled(data, state)
    write(data, "new/big.bin", "big")
    asked = []

    def defer(path, size):
        asked.append((path, size))
        return path == "new/big.bin"

    result = both(data, state, defer=defer)
    assert result.source == ("walk" if first else "changes")
    assert result.files["new/big.bin"].sha256 == UNHASHED
    assert result.files["a.txt"].sha256 == sha("a.txt")
    assert ("new/big.bin", 3) in asked
    assert "new/big.bin" not in state.stat_cache()
    # No snapshot holds the unhashed file: the next scan looks at it again.
    again = scan(str(data), state, now_ns=lambda: NOW)
    assert again.source != "snapshot"
    assert again.files["new/big.bin"].sha256 == sha("big")


def test_a_listing_taken_ahead_serves_the_scan(data, state):
    """status and push start find before opening the remote (listing_ahead)."""
    before = settled(data, state)
    with listing_ahead(str(data)) as lister:
        write(data, "later.txt", "after the listing")  # the listing is as of its start
        result = scan(str(data), state, now_ns=lambda: NOW, lister=lister)
    assert result.source == "snapshot" and result.files == before.files
    assert "later.txt" in scan(str(data), state, now_ns=lambda: NOW).files


def test_a_listing_serves_one_scan_of_its_own_folder(data, tmp_path):
    listing = Listing(str(data))
    with pytest.raises(ValueError, match="a listing of .*, not of"):
        listing(str(tmp_path))
    assert listing(str(data)) == find_listing(str(data))
    with pytest.raises(RuntimeError, match="serves one scan"):
        listing(str(data))


def test_a_find_that_cannot_start_means_the_walk(data, state, monkeypatch):
    before = settled(data, state)
    started = []
    real_popen = listing_module.subprocess.Popen

    def popen(*args, **kw):
        if started:
            raise OSError(24, "Too many open files")
        started.append(real_popen(*args, **kw))
        return started[-1]

    monkeypatch.setattr(listing_module.subprocess, "Popen", popen)
    listing = Listing(str(data))
    assert started[0].returncode is not None  # the first find, stopped and waited for
    result = scan(str(data), state, now_ns=lambda: NOW, lister=listing)
    assert result.source == "walk" and result.files == before.files


@pytest.mark.parametrize("used", [True, False])
def test_a_listing_ahead_leaves_no_process_behind(data, monkeypatch, used):
    """Taken or not (the remote failed to open, say), its finds are gone on leaving."""
    started = []
    real_popen = listing_module.subprocess.Popen

    def popen(*args, **kw):
        started.append(real_popen(*args, **kw))
        return started[-1]

    monkeypatch.setattr(listing_module.subprocess, "Popen", popen)
    with pytest.raises(RuntimeError), listing_ahead(str(data)) as lister:
        if used:
            assert lister(str(data))
        raise RuntimeError("opening the remote failed")
    assert len(started) == 2
    # Waited for: read to the end, or stopped (unless it ended first).
    assert all(p.returncode in ((0,) if used else (0, -9)) for p in started)
