"""A push interrupted (Ctrl-C) part-way: nothing is committed, and the next push finishes.

DESIGN: "An object that no commit names (a push died after uploading) is
an orphan; readers ignore it, the next push of that path adopts or trashes
it." Run on a folder and over S3 (moto).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from libsync import transfer

REPO = Path(__file__).resolve().parents[2]


def journal(remote):
    return {k: v for k, v in remote.keys().items() if k.startswith(".s3sync/journal/")}


def interrupt_uploads(monkeypatch, *, after_upload: bool):
    """Ctrl-C in every upload, before it starts or just after it finished."""
    upload = transfer.upload

    def interrupted(*args, **kw):
        if after_upload:
            upload(*args, **kw)
        raise KeyboardInterrupt

    monkeypatch.setattr(transfer, "upload", interrupted)
    return lambda: monkeypatch.setattr(transfer, "upload", upload)


def test_interrupted_before_uploading(team, remote, monkeypatch):
    ann, bob = team("ann"), team("bob")
    ann.write("a.csv", "a\n")
    ann.ok("push")
    bob.ok("pull")
    ann.write("new.csv", "new\n")
    ann.write("a.csv", "a v2\n")
    before = remote.keys()
    undo = interrupt_uploads(monkeypatch, after_upload=False)
    r = ann.run("push")
    assert (r.code, r.err) == (130, "s3sync push: interrupted; nothing half-done was committed\n")
    assert remote.keys() == before
    undo()
    ann.ok("push")
    bob.ok("pull")
    assert bob.files() == ann.files() == remote.data() == {"a.csv": b"a v2\n",
                                                           "new.csv": b"new\n"}


def test_interrupted_after_uploading_is_adopted_by_the_next_push(team, remote, monkeypatch):
    ann, bob = team("ann"), team("bob")
    ann.write("a.csv", "a\n")
    ann.ok("push")
    bob.ok("pull")
    ann.write("new.csv", "new\n")
    commits = journal(remote)

    undo = interrupt_uploads(monkeypatch, after_upload=True)
    r = ann.run("push")
    assert r.code == 130
    undo()
    # The object landed, but no commit names it: readers ignore it.
    assert remote.data()["new.csv"] == b"new\n"
    assert journal(remote) == commits
    assert bob.run("pull").out.startswith("already in step at generation 1")

    r = ann.run("push")
    assert r.code == 0, r.err
    bob.ok("pull")
    assert bob.files() == ann.files() == remote.data() == {"a.csv": b"a\n",
                                                           "new.csv": b"new\n"}


def test_a_real_ctrl_c_mid_push_commits_nothing_and_the_next_push_finishes(team, remote):
    """SIGINT to a real ``python -m s3sync push`` while its uploads are under way."""
    ann, bob = team("ann"), team("bob")
    files = {f"many/{i:04d}.bin": os.urandom(32 << 10) for i in range(300)}
    for path, content in files.items():
        ann.write(path, content)
    commits = journal(remote)
    env = dict(os.environ, S3SYNC_USER="ann", PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "s3sync", "push", "--yes", "-q", "-j", "2"],
                            cwd=ann.root, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not any(k.startswith("many/") for k in remote.keys()):
        assert proc.poll() is None and time.monotonic() < deadline, "no upload started"
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, err) == (
        130, "s3sync push: interrupted; nothing half-done was committed\n"), out
    assert journal(remote) == commits
    assert bob.run("pull").out.startswith("already in step at generation 0")

    ann.ok("push")
    bob.ok("pull")
    assert bob.files() == ann.files() == remote.data() == files
    assert not (ann.data / ".s3sync" / "tmp").exists() or not any(
        (ann.data / ".s3sync" / "tmp").iterdir())
