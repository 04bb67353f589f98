"""fsck finds what happened behind s3sync's back, and --repair mends it safely."""

import hashlib
import json

from libsync import layout


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_clean_remote(team):
    ann = team("ann")
    ann.write("a.csv", "a\n")
    ann.ok("push")
    r = ann.ok("fsck", "--verify")
    assert r.out == ""


def test_a_wrong_version_in_the_trash_is_not_restored(team, remote):
    ann = team("ann")
    ann.write("gone.csv", "v1\n")
    ann.ok("push")
    with remote.open() as r:
        r.delete("gone.csv")
        r.put(layout.trash_key("gone.csv", sha(b"v1\n")), b"not v1\n")
    r = ann.run("fsck", "--repair")
    assert r.code == 1 and r.out.startswith("missing\tgone.csv\t")
    assert "gone.csv" not in remote.keys()


def test_finds_and_repairs_every_kind(team, remote):
    ann, bob = team("ann"), team("bob")
    for name in ("kept.csv", "gone.csv", "edited.csv", "deleted.csv"):
        ann.write(name, f"{name} v1\n")
    ann.ok("push")
    (ann.data / "deleted.csv").unlink()
    ann.ok("push", "--yes")
    with remote.open() as r:
        r.delete("gone.csv")  # lost, but that version is in the trash
        r.put(layout.trash_key("gone.csv", sha(b"gone.csv v1\n")), b"gone.csv v1\n")
        r.put("edited.csv", b"edited in the console\n")  # changed behind s3sync's back
        r.put("stray.bin", b"from a push that died\n")  # an orphan
        r.put("deleted.csv", b"deleted.csv v1\n")  # a deletion's trash move undone

    found = ann.run("fsck", "--json")
    assert found.code == 1
    doc = json.loads(found.out)
    assert {(p["kind"], p["path"]) for p in doc["problems"]} == {
        ("missing", "gone.csv"), ("changed", "edited.csv"), ("orphan", "stray.bin"),
        ("untrashed", "deleted.csv")}
    assert "changed\tedited.csv\tholds sha256 " in ann.run("fsck").out

    repaired = ann.run("fsck", "--repair")
    assert repaired.code == 0, repaired.out + repaired.err
    assert ann.ok("fsck").out == ""
    keys = remote.keys()
    assert "stray.bin" not in keys and "deleted.csv" not in keys
    assert keys[layout.trash_key("stray.bin", sha(b"from a push that died\n"))] == \
        b"from a push that died\n"
    assert keys[layout.trash_key("deleted.csv", sha(b"deleted.csv v1\n"))] == b"deleted.csv v1\n"
    assert keys["gone.csv"] == b"gone.csv v1\n"
    # The adopted edit reaches teammates like any push.
    bob.ok("pull", "--yes")
    assert bob.read("edited.csv") == b"edited in the console\n"
