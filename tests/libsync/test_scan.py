"""Walking the data folder: ignore rules, skipped files, NFC, the stat cache."""

from __future__ import annotations

import errno
import os

import pytest
from libsync_helpers import OLD_NS, entry, sha, write

from libsync import diff
from libsync.errors import ConfigError
from libsync.scan import RACY_WINDOW_NS, ScanResult, is_clean, scan
from libsync.state import CachedStat, State

NFC_NAME = "caf\u00e9.txt"
NFD_NAME = "cafe\u0301.txt"
SECOND = 1_000_000_000


@pytest.fixture
def data(tmp_path):
    d = tmp_path / "Data"
    d.mkdir()
    return d


@pytest.fixture
def state(data):
    with State(str(data)) as s:
        yield s


def run(data, state, **kw) -> ScanResult:
    return scan(str(data), state, **kw)


def no_find(data_dir: str) -> None:
    """A lister for a system without GNU find: the Python walk is used."""
    return None


def listed(result: ScanResult) -> list[str]:
    return list(result.files)


# -- what is listed --------------------------------------------------------------------

def test_scan_lists_every_file_with_size_mtime_and_sha256(data, state):
    write(data, "b.csv", "1,2\n")
    write(data, "a/deep/er.bin", b"\x00\x01", mtime_ns=OLD_NS + 5)
    write(data, "a/empty.txt", "")
    (data / "empty-folder").mkdir()
    result = run(data, state)
    assert listed(result) == ["a/deep/er.bin", "a/empty.txt", "b.csv"]
    f = result.files["a/deep/er.bin"]
    assert (f.path, f.size, f.mtime_ns, f.sha256) == ("a/deep/er.bin", 2, OLD_NS + 5,
                                                     sha(b"\x00\x01"))
    assert result.files["a/empty.txt"].sha256 == sha("")
    assert result.hashed == 3
    assert result.warnings == () and result.skipped == frozenset()


def test_state_folder_is_never_listed(data, state):
    write(data, "a.txt", "A")
    write(data, ".s3sync/extra.txt", "not data")
    write(data, ".s3sync/trash/a.txt/x", "not data")
    result = run(data, state)
    assert listed(result) == ["a.txt"]
    assert (data / ".s3sync" / "state.db").exists()   # the walk did pass it by


def test_progress_and_warning_callbacks(data, state):
    write(data, "a.txt", "A")
    write(data, "b.txt", "B")
    os.symlink("a.txt", data / "link")
    ticks, warnings = [], []
    result = run(data, state, progress=ticks.append, on_warning=warnings.append)
    assert ticks == [1, 1]
    assert warnings == ["link: symbolic link skipped"] == list(result.warnings)
    ticks.clear()
    run(data, state, progress=ticks.append)   # cached files count too
    assert ticks == [1, 1]


# -- ignore rules ----------------------------------------------------------------------

def test_s3syncignore_uses_gitignore_syntax(data, state):
    write(data, ".s3syncignore", "\n".join([
        "# comment line",
        "*.tmp",
        "!keep.tmp",
        "build/",
        "/top-only.txt",
        "logs/",
        "!logs/wanted.txt",      # cannot re-include a file whose folder is excluded
        "**/cache/*.bin",
    ]) + "\n")
    for rel in ["a.csv", "x.tmp", "keep.tmp", "sub/y.tmp", "sub/keep.tmp",
                "build/out.o", "sub/build/out.o", "build.txt",
                "top-only.txt", "sub/top-only.txt",
                "logs/wanted.txt", "logs/other.txt",
                "cache/a.bin", "deep/cache/b.bin", "deep/cache/c.txt"]:
        write(data, rel, rel)
    assert listed(run(data, state)) == [
        ".s3syncignore", "a.csv", "build.txt", "deep/cache/c.txt", "keep.tmp",
        "sub/keep.tmp", "sub/top-only.txt"]


@pytest.mark.parametrize("lister", [None, no_find], ids=["find", "walk"])
def test_a_file_re_included_under_a_double_star_folder_rule(data, state, lister):
    """As in git: "data/**" ignores what is inside data/, not data/ itself, so
    "!data/keep.csv" brings that file back; "logs/" ignores the folder, and
    nothing under it can be brought back."""
    write(data, ".s3syncignore", "data/**\n!data/keep.csv\nlogs/\n!logs/keep.csv\n")
    for rel in ["data/keep.csv", "data/other.csv", "data/sub/keep.csv", "logs/keep.csv"]:
        write(data, rel, rel)
    result = run(data, state, lister=lister)
    assert listed(result) == [".s3syncignore", "data/keep.csv"]
    assert not result.ignored_folder("data") and result.ignored_folder("data/sub")
    assert result.ignored_folder("logs")
    assert result.ignored("data/other.csv") and not result.ignored("data/keep.csv")


def test_ignore_argument_adds_the_config_patterns(data, state):
    write(data, "a.csv", "A")
    write(data, "b.log", "B")
    write(data, "scratch/c.csv", "C")
    assert listed(run(data, state, ignore=["*.log", "scratch/"])) == ["a.csv"]
    assert listed(run(data, state)) == ["a.csv", "b.log", "scratch/c.csv"]


@pytest.mark.parametrize("lister", [None, no_find], ids=["find", "walk"])
def test_a_rule_git_cannot_read_is_a_config_error_naming_it(data, state, lister):
    write(data, "a.csv", "A")
    write(data, ".s3syncignore", "*.log\n!\n")
    with pytest.raises(ConfigError, match=r"^ignore rule '!' is not a valid pattern \(from "):
        run(data, state, lister=lister)
    assert state.scan_snapshot() is None and state.stat_rows() == {}


def test_config_patterns_and_s3syncignore_combine_with_negation_across_them(data, state):
    write(data, ".s3syncignore", "!important.log\n")
    write(data, "important.log", "I")
    write(data, "noise.log", "N")
    assert listed(run(data, state, ignore=["*.log"])) == [".s3syncignore", "important.log"]


def test_personal_ignore_file_in_the_state_folder(data, state):
    write(data, "mine.txt", "M")
    write(data, "team.txt", "T")
    write(data, ".s3sync/ignore", "mine.txt\n")
    assert listed(run(data, state)) == ["team.txt"]


def test_ignored_file_drops_out_of_the_stat_cache(data, state):
    write(data, "a.txt", "A")
    write(data, "b.tmp", "B")
    run(data, state)
    assert set(state.stat_cache()) == {"a.txt", "b.tmp"}
    assert listed(run(data, state, ignore=["*.tmp"])) == ["a.txt"]
    assert set(state.stat_cache()) == {"a.txt"}


# -- symlinks and special files --------------------------------------------------------

def test_symlinks_and_fifos_are_skipped_with_a_warning(data, state, tmp_path):
    outside = tmp_path / "outside"
    write(outside, "secret.txt", "S")
    write(data, "real.txt", "R")
    os.symlink("real.txt", data / "file-link")
    os.symlink(outside, data / "dir-link")
    os.symlink("nowhere", data / "broken-link")
    os.mkfifo(data / "pipe")
    result = run(data, state)
    assert listed(result) == ["real.txt"]
    assert sorted(result.warnings) == ["broken-link: symbolic link skipped",
                                       "dir-link: symbolic link skipped",
                                       "file-link: symbolic link skipped",
                                       "pipe: special file skipped"]
    assert result.skipped == {"file-link", "dir-link", "broken-link", "pipe"}


def test_skipped_paths_are_not_planned_for_deletion(data, state):
    # A file that became a symlink is unknown, not deleted: the plan leaves it be.
    os.symlink("elsewhere", data / "a.txt")
    result = run(data, state)
    base = remote = {"a.txt": entry("a.txt")}
    local = {p: f.sha256 for p, f in result.files.items()}
    assert diff.reconcile(local, base, remote, skipped=result.skipped) == ()


def test_files_under_an_unreadable_folder_are_not_planned_for_deletion(data, state,
                                                                       monkeypatch):
    write(data, "locked/a.txt", "A")
    write(data, "open.txt", "O")
    real_scandir = os.scandir

    def scandir(path):
        if os.path.basename(path) == "locked":
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    result = run(data, state, lister=no_find)        # find does not call os.scandir
    assert listed(result) == ["open.txt"]
    assert result.warnings == ("locked: cannot read folder: Permission denied",)
    base = remote = {"locked/a.txt": entry("locked/a.txt", "A"),
                     "open.txt": entry("open.txt", "O")}
    local = {p: f.sha256 for p, f in result.files.items()}
    assert diff.reconcile(local, base, remote, skipped=result.skipped) == ()


# -- Unicode normalisation -------------------------------------------------------------

def test_nfd_file_name_is_listed_in_nfc(data, state):
    write(data, f"dir/{NFD_NAME}", "accented")
    assert os.listdir(data / "dir") == [NFD_NAME]      # the disk keeps NFD bytes
    result = run(data, state)
    assert listed(result) == [f"dir/{NFC_NAME}"]
    assert result.files[f"dir/{NFC_NAME}"].sha256 == sha("accented")
    assert set(state.stat_cache()) == {f"dir/{NFC_NAME}"}
    assert run(data, state).hashed == 0                 # the cache row is found again


def test_two_files_colliding_after_nfc_are_reported(data, state):
    write(data, NFC_NAME, "one")
    write(data, NFD_NAME, "two")
    result = run(data, state)
    assert NFC_NAME in result.skipped
    assert NFC_NAME not in result.files
    assert any(NFC_NAME in w for w in result.warnings)


# -- the stat cache --------------------------------------------------------------------

def test_unchanged_old_files_are_not_hashed_twice(data, state):
    for i in range(5):
        write(data, f"f{i}.txt", f"content {i}")
    first = run(data, state)
    second = run(data, state)
    assert (first.hashed, second.hashed) == (5, 0)
    assert second.files == first.files
    assert second.files["f3.txt"].sha256 == sha("content 3")


def test_stat_cache_survives_reopening_the_state(data):
    write(data, "a.txt", "A")
    with State(str(data)) as s:
        assert run(data, s).hashed == 1
    with State(str(data)) as s:
        assert run(data, s).hashed == 0


@pytest.mark.parametrize("change", ["size", "mtime", "inode"])
def test_a_changed_file_is_hashed_again(data, state, change):
    write(data, "a.txt", "first")
    write(data, "b.txt", "other")
    run(data, state)
    if change == "size":
        write(data, "a.txt", "longer content")
        new = "longer content"
    elif change == "mtime":
        write(data, "a.txt", "FIRST", mtime_ns=OLD_NS + SECOND)
        new = "FIRST"
    else:                           # replaced by rename, same size and mtime
        write(data, "a.new", "FIRST")
        os.replace(data / "a.new", data / "a.txt")
        new = "FIRST"
    result = run(data, state)
    assert result.hashed == 1
    assert result.files["a.txt"].sha256 == sha(new)
    assert result.files["b.txt"].sha256 == sha("other")
    assert state.stat_cache()["a.txt"].sha256 == sha(new)


def test_a_deleted_file_leaves_the_stat_cache(data, state):
    write(data, "a.txt", "A")
    write(data, "b.txt", "B")
    run(data, state)
    os.unlink(data / "a.txt")
    result = run(data, state)
    assert listed(result) == ["b.txt"]
    assert set(state.stat_cache()) == {"b.txt"}


# -- the racily-clean rule -------------------------------------------------------------

def cached(path: str, st: os.stat_result, checked_ns: int, digest: str = "0" * 64,
           **changes) -> CachedStat:
    fields = dict(path=path, size=st.st_size, mtime_ns=st.st_mtime_ns,
                  ctime_ns=st.st_ctime_ns, inode=st.st_ino, sha256=digest,
                  checked_ns=checked_ns)
    fields.update(changes)
    return CachedStat(**fields)


@pytest.mark.parametrize("checked_after_mtime, clean", [
    (0, False),                          # hashed the moment it was written
    (-SECOND, False),                    # hashed "before" it was written (clock skew)
    (1, False),
    (RACY_WINDOW_NS - 1, False),
    (RACY_WINDOW_NS, False),             # mtime must be strictly older than the window
    (RACY_WINDOW_NS + 1, True),
    (3600 * SECOND, True),
])
def test_is_clean_distrusts_rows_written_within_the_racy_window(data, checked_after_mtime,
                                                                clean):
    st = os.stat(write(data, "a.txt", "A"))
    assert is_clean(cached("a.txt", st, st.st_mtime_ns + checked_after_mtime), st) is clean


@pytest.mark.parametrize("field", ["size", "mtime_ns", "ctime_ns", "inode"])
def test_is_clean_needs_every_stat_field_to_match(data, field):
    st = os.stat(write(data, "a.txt", "A"))
    row = cached("a.txt", st, st.st_mtime_ns + 3600 * SECOND)
    assert is_clean(row, st) is True
    changed = cached("a.txt", st, row.checked_ns, **{field: getattr(row, field) + 1})
    assert is_clean(changed, st) is False


def test_is_clean_without_a_row_is_false(data):
    assert is_clean(None, os.stat(write(data, "a.txt", "A"))) is False


def test_a_file_hashed_as_it_was_written_is_hashed_again(data, state):
    write(data, "a.txt", "A", mtime_ns=OLD_NS)
    write(data, "b.txt", "B", mtime_ns=OLD_NS - 3600 * SECOND)
    same_moment = run(data, state, now_ns=lambda: OLD_NS + 1)
    assert same_moment.hashed == 2
    assert state.stat_cache()["a.txt"].checked_ns == OLD_NS + 1
    # b.txt is an hour older than that moment; a.txt is racily clean.
    later = run(data, state, now_ns=lambda: OLD_NS + RACY_WINDOW_NS + 1)
    assert later.hashed == 1
    assert state.stat_cache()["a.txt"].checked_ns == OLD_NS + RACY_WINDOW_NS + 1
    # Now that a.txt was hashed safely after its mtime, the cache is trusted.
    assert run(data, state).hashed == 0


def rewrite_in_place(path, content: str, mtime_ns: int) -> os.stat_result:
    """New bytes of the same size in the same inode, mtime put back: only ctime moves."""
    with open(path, "r+b") as f:
        f.write(content.encode())
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return os.stat(path)


@pytest.mark.parametrize("checked_ns, seen", [
    (OLD_NS + 1, "new"),                             # racy row: hashed again
    (OLD_NS + RACY_WINDOW_NS + 1, "old"),            # trusted row: stale by design
])
def test_racy_row_catches_a_same_size_same_mtime_rewrite(data, state, checked_ns, seen):
    p = write(data, "a.txt", "old!", mtime_ns=OLD_NS)
    run(data, state, now_ns=lambda: checked_ns)
    row = state.stat_cache()["a.txt"]
    assert (row.sha256, row.checked_ns) == (sha("old!"), checked_ns)
    st = rewrite_in_place(p, "new!", OLD_NS)
    assert (st.st_size, st.st_mtime_ns, st.st_ino) == (row.size, row.mtime_ns, row.inode)
    # A rewrite within the same timestamp tick leaves ctime unchanged too; the
    # test clock cannot do that, so give the row the new ctime by hand.
    state.update_stat_cache([cached("a.txt", st, checked_ns, row.sha256)])
    result = run(data, state, now_ns=lambda: OLD_NS + 3600 * SECOND)
    assert result.files["a.txt"].sha256 == {"new": sha("new!"), "old": sha("old!")}[seen]
    assert result.hashed == (1 if seen == "new" else 0)


def test_rewrite_keeping_size_and_mtime_is_seen_through_ctime(data, state):
    p = write(data, "a.txt", "old!", mtime_ns=OLD_NS)
    run(data, state, now_ns=lambda: OLD_NS + 3600 * SECOND)
    before = state.stat_cache()["a.txt"]
    st = rewrite_in_place(p, "new!", OLD_NS)
    if st.st_ctime_ns == before.ctime_ns:
        pytest.skip("the file system's ctime did not move")
    result = run(data, state)
    assert result.hashed == 1
    assert result.files["a.txt"].sha256 == sha("new!")


# -- order and the hashing pool --------------------------------------------------------

def test_files_are_listed_in_path_order_across_folders(data, state):
    # A folder sorts as its name plus "/": "a.txt" and "a-b/" come before "a/".
    names = ["a/b.txt", "a.txt", "a-b/c.txt", "a0", "a/a/z", "b", "A/x", "a/ b"]
    for rel in names:
        write(data, rel, rel)
    assert listed(run(data, state)) == sorted(names)
    assert listed(run(data, state)) == sorted(names)     # from the stat cache too


def test_large_files_are_hashed_in_the_pool_and_keep_their_place(data, state, monkeypatch):
    from libsync import hashworker
    monkeypatch.setattr(hashworker, "_READ_MAX", 4)  # read in many pieces
    contents = {f"d{i % 3}/f{i:02d}.bin": "x" * i for i in range(20)}
    for rel, content in contents.items():
        write(data, rel, content)
    result = run(data, state, jobs=2)
    assert listed(result) == sorted(contents)
    assert {p: f.sha256 for p, f in result.files.items()} == {
        p: sha(c) for p, c in contents.items()}
    assert result.hashed == 20
    assert run(data, state).hashed == 0


def test_a_fifo_swapped_in_after_the_walk_is_skipped_not_waited_on(data, state, monkeypatch):
    """No helpers here: the scan's own thread hashes by the helpers' code,
    which opens without blocking and finds the path no regular file."""
    from libsync import scan as scan_module
    write(data, "a.txt", "a")
    write(data, "b.txt", "b")
    real = scan_module.hash_one

    def swap(path, limit):
        if str(path).endswith("b.txt"):
            os.unlink(path)
            os.mkfifo(path)
        return real(path, limit)
    monkeypatch.setattr(scan_module, "hash_one", swap)
    result = run(data, state, jobs=1)
    assert listed(result) == ["a.txt"]
    assert result.warnings == ("b.txt: special file skipped",)
