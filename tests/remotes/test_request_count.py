"""A no-op fetch costs one request, whatever the number of files.

Counted at the wire with botocore's `before-send` event on the very client
the remote uses, against the moto server over HTTP.
"""

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
