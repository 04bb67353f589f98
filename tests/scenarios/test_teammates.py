"""Three teammates on one remote, on a folder and over S3 (moto).

Every scenario is driven through the CLI entry point, and every assertion
is about outcomes: the bytes of each workspace, of the remote's objects and
of its trash, exit statuses and the exact messages people read.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from scenarios.scenario_helpers import (
    TRASH,
    data_of,
    every_version,
    meta_keys,
    sha,
    state_files,
    trash_key,
    trash_of,
)

BASE = {
    "raw/a.csv": b"id,a\n1,10\n",
    "raw/b.csv": b"id,b\n1,20\n",
    "notes/readme.txt": b"read me\n",
    "c.bin": bytes(range(256)),
}



# For tests whose outcome the remote's kind cannot change (local decisions,
# output formats), one run on the folder keeps the suite fast; everything
# that writes, trashes or reads remote objects runs on both kinds.
folder_only = pytest.mark.parametrize("remote", ["folder"], indirect=True)


@pytest.fixture
def ann(team):
    return team("ann")


@pytest.fixture
def bob(team, ann):
    return team("bob")


@pytest.fixture
def cy(team, bob):
    return team("cy")


@pytest.fixture
def trio(ann, bob, cy):
    return ann, bob, cy


def seed(remote, ann, *others, files=BASE):
    """ann pushes ``files`` as generation 1 and the others pull them."""
    for path, content in files.items():
        ann.write(path, content)
    ann.ok("push", "-m", "seed")
    for t in others:
        t.ok("pull")
    assert data_of(remote) == files
    for t in (ann, *others):
        assert t.files() == files


def delete(teammate, path):
    (teammate.data / path).unlink()


# -- the everyday loop ----------------------------------------------------------


def test_first_push_then_everyone_pulls(trio, remote):
    ann, bob, cy = trio
    for path, content in BASE.items():
        ann.write(path, content)
    r = ann.ok("push", "-m", "first")
    assert re.fullmatch(r"pushed 4 files \(\d+ B\), deleted 0 on the remote; generation 1; "
                        r"[\d.]+ s\n", r.out)
    assert data_of(remote) == BASE

    assert re.match(r"pulled 4 files \(\d+ B\), deleted 0 here; generation 1; ",
                    bob.ok("pull").out)
    cy.ok("pull")
    assert ann.files() == bob.files() == cy.files() == data_of(remote) == BASE
    assert cy.ok("status", "--porcelain", "--exit-code").out == ""


def test_parallel_edits_of_different_files_converge(trio, remote):
    ann, bob, cy = trio
    seed(remote, ann, bob, cy)
    ann.write("raw/a.csv", b"id,a\n1,11\n")
    bob.write("raw/b.csv", b"id,b\n1,22\n")
    delete(bob, "notes/readme.txt")
    cy.write("new/cy.csv", b"cy was here\n")

    for _ in range(2):
        for t in (ann, bob, cy):
            t.ok("sync")

    want = {"raw/a.csv": b"id,a\n1,11\n", "raw/b.csv": b"id,b\n1,22\n",
            "c.bin": BASE["c.bin"], "new/cy.csv": b"cy was here\n"}
    assert ann.files() == bob.files() == cy.files() == data_of(remote) == want
    for t in (ann, bob, cy):
        assert t.ok("status", "--porcelain", "--exit-code").out == ""
    # The replaced and the deleted versions are in the trash.
    trash = trash_of(remote)
    assert trash[trash_key("raw/a.csv", BASE["raw/a.csv"])] == BASE["raw/a.csv"]
    assert trash[trash_key("raw/b.csv", BASE["raw/b.csv"])] == BASE["raw/b.csv"]
    assert (trash[trash_key("notes/readme.txt", BASE["notes/readme.txt"])]
            == BASE["notes/readme.txt"])


# -- one file, two editors ------------------------------------------------------

ANN_V = b"id,a\n1,10\n2,ann\n"
BOB_V = b"id,a\n1,10\n2,bob\n"
PATH = "raw/a.csv"


@pytest.fixture
def conflicted(trio, remote):
    """ann and bob both edited raw/a.csv; ann synced first."""
    ann, bob, cy = trio
    seed(remote, ann, bob, cy)
    ann.write(PATH, ANN_V)
    ann.ok("sync", "-m", "ann's edit")
    bob.write(PATH, BOB_V)
    return ann, bob, cy


def assert_no_version_lost(remote, *teammates):
    found = every_version(remote, *teammates)
    assert {BASE[PATH], ANN_V, BOB_V} <= found


@folder_only
def test_conflict_is_skipped_by_default_and_changes_nothing(conflicted, remote):
    ann, bob, _ = conflicted
    before_remote, before_bob = remote.keys(), bob.files()
    r = bob.run("sync")
    assert r.code == 1
    assert f"conflict: {PATH}: modified here, modified on the remote\n" in r.err
    assert "hint: resolve conflicts with --on-conflict=keep-both, local or remote" in r.err
    assert remote.keys() == before_remote
    assert bob.files() == before_bob
    assert bob.read(PATH) == BOB_V
    assert bob.run("status", "--porcelain").out == f"UU {PATH}\n"
    # Skipping again is stable.
    assert bob.run("sync", "--on-conflict=skip").code == 1
    assert remote.keys() == before_remote
    assert_no_version_lost(remote, ann, bob)


@folder_only
def test_pull_resolving_for_local_does_not_push(conflicted, remote):
    """pull never changes the remote: a 'local' resolution waits for a push or sync."""
    ann, bob, _ = conflicted

    def shared(keys):  # all but the trash, which pull may add a given-up version to
        return {k: v for k, v in keys.items() if not k.startswith(TRASH)}

    before = remote.keys()
    r = bob.run("pull", "--on-conflict=local")
    assert r.code == 1
    assert f"conflict: {PATH}: modified here, modified on the remote\n" in r.err
    assert bob.read(PATH) == BOB_V
    assert data_of(remote)[PATH] == ANN_V
    assert shared(remote.keys()) == shared(before)


def test_conflict_keep_both(conflicted, remote):
    ann, bob, cy = conflicted
    before = datetime.now(UTC).replace(microsecond=0)
    r = bob.ok("sync", "--on-conflict=keep-both")
    after = datetime.now(UTC)
    files = bob.files()
    copies = [p for p in files if p != PATH and p.startswith("raw/a.conflict-")]
    assert len(copies) == 1
    copy = copies[0]
    m = re.fullmatch(r"raw/a\.conflict-bob-(\d{8}T\d{6})\.csv", copy)
    assert m, copy
    stamp = datetime.strptime(m.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    assert before - timedelta(seconds=1) <= stamp <= after
    assert f"kept your version of {PATH} as {copy}\n" in r.out
    assert files[copy] == BOB_V
    assert files[PATH] == ANN_V
    assert data_of(remote)[PATH] == ANN_V
    assert data_of(remote)[copy] == BOB_V  # a sync shares the copy in the same run
    for t in (ann, cy):
        t.ok("sync")
    assert ann.files() == bob.files() == cy.files() == data_of(remote)
    assert_no_version_lost(remote, ann, bob, cy)


def test_conflict_local_wins(conflicted, remote):
    ann, bob, cy = conflicted
    bob.ok("sync", "--on-conflict=local")
    assert bob.read(PATH) == BOB_V
    assert data_of(remote)[PATH] == BOB_V
    trash = trash_of(remote)
    assert trash[f"{TRASH}{PATH}/{sha(ANN_V)}"] == ANN_V
    assert trash[f"{TRASH}{PATH}/{sha(BASE[PATH])}"] == BASE[PATH]
    ann.ok("sync")
    cy.ok("sync")
    assert ann.read(PATH) == cy.read(PATH) == BOB_V
    assert ann.files() == bob.files() == cy.files() == data_of(remote)
    assert_no_version_lost(remote, ann, bob, cy)


def test_conflict_remote_wins(conflicted, remote):
    ann, bob, cy = conflicted
    bob.ok("sync", "--on-conflict=remote")
    assert bob.read(PATH) == ANN_V
    assert data_of(remote)[PATH] == ANN_V
    assert trash_of(remote)[f"{TRASH}{PATH}/{sha(BOB_V)}"] == BOB_V
    assert bob.ok("status", "--porcelain", "--exit-code").out == ""
    assert ann.files() == bob.files() == data_of(remote)
    assert_no_version_lost(remote, ann, bob, cy)


def test_delete_against_modify_keep_both_keeps_the_modified_version(trio, remote):
    ann, bob, cy = trio
    seed(remote, ann, bob, cy)
    delete(ann, PATH)
    ann.ok("push", "--yes", "-m", "ann deletes")
    assert PATH not in data_of(remote)
    bob.write(PATH, BOB_V)

    r = bob.run("sync")
    assert r.code == 1
    assert f"conflict: {PATH}: modified here, deleted on the remote\n" in r.err
    assert bob.read(PATH) == BOB_V

    bob.ok("sync", "--on-conflict=keep-both")
    assert bob.read(PATH) == BOB_V
    assert data_of(remote)[PATH] == BOB_V
    ann.ok("sync")
    cy.ok("sync")
    assert ann.read(PATH) == cy.read(PATH) == BOB_V
    assert ann.files() == bob.files() == cy.files() == data_of(remote)
    assert [p for p in bob.files() if "conflict" in p] == []
    assert {BASE[PATH], BOB_V} <= every_version(remote, ann, bob, cy)


def test_modify_against_delete_keep_both_keeps_the_modified_version(ann, bob, remote):
    seed(remote, ann, bob)
    ann.write(PATH, ANN_V)
    ann.ok("push", "-m", "ann edits")
    delete(bob, PATH)

    r = bob.run("sync")
    assert r.code == 1
    assert f"conflict: {PATH}: deleted here, modified on the remote\n" in r.err
    assert not (bob.data / PATH).exists()
    assert data_of(remote)[PATH] == ANN_V

    bob.ok("sync", "--on-conflict=keep-both")
    assert bob.read(PATH) == ANN_V
    assert data_of(remote)[PATH] == ANN_V
    assert ann.files() == bob.files() == data_of(remote)


# -- deletions ------------------------------------------------------------------


def test_a_deletion_propagates_and_is_kept_in_the_trash(trio, remote):
    ann, bob, cy = trio
    seed(remote, ann, bob, cy)
    delete(ann, "notes/readme.txt")
    r = ann.ok("push", "--yes", "-m", "drop the readme")
    assert "deleted 1 on the remote" in r.out
    assert "notes/readme.txt" not in data_of(remote)
    assert (trash_of(remote)[trash_key("notes/readme.txt", BASE["notes/readme.txt"])]
            == BASE["notes/readme.txt"])

    r = bob.ok("pull")
    assert "deleted 1 here" in r.out
    assert not (bob.data / "notes/readme.txt").exists()
    assert not (bob.data / "notes").exists()  # the folder it leaves empty goes too
    cy.ok("sync")
    want = {p: c for p, c in BASE.items() if p != "notes/readme.txt"}
    assert ann.files() == bob.files() == cy.files() == data_of(remote) == want


def test_max_delete_aborts_and_changes_nothing(ann, bob, remote):
    seed(remote, ann, bob)
    for p in ("raw/a.csv", "raw/b.csv", "notes/readme.txt"):
        delete(ann, p)
    before = remote.keys()

    r = ann.run("push")
    assert r.code == 9
    assert r.err == ("s3sync push: error: 3 deletions exceed --max-delete=50% (2 files); "
                     "nothing was changed\n")
    assert remote.keys() == before

    r = ann.run("push", "--yes")  # --yes does not lift the default limit
    assert r.code == 9
    assert "--max-delete" in r.err
    assert remote.keys() == before

    r = ann.run("push", "--dry-run")   # a dry run warns instead of aborting
    assert r.code == 0
    assert r.err == ("warning: 3 deletions exceed --max-delete=50% (2 files): this run "
                     "would stop before changing anything\n")
    assert r.out.endswith("dry run: 3 changes planned, nothing done\n")
    assert remote.keys() == before

    r = ann.run("push", "--max-delete=2")
    assert r.code == 9
    assert "3 deletions exceed --max-delete=2 (2 files)" in r.err
    assert remote.keys() == before

    ann.ok("push", "--max-delete=3")
    assert data_of(remote) == {"c.bin": BASE["c.bin"]}
    bob.ok("pull", "--max-delete=3")
    assert bob.files() == {"c.bin": BASE["c.bin"]}


@folder_only
def test_max_delete_as_a_percentage(ann, remote):
    seed(remote, ann)
    for p in ("raw/a.csv", "raw/b.csv", "notes/readme.txt"):
        delete(ann, p)
    before = remote.keys()
    r = ann.run("push", "--max-delete=10%")
    assert r.code == 9
    assert "3 deletions exceed --max-delete=10% (0 files); nothing was changed" in r.err
    assert remote.keys() == before

    r = ann.run("push", "--max-delete=lots")
    assert r.code == 2
    assert "--max-delete takes a count or a percentage, not 'lots'" in r.err
    assert remote.keys() == before

    ann.ok("push", "--max-delete=75%")
    assert data_of(remote) == {"c.bin": BASE["c.bin"]}


# -- dry runs -------------------------------------------------------------------


@pytest.fixture
def diverged(ann, bob, remote):
    """bob and the remote each have an upload, a modification, a deletion; and a conflict."""
    seed(remote, ann, bob)
    ann.write("raw/a.csv", b"ann's a\n")
    ann.write("ann.csv", b"ann's new file\n")
    delete(ann, "notes/readme.txt")
    ann.write("c.bin", b"ann's c\n")
    ann.ok("push", "--yes")
    bob.write("raw/b.csv", b"bob's b\n")
    bob.write("bob.csv", b"bob's new file\n")
    bob.write("c.bin", b"bob's c\n")
    return ann, bob


def test_dry_run_changes_nothing(diverged, remote):
    _, bob = diverged
    before_files, before_remote = bob.files(), remote.keys()
    before_state = bob.run("status", "--porcelain", "--no-fetch").out
    for verb, planned, resolving in (("push", 2, "local"), ("pull", 3, "remote"),
                                     ("sync", 5, "local")):
        r = bob.run(verb, "--dry-run")
        assert r.code == 1, verb  # the conflict on c.bin is reported, and left
        assert r.out.endswith(f"dry run: {planned} changes planned, nothing done\n"), r.out
        assert "CONFLICT: modified here, modified on the remote" in r.out

        r = bob.run(verb, "-n", f"--on-conflict={resolving}")
        assert r.code == 0, verb
        assert r.out.endswith(f"dry run: {planned + 1} changes planned, nothing done\n")

        assert bob.files() == before_files
        assert remote.keys() == before_remote
        assert bob.run("status", "--porcelain", "--no-fetch").out == before_state
    # Not a vacuous check: the same plan, carried out, changes both sides.
    bob.ok("sync", "--on-conflict=local")
    assert bob.files() != before_files
    assert data_of(remote) == bob.files()


@folder_only
def test_dry_run_of_a_deletion_changes_nothing(ann, bob, remote):
    seed(remote, ann, bob)
    delete(ann, "raw/a.csv")
    before_remote, before_ann = remote.keys(), ann.files()
    r = ann.ok("push", "-n", "--yes")
    assert "deleted here, to push" in r.out
    assert r.out.endswith("dry run: 1 change planned, nothing done\n")
    assert remote.keys() == before_remote
    assert ann.files() == before_ann
    ann.ok("push", "--yes")
    before_bob = bob.files()
    r = bob.ok("pull", "-n")
    assert "deleted on remote, to pull" in r.out
    assert bob.files() == before_bob


# -- reset ----------------------------------------------------------------------


@pytest.fixture
def history(ann, bob, remote):
    """ann seeded the remote, deleted a file (so the trash holds something)."""
    seed(remote, ann, bob)
    delete(ann, "notes/readme.txt")
    ann.ok("push", "--yes")
    bob.ok("pull")
    assert trash_of(remote)
    return ann, bob


def test_reset_removes_only_metadata(history, remote):
    ann, _ = history
    (ann.data / ".s3sync" / "ignore").write_text("*.tmp\n")
    ann.write("scratch.tmp", b"not shared\n")
    files, data = ann.files(), data_of(remote)
    meta = meta_keys(remote)
    assert ".s3sync/format" in meta

    r = ann.ok("reset", "--confirm")
    assert re.fullmatch(rf"removed local state \(\d+ entries\) and {len(meta)} remote "
                        r"metadata objects\n", r.out)
    assert ann.files() == files
    assert data_of(remote) == data
    assert meta_keys(remote) == {}
    assert state_files(ann) == {"ignore": b"*.tmp\n"}

    # 's3sync init --adopt' starts again from the files on the remote.
    r = ann.ok("init", remote.url, "--adopt",
               *(["--endpoint-url", remote.endpoint_url] if remote.endpoint_url else []))
    assert "adopted 3 existing files as generation 1" in r.out
    r = ann.ok("sync")
    assert r.out.startswith("nothing to transfer; generation 1; ")
    assert ann.ok("status", "--porcelain", "--exit-code").out == ""
    assert ann.files() == files


def test_reset_keep_trash(history, remote):
    ann, _ = history
    files, data, trash = ann.files(), data_of(remote), trash_of(remote)
    ann.ok("reset", "--confirm", "--keep-trash")
    assert ann.files() == files
    assert data_of(remote) == data
    assert meta_keys(remote) == trash
    assert state_files(ann) == {}
    assert not (ann.data / ".s3sync").exists()


def test_reset_local_only_leaves_the_remote(history, remote):
    ann, _ = history
    files, keys = ann.files(), remote.keys()
    r = ann.ok("reset", "--confirm", "--local-only")
    assert re.fullmatch(r"removed local state \(\d+ entries\)\n", r.out)
    assert remote.keys() == keys
    assert ann.files() == files
    assert state_files(ann) == {}


@folder_only
def test_reset_without_confirm_off_a_terminal_changes_nothing(history, remote):
    ann, _ = history
    files, keys, state = ann.files(), remote.keys(), state_files(ann)
    r = ann.run("reset")
    assert r.code == 9
    assert r.err == "s3sync reset: error: reset needs --confirm when not run on a terminal\n"
    assert ann.files() == files
    assert remote.keys() == keys
    assert state_files(ann) == state


# -- restore --------------------------------------------------------------------


def test_restore_a_deleted_file(ann, bob, remote):
    seed(remote, ann, bob)
    delete(ann, "notes/readme.txt")
    ann.ok("push", "--yes")
    bob.ok("pull")
    assert not (bob.data / "notes/readme.txt").exists()

    r = bob.ok("restore", "notes/readme.txt")
    assert r.out == (f"restored notes/readme.txt as of generation 2 (sha256 "
                     f"{sha(BASE['notes/readme.txt'])[:12]}); run 's3sync push' to share it\n")
    assert bob.read("notes/readme.txt") == BASE["notes/readme.txt"]
    assert bob.ok("status", "--porcelain").out == "A  notes/readme.txt\n"
    bob.ok("push")
    assert data_of(remote)["notes/readme.txt"] == BASE["notes/readme.txt"]
    ann.ok("pull")
    assert ann.read("notes/readme.txt") == BASE["notes/readme.txt"]
    assert ann.files() == bob.files() == data_of(remote) == BASE


def test_restore_a_generation(ann, bob, remote):
    seed(remote, ann, bob)                      # generation 1: v1
    v2, v3 = b"id,a\nv2\n", b"id,a\nv3\n"
    ann.write(PATH, v2)
    ann.ok("push")                              # generation 2
    ann.write(PATH, v3)
    ann.ok("push")                              # generation 3
    bob.ok("pull")

    r = bob.ok("restore", "--generation=1", PATH)
    assert r.out.startswith(f"restored {PATH} as of generation 1 (sha256 {sha(BASE[PATH])[:12]})")
    assert bob.read(PATH) == BASE[PATH]
    assert bob.ok("status", "--porcelain").out == f"M  {PATH}\n"
    bob.ok("push")
    assert data_of(remote)[PATH] == BASE[PATH]
    ann.ok("pull")
    assert ann.read(PATH) == BASE[PATH]

    # Without --generation: the version most recently replaced (v3 by now).
    ann.ok("restore", PATH)
    assert ann.read(PATH) == v3
    ann.ok("push")
    ann.ok("restore", "--generation=2", PATH)
    assert ann.read(PATH) == v2
    assert every_version(remote, ann, bob) >= {BASE[PATH], v2, v3}


@folder_only
def test_restore_refuses_to_overwrite_local_changes(ann, remote):
    seed(remote, ann)
    ann.write(PATH, ANN_V)
    ann.ok("push")
    ann.write(PATH, b"unpushed work\n")
    r = ann.run("restore", "--generation=1", PATH)
    assert r.code == 5
    assert r.err == (f"s3sync restore: error: {PATH} has local changes; "
                     "push or move them first\n")
    assert ann.read(PATH) == b"unpushed work\n"


# -- log ------------------------------------------------------------------------


@pytest.fixture
def three_pushes(ann, bob, remote):
    ann.write("a.csv", b"a1\n")
    ann.write("b.csv", b"b1\n")
    ann.ok("push", "-m", "first")
    bob.ok("pull")
    bob.write("b.csv", b"b2\n")
    bob.ok("push", "-m", "second")
    ann.ok("pull")
    delete(ann, "a.csv")
    ann.write("c.csv", b"c1\n")
    ann.ok("push", "--max-delete=1", "-m", "third")
    return ann, bob


TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def test_log_lists_generations_newest_first(three_pushes):
    ann, bob = three_pushes
    out = bob.ok("log").out
    assert re.fullmatch(
        rf"generation 3  {TIME}  ann\n    third\n    D a.csv\n    A c.csv\n"
        rf"generation 2  {TIME}  bob\n    second\n    M b.csv\n"
        rf"generation 1  {TIME}  ann\n    first\n    A a.csv\n    A b.csv\n", out), out
    assert re.fullmatch(
        rf"generation 3  {TIME}  ann\n    third\n    D a.csv\n    A c.csv\n",
        bob.ok("log", "-n", "1").out)


@folder_only
def test_log_of_a_path(three_pushes):
    ann, _ = three_pushes
    out = ann.ok("log", "b.csv").out
    assert re.fullmatch(rf"generation 2  {TIME}  bob\n    second\n    M b.csv\n"
                        rf"generation 1  {TIME}  ann\n    first\n    A b.csv\n", out), out
    out = ann.ok("log", "a.csv").out
    assert re.fullmatch(rf"generation 3  {TIME}  ann\n    third\n    D a.csv\n"
                        rf"generation 1  {TIME}  ann\n    first\n    A a.csv\n", out), out
    assert ann.ok("log", "never.csv").out == ""
    ann.write("a.csv", b"a again\n")            # deleted at 3, made anew: added again
    ann.ok("push", "-m", "fourth")
    assert ann.ok("log", "-n", "1", "a.csv").out.endswith("    fourth\n    A a.csv\n")


@folder_only
def test_log_json(three_pushes):
    ann, _ = three_pushes
    doc = json.loads(ann.ok("log", "--json").out)
    assert list(doc) == ["commits"]
    commits = doc["commits"]
    assert [(c["generation"], c["author"], c["message"]) for c in commits] == [
        (3, "ann", "third"), (2, "bob", "second"), (1, "ann", "first")]
    for c in commits:
        assert set(c) == {"generation", "author", "time", "message", "changes"}
        assert re.fullmatch(TIME, c["time"])
    third = {ch["path"]: ch for ch in commits[0]["changes"]}
    assert set(third) == {"a.csv", "c.csv"}
    assert third["a.csv"]["deleted"] is True
    assert third["a.csv"]["sha256"] == sha(b"a1\n")
    assert third["a.csv"]["trash"] == trash_key("a.csv", b"a1\n")
    assert third["a.csv"]["author"] == "ann"
    assert set(third["c.csv"]) == {"path", "size", "sha256", "mtime_ns", "author", "time",
                                   "etag"}
    assert (third["c.csv"]["sha256"], third["c.csv"]["size"]) == (sha(b"c1\n"), 3)
    assert [ch["path"] for ch in commits[2]["changes"]] == ["a.csv", "b.csv"]
    one = json.loads(ann.ok("log", "--json", "-n", "2", "b.csv").out)["commits"]
    assert [c["generation"] for c in one] == [2, 1]
