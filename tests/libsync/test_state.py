"""The workspace's SQLite state: round trips, the lock, and surviving kill -9."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest
from libsync_helpers import entry, sha, tombstone

from libsync.errors import FormatError, LockedError
from libsync.manifest import Manifest
from libsync.state import CachedStat, State

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def data(tmp_path):
    d = tmp_path / "Data"
    d.mkdir()
    return str(d)


def python(code: str, **kw) -> subprocess.Popen:
    """A child Python that imports libsync from this checkout."""
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_new_state_is_empty_at_generation_zero(data):
    with State(data) as s:
        assert s.base() == {}
        assert s.remote() == Manifest(0, {})
        assert s.pending() == {}
        assert s.stat_cache() == {}
        assert s.get_meta("schema") == "1"
    assert os.path.isfile(os.path.join(data, ".s3sync", "state.db"))


def test_base_round_trips_entries_and_tombstones_across_reopening(data):
    records = [entry("a.txt", "A"), tombstone("b.txt", "B"), entry("dir/caf\u00e9", "C")]
    with State(data) as s:
        s.set_base(records)
    with State(data) as s:
        assert s.base() == {r.path: r for r in records}
        s.set_base([entry("a.txt", "A2")], drop=["b.txt", "not-there"])
        assert s.base() == {"a.txt": entry("a.txt", "A2"),
                            "dir/caf\u00e9": entry("dir/caf\u00e9", "C")}


def test_save_remote_replaces_the_whole_manifest(data):
    with State(data) as s:
        s.save_remote(Manifest(3, {"a.txt": entry("a.txt"), "b.txt": entry("b.txt")}))
        s.save_remote(Manifest(5, {"c.txt": tombstone("c.txt")}))
    with State(data) as s:
        assert s.remote() == Manifest(5, {"c.txt": tombstone("c.txt")})


def test_save_remote_with_changed_writes_only_those_rows(data):
    with State(data) as s:
        s.save_remote(Manifest(3, {"a.txt": entry("a.txt", "A"), "b.txt": entry("b.txt")}))
        full = Manifest(4, {"a.txt": tombstone("a.txt", "A"), "b.txt": entry("b.txt"),
                            "c.txt": entry("c.txt")})
        s.save_remote(full, changed=[tombstone("a.txt", "A"), entry("c.txt")])
        assert s.remote() == full


def test_pending_round_trips_with_what_each_was_based_on(data):
    up, gone = entry("new.txt", "N", etag="e9"), tombstone("old.txt", "O")
    with State(data) as s:
        s.add_pending(up, None)
        s.add_pending(gone, sha("O"))
    with State(data) as s:
        assert s.pending() == {"new.txt": (up, None), "old.txt": (gone, sha("O"))}
        newer = entry("new.txt", "N2", etag="e10")
        s.add_pending(newer, sha("N"))
        s.drop_pending(["old.txt"])
        assert s.pending() == {"new.txt": (newer, sha("N"))}


def test_stat_cache_round_trips(data):
    rows = [CachedStat("a.txt", 1, 2**62, 2**62 + 1, 2**40, sha("A"), 7),
            CachedStat("b/c.txt", 0, 0, 0, 1, sha(""), 8)]
    with State(data) as s:
        s.update_stat_cache(rows)
    with State(data) as s:
        assert s.stat_cache() == {r.path: r for r in rows}
        s.update_stat_cache([CachedStat("a.txt", 2, 3, 4, 5, sha("AA"), 9)], drop=["b/c.txt"])
        assert s.stat_cache() == {"a.txt": CachedStat("a.txt", 2, 3, 4, 5, sha("AA"), 9)}


def test_the_scan_snapshot_round_trips_whole_and_alone(data):
    listing, result = os.urandom(300_000), os.urandom(500_000)  # many pages each
    with State(data) as s:
        assert s.scan_snapshot() is None
        s.update_stat_cache([], snapshot=("key", listing, result))
    with State(data) as s, State(data) as other:
        assert s.scan_snapshot() == ("key", listing, result)
        with s.transaction():  # read inside a transaction of the caller's
            assert s.scan_snapshot() == ("key", listing, result)
        assert not s.db.in_transaction
        # Read in one transaction: a writer in between changes all or nothing.
        s.db.execute("BEGIN")
        s.db.execute("SELECT rules FROM scan_snapshot").fetchone()
        other.update_stat_cache([], snapshot=("new", b"l", b"r"))
        assert s.scan_snapshot() == ("key", listing, result)
        s.db.execute("COMMIT")
        assert s.scan_snapshot() == ("new", b"l", b"r")
        assert s.db.execute("PRAGMA mmap_size").fetchone() == (0,)  # the map dropped
        other.update_stat_cache([])  # a stat cache change without one drops it
        assert s.scan_snapshot() is None


def test_a_failed_transaction_leaves_nothing_behind(data):
    with State(data) as s:
        s.set_base([entry("a.txt")])
        with pytest.raises(RuntimeError), s.transaction() as db:
            db.execute("DELETE FROM base")
            raise RuntimeError("boom")
        assert s.base() == {"a.txt": entry("a.txt")}


def test_state_of_an_unknown_schema_is_refused(data):
    with State(data) as s:
        s.set_meta("schema", "2")
    with pytest.raises(FormatError, match="local state has schema 2, this s3sync reads 1"):
        State(data)


# -- the workspace lock ----------------------------------------------------------------

def test_second_state_cannot_take_the_lock(data):
    with State(data) as first:
        first.lock()
        second = State(data)
        try:
            with pytest.raises(LockedError, match="another s3sync is running in this workspace"):
                second.lock()
        finally:
            second.close()
    with State(data) as third:       # closing the first released it
        third.lock()


def test_unlock_releases_the_lock(data):
    with State(data) as first, State(data) as second:
        first.lock()
        first.unlock()
        second.lock()
        with pytest.raises(LockedError):
            first.lock()


def test_lock_held_by_another_process(data):
    child = python(f"""
        import sys, time
        from libsync.state import State
        s = State({data!r})
        s.lock()
        print("locked", flush=True)
        sys.stdin.readline()
    """, stdin=subprocess.PIPE)
    try:
        assert child.stdout.readline() == "locked\n"
        with State(data) as s:
            with pytest.raises(LockedError):
                s.lock()
    finally:
        child.kill()
        child.communicate()
    with State(data) as s:          # the kernel drops a dead process's lock
        s.lock()


# -- kill -9 in the middle of writes ---------------------------------------------------

BATCH = 10


def test_state_survives_sigkill_during_writes(data):
    child = python(f"""
        from libsync.manifest import Entry
        from libsync.state import State
        s = State({data!r})
        i = 0
        while True:
            s.set_base([Entry(f"f{{i + k:07d}}", i + k, "{'a' * 64}", 1, "ann", "T", "e")
                        for k in range({BATCH})])
            s.set_meta("written", str(i + {BATCH}))
            i += {BATCH}
            if i == 300:
                print("going", flush=True)
    """)
    try:
        assert child.stdout.readline() == "going\n", child.stderr.read()
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate()
    assert child.returncode == -signal.SIGKILL

    db = sqlite3.connect(os.path.join(data, ".s3sync", "state.db"))
    assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    db.close()
    with State(data) as s:
        base = s.base()
        n = len(base)
        assert n >= 300 and n % BATCH == 0           # every batch whole or absent
        assert sorted(base) == [f"f{i:07d}" for i in range(n)]   # a prefix, no holes
        assert all(base[f"f{i:07d}"].size == i for i in range(n))
        # The meta row was written after each batch, in its own transaction.
        assert int(s.get_meta("written")) in (n, n - BATCH)
        s.set_base([entry("after.txt")])              # and it is writable again
        assert "after.txt" in s.base()
