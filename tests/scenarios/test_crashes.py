"""A push or a pull killed at every step boundary; the next run finishes the job.

``crash_driver.py`` runs the real push or pull in a child process and kills
it with ``os._exit`` (what ``kill -9`` leaves: no cleanup of any kind) at
one boundary. Then, here: the local SQLite state opens and the workspace is
not locked; one ordinary ``s3sync sync --yes`` completes; nothing is lost;
the remote and every workspace agree; nothing that reached the far side
before the crash is sent again; and the workspace keeps working.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from scenarios.crash_driver import audit_remote, sha
from scenarios.scenario_helpers import every_version, trash_of

from libsync import layout
from libsync.remotes.local import LocalRemote
from libsync.state import State

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DRIVER = HERE / "crash_driver.py"

BASE = {f"f{i}.csv": f"id,v\n{i},base\n".encode() for i in range(6)}
# ann's push: two modified, two deleted, three new files; in path order
# the uploads are f0 f1 n0 n1 n2 and the trash moves f2 f3.
EDITS = {"f0.csv": b"id,v\n0,ann\n", "f1.csv": b"id,v\n1,ann\n",
         "n0.csv": b"new 0\n", "n1.csv": b"new 1\n", "n2.csv": b"new 2\n"}
DELETES = ("f2.csv", "f3.csv")
UPLOADS = sorted(EDITS)

def crash(teammate, point: str, k: int, verb: str, log: Path, **env) -> int:
    """Run ``verb`` in a child process that dies at ``point``; its exit status."""
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{HERE}", S3SYNC_USER=teammate.name,
               CRASH_LOG=str(log), **env)
    proc = subprocess.run([sys.executable, str(DRIVER), point, str(k), str(teammate.root), verb],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode in (9, -signal.SIGKILL), (
        f"the driver did not die at {point} {k}: {proc.returncode}\n{proc.stderr}")
    return proc.returncode


def transferred(log: Path, kind: str) -> list[str]:
    if not log.exists():
        return []
    return [line.split(" ", 1)[1] for line in log.read_text().splitlines()
            if line.startswith(kind + " ")]


def assert_state_survived(teammate) -> None:
    """The SQLite state of a killed run opens, is intact, and nobody holds the lock."""
    db = sqlite3.connect(teammate.data / ".s3sync" / "state.db")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        db.close()
    state = State(str(teammate.data))
    try:
        state.lock()  # raises LockedError if the dead process still held it
        state.base()
        state.pending()
        state.remote()
    finally:
        state.close()


@pytest.fixture
def count_transfers(monkeypatch, remote):
    """Record every data object sent (put_file) and received (get_into) in this process."""
    sent: list[str] = []
    received: list[str] = []
    classes = [LocalRemote]
    if remote.kind != "folder":
        from libsync.remotes.s3 import S3Remote
        classes.append(S3Remote)
    for cls in classes:
        def put_file(self, key, *a, _real=cls.put_file, **kw):
            if not key.startswith(layout.META):
                sent.append(key)
            return _real(self, key, *a, **kw)

        def put_new_file(self, key, *a, _real=cls.put_new_file, **kw):
            if not key.startswith(layout.META):
                sent.append(key)
            return _real(self, key, *a, **kw)

        def get_into(self, key, *a, _real=cls.get_into, **kw):
            if not key.startswith(layout.META):
                received.append(key)
            return _real(self, key, *a, **kw)

        monkeypatch.setattr(cls, "put_file", put_file)
        monkeypatch.setattr(cls, "put_new_file", put_new_file)
        monkeypatch.setattr(cls, "get_into", get_into)
    return sent, received


def seed(remote, ann, *others) -> None:
    for path, content in BASE.items():
        ann.write(path, content)
    ann.ok("push", "-m", "seed")
    for t in others:
        t.ok("pull")


def edit(ann) -> None:
    for path, content in EDITS.items():
        ann.write(path, content)
    for path in DELETES:
        (ann.data / path).unlink()


def wanted() -> dict[str, bytes]:
    files = {p: c for p, c in BASE.items() if p not in DELETES}
    files.update(EDITS)
    return files


def every_written() -> set[bytes]:
    return set(BASE.values()) | set(EDITS.values())


def assert_all_agree(remote, *teammates) -> None:
    with remote.open() as r:
        manifest, orphans = audit_remote(r)
    assert orphans == [], f"objects no commit names: {orphans}"
    assert remote.data() == wanted()
    for t in teammates:
        assert t.files() == wanted(), t.name


PUSH_POINTS = [
    ("upload-recorded", 2),     # f0 f1 uploaded and recorded
    ("upload-orphan", 1),       # f0 (a modified file) on the remote, not recorded
    ("upload-orphan", 3),       # f0 f1 recorded, n0 (a new file) on the remote only
    ("before-commit", 0),
    ("after-commit", 0),
    ("trash", 2),               # f2 moved to the trash, f3 not yet
    ("trash-half", 1),          # f2 copied to the trash, not deleted
]


@pytest.mark.parametrize(("point", "k"), PUSH_POINTS,
                         ids=[f"{p}-{k}" for p, k in PUSH_POINTS])
def test_push_killed_then_sync_finishes_it(point, k, team, remote, tmp_path, count_transfers):
    push_killed_then_sync(point, k, team, remote, tmp_path, count_transfers)


# Every new file hashed on its way up (transfer.upload_new), as large ones are.
HASHED_ON_UPLOAD_POINTS = [("upload-recorded", 3), ("upload-orphan", 3), ("upload-orphan", 4),
                           ("before-commit", 0)]


@pytest.mark.parametrize(("point", "k"), HASHED_ON_UPLOAD_POINTS,
                         ids=[f"{p}-{k}" for p, k in HASHED_ON_UPLOAD_POINTS])
def test_push_hashing_on_upload_killed_then_sync_finishes_it(point, k, team, remote, tmp_path,
                                                             count_transfers, monkeypatch):
    from libsync import transfer
    monkeypatch.setattr(transfer, "HASH_ON_UPLOAD", 1)
    push_killed_then_sync(point, k, team, remote, tmp_path, count_transfers,
                          CRASH_HASH_ON_UPLOAD="1")


def push_killed_then_sync(point, k, team, remote, tmp_path, count_transfers, **env):
    ann, bob = team("ann"), team("bob")
    seed(remote, ann, bob)
    edit(ann)
    log = tmp_path / "crash.log"

    crash(ann, point, k, "push", log, **env)
    assert_state_survived(ann)
    assert ann.files() == wanted()  # a push never touches local files
    before = transferred(log, "up")
    assert before == UPLOADS[:len(before)]

    sent, _ = count_transfers
    sent.clear()
    r = ann.run("sync", "--yes", "--max-delete=100%")
    assert r.code == 0, r.err
    # What reached the remote before the crash is adopted, not sent again;
    # the rest is sent once each.
    assert sorted(sent) == [p for p in UPLOADS if p not in before]
    assert ann.files() == wanted()
    assert_all_agree(remote, ann)
    trash = trash_of(remote)
    for path in (*DELETES, "f0.csv", "f1.csv"):
        assert trash[layout.trash_key(path, sha(BASE[path]))] == BASE[path]

    bob.ok("sync", "--max-delete=100%")
    assert_all_agree(remote, ann, bob)
    assert every_written() <= every_version(remote, ann, bob)

    # The workspace goes on working: a later push of another file lands.
    ann.write("later.csv", b"later\n")
    ann.ok("push")
    assert remote.data()["later.csv"] == b"later\n"


PULL_POINTS = [("download", 2), ("download-renamed", 2)]


@pytest.mark.parametrize(("point", "k"), PULL_POINTS,
                         ids=[f"{p}-{k}" for p, k in PULL_POINTS])
def test_pull_killed_then_sync_finishes_it(point, k, team, remote, tmp_path, count_transfers):
    ann, bob = team("ann"), team("bob")
    seed(remote, ann, bob)
    edit(ann)
    ann.ok("push", "--max-delete=100%")
    log = tmp_path / "crash.log"

    crash(bob, point, k, "pull", log)
    assert_state_survived(bob)
    before = transferred(log, "down")
    assert before == UPLOADS[:len(before)]
    for path in before:  # what was renamed into place is whole and verified
        assert bob.read(path) == EDITS[path]
    assert every_written() <= every_version(remote, ann, bob)

    _, received = count_transfers
    received.clear()
    r = bob.run("sync", "--max-delete=100%")
    assert r.code == 0, r.err
    assert sorted(received) == [p for p in UPLOADS if p not in before]
    assert_all_agree(remote, ann, bob)
    bob.write("later.csv", b"later\n")
    bob.ok("push")
    ann.ok("pull")
    assert ann.files() == bob.files() == remote.data()


@pytest.mark.parametrize("remote", ["folder"], indirect=True)
def test_a_pull_killed_before_its_rename_leaves_no_temporary_file(team, remote, tmp_path):
    ann, bob = team("ann"), team("bob")
    seed(remote, ann, bob)
    edit(ann)
    ann.ok("push", "--max-delete=100%")
    crash(bob, "download", 2, "pull", tmp_path / "crash.log")
    bob.ok("sync", "--max-delete=100%")
    assert bob.files() == remote.data()
    tmp = bob.data / ".s3sync" / "tmp"
    assert not tmp.exists() or list(tmp.iterdir()) == []


MANY = {f"many/{i:03d}.bin": os.urandom(2048) + b"%d" % i for i in range(40)}


@pytest.mark.slow
@pytest.mark.parametrize("remote", ["moto"], indirect=True)
@pytest.mark.parametrize("ms", [300, 700])
def test_kill_9_at_any_moment_of_a_push(ms, team, remote, tmp_path):
    """SIGKILL from a timer, wherever it lands: in a transfer, in SQLite, in the commit."""
    ann, bob = team("ann"), team("bob")
    seed(remote, ann, bob)
    for path, content in MANY.items():
        ann.write(path, content)
    ann.write("f0.csv", b"id,v\n0,ann\n")
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{HERE}", S3SYNC_USER="ann")
    proc = subprocess.run([sys.executable, str(DRIVER), "sigkill-ms", str(ms), str(ann.root),
                           "push"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode in (0, -signal.SIGKILL), proc.stderr
    assert_state_survived(ann)

    ann.ok("sync", "--yes")
    bob.ok("sync")
    want = {**BASE, **MANY, "f0.csv": b"id,v\n0,ann\n"}
    assert ann.files() == bob.files() == remote.data() == want
    with remote.open() as r:
        _, orphans = audit_remote(r)
    assert orphans == []
    assert set(want.values()) | {BASE["f0.csv"]} <= every_version(remote, ann, bob)
