"""A model-based test: three teammates doing random things to one folder remote.

Hypothesis drives random interleavings of edits, creates, deletes, renames,
pushes, pulls and syncs (with every ``--on-conflict`` choice) across three
workspaces. After every step:

- the remote's data objects match the manifest its journal adds up to, and
  every replaced or deleted version is in its trash;
- no version disappears: whatever existed before an s3sync command (in a
  workspace, the remote's data or its trash, or as a conflict copy) exists
  after it; only a person overwriting their own file loses a version, and
  only if it was never shared;
- a run with no teammate running at the same time never fails.

At the end everyone syncs with ``keep-both`` until no conflict is left and
nothing moves: then every workspace is identical to the remote.

The clock handed to s3sync moves one second a command, so two conflict
copies of one file never share a name (that bug has its own test below).
Runs are derandomised for a stable CI; set S3SYNC_MODEL_RANDOM=1 to explore.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from scenarios.crash_driver import audit_remote, sha

import s3sync
from libsync import layout
from libsync.remotes.local import LocalRemote

NAMES = ("ann", "bob", "cy")
PATHS = ("a.txt", "b.txt", "d/c.txt")
COMMON = (b"same\n", b"other\n")  # two people may write the same bytes
CHOICES = ("skip", "keep-both", "local", "remote")
# Any number of deletions: "100%" can abort (see the test of that bug below).
DELETE_ALL = "1000000"


def init(root: Path, remote: str, name: str) -> None:
    from s3sync.cli import Context, main
    root.mkdir()
    err = io.StringIO()
    ctx = Context(cwd=str(root), out=io.StringIO(), err=err, stdin=io.StringIO())
    assert main(["init", remote], ctx) == 0, err.getvalue()
    config = root / "s3sync.json"
    doc = json.loads(config.read_text())
    doc["user"] = name
    config.write_text(json.dumps(doc))


def files(root: Path) -> dict[str, bytes]:
    data = root / "Data"
    return {p.relative_to(data).as_posix(): p.read_bytes() for p in sorted(data.rglob("*"))
            if p.is_file() and not p.relative_to(data).as_posix().startswith(".s3sync/")}


def remote_objects(folder: Path) -> dict[str, bytes]:
    """Data and trash objects of a folder remote, by key."""
    out = {}
    with LocalRemote(str(folder)) as r:
        for info in r.list(""):
            if not info.key.startswith(layout.META) or info.key.startswith(layout.TRASH_PREFIX):
                out[info.key] = r.get(info.key)
    return out


class Team(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="s3sync-model-"))
        self.remote = self.tmp / "remote"
        self.roots = {}
        for name in NAMES:
            self.roots[name] = self.tmp / name
            init(self.roots[name], str(self.remote), name)
        self.clock = datetime(2030, 1, 1, tzinfo=UTC)
        self.counter = 0
        self.must_exist: set[bytes] = set()

    def teardown(self):
        try:
            self.everyone_converges()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- what exists --------------------------------------------------------
    def found(self) -> set[bytes]:
        out = set(remote_objects(self.remote).values())
        for root in self.roots.values():
            out.update(files(root).values())
        return out

    def lose_by_hand(self, name: str, path: str) -> None:
        """The person overwrites or deletes their own file: only unshared work is gone."""
        target = self.roots[name] / "Data" / path
        if target.is_file():
            old = target.read_bytes()
            target.unlink()
            if old not in self.found():
                self.must_exist.discard(old)
        parent = target.parent
        data = self.roots[name] / "Data"
        while parent != data and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent

    def s3sync(self, verb: str, name: str, on_conflict: str):
        self.must_exist |= self.found()
        self.clock += timedelta(seconds=1)
        result = getattr(s3sync, verb)(str(self.roots[name]), on_conflict=on_conflict,
                                       max_delete=DELETE_ALL, now=self.clock)
        assert result.failed == (), f"{name} {verb}: {result.failed}"
        return result

    # -- a person's hands ---------------------------------------------------
    @rule(name=st.sampled_from(NAMES), path=st.sampled_from(PATHS),
          common=st.one_of(st.none(), st.sampled_from(COMMON)))
    def write(self, name, path, common):
        self.counter += 1
        content = common or f"{name} wrote {path} #{self.counter}\n".encode()
        self.lose_by_hand(name, path)
        target = self.roots[name] / "Data" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)

    @rule(name=st.sampled_from(NAMES), data=st.data())
    def delete(self, name, data):
        present = sorted(files(self.roots[name]))
        if present:
            self.lose_by_hand(name, data.draw(st.sampled_from(present)))

    @rule(name=st.sampled_from(NAMES), data=st.data(), dst=st.sampled_from(PATHS))
    def rename(self, name, data, dst):
        present = sorted(files(self.roots[name]))
        if not present:
            return
        src = data.draw(st.sampled_from(present))
        if src == dst:
            return
        content = (self.roots[name] / "Data" / src).read_bytes()
        self.lose_by_hand(name, dst)
        target = self.roots[name] / "Data" / dst
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        self.lose_by_hand(name, src)

    # -- s3sync -------------------------------------------------------------
    @rule(name=st.sampled_from(NAMES), how=st.sampled_from(CHOICES))
    def push(self, name, how):
        self.s3sync("push", name, how)

    @rule(name=st.sampled_from(NAMES), how=st.sampled_from(CHOICES))
    def pull(self, name, how):
        self.s3sync("pull", name, how)

    @rule(name=st.sampled_from(NAMES), how=st.sampled_from(CHOICES))
    def sync(self, name, how):
        self.s3sync("sync", name, how)

    @precondition(lambda self: self.counter > 3)
    @rule()
    def everyone_converges(self):
        """Everyone syncs keeping both sides until nothing moves: all equal the remote."""
        for _ in range(8):
            moved = False
            for name in NAMES:
                r = self.s3sync("sync", name, "keep-both")
                assert r.conflicts == (), f"{name}: keep-both left {r.conflicts}"
                moved = moved or bool(r.plan)
            if not moved:
                break
        else:
            raise AssertionError("still moving after 8 rounds of syncs")
        with LocalRemote(str(self.remote)) as r:
            manifest, orphans = audit_remote(r)
        assert orphans == []
        want = {p: e.sha256 for p, e in manifest.entries().items()}
        for name, root in self.roots.items():
            assert {p: sha(c) for p, c in files(root).items()} == want, name

    # -- after every step ---------------------------------------------------
    @invariant()
    def the_remote_matches_its_journal(self):
        with LocalRemote(str(self.remote)) as r:
            audit_remote(r)

    @invariant()
    def no_version_disappears(self):
        missing = self.must_exist - self.found()
        assert not missing, f"versions lost: {sorted(missing)}"


Team.TestCase.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None, database=None,
    derandomize=not os.environ.get("S3SYNC_MODEL_RANDOM"),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
TestThreeTeammatesAtRandom = Team.TestCase
TestThreeTeammatesAtRandom.pytestmark = [pytest.mark.slow]


def test_two_conflict_copies_in_one_second_do_not_overwrite_each_other(tmp_path):
    remote = str(tmp_path / "remote")
    ann, bob = tmp_path / "ann", tmp_path / "bob"
    init(ann, remote, "ann")
    init(bob, remote, "bob")
    now = datetime(2030, 1, 1, tzinfo=UTC)
    (ann / "Data" / "a.txt").write_bytes(b"v0\n")
    s3sync.push(str(ann), now=now)
    s3sync.pull(str(bob), now=now)
    for i in (1, 2):  # twice: ann pushes a version, bob's own edit conflicts with it
        (ann / "Data" / "a.txt").write_bytes(b"ann %d\n" % i)
        s3sync.push(str(ann), now=now)
        (bob / "Data" / "a.txt").write_bytes(b"bob %d\n" % i)
        r = s3sync.pull(str(bob), on_conflict="keep-both", now=now)
        assert len(r.kept) == 1
    assert {b"bob 1\n", b"bob 2\n"} <= set(files(bob).values())


def test_max_delete_100_percent_allows_every_deletion(tmp_path):
    remote = str(tmp_path / "remote")
    ann, bob = tmp_path / "ann", tmp_path / "bob"
    init(ann, remote, "ann")
    init(bob, remote, "bob")
    for name in ("a.txt", "b.txt"):
        (ann / "Data" / name).write_bytes(name.encode())
    s3sync.push(str(ann))
    s3sync.pull(str(bob))
    (ann / "Data" / "a.txt").unlink()
    s3sync.push(str(ann), max_delete="100%")    # a.txt: a tombstone
    (bob / "Data" / "b.txt").unlink()             # bob: delete b here, a from there
    r = s3sync.sync(str(bob), max_delete="100%")
    assert set(r.deleted_local) == {"a.txt"} and set(r.deleted_remote) == {"b.txt"}
