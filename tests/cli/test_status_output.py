"""Golden outputs of `s3sync status`: --porcelain, -z, --json and --exit-code.

One known situation holds one path of every kind; the machine formats are
a promise to scripts, so they are compared whole, not searched.
"""

from __future__ import annotations

import json

import pytest
from scenarios.scenario_helpers import sha

from conftest import make_remote


@pytest.fixture
def remote(request, monkeypatch, tmp_path):
    """Golden outputs need one remote kind: the folder (fast, no network)."""
    return make_remote("folder", request, monkeypatch, tmp_path)


SEED = {
    "local-mod.csv": "local-mod v1\n",
    "local-del.csv": "local-del v1\n",
    "remote-mod.csv": "remote-mod v1\n",
    "remote-del.csv": "remote-del v1\n",
    "both.csv": "both v1\n",
    "same.csv": "same v1\n",
    "del-mod.csv": "del-mod v1\n",
    "mod-del.csv": "mod-del v1\n",
    "both-del.csv": "both-del v1\n",
}


@pytest.fixture
def situation(team):
    """ann's workspace against the remote bob pushed to, one path of each kind."""
    ann, bob = team("ann"), team("bob")
    for path, content in SEED.items():
        ann.write(path, content)
    ann.ok("push", "-m", "seed")
    bob.ok("pull")

    # The remote side (bob, generation 2).
    bob.write("remote-mod.csv", "remote-mod v2\n")
    (bob.data / "remote-del.csv").unlink()
    bob.write("remote-new.csv", "remote-new v1\n")
    bob.write("both.csv", "both bob\n")
    bob.write("same.csv", "same v2\n")
    bob.write("del-mod.csv", "del-mod bob\n")
    (bob.data / "mod-del.csv").unlink()
    (bob.data / "both-del.csv").unlink()
    bob.write("both-new.csv", "both-new bob\n")
    bob.ok("push", "--max-delete=3", "-m", "bob's side")

    # This side (ann), not yet synced.
    ann.write("new.csv", "new v1\n")
    ann.write("local-mod.csv", "local-mod v2\n")
    (ann.data / "local-del.csv").unlink()
    ann.write("both.csv", "both ann\n")
    ann.write("same.csv", "same v2\n")
    (ann.data / "del-mod.csv").unlink()
    ann.write("mod-del.csv", "mod-del ann\n")
    (ann.data / "both-del.csv").unlink()
    ann.write("both-new.csv", "both-new ann\n")
    return ann, bob


# Changes made alike on both sides (both-del.csv, same.csv) are in step:
# status leaves them out (only the base lags, and the next sync records them).
PORCELAIN = [
    "AA both-new.csv",
    "UU both.csv",
    "DU del-mod.csv",
    "D  local-del.csv",
    "M  local-mod.csv",
    "UD mod-del.csv",
    "A  new.csv",
    " D remote-del.csv",
    " M remote-mod.csv",
    " A remote-new.csv",
]


def test_porcelain_lines(situation):
    ann, _ = situation
    r = ann.ok("status", "--porcelain")
    assert r.out == "".join(line + "\n" for line in PORCELAIN)
    assert r.err == ""
    assert ann.ok("status", "--short").out == r.out


def test_porcelain_z(situation):
    ann, _ = situation
    assert ann.ok("status", "--porcelain", "-z").out == "".join(
        line + "\0" for line in PORCELAIN)


def test_porcelain_limited_to_paths(situation):
    ann, _ = situation
    assert ann.ok("status", "--porcelain", "--", "both.csv", "new.csv").out == (
        "UU both.csv\nA  new.csv\n")


def test_no_fetch_sees_only_the_local_side(situation):
    ann, _ = situation
    out = ann.ok("status", "--porcelain", "--no-fetch").out
    assert out == ("D  both-del.csv\nA  both-new.csv\nM  both.csv\nD  del-mod.csv\n"
                   "D  local-del.csv\nM  local-mod.csv\nM  mod-del.csv\nA  new.csv\n"
                   "M  same.csv\n")
    # A fetch (plain status) stores the remote's commits; --no-fetch then sees them.
    ann.ok("status")
    assert ann.ok("status", "--porcelain", "--no-fetch").out == "".join(
        line + "\n" for line in PORCELAIN)


def test_json_document(situation, remote):
    ann, _ = situation
    doc = json.loads(ann.ok("status", "--json").out)
    for change in doc["changes"]:
        if change["remote_time"] is not None:
            assert change["remote_time"].endswith("Z")
            change["remote_time"] = "<time>"

    def change(action, path, codes, description, *, local, base, remote, author,
               conflict=None):
        return {"action": action, "path": path, "codes": codes, "description": description,
                "local": local and sha(local), "base": base and sha(base),
                "remote": remote and sha(remote), "conflict": conflict,
                "remote_author": author, "remote_time": "<time>" if author else None}

    s = SEED
    assert doc == {"generation": 2, "remote": remote.url, "changes": [
        change("conflict", "both-new.csv", "AA",
               "CONFLICT: added here, added on the remote", local="both-new ann\n",
               base=None, remote="both-new bob\n", author="bob",
               conflict="added here, added on the remote"),
        change("conflict", "both.csv", "UU", "CONFLICT: modified here, modified on the remote",
               local="both ann\n", base=s["both.csv"], remote="both bob\n", author="bob",
               conflict="modified here, modified on the remote"),
        change("conflict", "del-mod.csv", "DU", "CONFLICT: deleted here, modified on the remote",
               local=None, base=s["del-mod.csv"], remote="del-mod bob\n", author="bob",
               conflict="deleted here, modified on the remote"),
        change("delete-remote", "local-del.csv", "D ", "deleted here, to push",
               local=None, base=s["local-del.csv"], remote=s["local-del.csv"], author="ann"),
        change("upload", "local-mod.csv", "M ", "modified here, to push",
               local="local-mod v2\n", base=s["local-mod.csv"], remote=s["local-mod.csv"],
               author="ann"),
        change("conflict", "mod-del.csv", "UD", "CONFLICT: modified here, deleted on the remote",
               local="mod-del ann\n", base=s["mod-del.csv"], remote=None, author="bob",
               conflict="modified here, deleted on the remote"),
        change("upload", "new.csv", "A ", "new here, to push",
               local="new v1\n", base=None, remote=None, author=None),
        change("delete-local", "remote-del.csv", " D", "deleted on remote, to pull",
               local=s["remote-del.csv"], base=s["remote-del.csv"], remote=None, author="bob"),
        change("download", "remote-mod.csv", " M", "modified on remote, to pull",
               local=s["remote-mod.csv"], base=s["remote-mod.csv"], remote="remote-mod v2\n",
               author="bob"),
        change("download", "remote-new.csv", " A", "new on remote, to pull",
               local=None, base=None, remote="remote-new v1\n", author="bob"),
    ]}


def test_human_output(situation, remote):
    ann, _ = situation
    out = ann.ok("status").out.splitlines()
    assert out[0] == f"remote {remote.url}, generation 2"
    assert out[1].split() == ["path", "change", "size", "remote", "by", "remote", "at"]
    rows = {line.split()[0]: line for line in out[3:]}
    assert sorted(rows) == sorted(line[3:] for line in PORCELAIN)
    assert "CONFLICT: modified here, modified on the remote" in rows["both.csv"]
    assert "new here, to push" in rows["new.csv"]


def test_exit_code(situation, team):
    ann, bob = situation
    r = ann.run("status", "--exit-code")
    assert r.code == 1
    r = ann.run("status", "--porcelain", "--exit-code", "--", "new.csv")
    assert (r.code, r.out) == (1, "A  new.csv\n")

    ann.ok("sync", "--on-conflict=local", "--max-delete=100%")
    r = ann.run("status", "--porcelain", "--exit-code")
    assert (r.code, r.out, r.err) == (0, "", "")
    assert ann.run("status", "--exit-code").out.endswith("everything is in step\n")
    # bob is now behind: out of step until he pulls.
    assert bob.run("status", "--exit-code").code == 1
    bob.ok("pull", "--max-delete=100%")
    assert bob.run("status", "--exit-code").code == 0
    assert bob.files() == ann.files()


def test_exit_code_zero_without_the_flag(situation):
    ann, _ = situation
    assert ann.run("status", "--porcelain").code == 0


def test_identical_changes_are_in_step_and_never_look_like_conflicts(team):
    ann, bob = team("ann"), team("bob")
    ann.write("edit.csv", "v1\n")
    ann.write("gone.csv", "v1\n")
    ann.write("keep.csv", "v1\n")
    ann.ok("push")
    bob.ok("pull")
    for t in (ann, bob):
        t.write("same-new.csv", "identical\n")
        t.write("edit.csv", "v2\n")
        (t.data / "gone.csv").unlink()
    bob.ok("push", "--max-delete=1")

    r = ann.run("status", "--porcelain", "--exit-code")
    assert (r.code, r.out) == (0, "")
    assert json.loads(ann.ok("status", "--json").out)["changes"] == []
    # A different addition on each side is a conflict, written AA.
    ann.write("both-new.csv", "ann\n")
    bob.write("both-new.csv", "bob\n")
    bob.ok("push")
    r = ann.run("status", "--porcelain", "--exit-code")
    assert (r.code, r.out) == (1, "AA both-new.csv\n")
    # The base catches up on the next sync, which transfers nothing.
    ann.write("both-new.csv", "bob\n")
    assert ann.ok("sync").out.startswith("nothing to transfer; generation 3; ")
    assert ann.files() == bob.files()
