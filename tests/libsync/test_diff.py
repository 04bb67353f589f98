"""The three-way reconcile, row by row of the design's table.

In the table a side is written as the content it holds: ``"v1"`` is a file
with that content, ``"-v1"`` a tombstone of that content, ``None`` no record
at all (for L: no local file). Direction comes from content hashes only.
"""

from __future__ import annotations

import pytest
from libsync_helpers import entry, sha, tombstone

from libsync.diff import (
    CONFLICT,
    DELETE_LOCAL,
    DELETE_REMOTE,
    DOWNLOAD,
    RECORD,
    UPLOAD,
    Action,
    reconcile,
    reconcile_path,
)

NOTHING = None


def rec(side: str | None, path: str = "f.txt"):
    if side is None:
        return None
    if side.startswith("-"):
        return tombstone(path, side[1:])
    return entry(path, side)


def local_sha(side: str | None) -> str | None:
    return None if side is None else sha(side)


TABLE = [
    # id                                   L      B      R      expected      conflict
    # -- L same, R same ----------------------------------------------------------
    ("unchanged",                          "v1",  "v1",  "v1",  NOTHING,      None),
    ("absent everywhere",                  None,  None,  None,  NOTHING,      None),
    ("deleted everywhere, tombstones",     None,  "-v1", "-v1", NOTHING,      None),
    ("tombstone on remote only, no file",  None,  None,  "-v1", NOTHING,      None),
    ("tombstone in base, nothing remote",  None,  "-v1", None,  NOTHING,      None),
    # -- L changed, R same: push ---------------------------------------------------
    ("modified here",                      "v2",  "v1",  "v1",  UPLOAD,       None),
    ("added here, no base",                "v1",  None,  None,  UPLOAD,       None),
    ("added here over a remote tombstone", "v1",  None,  "-v0", UPLOAD,       None),
    ("re-added after a deletion",          "v2",  "-v1", "-v1", UPLOAD,       None),
    ("deleted here",                       None,  "v1",  "v1",  DELETE_REMOTE, None),
    # -- L same, R changed: pull ---------------------------------------------------
    ("modified on the remote",             "v1",  "v1",  "v2",  DOWNLOAD,     None),
    ("added on the remote, no base",       None,  None,  "v1",  DOWNLOAD,     None),
    ("re-added on the remote",             None,  "-v1", "v2",  DOWNLOAD,     None),
    ("deleted on the remote (tombstone)",  "v1",  "v1",  "-v1", DELETE_LOCAL, None),
    ("vanished from the remote manifest",  "v1",  "v1",  None,  DELETE_LOCAL, None),
    # -- both changed to the same content: record -----------------------------------
    ("same file added on both, no base",   "v1",  None,  "v1",  RECORD,       None),
    ("same edit on both sides",            "v2",  "v1",  "v2",  RECORD,       None),
    ("deleted on both sides",              None,  "v1",  "-v1", RECORD,       None),
    ("deleted here, gone from remote",     None,  "v1",  None,  RECORD,       None),
    ("same re-add after a deletion",       "v2",  "-v1", "v2",  RECORD,       None),
    # -- both changed differently: conflict ------------------------------------------
    ("different files added, no base",     "v1",  None,  "v2",
     CONFLICT, "added here, added on the remote"),
    ("different re-adds after a deletion", "v2",  "-v1", "v3",
     CONFLICT, "added here, added on the remote"),
    ("modified on both sides",             "v2",  "v1",  "v3",
     CONFLICT, "modified here, modified on the remote"),
    ("deleted here, modified remotely",    None,  "v1",  "v2",
     CONFLICT, "deleted here, modified on the remote"),
    ("modified here, deleted remotely",    "v2",  "v1",  "-v1",
     CONFLICT, "modified here, deleted on the remote"),
    ("modified here, gone from remote",    "v2",  "v1",  None,
     CONFLICT, "modified here, deleted on the remote"),
]


@pytest.mark.parametrize("local, base, remote, kind, conflict",
                         [row[1:] for row in TABLE], ids=[row[0] for row in TABLE])
def test_reconcile_path_follows_the_design_table(local, base, remote, kind, conflict):
    action = reconcile_path("f.txt", local_sha(local), rec(base), rec(remote))
    if kind is NOTHING:
        assert action is None
        return
    assert action == Action(kind, "f.txt", local_sha(local), rec(base), rec(remote), conflict)


def test_remote_metadata_alone_is_not_a_change():
    # Someone re-pushed identical bytes: new etag, author and mtime, same sha256.
    base = entry("f.txt", "v1", etag="old", author="ann", mtime_ns=1)
    remote = entry("f.txt", "v1", etag="new", author="bob", mtime_ns=2)
    assert reconcile_path("f.txt", sha("v1"), base, remote) is None
    action = reconcile_path("f.txt", None, base, remote)
    assert action.kind == DELETE_REMOTE and action.remote is remote


def test_remote_sha_of_an_action():
    assert reconcile_path("f.txt", None, None, rec("v1")).remote_sha == sha("v1")
    assert reconcile_path("f.txt", "0" * 64, None, rec("-v1")).remote_sha is None


# -- reconcile(): many paths, skipped paths, path filters ------------------------------

def sides(**paths: tuple[str | None, str | None, str | None]):
    """local, base, remote maps from ``path=(L, B, R)``, '__' standing for '/'."""
    local, base, remote = {}, {}, {}
    for name, (lo, ba, re) in paths.items():
        path = name.replace("__", "/")
        if lo is not None:
            local[path] = sha(lo)
        if ba is not None:
            base[path] = rec(ba, path)
        if re is not None:
            remote[path] = rec(re, path)
    return local, base, remote


EVERY_KIND = sides(
    z=("v2", "v1", "v1"),                 # upload
    dir__a=(None, "v1", "v1"),            # delete-remote
    dir__sub__b=("v1", "v1", "v2"),       # download
    dirx=("v1", "v1", "-v1"),             # delete-local
    dir2__c=("v1", None, "v1"),           # record
    a=("v2", "v1", "v3"),                 # conflict
    same=("v1", "v1", "v1"),              # nothing
)


def kinds(plan) -> list[tuple[str, str]]:
    return [(a.path, a.kind) for a in plan]


def test_reconcile_plans_every_path_sorted_and_leaves_out_agreeing_ones():
    assert kinds(reconcile(*EVERY_KIND)) == [
        ("a", CONFLICT), ("dir/a", DELETE_REMOTE), ("dir/sub/b", DOWNLOAD),
        ("dir2/c", RECORD), ("dirx", DELETE_LOCAL), ("z", UPLOAD)]


def test_reconcile_of_nothing_is_an_empty_plan():
    assert reconcile({}, {}, {}) == ()


def test_skipped_paths_get_no_action():
    # An unreadable local file is unknown, not deleted: never tombstone it.
    plan = reconcile(*EVERY_KIND, skipped={"dir/a", "z"})
    assert kinds(plan) == [("a", CONFLICT), ("dir/sub/b", DOWNLOAD), ("dir2/c", RECORD),
                           ("dirx", DELETE_LOCAL)]


def test_skipping_a_path_does_not_skip_its_siblings_with_a_common_prefix():
    local, base, remote = sides(a=(None, "v1", "v1"), ab=(None, "v1", "v1"))
    assert kinds(reconcile(local, base, remote, skipped=["a"])) == [("ab", DELETE_REMOTE)]


@pytest.mark.parametrize("paths, expected", [
    (["z"], ["z"]),
    (["dir"], ["dir/a", "dir/sub/b"]),
    (["dir/"], ["dir/a", "dir/sub/b"]),
    (["/dir/"], ["dir/a", "dir/sub/b"]),
    (["dir/sub"], ["dir/sub/b"]),
    (["dir/a"], ["dir/a"]),
    (["dir", "z"], ["dir/a", "dir/sub/b", "z"]),
    (["dirx"], ["dirx"]),                       # not dir/..., not dir2/...
    (["di"], []),                               # a prefix of a name is not a folder
    (["nothing/here"], []),
    (["same"], []),                             # filtered in, but nothing to do
    ([""], ["a", "dir/a", "dir/sub/b", "dir2/c", "dirx", "z"]),
    (["."], ["a", "dir/a", "dir/sub/b", "dir2/c", "dirx", "z"]),
])
def test_path_filters_select_files_and_folders(paths, expected):
    plan = reconcile(*EVERY_KIND, paths=paths)
    assert [a.path for a in plan] == expected


def test_path_filters_accept_a_generator():
    plan = reconcile(*EVERY_KIND, paths=(p for p in ["dir"]))
    assert [a.path for a in plan] == ["dir/a", "dir/sub/b"]
