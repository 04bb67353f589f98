"""Network faults between s3sync and S3: moto behind a fault-injecting proxy.

Each workspace's ``s3sync.json`` names the proxy as its ``endpoint_url``;
the test reads the bucket directly from moto (``direct``) to judge the
outcome. The proxy answers errors itself (the server never sees those
requests), or passes a request on and then cuts, truncates or delays it.

botocore retries each request (standard mode, 5 attempts); its backoff
sleeps are shortened here so a persistent fault fails in milliseconds,
but what is retried, and how often, is botocore's own unchanged logic.
"""

from __future__ import annotations

import json
import os
import re

import pytest
from botocore.retries.standard import ExponentialBackoff
from faultproxy import FaultProxy
from scenarios.scenario_helpers import error_line, run, sha

import servers
from conftest import RemoteSpec, make_remote

JOURNAL = r"/\.s3sync/journal/\d+$"
BIG = bytes(range(256)) * 1200            # 300 KiB: a download worth cutting
BIG_V2 = bytes(reversed(range(256))) * 1200


@pytest.fixture(autouse=True)
def _fast(monkeypatch):
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0.01)


@pytest.fixture
def direct(request, monkeypatch, tmp_path) -> RemoteSpec:
    """The bucket on moto, reached without the proxy: the test's own view."""
    return make_remote("moto", request, monkeypatch, tmp_path)


@pytest.fixture
def proxy(direct):
    with FaultProxy(direct.endpoint_url) as p:
        yield p


@pytest.fixture
def remote(direct, proxy) -> RemoteSpec:
    """What the teammates use: the same bucket, through the proxy."""
    return RemoteSpec("moto", direct.url, proxy.url, direct.server)


def journal(spec: RemoteSpec) -> list[dict]:
    """Every commit, read straight from the bucket and checked to be gap-free."""
    keys = spec.keys()
    names = sorted(k for k in keys if k.startswith(".s3sync/journal/"))
    commits = [json.loads(keys[k]) for k in names]
    assert [c["generation"] for c in commits] == list(range(1, len(commits) + 1))
    return commits


def assert_consistent(spec: RemoteSpec) -> dict[str, bytes]:
    """Every live entry the journal names is an object with exactly its sha256
    and etag; returns the data files by path."""
    live: dict[str, dict] = {}
    for commit in journal(spec):
        for rec in commit["changes"]:
            live[rec["path"]] = rec
    live = {p: r for p, r in live.items() if not r.get("deleted")}
    with spec.open() as r:
        for path, rec in live.items():
            data = r.get(path)
            assert sha(data) == rec["sha256"], f"{path}: object does not match its entry"
            assert r.head(path).etag == rec["etag"], f"{path}: etag differs from its entry"
    return spec.data()


def assert_committed_versions_kept(spec: RemoteSpec) -> None:
    """After a failed push: every version the journal names is whole, at its
    key or (replaced by an upload whose commit failed) in the trash."""
    live: dict[str, dict] = {}
    for commit in journal(spec):
        for rec in commit["changes"]:
            live[rec["path"]] = rec
    keys = spec.keys()
    for path, rec in live.items():
        if rec.get("deleted"):
            continue
        here = keys.get(path)
        kept = keys.get(f".s3sync/trash/{path}/{rec['sha256']}")
        assert rec["sha256"] in {sha(here or b""), sha(kept or b"")}, f"{path} lost"


def tmp_files(teammate) -> list[str]:
    tmp = teammate.data / ".s3sync" / "tmp"
    return sorted(os.listdir(tmp)) if tmp.exists() else []


# -- what is safe to retry is retried ---------------------------------------------


def test_slow_down_and_internal_errors_are_retried(team, proxy, direct):
    ann = team("ann")
    files = {"raw/a.csv": b"a\n", "raw/b.csv": b"b\n", "big.bin": BIG}
    for path, content in files.items():
        ann.write(path, content)
    proxy.internal_error(times=2, method="GET")                   # the journal LIST
    proxy.slow_down(times=3, method="PUT", path=r"/raw/a\.csv$")
    proxy.internal_error(times=2, method="PUT", path=r"/big\.bin$")
    proxy.slow_down(times=2, method="PUT", path=JOURNAL)          # the commit itself
    r = ann.ok("push")
    assert "pushed 3 files" in r.out
    assert proxy.count(fault="error") == 9
    assert assert_consistent(direct) == files
    assert len(journal(direct)) == 1


def test_a_request_cut_before_its_response_is_retried(team, proxy, direct):
    ann, bob = team("ann"), team("bob")
    ann.write("big.bin", BIG)
    proxy.drop_request(after=1000, method="PUT", path=r"/big\.bin$")  # once
    ann.ok("push")
    proxy.drop_response(after=None, method="GET", path=r"/big\.bin$")  # no byte back
    bob.ok("pull")
    assert bob.files() == {"big.bin": BIG} == assert_consistent(direct)


def test_slow_responses_are_waited_for(team, proxy, direct):
    ann, bob = team("ann"), team("bob")
    ann.write("a.csv", "a\n")
    ann.ok("push")
    proxy.delay(0.3, times=3)
    bob.ok("pull")
    assert bob.files() == {"a.csv": b"a\n"}


def test_a_lost_response_to_a_data_upload_is_adopted_on_retry(team, proxy, direct):
    """The server stored the object but its answer was lost: the retried
    create-if-absent gets 412, and s3sync recognises its own upload."""
    ann = team("ann")
    ann.write("a.csv", "a\n")
    proxy.drop_response(after=None, method="PUT", path=r"/a\.csv$")
    r = ann.ok("push")
    assert "pushed 1 file" in r.out
    assert assert_consistent(direct) == {"a.csv": b"a\n"}


def test_a_lost_response_to_the_commit_is_recognised(team, proxy, direct):
    ann = team("ann")
    ann.write("a.csv", "a\n")
    proxy.drop_response(after=None, method="PUT", path=JOURNAL)
    r = run(ann, "push")
    assert assert_consistent(direct) == {"a.csv": b"a\n"}
    assert len(journal(direct)) == 1
    assert r.code == 0, r.err
    assert "conflict" not in r.err
    assert ann.ok("status", "--porcelain", "--exit-code").out == ""


# -- a cut download leaves the local file alone -----------------------------------


@pytest.mark.parametrize("fault", ["drop", "truncate"])
def test_a_cut_download_leaves_the_local_file_untouched(team, proxy, direct, fault):
    ann, bob = team("ann"), team("bob")
    ann.write("big.bin", BIG)
    ann.write("small.csv", "v1\n")
    ann.ok("push")
    bob.ok("pull")
    ann.write("big.bin", BIG_V2)
    ann.ok("push")
    before = (bob.data / "big.bin").stat()

    if fault == "drop":
        proxy.drop_response(after=100_000, method="GET", path=r"/big\.bin$")
    else:  # a response that looks complete but is short
        proxy.truncate(to=100_000, method="GET", path=r"/big\.bin$")
    r = run(bob, "pull")
    assert r.code in (4, 6, 8), r.err
    line = error_line(r)
    assert "big.bin" in line
    assert re.search(r"connection|broken|closed|network|match", line, re.I), line
    assert bob.read("big.bin") == BIG
    assert (bob.data / "big.bin").stat().st_mtime_ns == before.st_mtime_ns
    assert tmp_files(bob) == []
    assert bob.files() == {"big.bin": BIG, "small.csv": b"v1\n"}

    bob.ok("pull")
    assert bob.files() == {"big.bin": BIG_V2, "small.csv": b"v1\n"} == assert_consistent(direct)
    assert tmp_files(bob) == []


def test_a_cut_journal_read_changes_nothing(team, proxy, direct):
    ann, bob = team("ann"), team("bob")
    ann.write("a.csv", "a1\n")
    ann.ok("push")
    bob.ok("pull")
    ann.write("a.csv", "a2\n")
    ann.write("b.csv", "b\n")
    ann.ok("push")
    proxy.drop_response(after=10, method="GET", path=JOURNAL)
    r = run(bob, "pull")
    assert r.code == 4, r.err
    assert re.search(r"connection|broken|network", error_line(r), re.I), r.err
    assert bob.files() == {"a.csv": b"a1\n"}
    bob.ok("pull")
    assert bob.files() == {"a.csv": b"a2\n", "b.csv": b"b\n"}


# -- a cut upload is never committed ----------------------------------------------


def test_a_cut_upload_is_never_committed(team, proxy, direct):
    ann = team("ann")
    ann.write("big.bin", BIG)
    ann.ok("push")
    ann.write("big.bin", BIG_V2)
    ann.write("new.csv", "new\n")
    proxy.drop_request(after=100_000, times=None, method="PUT", path=r"/big\.bin$")
    r = run(ann, "push")
    assert r.code == 8, r.err
    line = error_line(r)
    assert line.startswith("error: big.bin: ")
    assert re.search(r"connection|closed|network", line, re.I), line
    assert proxy.count(method="PUT", path=r"/big\.bin$") >= 5   # botocore did retry
    # new.csv went in; big.bin is still the committed version, whole.
    assert assert_consistent(direct) == {"big.bin": BIG, "new.csv": b"new\n"}
    assert len(journal(direct)) == 2

    proxy.clear()
    assert "pushed 1 file" in ann.ok("push").out
    assert assert_consistent(direct) == {"big.bin": BIG_V2, "new.csv": b"new\n"}
    assert direct.keys()[f".s3sync/trash/big.bin/{sha(BIG)}"] == BIG


def test_a_multipart_upload_with_a_cut_part_is_never_completed(team, proxy, direct,
                                                                monkeypatch):
    import libsync.remotes.s3 as s3
    monkeypatch.setattr(s3, "MULTIPART_THRESHOLD", 6 << 20)
    monkeypatch.setattr(s3, "PART_SIZE", 5 << 20)               # S3's smallest part
    content = os.urandom(11 << 20)                               # three parts
    ann = team("ann")
    ann.write("huge.bin", content)
    proxy.drop_request(after=1 << 20, times=None, method="PUT", path=r"/huge\.bin$")
    r = run(ann, "push")
    assert r.code == 8, r.err
    assert "huge.bin" in error_line(r)
    assert assert_consistent(direct) == {}
    assert proxy.count(method="POST", path=r"/huge\.bin$") >= 1  # create, no complete
    uploads = servers.client(direct.server).list_multipart_uploads(
        Bucket=direct.url.split("/")[2]).get("Uploads", [])
    assert uploads == []                                          # aborted

    proxy.clear()
    ann.ok("push")
    assert assert_consistent(direct) == {"huge.bin": content}


# -- what cannot be done is reported, and nothing is committed -----------------------


@pytest.mark.parametrize("where, codes", [
    ("everything", {4}),
    ("data uploads", {8}),
    ("the commit", {4}),
])
def test_persistent_slow_down_fails_cleanly(team, proxy, direct, where, codes):
    ann = team("ann")
    ann.write("a.csv", "a1\n")
    ann.ok("push")
    ann.write("a.csv", "a2\n")
    ann.write("b.csv", "b\n")
    match = {"everything": {},
             "data uploads": {"method": "PUT", "path": r"/[ab]\.csv$"},
             "the commit": {"method": "PUT", "path": JOURNAL}}[where]
    proxy.slow_down(times=None, **match)
    r = run(ann, "push")
    assert r.code in codes, r.err
    lines = [ln for ln in r.err.splitlines() if ln]
    assert lines and "Traceback" not in r.err, r.err
    assert all("SlowDown" in ln for ln in lines), r.err
    assert len(journal(direct)) == 1                             # nothing committed
    assert_committed_versions_kept(direct)

    proxy.clear()
    ann.ok("push")
    assert assert_consistent(direct) == {"a.csv": b"a2\n", "b.csv": b"b\n"}
    assert len(journal(direct)) == 2


def test_access_denied_by_the_server_exits_4(team, proxy, direct):
    ann = team("ann")
    ann.write("a.csv", "a\n")
    proxy.deny(times=None)
    r = run(ann, "push")
    assert r.code == 4, r.err
    assert "access denied" in error_line(r).lower()
    assert proxy.count(fault="error") == 1                         # 403 is not retried
    assert direct.keys().keys() == {".s3sync/format"}


def test_read_only_credentials_cannot_push_and_say_so(team, proxy, direct):
    """A policy that allows reading but not writing: the push is refused."""
    ann = team("ann")
    ann.write("a.csv", "a\n")
    ann.write("b.csv", "b\n")
    proxy.deny(times=None, method="PUT")
    r = run(ann, "push")
    assert r.code in (4, 8), r.err
    lines = [ln for ln in r.err.splitlines() if ln]
    assert lines and all("access denied" in ln.lower() for ln in lines), r.err
    assert direct.keys().keys() == {".s3sync/format"}


def test_a_read_only_teammate_attaches_and_pulls(team, proxy, direct):
    """init's probe of copy conditions needs writes; one who may only read skips it."""
    ann = team("ann")
    ann.write("a.csv", "a\n")
    ann.ok("push")
    before = direct.keys()
    proxy.deny(times=None, method="PUT")
    proxy.deny(times=None, method="DELETE")
    bob = team("bob")
    bob.ok("pull")
    assert bob.files() == {"a.csv": b"a\n"}
    assert direct.keys() == before
