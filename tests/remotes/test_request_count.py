"""A no-op fetch costs one request, whatever the number of files.

Counted at the wire with botocore's `before-send` event on the very client
the remote uses, against the moto server over HTTP.
"""

import hashlib

import pytest

from libsync import ops
from libsync.workspace import Workspace


@pytest.fixture
def remote(s3_remote):
    """Only S3 counts requests: the teammates here share a moto bucket."""
    return s3_remote


def counting(remote):
    sent = []
    remote.client.meta.events.register(
        "before-send.s3", lambda request, **_: sent.append((request.method, request.url)))
    return sent


def test_noop_fetch_manifest_is_one_request(team):
    ann, bob = team("ann"), team("bob")
    for i in range(30):
        ann.write(f"f/{i:03d}.csv", f"{i}\n")
    ann.ok("push")
    bob.ok("pull")
    ws = Workspace.find(str(bob.root))
    with ws.open_state() as state, ws.open_remote() as remote:
        sent = counting(remote)
        result = ops.fetch(state, remote)
        assert result.manifest.generation == 1 and result.commits == ()
        assert len(sent) == 1, sent
        assert sent[0][0] == "GET" and "list-type=2" in sent[0][1]


def test_fetch_after_one_push_reads_only_the_new_commit(team):
    ann, bob = team("ann"), team("bob")
    for i in range(30):
        ann.write(f"f/{i:03d}.csv", f"{i}\n")
    ann.ok("push")
    bob.ok("pull")
    ann.write("f/000.csv", "changed\n")
    ann.ok("push")
    ws = Workspace.find(str(bob.root))
    with ws.open_state() as state, ws.open_remote() as remote:
        sent = counting(remote)
        result = ops.fetch(state, remote)
        assert result.manifest.generation == 2
        assert [c.generation for c in result.commits] == [2]
        assert len(sent) == 2, sent  # one LIST, one GET of journal/000000000002


def sent_by_commands(monkeypatch) -> list[tuple[str, str]]:
    """(method, URL) of every request the commands run from now on send,
    counted where botocore sends them (the short lane emits the same event)."""
    sent = []
    real = Workspace.open_remote

    def open_remote(self, **kw):
        remote = real(self, **kw)
        remote.client.meta.events.register(
            "before-send.s3", lambda request, **_: sent.append((request.method, request.url)))
        return remote

    monkeypatch.setattr(Workspace, "open_remote", open_remote)
    return sent


def test_a_changed_file_costs_its_upload_and_three_requests(team, monkeypatch):
    """The copy probe ran at init, so a push pays only for its own work.

    moto ignores copy conditions, so the trash copy goes through the client
    there (a GET If-Match and a PUT If-None-Match in place of one COPY).
    """
    ann = team("ann")
    for i in range(30):
        ann.write(f"f/{i:03d}.csv", f"{i}\n")
    ann.ok("push")
    sent = sent_by_commands(monkeypatch)
    ann.write("f/007.csv", "changed\n")
    r = ann.run("push")
    assert r.code == 0, r.err
    steps = [(m, url.split("/", 4)[-1].split("?")[0].split("/", 2)[-1]) for m, url in sent]
    assert not [k for _, k in steps if "probe" in k], steps
    assert [m for m, _ in steps] == ["GET", "GET", "PUT", "PUT", "PUT"], steps
    old = hashlib.sha256(b"7\n").hexdigest()
    assert steps[1:4] == [("GET", "f/007.csv"), ("PUT", f".s3sync/trash/f/007.csv/{old}"),
                          ("PUT", "f/007.csv")], steps
    assert steps[4][1].startswith(".s3sync/journal/")


def test_paths_are_checked_against_the_remote_without_a_request_more(team, monkeypatch):
    """A path is matched against what the plan reads anyway: a no-op limited
    to paths is still one LIST, and so is a run refusing a path that names
    nothing; one outside the data folder costs no request at all."""
    ann = team("ann")
    for i in range(30):
        ann.write(f"f/{i:03d}.csv", f"{i}\n")
    ann.ok("push")
    sent = sent_by_commands(monkeypatch)
    for argv, code in [(("status", "--", "f/001.csv"), 0), (("push", "--", "f"), 0),
                       (("pull", "--", "f/001.csv", "f/"), 0), (("sync", "--", "nope"), 2),
                       (("status", "--", "f/nope.csv"), 2)]:
        sent.clear()
        r = ann.run(*argv)
        assert r.code == code, (argv, r.err)
        assert len(sent) == 1, (argv, sent)
        assert sent[0][0] == "GET" and "list-type=2" in sent[0][1], (argv, sent)
    sent.clear()
    assert ann.run("push", "--", "../f/001.csv").code == 2
    assert sent == []
