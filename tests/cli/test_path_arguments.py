"""The <path> arguments of status, push, pull, sync and diff.

A path is relative to the data folder. One that is absolute or leaves the
folder is refused before anything is read; one that is ignored, or names
no file or folder that the scan, the base or the remote knows, is refused
with nothing transferred. Both are usage errors (exit status 2), as git
refuses a pathspec that matches nothing.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata

import pytest

from conftest import make_remote
from libsync.errors import PathspecError, UsageError
from libsync.state import State

VERBS = ("status", "push", "pull", "sync", "diff")
NOTHING = "did not match any file(s) known to s3sync"


@pytest.fixture
def remote(request, monkeypatch, tmp_path):
    """The folder remote: what a path names does not depend on the remote's kind."""
    return make_remote("folder", request, monkeypatch, tmp_path)


@pytest.fixture
def ann(team):
    t = team("ann")
    for path in ("a.csv", "b.csv", "sub/x.csv", "sub/y.csv"):
        t.write(path, f"{path} v1\n")
    t.ok("push", "-m", "seed")
    return t


@pytest.fixture
def bob(team, ann):
    t = team("bob")
    t.ok("pull")
    return t


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def error(verb: str, message: str) -> str:
    return f"s3sync {verb}: error: {message}\n"


# -- outside the data folder: refused before anything is read --------------------


OUTSIDE = [
    ("../../etc/passwd", "'../../etc/passwd' is outside the data folder"),
    ("..", "'..' is outside the data folder"),
    ("sub/../../Data/a.csv", "'sub/../../Data/a.csv' is outside the data folder"),
    ("/etc/passwd", "'/etc/passwd' is absolute; paths are relative to the data folder"),
]


@pytest.mark.parametrize("arg, message", OUTSIDE)
@pytest.mark.parametrize("verb", VERBS + ("upload", "download", "tombstone"))
def test_a_path_outside_the_data_folder_is_refused_before_anything_is_read(
        ann, remote, verb, arg, message):
    ann.write("a.csv", "a here\n")  # something to push, were the run to go on
    before, files = remote.keys(), ann.files()
    # Another process holds the workspace: had the command opened its state
    # (and so reached the remote), it would have stopped with status 7.
    holder = State(str(ann.data))
    holder.lock()
    try:
        r = ann.run(verb, "--", arg)
    finally:
        holder.close()
    assert (r.code, r.out, r.err) == (2, "", error(verb, message))
    assert remote.keys() == before
    assert ann.files() == files


def test_an_absolute_path_inside_the_data_folder_is_refused_too(ann, remote):
    before = remote.keys()
    arg = str(ann.data / "a.csv")
    r = ann.run("push", "--", arg)
    assert (r.code, r.out, r.err) == (
        2, "", error("push", f"{arg!r} is absolute; paths are relative to the data folder"))
    assert remote.keys() == before


def test_a_dry_run_refuses_it_as_well(ann):
    r = ann.run("push", "--dry-run", "--", "../../etc/passwd")
    assert (r.code, r.out, r.err) == (
        2, "", error("push", "'../../etc/passwd' is outside the data folder"))


# -- naming nothing: refused, nothing transferred --------------------------------


@pytest.mark.parametrize("verb", VERBS)
def test_a_path_that_names_nothing_is_refused_and_nothing_moves(ann, bob, remote, verb):
    ann.write("a.csv", "a ann\n")       # a push would send this
    bob.write("b.csv", "b bob\n")       # a pull would bring this
    bob.ok("push")
    assert ann.ok("status", "--porcelain").out == "M  a.csv\n M b.csv\n"
    before, files = remote.keys(), ann.files()

    r = ann.run(verb, "--", "a.csv", "b.csv", "no/such/file")
    assert (r.code, r.out, r.err) == (2, "", error(verb, f"pathspec 'no/such/file' {NOTHING}"))
    assert remote.keys() == before
    assert ann.files() == files
    assert ann.ok("status", "--porcelain").out == "M  a.csv\n M b.csv\n"


def test_a_refused_path_leaves_a_stale_staged_upload_where_it_is(ann, bob, remote):
    """A run refused for its path changes nothing on the remote, not even the
    clean-up of an upload that a dead run staged and the remote moved past;
    the next push that goes ahead takes that upload back."""
    ann.write("a.csv", "ann's edit\n")
    ann.ok("upload", "--", "a.csv")        # staged, never committed: a dead push
    os.remove(bob.data / "a.csv")
    bob.ok("push")                          # commits the deletion; ann's object stays
    before = remote.keys()
    assert before["a.csv"] == b"ann's edit\n"

    r = ann.run("push", "--", "nope.csv")
    assert (r.code, r.out, r.err) == (2, "", error("push", f"pathspec 'nope.csv' {NOTHING}"))
    assert remote.keys() == before

    ann.write("b.csv", "b again\n")
    ann.ok("push", "--", "b.csv")           # goes ahead: the stale upload is taken back
    after = remote.keys()
    assert "a.csv" not in after
    edit = b"ann's edit\n"
    assert after[f".s3sync/trash/a.csv/{sha256(edit)}"] == edit
    assert after["b.csv"] == b"b again\n"


def test_every_path_that_names_nothing_is_counted(ann):
    r = ann.run("push", "--", "nope.csv", "a.csv", "sub/nope", "nope/")
    assert (r.code, r.out, r.err) == (
        2, "", error("push", f"pathspec 'nope.csv' (and 2 more) {NOTHING}"))


def test_a_dry_run_and_a_status_without_fetch_refuse_it_too(ann):
    for argv in (("push", "-n"), ("pull", "-n"), ("sync", "-n"), ("status", "--no-fetch")):
        r = ann.run(*argv, "--", "a.csv", "no/such/file")
        assert (r.code, r.out, r.err) == (
            2, "", error(argv[0], f"pathspec 'no/such/file' {NOTHING}")), argv


def test_a_prefix_of_a_name_is_not_a_folder(ann):
    r = ann.run("push", "--", "su")  # sub/ is there, su/ is not
    assert (r.code, r.err) == (2, error("push", f"pathspec 'su' {NOTHING}"))
    r = ann.run("push", "--", "a.cs")
    assert (r.code, r.err) == (2, error("push", f"pathspec 'a.cs' {NOTHING}"))


def test_a_path_deleted_everywhere_names_nothing(ann, remote):
    os.remove(ann.data / "b.csv")
    ann.ok("push", "--", "b.csv")  # a tombstone on the remote, and in the base
    assert "b.csv" not in remote.data()
    r = ann.run("push", "--", "b.csv")
    assert (r.code, r.err) == (2, error("push", f"pathspec 'b.csv' {NOTHING}"))


def test_the_state_folder_names_nothing(ann):
    for arg in (".s3sync", ".s3sync/state.db", ".S3SYNC"):
        r = ann.run("status", "--", arg)
        assert (r.code, r.err) == (2, error("status", f"pathspec {arg!r} {NOTHING}")), arg


# -- what does match ---------------------------------------------------------------


@pytest.mark.parametrize("arg, out", [
    ("./sub/", "upload\tsub/x.csv\n"),
    ("sub//x.csv", "upload\tsub/x.csv\n"),
    ("./sub/./x.csv", "upload\tsub/x.csv\n"),
    ("sub/../a.csv", "upload\ta.csv\n"),
    ("sub/", "upload\tsub/x.csv\n"),
    (".", "upload\ta.csv\nupload\tsub/x.csv\n"),
    ("./", "upload\ta.csv\nupload\tsub/x.csv\n"),
    ("", "upload\ta.csv\nupload\tsub/x.csv\n"),
])
def test_harmless_forms_are_normalised(ann, arg, out):
    ann.write("a.csv", "a v2\n")
    ann.write("sub/x.csv", "x v2\n")
    r = ann.run("diff", "--", arg)
    assert (r.code, r.out, r.err) == (0, out, "")


def test_a_name_typed_in_another_unicode_form_matches(ann):
    ann.write(unicodedata.normalize("NFC", "café.csv"), "c\n")
    r = ann.run("diff", "--", unicodedata.normalize("NFD", "café.csv"))
    assert (r.code, r.out, r.err) == (0, "upload\tcafé.csv\n", "")


def test_push_of_a_normalised_folder_sends_only_it(ann, remote):
    ann.write("a.csv", "a v2\n")
    ann.write("sub/x.csv", "x v2\n")
    ann.ok("push", "--", "./sub/")
    data = remote.data()
    assert data["sub/x.csv"] == b"x v2\n"
    assert data["a.csv"] == b"a.csv v1\n"


def test_a_path_in_step_is_not_an_error(ann):
    ann.write("a.csv", "a v2\n")  # out of step, but not named
    for verb in ("push", "pull", "sync"):
        for arg in ("b.csv", "sub", "sub/y.csv"):
            r = ann.run(verb, "--", arg)
            assert (r.code, r.out, r.err) == (0, "already in step at generation 1\n", ""), (
                verb, arg)
    r = ann.run("status", "--", "b.csv")
    assert (r.code, r.out.splitlines()[-1], r.err) == (0, "everything is in step", "")
    assert ann.run("diff", "--exit-code", "--", "sub").code == 0


def test_a_path_deleted_here_plans_its_deletion(ann, remote):
    os.remove(ann.data / "a.csv")
    assert ann.ok("diff", "--", "a.csv").out == "delete-remote\ta.csv\n"
    ann.ok("push", "--", "a.csv")
    assert "a.csv" not in remote.data()
    assert "b.csv" in remote.data()


def test_a_folder_deleted_here_plans_its_deletions(ann, remote):
    for name in ("x.csv", "y.csv"):
        os.remove(ann.data / "sub" / name)
    os.rmdir(ann.data / "sub")
    assert ann.ok("diff", "--", "sub").out == "delete-remote\tsub/x.csv\ndelete-remote\tsub/y.csv\n"


def test_a_path_only_the_remote_has_is_pulled(ann, bob):
    ann.write("new/n.csv", "n\n")
    ann.ok("push")
    assert bob.ok("status", "--porcelain", "--", "new/n.csv").out == " A new/n.csv\n"
    bob.ok("pull", "--", "new")
    assert bob.read("new/n.csv") == b"n\n"


def test_a_path_only_the_local_scan_has_is_pushed(ann, remote):
    ann.write("fresh/f.csv", "f\n")
    ann.ok("push", "--", "fresh/f.csv")
    assert remote.data()["fresh/f.csv"] == b"f\n"


def test_a_path_under_a_folder_the_scan_skipped_is_not_an_error(ann, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "e.csv").write_text("e\n")
    os.symlink(elsewhere, ann.data / "link")
    for arg in ("link", "link/e.csv"):
        r = ann.run("push", "--", arg)
        assert (r.code, r.out) == (0, "already in step at generation 1\n"), arg
        assert "link" in r.err and "symbolic link skipped" in r.err


# -- ignored paths ---------------------------------------------------------------


def test_an_ignored_path_is_refused(ann, remote):
    ann.write(".s3syncignore", "*.tmp\nlogs/\n")
    ann.ok("push")
    ann.write("scratch.tmp", "scratch\n")
    ann.write("logs/today.txt", "log\n")
    before = remote.keys()
    for arg in ("scratch.tmp", "./scratch.tmp", "logs", "logs/", "logs/today.txt",
                "never-made.tmp"):
        r = ann.run("push", "--", arg)
        assert (r.code, r.out, r.err) == (
            2, "", error("push", f"pathspec {arg!r} is ignored by the ignore rules; "
                                 "s3sync leaves it alone")), arg
    assert remote.keys() == before
    ann.ok("push", "--", ".")  # the whole folder is not refused for what it ignores
    assert remote.keys() == before


def test_a_file_re_included_under_a_double_star_rule_is_neither_deleted_nor_refused(
        ann, remote):
    """git's "data/**" ignores what is inside data/, not data/ itself, so
    "!data/keep.csv" brings that one file back."""
    ann.write("data/keep.csv", "keep\n")
    ann.write("data/other.csv", "other\n")
    ann.ok("push")
    ann.write(".s3syncignore", "data/**\n!data/keep.csv\n")
    r = ann.run("status", "--porcelain")
    assert (r.code, r.out) == (0, "A  .s3syncignore\n")
    ann.write("data/keep.csv", "keep v2\n")
    for arg in ("data", "data/keep.csv"):
        r = ann.run("push", "--dry-run", "--", arg)
        assert r.code == 0 and "data/keep.csv" in r.out, (arg, r.out, r.err)
    r = ann.run("push", "--", "data/other.csv")
    assert (r.code, r.err) == (2, error("push", "pathspec 'data/other.csv' is ignored by "
                                                "the ignore rules; s3sync leaves it alone"))
    ann.ok("push")
    data = remote.data()
    assert data["data/keep.csv"] == b"keep v2\n"
    assert data["data/other.csv"] == b"other\n"  # ignored: left alone


# -- the Python API --------------------------------------------------------------


def test_the_python_api_raises_a_usage_error(ann, remote):
    import s3sync
    before = remote.keys()
    with pytest.raises(PathspecError, match=re.escape("'../x' is outside the data folder")) as info:
        s3sync.push(str(ann.root), paths=["../x"])
    assert isinstance(info.value, UsageError)
    with pytest.raises(PathspecError, match=re.escape(f"pathspec 'nope' {NOTHING}")):
        s3sync.status(str(ann.root), ["nope"])
    assert remote.keys() == before
