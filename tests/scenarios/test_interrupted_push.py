"""A push interrupted (Ctrl-C) part-way: nothing is committed, and the next push finishes.

DESIGN: "An object that no commit names (a push died after uploading) is
an orphan; readers ignore it, the next push of that path adopts or trashes
it." Run on a folder and over S3 (moto).
"""

from __future__ import annotations

from libsync import transfer


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
