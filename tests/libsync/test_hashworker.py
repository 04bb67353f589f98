"""Small files hashed in helper processes: the same answers as hashing here."""

from __future__ import annotations

import errno
import io
import os
import struct

import pytest
from libsync_helpers import sha, write

from libsync import hashworker
from libsync import scan as scan_module
from libsync.hashworker import ANSWER, CHANGED, LARGE, NOT_REGULAR, HashWorkers, hash_one, serve
from libsync.scan import UNHASHED, scan
from libsync.state import State

NOW = 1_800_000_000_000_000_000  # long after the files' mtimes: none is racy


def request(*paths: bytes, limit: int = 1 << 20) -> bytes:
    blob = b"".join(p + b"\0" for p in paths)
    return struct.pack("<IQ", len(blob), limit) + blob


def test_serve_answers_each_path_in_order_with_the_stat_it_read(tmp_path):
    names = [b"plain", b"-n", b"new\nline", b"latin1-\xe9", b"empty"]
    for name in names:
        (tmp_path / os.fsdecode(name)).write_bytes(b"" if name == b"empty" else name)
    paths = [os.fsencode(tmp_path) + b"/" + n for n in names]
    out = io.BytesIO()
    serve(io.BytesIO(request(*paths[:2]) + request(paths[2], b"/no/such", *paths[3:])), out)
    answers = list(ANSWER.iter_unpack(out.getvalue()))
    assert len(answers) == 6
    got = [a for i, a in enumerate(answers) if i != 3]
    for name, answer in zip(names, got, strict=True):
        content = b"" if name == b"empty" else name
        st = os.stat(os.fsencode(tmp_path) + b"/" + name)
        assert answer == (bytes.fromhex(sha(content)), len(content), st.st_mtime_ns,
                          st.st_ctime_ns, st.st_ino, 0)
    assert answers[3] == (bytes(32), 0, 0, 0, 0, errno.ENOENT)


def test_a_symbolic_link_is_not_followed(tmp_path):
    os.symlink("/etc/passwd", tmp_path / "link")
    out = io.BytesIO()
    serve(io.BytesIO(request(os.fsencode(tmp_path / "link"))), out)
    assert ANSWER.unpack(out.getvalue())[5] == errno.ELOOP


def test_a_fifo_is_not_read_and_does_not_hang(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    assert hash_one(os.fsencode(tmp_path / "fifo"), 1 << 20)[5] == NOT_REGULAR


def test_a_file_over_the_limit_is_stated_not_read(tmp_path):
    (tmp_path / "big").write_bytes(b"x" * 101)
    (tmp_path / "small").write_bytes(b"x" * 100)
    st = os.stat(tmp_path / "big")
    assert hash_one(str(tmp_path / "big"), 100) == (
        b"", 101, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, LARGE)
    assert hash_one(str(tmp_path / "small"), 100)[0].hex() == sha(b"x" * 100)


def test_a_file_that_grows_while_it_is_read_has_no_digest(tmp_path, monkeypatch):
    path = tmp_path / "growing"
    path.write_bytes(b"x" * 70_000)
    real_read = os.read

    def read_and_grow(fd, n):
        data = real_read(fd, n)
        with open(path, "ab") as f:
            f.write(b"more")
        return data
    monkeypatch.setattr(hashworker.os, "read", read_and_grow)
    digest, size, *_, code = hash_one(str(path), 1 << 20)
    assert (digest, size, code) == (b"", 70_000, CHANGED)


def test_helpers_hash_in_processes_and_stop_when_closed(tmp_path):
    workers = HashWorkers(2)
    (tmp_path / "a").write_bytes(b"a")
    try:
        assert workers.hash([str(tmp_path / "a")], 10)[0][0].hex() == sha(b"a")
        assert workers.hash([str(tmp_path / "b")], 10)[0][5] == errno.ENOENT
        procs = [w.proc for w in workers._started]
        assert procs and all(p.poll() is None for p in procs)
    finally:
        workers.close()
    assert all(p.poll() == 0 for p in procs)


def test_a_helper_that_dies_answers_none_from_then_on(tmp_path):
    workers = HashWorkers(1)
    (tmp_path / "a").write_bytes(b"a")
    try:
        assert workers.hash([str(tmp_path / "a")], 10) is not None
        workers._started[0].proc.kill()
        workers._started[0].proc.wait()
        assert workers.hash([str(tmp_path / "a")], 10) is None
        assert workers.hash([str(tmp_path / "a")], 10) is None
    finally:
        workers.close()


def test_a_helper_that_cannot_start_answers_none(tmp_path, monkeypatch):
    monkeypatch.setattr(hashworker.sys, "executable", str(tmp_path / "no-python"))
    workers = HashWorkers(2)
    assert workers.hash([str(tmp_path)], 10) is None
    workers.close()


# -- in the scan ---------------------------------------------------------------------

@pytest.fixture
def data(tmp_path):
    d = tmp_path / "Data"
    d.mkdir()
    for i in range(40):
        write(d, f"d{i % 3}/f{i:02d}.txt", f"content {i}" * (i + 1))
    return d


class Helping:
    """Small batches, helpers whatever the core count, and a hook on each request."""

    def __init__(self, monkeypatch, before=None):
        monkeypatch.setattr(scan_module, "BATCH_BYTES", 16 << 10)
        monkeypatch.setattr(scan_module, "HELPER_BATCH_BYTES", 32 << 10)
        monkeypatch.setattr(scan_module.os, "cpu_count", lambda: 2)
        monkeypatch.setattr(scan_module, "HELPER_MIN_ENTRIES", 0)
        self.files = 0
        real = HashWorkers.hash

        def counted(workers, paths, limit):
            self.files += len(paths)
            if before:
                before(workers, paths)
            return real(workers, paths, limit)
        monkeypatch.setattr(HashWorkers, "hash", counted)


def scan_twice(data, tmp_path):
    """A scan with helpers and one without, from fresh states; their files."""
    with State(str(data)) as state:
        helped = scan(str(data), state, now_ns=lambda: NOW, jobs=4)
    alone_state = tmp_path / "alone"
    os.rename(data / ".s3sync", alone_state)  # keep the helped state out of the way
    with State(str(data)) as state:
        alone = scan(str(data), state, now_ns=lambda: NOW, jobs=1)
    return helped, alone


def test_a_scan_with_helpers_equals_one_without(data, tmp_path, monkeypatch):
    helping = Helping(monkeypatch)
    helped, alone = scan_twice(data, tmp_path)
    assert helping.files == helped.hashed == 40
    assert helped.files == alone.files and helped.warnings == alone.warnings == ()
    assert helped.files["d1/f07.txt"].sha256 == sha("content 7" * 8)


def grow_f05(workers, paths):
    for p in paths:
        if p.endswith("f05.txt"):
            with open(p, "a") as f:
                f.write("more")


def test_a_first_scan_keeps_the_stat_its_helper_read(data, monkeypatch):
    """No stat cache: the walk takes no stat, the helper's is the file's."""
    Helping(monkeypatch, before=grow_f05)
    with State(str(data)) as state:
        result = scan(str(data), state, now_ns=lambda: NOW, jobs=4)
        row = state.stat_cache()["d2/f05.txt"]
    st = os.stat(data / "d2" / "f05.txt")
    assert result.warnings == () and len(result.files) == 40
    assert result.files["d2/f05.txt"] == ("d2/f05.txt", st.st_size, st.st_mtime_ns,
                                          sha("content 5" * 6 + "more"))
    assert row[:6] == ("d2/f05.txt", st.st_size, st.st_mtime_ns, st.st_ctime_ns,
                       st.st_ino, sha("content 5" * 6 + "more"))


def test_a_known_file_changed_after_the_walk_stated_it_is_skipped(data, monkeypatch):
    with State(str(data)) as state:
        scan(str(data), state, now_ns=lambda: NOW, jobs=1)  # the cache knows every file
        for i in range(40):
            write(data, f"d{i % 3}/f{i:02d}.txt", f"changed {i}")
        state.update_stat_cache([], snapshot=None)  # no snapshot: the walk, with a cache
        Helping(monkeypatch, before=grow_f05)
        result = scan(str(data), state, now_ns=lambda: NOW, jobs=4)
    assert "d2/f05.txt" not in result.files and len(result.files) == 39
    assert result.warnings == ("d2/f05.txt: changed while it was read; skipped this time",)
    assert "d2/f05.txt" in result.skipped


def test_a_fifo_swapped_in_before_its_helper_read_it_is_skipped(data, monkeypatch):
    """The walk took the file's type from the listing; the helper finds a
    FIFO on the path, does not hang on it, and the scan skips it."""
    def swap(workers, paths):
        for p in paths:
            if p.endswith("f05.txt") and not os.path.exists(p + ".gone"):
                os.rename(p, p + ".gone")
                os.mkfifo(p)
    Helping(monkeypatch, before=swap)
    with State(str(data)) as state:
        result = scan(str(data), state, now_ns=lambda: NOW, jobs=4)
    assert result.warnings == ("d2/f05.txt: special file skipped",)
    assert "d2/f05.txt" not in result.files and len(result.files) == 39


def test_a_file_gone_before_its_helper_read_it(data, monkeypatch):
    def remove(workers, paths):
        for p in paths:
            if p.endswith("f10.txt") and os.path.exists(p):
                os.unlink(p)
    Helping(monkeypatch, before=remove)
    with State(str(data)) as state:
        result = scan(str(data), state, now_ns=lambda: NOW, jobs=4)
    assert result.warnings == ("d1/f10.txt: cannot read: No such file or directory",)


def test_when_helpers_die_the_scan_hashes_the_rest_itself(data, tmp_path, monkeypatch):
    def kill(workers, paths):
        for worker in workers._started:
            worker.proc.kill()
    Helping(monkeypatch, before=kill)
    helped, alone = scan_twice(data, tmp_path)
    assert helped.files == alone.files and helped.hashed == 40 and not helped.warnings


def test_a_few_changed_files_are_hashed_without_starting_a_helper(data, monkeypatch):
    with State(str(data)) as state:
        scan(str(data), state, now_ns=lambda: NOW, jobs=1)
        helping = Helping(monkeypatch)
        monkeypatch.setattr(scan_module, "BATCH_BYTES", 1 << 20)
        for i in range(5):
            write(data, f"d{i % 3}/f{i:02d}.txt", f"changed {i}")
        result = scan(str(data), state, now_ns=lambda: NOW, jobs=4)
    assert result.hashed == 5 and helping.files == 0
    assert result.files["d1/f04.txt"].sha256 == sha("changed 4")


def test_a_first_scan_starts_its_helpers_at_once(data, monkeypatch):
    """With no stat cache every file is hashed: the helpers start at once, and
    even the last, partial batch goes to them."""
    helping = Helping(monkeypatch)
    monkeypatch.setattr(scan_module, "HELPER_BATCH_BYTES", 1 << 20)  # one partial batch
    started = []
    real_start = HashWorkers.start
    monkeypatch.setattr(HashWorkers, "start", lambda w: started.append(w) or real_start(w))
    with State(str(data)) as state:
        first = scan(str(data), state, now_ns=lambda: NOW, jobs=4)
        assert len(started) == 1 and helping.files == first.hashed == 40
        write(data, "d0/f00.txt", "changed")
        os.utime(data / "d0" / "f00.txt", ns=(NOW - 10**10, NOW - 10**10))
        state.update_stat_cache([], snapshot=None)  # no snapshot: the walk, with a cache
        again = scan(str(data), state, now_ns=lambda: NOW, jobs=4)
    assert len(started) == 1 and again.hashed == 1 and helping.files == 40


def test_a_tree_of_few_entries_is_hashed_without_helpers(data, monkeypatch):
    helping = Helping(monkeypatch)
    monkeypatch.setattr(scan_module, "HELPER_MIN_ENTRIES", 44)  # 40 files, 3 folders, 1 file more
    with State(str(data)) as state:
        result = scan(str(data), state, now_ns=lambda: NOW, jobs=4)
    assert result.hashed == 40 and helping.files == 0
    write(data, "d0/extra.txt", "one more")
    with State(str(data)) as state:
        state.update_stat_cache([], drop=list(state.stat_cache()))  # a first scan again
        result = scan(str(data), state, now_ns=lambda: NOW, jobs=4)
    assert result.hashed == 41 and helping.files == 41


def test_files_too_large_for_a_helper_are_hashed_in_the_pool(data, tmp_path, monkeypatch):
    helping = Helping(monkeypatch)
    monkeypatch.setattr(scan_module, "HELPER_READ_MAX", 100)
    helped, alone = scan_twice(data, tmp_path)
    assert sum(f.size > 100 for f in alone.files.values()) == 30
    assert helped.files == alone.files and helped.hashed == 40 and not helped.warnings
    assert helping.files == 40  # each stat'ed by a helper; 30 read in the pool


def test_a_push_defers_large_files_its_helpers_stated(data, monkeypatch):
    Helping(monkeypatch)
    monkeypatch.setattr(scan_module, "HELPER_READ_MAX", 100)
    with State(str(data)) as state:
        result = scan(str(data), state, now_ns=lambda: NOW, jobs=4,
                      defer=lambda path, size: size > 200)
        rows = state.stat_cache()
        snapshot = state.scan_snapshot()
    deferred = {p for p, f in result.files.items() if f.sha256 == UNHASHED}
    assert deferred == {p for p, f in result.files.items() if f.size > 200}
    assert len(deferred) == 20 and len(result.files) == 40
    assert result.hashed == 20 and set(rows) == set(result.files) - deferred
    assert snapshot is None  # the next scan must hash what the upload did not
