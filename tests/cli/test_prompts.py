"""Interactive prompts, through a real pseudo-terminal (pexpect), on a folder remote.

On a terminal push, pull and sync show the plan and ask before doing
anything, ask again separately before deleting, and ask how to resolve each
conflict; reset asks too. Every question defaults to no.
"""

from __future__ import annotations

import os
import sys

import pexpect
import pytest
from scenarios.scenario_helpers import state_files

from conftest import make_remote

MAIN = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def remote(request, monkeypatch, tmp_path):
    return make_remote("folder", request, monkeypatch, tmp_path)


def spawn(teammate, *argv: str) -> pexpect.spawn:
    env = dict(os.environ, PYTHONPATH=MAIN, S3SYNC_USER=teammate.name, TERM="dumb")
    return pexpect.spawn(sys.executable, ["-m", "s3sync", *argv], cwd=str(teammate.root),
                         env=env, encoding="utf-8", timeout=20, dimensions=(40, 200))


def finish(child: pexpect.spawn) -> tuple[int, str]:
    """Wait for the end; the exit status and what was printed after the last answer."""
    child.expect(pexpect.EOF)
    rest = child.before
    child.close()
    return child.exitstatus, rest.replace("\r\n", "\n")


def answer(child: pexpect.spawn, prompt: str, reply: str) -> str:
    """Wait for exactly ``prompt``, reply, and return what came before it."""
    child.expect_exact(prompt)
    before = child.before.replace("\r\n", "\n")
    child.sendline(reply)
    child.expect_exact(reply + "\r\n")  # the terminal's echo
    return before


@pytest.fixture
def ann(team):
    t = team("ann")
    for name in ("a", "b", "c", "d"):
        t.write(f"{name}.csv", f"{name} v1\n")
    t.ok("push", "-m", "seed")
    return t


@pytest.fixture
def bob(team, ann):
    t = team("bob")
    t.ok("pull")
    return t


def test_push_asks_to_proceed_and_no_changes_nothing(ann, remote):
    ann.write("a.csv", "a v2\n")
    ann.write("new.csv", "new\n")
    before = remote.keys()
    child = spawn(ann, "push")
    table = answer(child, "Proceed with 2 changes? [y/N] ", "n")
    lines = table.splitlines()
    assert lines[0].split() == ["path", "change", "size", "remote", "by", "remote", "at"]
    assert lines[2].split()[:5] == ["a.csv", "modified", "here,", "to", "push"]
    assert lines[3].split() == ["new.csv", "new", "here,", "to", "push"]
    assert len(lines) == 4
    status, rest = finish(child)
    assert status == 9
    assert rest == "s3sync push: error: nothing was changed\n"
    assert remote.keys() == before
    assert ann.read("a.csv") == b"a v2\n"


def test_push_yes_goes_through(ann, remote):
    ann.write("new.csv", "new\n")
    child = spawn(ann, "push", "-m", "asked")
    answer(child, "Proceed with 1 change? [y/N] ", "y")
    status, rest = finish(child)
    assert status == 0
    assert rest.startswith("pushed 1 file (4 B), deleted 0 on the remote; generation 2; ")
    assert remote.data()["new.csv"] == b"new\n"


def test_an_empty_answer_means_no(ann, remote):
    ann.write("new.csv", "new\n")
    before = remote.keys()
    child = spawn(ann, "push")
    answer(child, "Proceed with 1 change? [y/N] ", "")
    assert finish(child)[0] == 9
    assert remote.keys() == before


def test_deletions_are_asked_separately_and_no_keeps_them(ann, remote):
    for p in ("b.csv", "c.csv"):
        (ann.data / p).unlink()
    ann.write("a.csv", "a v2\n")
    before = remote.data()
    child = spawn(ann, "push")
    answer(child, "Proceed with 1 change? [y/N] ", "y")
    listed = answer(child, "Delete 2 files (2 on the remote, 0 here)? Deleted versions stay "
                           "in the remote trash. [y/N] ", "n")
    assert listed == "  delete b.csv (on the remote)\n  delete c.csv (on the remote)\n"
    status, rest = finish(child)
    assert status == 0
    assert "not deleted: b.csv\nnot deleted: c.csv\n" in rest
    data = remote.data()
    assert data["b.csv"] == before["b.csv"] and data["c.csv"] == before["c.csv"]
    assert data["a.csv"] == b"a v2\n"           # the rest of the plan went through
    # Still deleted here, so still to push.
    assert ann.ok("status", "--porcelain").out == "D  b.csv\nD  c.csv\n"


def test_deletions_alone_skip_the_proceed_question(ann, remote):
    (ann.data / "d.csv").unlink()
    child = spawn(ann, "push")
    listed = answer(child, "Delete 1 file (1 on the remote, 0 here)? Deleted versions stay "
                           "in the remote trash. [y/N] ", "y")
    assert "Proceed" not in listed
    assert listed.endswith("  delete d.csv (on the remote)\n")
    status, rest = finish(child)
    assert status == 0
    assert "deleted 1 on the remote" in rest
    assert "d.csv" not in remote.data()


def test_pull_asks_before_deleting_here(ann, bob):
    (ann.data / "a.csv").unlink()
    ann.ok("push", "--yes")
    child = spawn(bob, "pull")
    answer(child, "Delete 1 file (0 on the remote, 1 here)? Deleted versions stay in the "
                  "remote trash. [y/N] ", "n")
    status, rest = finish(child)
    assert status == 0
    assert "not deleted: a.csv\n" in rest
    assert bob.read("a.csv") == b"a v1\n"


def test_conflict_prompt_keep_both(ann, bob, remote):
    ann.write("a.csv", "a ann\n")
    ann.ok("push")
    bob.write("a.csv", "a bob\n")
    child = spawn(bob, "sync")
    before = answer(child, "  keep [l]ocal, take [r]emote, keep [b]oth, or [s]kip? ", "b")
    assert before.endswith("CONFLICT a.csv: modified here, modified on the remote\n")
    answer(child, "Proceed with 1 change? [y/N] ", "y")
    status, rest = finish(child)
    assert status == 0
    assert "kept your version of a.csv as a.conflict-bob-" in rest
    assert bob.read("a.csv") == b"a ann\n"
    copies = [p for p in bob.files() if p.startswith("a.conflict-bob-")]
    assert len(copies) == 1 and bob.read(copies[0]) == b"a bob\n"


def test_conflict_prompt_skip_and_repeat_on_nonsense(ann, bob, remote):
    ann.write("a.csv", "a ann\n")
    ann.ok("push")
    bob.write("a.csv", "a bob\n")
    before = remote.keys()
    child = spawn(bob, "sync")
    answer(child, "  keep [l]ocal, take [r]emote, keep [b]oth, or [s]kip? ", "x")
    answer(child, "  keep [l]ocal, take [r]emote, keep [b]oth, or [s]kip? ", "s")
    status, rest = finish(child)
    assert status == 1
    assert "conflict: a.csv: modified here, modified on the remote\n" in rest
    assert remote.keys() == before
    assert bob.read("a.csv") == b"a bob\n"


def test_conflict_prompt_local(ann, bob, remote):
    ann.write("a.csv", "a ann\n")
    ann.ok("push")
    bob.write("a.csv", "a bob\n")
    child = spawn(bob, "sync")
    answer(child, "  keep [l]ocal, take [r]emote, keep [b]oth, or [s]kip? ", "l")
    answer(child, "Proceed with 1 change? [y/N] ", "y")
    assert finish(child)[0] == 0
    assert remote.data()["a.csv"] == b"a bob\n"


def test_reset_asks_and_no_changes_nothing(ann, remote):
    before_keys, before_state, before_files = remote.keys(), state_files(ann), ann.files()
    child = spawn(ann, "reset")
    answer(child, f"Remove s3sync's metadata in Data/.s3sync/ and on {remote.url}? "
                  "Data files are not touched. [y/N] ", "n")
    status, rest = finish(child)
    assert status == 9
    assert rest == "s3sync reset: error: reset aborted; nothing was changed\n"
    assert remote.keys() == before_keys
    assert ann.files() == before_files
    assert state_files(ann) == before_state


def test_reset_asks_and_yes_resets(ann, remote):
    files, data = ann.files(), remote.data()
    child = spawn(ann, "reset", "--local-only")
    answer(child, "Remove s3sync's metadata in Data/.s3sync/? Data files are not touched. "
                  "[y/N] ", "yes")
    status, rest = finish(child)
    assert status == 0
    assert rest.startswith("removed local state (")
    assert state_files(ann) == {}
    assert ann.files() == files
    assert remote.data() == data
