"""Plumbing end to end on a folder remote: two workspaces, push, pull, the trash.

Each push and pull below is the plumbing pipeline the porcelain composes:
scan, fetch, plan, then upload/tombstone/commit or download.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from libsync_helpers import TIME, sha, tree, write

from libsync import diff, journal, layout, ops, transfer
from libsync.errors import (
    CommitRaceError,
    IntegrityError,
    LocalChangedError,
    PreconditionFailed,
    SyncError,
    UnsafePathError,
)
from libsync.remotes.local import LocalRemote
from libsync.scan import ScanResult, scan
from libsync.state import State


def trash(path: str, content: str) -> str:
    return f".s3sync/trash/{path}/{sha(content)}"


class Mate:
    """One teammate's data folder and state, driven through libsync.ops."""

    def __init__(self, root: Path, name: str, remote: LocalRemote):
        self.name = name
        self.data = root / name / "Data"
        self.data.mkdir(parents=True)
        self.state = State(str(self.data))
        self.remote = remote

    def write(self, rel: str, content: str) -> Path:
        return write(self.data, rel, content, mtime_ns=None)

    def files(self) -> dict[str, str]:
        return {k: v.decode() for k, v in tree(self.data).items()
                if not k.startswith(".s3sync/")}

    def scan(self) -> ScanResult:
        return scan(str(self.data), self.state)

    def plan(self) -> tuple[diff.Action, ...]:
        ops.fetch(self.state, self.remote)
        return ops.plan(self.state, self.scan())

    def stage(self) -> None:
        """Upload and tombstone whatever the plan pushes, without committing."""
        ops.fetch(self.state, self.remote)
        scanned = self.scan()
        actions = ops.plan(self.state, scanned)
        assert [a for a in actions if a.kind == diff.CONFLICT] == []
        ups = [scanned.files[a.path] for a in actions if a.kind == diff.UPLOAD]
        result = ops.upload(self.state, self.remote, str(self.data), ups,
                            author=self.name, time=TIME)
        assert result.failed == ()
        ops.tombstone(self.state, str(self.data),
                      [a.path for a in actions if a.kind == diff.DELETE_REMOTE],
                      author=self.name, time=TIME)

    def push(self, message: str = "") -> ops.CommitResult:
        self.stage()
        return ops.commit(self.state, self.remote, author=self.name, time=TIME,
                          message=message)

    def download(self, paths, *, force: bool = False) -> ops.TransferResult:
        return ops.download(self.state, self.remote, str(self.data), paths, self.scan(),
                            force=force)

    def pull(self) -> ops.TransferResult:
        actions = self.plan()
        assert [a for a in actions if a.kind == diff.CONFLICT] == []
        return self.download([a.path for a in actions if a.kind in diff.PULL])


@pytest.fixture
def remote(tmp_path) -> LocalRemote:
    r = LocalRemote(str(tmp_path / "remote"), create=True)
    journal.init_remote(r)
    return r


@pytest.fixture
def ann(tmp_path, remote):
    mate = Mate(tmp_path, "ann", remote)
    yield mate
    mate.state.close()


@pytest.fixture
def bob(tmp_path, remote):
    mate = Mate(tmp_path, "bob", remote)
    yield mate
    mate.state.close()


def data_objects(remote: LocalRemote) -> dict[str, str]:
    return {i.key: remote.get(i.key).decode() for i in remote.list("")
            if not i.key.startswith(layout.META)}


def trash_objects(remote: LocalRemote) -> dict[str, str]:
    return {i.key: remote.get(i.key).decode() for i in remote.list(layout.TRASH_PREFIX)}


# -- the round trip --------------------------------------------------------------------

def test_push_then_pull_round_trip(ann, bob, remote):
    ann.write("a.txt", "alpha")
    ann.write("sub/deep/b.csv", "1,2\n")
    done = ann.push("first")
    assert done.commit.generation == 1 and done.manifest.generation == 1
    assert [r.path for r in done.commit.changes] == ["a.txt", "sub/deep/b.csv"]
    assert done.commit.message == "first" and done.commit.author == "ann"
    assert data_objects(remote) == {"a.txt": "alpha", "sub/deep/b.csv": "1,2\n"}
    assert remote.head(layout.journal_key(1)) is not None
    assert ann.state.pending() == {}
    assert ann.state.base() == dict(done.manifest.records)

    result = bob.pull()
    assert result.failed == ()
    assert [r.path for r in result.done] == ["a.txt", "sub/deep/b.csv"]
    assert result.bytes == len("alpha") + len("1,2\n")
    assert bob.files() == {"a.txt": "alpha", "sub/deep/b.csv": "1,2\n"}
    # Downloads carry the author's mtime, not the time of the download.
    assert os.stat(bob.data / "a.txt").st_mtime_ns == os.stat(ann.data / "a.txt").st_mtime_ns
    assert bob.state.base() == ann.state.base()
    assert ann.plan() == () and bob.plan() == ()


def test_changes_and_deletions_flow_back_and_keep_old_versions(ann, bob, remote):
    ann.write("a.txt", "alpha")
    ann.write("sub/b.csv", "beta")
    ann.push()
    bob.pull()
    bob.write("a.txt", "alpha, edited by bob")
    os.unlink(bob.data / "sub" / "b.csv")
    done = bob.push()
    assert done.commit.generation == 2
    assert done.trashed == ("sub/b.csv",) and done.left == ()
    assert data_objects(remote) == {"a.txt": "alpha, edited by bob"}
    assert trash_objects(remote) == {trash("a.txt", "alpha"): "alpha",
                                     trash("sub/b.csv", "beta"): "beta"}
    assert done.manifest.records["sub/b.csv"].trash == trash("sub/b.csv", "beta")

    result = ann.pull()
    assert result.failed == ()
    assert ann.files() == {"a.txt": "alpha, edited by bob"}
    assert not (ann.data / "sub").exists()          # the emptied folder went too
    assert ann.plan() == ()


def test_a_replaced_version_lands_in_the_trash_under_its_sha256(ann, remote):
    ann.write("x/report.csv", "version 1")
    ann.push()
    ann.write("x/report.csv", "version 2")
    ann.stage()
    # The old version is copied to the trash before the new one is written.
    assert trash_objects(remote) == {trash("x/report.csv", "version 1"): "version 1"}
    assert data_objects(remote) == {"x/report.csv": "version 2"}
    ann.push()
    ann.write("x/report.csv", "version 3")
    ann.push()
    assert trash_objects(remote) == {trash("x/report.csv", "version 1"): "version 1",
                                     trash("x/report.csv", "version 2"): "version 2"}


def test_a_deletion_moves_the_object_to_the_trash_after_the_commit(ann, remote):
    ann.write("gone.txt", "bye")
    ann.write("kept.txt", "stay")
    ann.push()
    os.unlink(ann.data / "gone.txt")
    ann.stage()
    assert ann.state.pending()["gone.txt"][0].deleted
    assert data_objects(remote) == {"gone.txt": "bye", "kept.txt": "stay"}   # not yet
    assert trash_objects(remote) == {}
    done = ops.commit(ann.state, remote, author="ann", time=TIME)
    assert done.trashed == ("gone.txt",)
    assert data_objects(remote) == {"kept.txt": "stay"}
    assert trash_objects(remote) == {trash("gone.txt", "bye"): "bye"}


def test_a_deletion_whose_object_changed_is_left_alone(ann, remote):
    ann.write("gone.txt", "bye")
    ann.push()
    os.unlink(ann.data / "gone.txt")
    ann.stage()
    remote.put("gone.txt", b"an orphan written by someone else")
    done = ops.commit(ann.state, remote, author="ann", time=TIME)
    assert done.trashed == () and done.left == ("gone.txt",)
    assert data_objects(remote) == {"gone.txt": "an orphan written by someone else"}
    assert trash_objects(remote) == {}


# -- downloads refuse to lose work -----------------------------------------------------

def two_versions(ann: Mate, bob: Mate) -> None:
    """ann pushes v1, bob pulls it, ann pushes v2; bob has fetched v2."""
    ann.write("a.txt", "v1 from ann")
    ann.push()
    bob.pull()
    ann.write("a.txt", "v2 from ann")
    ann.push()
    ops.fetch(bob.state, bob.remote)


def test_download_refuses_to_overwrite_local_changes_unless_forced(ann, bob):
    two_versions(ann, bob)
    bob.write("a.txt", "bob's own work")
    base_before = bob.state.base()
    result = bob.download(["a.txt"])
    assert result.done == ()
    assert result.failed == (("a.txt", "a.txt has local changes; not overwriting it"),)
    assert bob.files() == {"a.txt": "bob's own work"}
    assert bob.state.base() == base_before

    forced = bob.download(["a.txt"], force=True)
    assert forced.failed == ()
    assert bob.files() == {"a.txt": "v2 from ann"}
    assert bob.state.base()["a.txt"].sha256 == sha("v2 from ann")


def test_download_refuses_a_file_changed_after_the_scan(ann, bob):
    two_versions(ann, bob)
    scanned = bob.scan()
    bob.write("a.txt", "edited after the plan was made")
    result = ops.download(bob.state, bob.remote, str(bob.data), ["a.txt"], scanned)
    assert result.failed == (("a.txt", "a.txt was changed locally since the plan was made"),)
    assert bob.files() == {"a.txt": "edited after the plan was made"}


def tamper_in_place(remote: LocalRemote, key: str, content: bytes) -> None:
    """Bit rot: other bytes of the same size in the same file, mtime put back.

    The folder remote's etag (inode, mtime, size) stays the same, so only the
    sha256 check can notice.
    """
    path = os.path.join(remote.root, *key.split("/"))
    st = os.stat(path)
    assert len(content) == st.st_size
    with open(path, "r+b") as f:
        f.write(content)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert remote.head(key).etag == LocalRemote._etag(st)


def test_download_verifies_sha256_and_leaves_the_local_file_alone(ann, bob, remote):
    two_versions(ann, bob)
    tamper_in_place(remote, "a.txt", b"v2 from eve")
    before = os.stat(bob.data / "a.txt")
    result = bob.download(["a.txt"])
    assert result.done == ()
    assert result.failed == (("a.txt", "a.txt: downloaded bytes do not match the manifest"),)
    assert bob.files() == {"a.txt": "v1 from ann"}
    assert os.stat(bob.data / "a.txt").st_mtime_ns == before.st_mtime_ns
    assert bob.state.base()["a.txt"].sha256 == sha("v1 from ann")
    assert os.listdir(bob.state.tmp_dir) == []           # no temporary file left


def test_transfer_download_raises_integrity_error(ann, bob, remote):
    ann.write("new.txt", "fresh")
    ann.push()
    ops.fetch(bob.state, remote)
    tamper_in_place(remote, "new.txt", b"FRESH")
    rec = bob.state.remote().records["new.txt"]
    with pytest.raises(IntegrityError, match="new.txt: downloaded bytes do not match"):
        transfer.download(remote, str(bob.data), bob.state.tmp_dir, rec, None)
    assert not (bob.data / "new.txt").exists()


def test_download_of_a_replaced_object_fails_its_precondition(ann, bob, remote):
    two_versions(ann, bob)
    remote.put("a.txt", b"written behind the journal's back")
    result = bob.download(["a.txt"])
    # The object is not the committed version, and the trash holds no copy
    # of that version either: the download fails and nothing is replaced.
    assert [p for p, _ in result.failed] == ["a.txt"]
    assert "not found" in result.failed[0][1]
    assert bob.files() == {"a.txt": "v1 from ann"}


def test_download_of_a_path_not_on_the_remote_is_an_error(ann):
    ann.write("a.txt", "A")
    ann.push()
    with pytest.raises(SyncError, match="nope.txt is not on the remote"):
        ann.download(["nope.txt"])
    with pytest.raises(UnsafePathError):
        ann.download(["../a.txt"])


# -- paths through symlinks ------------------------------------------------------------

def test_local_path_maps_data_paths_into_the_real_data_folder(tmp_path):
    data = tmp_path / "Data"
    data.mkdir()
    assert transfer.local_path(str(data), "a/b.txt") == str(data.resolve() / "a" / "b.txt")
    with pytest.raises(UnsafePathError, match=r"'\.\./x'"):
        transfer.local_path(str(data), "../x")


def test_local_path_refuses_a_path_through_a_symlinked_folder(tmp_path):
    data, outside = tmp_path / "Data", tmp_path / "outside"
    (data / "real").mkdir(parents=True)
    outside.mkdir()
    os.symlink(outside, data / "real" / "link")
    with pytest.raises(UnsafePathError,
                       match=r"unsafe path 'real/link/x.txt': real/link is a symlink"):
        transfer.local_path(str(data), "real/link/x.txt")
    with pytest.raises(UnsafePathError, match="real/link is a symlink"):
        transfer.local_path(str(data), "real/link/deeper/x.txt")


def test_download_through_a_planted_symlink_writes_nothing_outside(ann, bob, tmp_path):
    ann.write("reports/q1.csv", "numbers")
    ann.push()
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, bob.data / "reports")
    result = bob.pull()
    # The scan reports the link and skips it; nothing under it is planned.
    assert result.done == () and result.failed == ()
    assert list(outside.iterdir()) == []
    # Asked for explicitly, the transfer itself refuses the way through the link.
    with pytest.raises(UnsafePathError, match="reports is a symlink"):
        transfer.local_path(str(bob.data), "reports/q1.csv")


# -- interrupted uploads and stale commits ---------------------------------------------

def count_put_file(monkeypatch, remote: LocalRemote) -> list[str]:
    sent: list[str] = []
    real = remote.put_file

    def put_file(key, *args, **kw):
        sent.append(key)
        return real(key, *args, **kw)

    monkeypatch.setattr(remote, "put_file", put_file)
    return sent


def upload_all(mate: Mate) -> ops.TransferResult:
    ops.fetch(mate.state, mate.remote)
    scanned = mate.scan()
    return ops.upload(mate.state, mate.remote, str(mate.data), list(scanned.files.values()),
                      author=mate.name, time=TIME)


def test_an_upload_staged_before_a_crash_is_adopted_not_sent_again(ann, remote, monkeypatch):
    ann.write("big.bin", "pretend this is large")
    first = upload_all(ann)
    staged = ann.state.pending()["big.bin"][0]
    assert first.done == (staged,)
    # The run dies before its commit; a new run opens the state again.
    ann.state.close()
    ann.state = State(str(ann.data))
    sent = count_put_file(monkeypatch, remote)
    again = upload_all(ann)
    assert sent == []
    assert again.failed == () and again.done == (staged,)
    done = ops.commit(ann.state, remote, author="ann", time=TIME)
    assert done.manifest.records["big.bin"] == staged
    assert data_objects(remote) == {"big.bin": "pretend this is large"}


def test_a_staged_upload_replaced_on_the_remote_is_not_adopted(ann, remote):
    ann.write("a.txt", "mine")
    upload_all(ann)
    remote.put("a.txt", b"someone else's orphan")
    result = upload_all(ann)
    assert result.done == ()
    assert result.failed == (
        ("a.txt", "a.txt was changed on the remote by someone else; fetch and try again"),)


@pytest.mark.parametrize("committed", [False, True])
def test_a_staged_upload_can_be_replaced_by_a_newer_local_edit(ann, remote, committed):
    if committed:
        ann.write("a.txt", "v1")
        ann.push()
    ann.write("a.txt", "v2, staged then abandoned")
    upload_all(ann)
    ann.write("a.txt", "v3, the one to push")
    result = upload_all(ann)
    assert result.failed == ()
    done = ops.commit(ann.state, remote, author="ann", time=TIME)
    assert done.manifest.records["a.txt"].sha256 == sha("v3, the one to push")
    assert data_objects(remote) == {"a.txt": "v3, the one to push"}


def test_an_orphan_of_a_crash_before_staging_is_adopted(ann, remote):
    ann.write("a.txt", "uploaded, then killed")
    ops.fetch(ann.state, remote)
    f = ann.scan().files["a.txt"]
    transfer.upload(remote, str(ann.data), f, None, author="ann", time=TIME)  # no pending row
    result = upload_all(ann)
    assert result.failed == ()
    assert [r.path for r in result.done] == ["a.txt"]


def test_an_upload_of_a_file_changed_since_the_scan_fails(ann, remote):
    ann.write("a.txt", "scanned")
    ops.fetch(ann.state, remote)
    scanned = ann.scan()
    ann.write("a.txt", "changed after the scan")
    result = ops.upload(ann.state, remote, str(ann.data), [scanned.files["a.txt"]],
                        author="ann", time=TIME)
    assert result.failed == ((
        "a.txt", f"{ann.data / 'a.txt'} changed while it was uploaded; nothing was published"),)
    assert isinstance(result.errors[0], LocalChangedError)
    assert data_objects(remote) == {}
    assert ann.state.pending() == {}


def test_commit_refuses_a_change_staged_on_a_version_that_moved(ann, bob, remote):
    ann.write("a.txt", "v1")
    ann.push()
    bob.pull()
    os.unlink(ann.data / "a.txt")
    ann.stage()                                   # deletion based on v1
    bob.write("a.txt", "v2 by bob")
    bob.push()                                    # generation 2
    ops.fetch(ann.state, remote)                  # ann now knows v2 is current
    with pytest.raises(PreconditionFailed,
                       match="a.txt was changed on the remote after it was staged") as info:
        ops.commit(ann.state, remote, author="ann", time=TIME)
    assert type(info.value) is PreconditionFailed
    assert remote.head(layout.journal_key(3)) is None
    assert data_objects(remote) == {"a.txt": "v2 by bob"}


def test_commit_on_a_stale_manifest_loses_the_race(ann, bob, remote):
    ann.write("a.txt", "A")
    ann.stage()
    bob.write("b.txt", "B")
    bob.push()                                    # takes generation 1
    with pytest.raises(CommitRaceError, match="another push committed generation 1 first"):
        ops.commit(ann.state, remote, author="ann", time=TIME)
    assert "a.txt" in ann.state.pending()         # still staged for the retry
    ops.fetch(ann.state, remote)
    done = ops.commit(ann.state, remote, author="ann", time=TIME)
    assert done.commit.generation == 2
    assert sorted(done.manifest.records) == ["a.txt", "b.txt"]


def test_commit_with_nothing_staged_is_an_error(ann, remote):
    with pytest.raises(SyncError, match="nothing to commit"):
        ops.commit(ann.state, remote, author="ann", time=TIME)


def test_tombstone_refuses_a_file_that_still_exists_or_is_not_on_the_remote(ann, remote):
    ann.write("a.txt", "A")
    ann.push()
    with pytest.raises(LocalChangedError, match="a.txt still exists locally"):
        ops.tombstone(ann.state, str(ann.data), ["a.txt"], author="ann", time=TIME)
    with pytest.raises(SyncError, match="never.txt is not on the remote"):
        ops.tombstone(ann.state, str(ann.data), ["never.txt"], author="ann", time=TIME)
    assert ann.state.pending() == {}


def test_local_files_are_written_a_quarter_mebibyte_at_a_time():
    # Linux gives larger writes costlier page-cache folios (transfer.WRITE_SIZE).
    import hashlib
    import io

    class File(io.BytesIO):
        sizes: list[int]

        def write(self, piece):
            self.sizes.append(len(piece))
            return super().write(piece)

    data = os.urandom((1 << 20) + 1)
    out = File()
    out.sizes = []
    sink = transfer.HashingWriter(out)
    assert sink.write(data) == len(data)
    assert out.getvalue() == data and out.sizes == [256 << 10] * 4 + [1]
    assert sink.hexdigest() == hashlib.sha256(data).hexdigest()


def test_a_buffer_changed_after_its_write_is_hashed_as_it_was_written(tmp_path):
    # Large pieces are hashed aside while they are written; only bytes,
    # which cannot change after write() returns, may be.
    import hashlib

    piece = bytearray(os.urandom(2 << 20))
    whole = bytes(piece) + b"tail"
    with open(tmp_path / "f", "wb") as out:
        sink = transfer.HashingWriter(out)
        sink.write(piece)
        piece[:] = bytes(len(piece))  # the caller reuses its buffer
        sink.write(b"tail")
        sink.write(bytes(3 << 20))  # hashed aside
    assert sink.hexdigest() == hashlib.sha256(whole + bytes(3 << 20)).hexdigest()
    assert (tmp_path / "f").read_bytes() == whole + bytes(3 << 20)


@pytest.mark.parametrize("listing", ["find", "walk"])
def test_a_downloaded_file_is_not_hashed_again_by_the_next_scan(ann, bob, listing):
    lister = {"find": None, "walk": lambda data_dir: None}[listing]
    write(ann.data, "a.txt", "from ann")  # an old mtime: not racily clean
    ann.push()
    write(bob.data, "b.txt", "bob's own")
    bob.pull()
    scanned = scan(str(bob.data), bob.state, lister=lister)
    assert scanned.hashed == 0 and scanned.source == {"find": "changes", "walk": "walk"}[listing]
    assert {p: f.sha256 for p, f in scanned.files.items()} == {
        "a.txt": sha("from ann"), "b.txt": sha("bob's own")}
    # Rewritten with its old size and mtime: the ctime tells, and it is hashed.
    stat = (bob.data / "a.txt").stat()
    write(bob.data, "a.txt", "from bob", mtime_ns=stat.st_mtime_ns)
    scanned = scan(str(bob.data), bob.state, lister=lister)
    assert scanned.hashed == 1 and scanned.files["a.txt"].sha256 == sha("from bob")
