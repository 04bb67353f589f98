"""The cached remote as a lazy view, and a plan that decodes only what differs.

The fast path must plan exactly what the full decode plans: checked here
against ``state.remote()`` on random three-way states.
"""

from __future__ import annotations

import random

import pytest
from libsync_helpers import OLD_NS, entry, sha, tombstone

from libsync import ops
from libsync.manifest import Manifest
from libsync.scan import LocalFile, ScanResult
from libsync.state import State
from libsync.storedview import StoredRecords


@pytest.fixture
def state(tmp_path):
    d = tmp_path / "Data"
    d.mkdir()
    with State(str(d)) as s:
        yield s


def scanned(files: dict[str, str], **kw) -> ScanResult:
    return ScanResult({p: LocalFile(p, len(c), OLD_NS, sha(c)) for p, c in sorted(files.items())},
                      (), 0, **kw)


def test_view_reads_rows_on_demand_and_counts_live_paths(state):
    state.save_remote(Manifest(4, {"a.txt": entry("a.txt", "A"), "b.txt": tombstone("b.txt"),
                                   "c/d.txt": entry("c/d.txt", "D")}))
    view = state.remote_view()
    assert (view.generation, isinstance(view.records, StoredRecords)) == (4, True)
    assert view.records["a.txt"] == entry("a.txt", "A") and view.records.unread
    assert view.sha("b.txt") is None and view.records.get("nope") is None
    assert len(view.records) == 3 and view.records.unread
    assert sorted(view.entries()) == ["a.txt", "c/d.txt"] and view.records.unread
    assert len(view.entries()) == 2 and view.entries()["a.txt"] == entry("a.txt", "A")
    assert "b.txt" not in view.entries() and view.records.unread
    assert dict(view.entries().items()) == {"a.txt": entry("a.txt", "A"),
                                            "c/d.txt": entry("c/d.txt", "D")}
    assert not view.records.unread                    # items() decoded them in one go
    view = state.remote_view()
    assert view == state.remote()                     # iterating decodes it all
    assert not view.records.unread


def test_a_view_keeps_its_snapshot_when_the_table_changes(state):
    state.save_remote(Manifest(1, {"a.txt": entry("a.txt", "A")}))
    before = state.remote_view()
    state.save_remote(Manifest(2, {"a.txt": entry("a.txt", "A2"), "b.txt": entry("b.txt")}))
    assert dict(before.records) == {"a.txt": entry("a.txt", "A")}
    state.committed(Manifest(3, {}), [entry("c.txt")])
    assert set(state.remote_view().records) == {"a.txt", "b.txt", "c.txt"}


def test_compare_splits_agreed_paths_from_the_rest(state):
    same, tomb = entry("same.txt", "S"), tombstone("gone.txt", "G")
    state.set_base([same, tomb, entry("moved.txt", "old"), entry("base-only.txt")])
    state.save_remote(Manifest(2, {"same.txt": same, "gone.txt": tomb,
                                   "moved.txt": entry("moved.txt", "new"),
                                   "remote-only.txt": entry("remote-only.txt")}))
    agreed, base, remote = state.compare()
    assert agreed == {"same.txt": sha("S"), "gone.txt": None}
    assert set(base) == {"moved.txt", "base-only.txt"}
    assert set(remote) == {"moved.txt", "remote-only.txt"}
    assert remote["moved.txt"] == entry("moved.txt", "new")


def random_case(rnd: random.Random, n: int):
    base, remote, local = [], {}, {}
    for i in range(n):
        path = f"{rnd.choice('ab')}/{i:02d}.txt"
        b = rnd.choice([None, "x", "y", "tomb"])
        r = rnd.choice([None, b, b, b, "x", "z", "tomb"])
        lo = rnd.choice([None, "x", "y", "z", b if b != "tomb" else None])
        for side, out in ((b, base), (r, remote)):
            if side == "tomb":
                rec = tombstone(path, "x")
            elif side is not None:
                rec = entry(path, side, etag=f"e-{side}")
            else:
                continue
            if out is base:
                base.append(rec)
            else:
                remote[path] = rec
        if lo is not None:
            local[path] = lo
    return base, remote, local


@pytest.mark.parametrize("seed", range(20))
def test_the_plan_from_the_view_equals_the_plan_from_every_record(state, seed):
    rnd = random.Random(seed)
    base, remote, local = random_case(rnd, 40)
    state.set_base(base)
    state.save_remote(Manifest(7, remote))
    rules = ("a/1*.txt",) if seed % 2 else ("# none",)
    result = scanned(local, skipped=frozenset({"b/03.txt"}), rule_lines=rules)
    full = ops.plan(state, result, remote=state.remote())
    assert ops.plan(state, result) == full
    view = state.remote_view()
    assert ops.plan(state, result, remote=view) == full
    assert view.records.unread        # decoded only the paths in the plan
    assert (ops.plan(state, result, ["a"], remote=state.remote_view())
            == ops.plan(state, result, ["a"], remote=state.remote()))


def test_compare_reads_the_sha_of_a_row_whatever_its_names_hold(state):
    tricky = entry('q"sha256":"' + "0" * 64 + '".txt', "T", author='x"deleted":true')
    state.set_base([tricky])
    state.save_remote(Manifest(1, {tricky.path: tricky}))
    assert state.compare().agreed == {tricky.path: sha("T")}
    assert list(state.remote_view().entries()) == [tricky.path]
