"""Every exit status of s3sync(1), each triggered through the CLI, message checked.

0 ok, 1 out of step or conflicts left, 2 usage, 3 configuration, 4 remote,
5 changed meanwhile, 6 data format, 7 locked, 8 partial transfer,
9 aborted, 130 interrupted.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from scenarios.scenario_helpers import teammate

from conftest import Teammate, make_remote
from libsync import transfer
from libsync.state import State
from s3sync import cli


@pytest.fixture
def remote(request, monkeypatch, tmp_path):
    """The folder remote: exit statuses do not depend on the remote's kind,
    except those about S3 itself, which use ``s3_remote``."""
    return make_remote("folder", request, monkeypatch, tmp_path)


@pytest.fixture
def ann(team):
    t = team("ann")
    t.write("a.csv", "a v1\n")
    t.write("b.csv", "b v1\n")
    t.write("c.csv", "c v1\n")
    t.ok("push", "-m", "seed")
    return t


@pytest.fixture
def bob(team, ann):
    t = team("bob")
    t.ok("pull")
    return t


def test_all_codes_are_distinct():
    codes = [cli.EXIT_OK, cli.EXIT_DIFFERENT, cli.EXIT_USAGE, cli.EXIT_CONFIG,
             cli.EXIT_REMOTE, cli.EXIT_CHANGED, cli.EXIT_DATA, cli.EXIT_LOCKED,
             cli.EXIT_PARTIAL, cli.EXIT_ABORTED, cli.EXIT_INTERRUPTED]
    assert codes == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 130]


# -- 0 and 1 --------------------------------------------------------------------


def test_0_ok(ann):
    r = ann.run("status", "--exit-code")
    assert (r.code, r.out, r.err) == (0, f"remote {ann.root.parent / 'remote'}, generation 1\n"
                                         "everything is in step\n", "")
    from s3sync import __version__
    assert ann.run("--version").out == f"s3sync {__version__}\n"
    r = ann.run("push", "--help")
    assert r.code == 0 and r.out.startswith("Usage: s3sync push")


def test_1_out_of_step_or_conflict(ann, bob):
    ann.write("a.csv", "a ann\n")
    assert ann.run("status", "--exit-code").code == 1
    assert ann.run("diff", "--exit-code").out == "upload\ta.csv\n"
    assert ann.run("diff", "--exit-code").code == 1
    ann.ok("push")
    bob.write("a.csv", "a bob\n")
    r = bob.run("sync")
    assert r.code == 1
    assert "conflict: a.csv: modified here, modified on the remote\n" in r.err


# -- 2: usage -------------------------------------------------------------------


def test_2_usage_errors(ann):
    r = ann.run("push", "--bogus")
    assert r.code == 2
    assert "Usage: s3sync push [-n] [-y]" in r.err
    assert r.out == ""

    r = ann.run("frobnicate")
    assert (r.code, r.err) == (2, "s3sync: 'frobnicate' is not an s3sync command; "
                                  "see 's3sync --help'\n")

    r = ann.run()
    assert r.code == 2
    assert r.err.startswith("Usage:\n  s3sync [-C <dir>] <command> [<args>...]")

    # Bad option values are usage errors too.
    r = ann.run("push", "--jobs=0")
    assert (r.code, r.err) == (2, "s3sync push: error: --jobs takes a whole number from 1 "
                                  "to 64, not '0'\n")
    r = ann.run("sync", "--on-conflict=maybe")
    assert (r.code, r.err) == (2, "s3sync sync: error: --on-conflict must be one of ask, skip, "
                                  "keep-both, local, remote\n")
    r = ann.run("push", "--max-delete=lots")
    assert (r.code, r.err) == (2, "s3sync push: error: --max-delete takes a count or a "
                                  "percentage, not 'lots'\n")
    r = ann.run("commit")
    assert (r.code, r.err) == (2, "s3sync commit: error: nothing to commit: upload or "
                                  "tombstone something first\n")

    r = ann.run("restore")  # <path> is required
    assert r.code == 2
    assert "Usage: s3sync restore [--generation=<g>] [-h] [--] <path>\n" in r.err


def test_2_usage_errors_are_plain(ann):
    r = ann.run("push", "--bogus")
    assert r.code == 2
    assert "--bogus" in r.err
    assert "Option(" not in r.err and "Warning" not in r.err
    assert r.err.rstrip().endswith("[-m <msg>] [-q] [-h] [--] [<path>...]")
    r = ann.run("restore")
    assert r.code == 2
    assert "Argument(" not in r.err and "Warning" not in r.err


# -- 3: configuration -------------------------------------------------------------


@pytest.fixture
def bare(tmp_path):
    t = Teammate(tmp_path / "bare", "ann")
    t.root.mkdir()
    return t


def test_3_no_config(bare):
    r = bare.run("status")
    assert r.code == 3
    assert r.err == (f"s3sync status: error: no s3sync.json in {bare.root} or any parent "
                     "folder; run 's3sync init <remote>' first\n")


def test_3_malformed_config(bare):
    (bare.root / "s3sync.json").write_text('{"remote": "x",')
    r = bare.run("push")
    assert r.code == 3
    assert r.err.startswith(f"s3sync push: error: {bare.root / 's3sync.json'} is not valid "
                            "JSON: ")


def test_3_unknown_key_in_config(bare, tmp_path):
    (bare.root / "s3sync.json").write_text(json.dumps(
        {"remote": str(tmp_path / "remote"), "endpoint": "http://example.invalid"}))
    r = bare.run("pull")
    assert r.code == 3
    assert r.err.startswith(f"s3sync pull: error: {bare.root / 's3sync.json'}: unknown key "
                            "'endpoint' (known: data_dir, endpoint_url, ")


def test_3_an_ignore_rule_git_cannot_read(ann, remote):
    before = remote.keys()
    ann.write("a.csv", "a changed\n")
    (ann.root / "s3sync.json").write_text(json.dumps(
        {**json.loads((ann.root / "s3sync.json").read_text()), "ignore": ["!"]}))
    for command in ("scan", "status", "push"):
        r = ann.run(command)
        assert (r.code, r.out, r.err) == (3, "", (
            f"s3sync {command}: error: ignore rule '!' is not a valid pattern (from "
            "s3sync.json \"ignore\", .s3syncignore or .s3sync/ignore)\n"))
    assert remote.keys() == before  # the push stopped before sending anything


def test_3_missing_remote(bare):
    (bare.root / "s3sync.json").write_text('{"data_dir": "Data"}')
    r = bare.run("status")
    assert r.code == 3
    assert r.err == (f"s3sync status: error: {bare.root / 's3sync.json'}: \"remote\" is "
                     "required, e.g. \"s3://bucket/prefix\"\n")


# -- 4: the remote ------------------------------------------------------------------


@pytest.fixture
def s3_ann(s3_remote, monkeypatch, tmp_path):
    t = teammate(s3_remote, tmp_path / "s3ann", "ann")
    t.write("a.csv", "a v1\n")
    t.ok("push")
    return t


def test_4_wrong_bucket(s3_ann, s3_remote, tmp_path):
    config = json.loads((s3_ann.root / "s3sync.json").read_text())
    config["remote"] = "s3://s3sync-no-such-bucket/team/data"
    (s3_ann.root / "s3sync.json").write_text(json.dumps(config))
    for verb in ("status", "push", "pull"):
        r = s3_ann.run(verb)
        assert (r.code, r.err) == (4, f"s3sync {verb}: error: bucket s3sync-no-such-bucket "
                                      "does not exist\n")

    other = Teammate(tmp_path / "other", "bob")
    other.root.mkdir()
    r = other.run("init", "s3://s3sync-no-such-bucket/x", "--endpoint-url",
                  s3_remote.endpoint_url)
    assert r.code == 4
    assert "bucket does not exist" in r.err
    assert not (other.root / "s3sync.json").exists()


def test_4_no_credentials(s3_ann, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    for verb in ("status", "push"):
        r = s3_ann.run(verb)
        assert (r.code, r.err) == (4, f"s3sync {verb}: error: no AWS credentials found (set "
                                      "AWS_PROFILE, run 'aws configure' or 'aws sso login')\n")


def test_3_unknown_aws_profile(s3_ann, monkeypatch, tmp_path):
    config = json.loads((s3_ann.root / "s3sync.json").read_text())
    config["profile"] = "no-such-profile"
    (s3_ann.root / "s3sync.json").write_text(json.dumps(config))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    (tmp_path / "aws-config").write_text("[profile analyst]\nregion = us-east-1\n")
    r = s3_ann.run("status")
    assert (r.code, r.err) == (3, "s3sync status: error: AWS profile 'no-such-profile' "
                                  "not found\n")


def test_4_missing_remote_folder(ann, remote):
    os.rename(remote.url, remote.url + ".moved")
    r = ann.run("pull")
    assert (r.code, r.err) == (4, f"s3sync pull: error: remote folder {remote.url} does not "
                                  "exist\n")


# -- 5: someone changed the remote, or a local file, meanwhile ------------------------


def test_5_lost_commit_race(ann, bob, remote):
    ann.ok("fetch-manifest", "-q")
    ann.write("a.csv", "a ann\n")
    assert ann.ok("upload", "a.csv").out == "staged\ta.csv\n"
    bob.write("b.csv", "b bob\n")
    bob.ok("push")                                  # takes generation 2
    journal = sorted(k for k in remote.keys() if k.startswith(".s3sync/journal/"))

    r = ann.run("commit")
    assert (r.code, r.err) == (5, "s3sync commit: error: another push committed generation 2 "
                                  "first\n")
    assert sorted(k for k in remote.keys() if k.startswith(".s3sync/journal/")) == journal

    # The documented recovery: fetch, and commit again.
    ann.ok("fetch-manifest", "-q")
    assert ann.ok("commit").out == "committed generation 3 (1 change)\n"
    ann.ok("pull")
    bob.ok("pull")
    assert bob.files() == ann.files() == remote.data() == {
        "a.csv": b"a ann\n", "b.csv": b"b bob\n", "c.csv": b"c v1\n"}


def test_5_staged_change_conflicts_with_the_remote(ann, bob):
    ann.ok("fetch-manifest", "-q")
    ann.write("a.csv", "a ann\n")
    ann.ok("upload", "a.csv")
    (bob.data / "a.csv").unlink()
    bob.ok("push", "--max-delete=1")                # generation 2 deletes a.csv
    ann.ok("fetch-manifest", "-q")
    r = ann.run("commit")
    assert (r.code, r.err) == (5, "s3sync commit: error: a.csv was changed on the remote "
                                  "after it was staged\n")


def test_5_local_file_still_there(ann):
    r = ann.run("tombstone", "a.csv")
    assert (r.code, r.err) == (5, "s3sync tombstone: error: a.csv still exists locally; "
                                  "not deleting it remotely\n")


# -- 6: stored data of an unknown format ----------------------------------------------


def set_format(remote, doc: bytes) -> None:
    with remote.open() as r:
        r.put(".s3sync/format", doc)


def test_6_unknown_remote_format(ann, remote, tmp_path):
    set_format(remote, b'{"format": 99}')
    cy = Teammate(tmp_path / "cy", "cy")
    cy.root.mkdir()
    r = cy.run("init", remote.url)
    assert r.code == 6
    assert r.err == (f"s3sync init: error: {remote.url} format marker has format 99, this "
                     "s3sync reads format 1; upgrade s3sync\n")
    assert not (cy.root / "s3sync.json").exists()


def test_6_unknown_format_for_a_new_workspace(ann, remote, team):
    dan = team("dan")                      # attached while the format was 1
    set_format(remote, b'{"format": 99}')
    r = dan.run("pull")
    assert r.code == 6
    assert "has format 99, this s3sync reads format 1; upgrade s3sync" in r.err
    assert dan.files() == {}


def test_6_unknown_format_refused_before_any_write(ann, remote):
    """A newer s3sync moves a remote to its format by committing in it (s3sync-format(5))."""
    set_format(remote, b'{"format": 99}')
    with remote.open() as r:
        r.put(".s3sync/journal/000000000002", json.dumps(
            {"format": 99, "generation": 2, "author": "future", "time": "2030-01-01T00:00:00Z",
             "message": "", "changes": []}).encode(), if_none_match=True)
    before = remote.keys()
    ann.write("a.csv", "a v2\n")
    ann.write("d.csv", "d\n")
    r = ann.run("push")
    assert r.code == 6
    assert r.err == ("s3sync push: error: .s3sync/journal/000000000002 has format 99, this "
                     "s3sync reads format 1; upgrade s3sync\n")
    assert remote.keys() == before


def test_6_unsafe_path_in_the_journal(ann, bob, remote, tmp_path):
    evil = {"format": 1, "generation": 2, "author": "mallory", "time": "2024-01-01T00:00:00Z",
            "message": "", "changes": [{"path": "../evil.csv", "size": 5, "sha256": "0" * 64,
                                        "mtime_ns": 0, "author": "mallory",
                                        "time": "2024-01-01T00:00:00Z", "etag": "x"}]}
    with remote.open() as r:
        r.put(".s3sync/journal/000000000002", json.dumps(evil).encode(), if_none_match=True)
    before = bob.files()
    r = bob.run("pull")
    assert (r.code, r.err) == (6, "s3sync pull: error: unsafe path '../evil.csv': empty, '.' "
                                  "or '..' segment\n")
    assert bob.files() == before
    assert not (bob.root / "evil.csv").exists()
    assert not (tmp_path / "evil.csv").exists()


def test_6_corrupt_commit(ann, bob, remote):
    with remote.open() as r:
        r.put(".s3sync/journal/000000000002", b"{not json", if_none_match=True)
    r = bob.run("status")
    assert r.code == 6
    assert r.err.startswith("s3sync status: error: corrupt .s3sync/journal/000000000002: ")


# -- 7: locked ----------------------------------------------------------------------


def test_7_workspace_locked(ann, remote):
    ann.write("d.csv", "d\n")
    before = remote.keys()
    holder = State(str(ann.data))
    holder.lock()
    try:
        for verb in ("push", "status", "sync"):
            r = ann.run(verb)
            assert (r.code, r.err) == (7, f"s3sync {verb}: error: another s3sync is running "
                                          "in this workspace\n")
        assert remote.keys() == before
    finally:
        holder.close()
    ann.ok("push")  # released: works again
    assert remote.data()["d.csv"] == b"d\n"


# -- 8: a transfer failed -------------------------------------------------------------


@pytest.fixture
def tampered(ann, bob, remote):
    """ann pushed a.csv v2; its object was then altered in place on the remote."""
    ann.write("a.csv", "a v2\n")
    ann.ok("push")
    # Same size, inode and mtime: the folder remote's etag still matches,
    # so only the sha256 can tell.
    obj = Path(remote.url) / "a.csv"
    st = obj.stat()
    with open(obj, "r+b") as f:
        f.write(b"EVIL\n")
    os.utime(obj, ns=(st.st_atime_ns, st.st_mtime_ns))
    return bob


def test_8_pull_with_failed_transfers_of_different_kinds(tampered, ann, remote):
    bob = tampered
    ann.write("b.csv", "b v2\n")
    ann.write("c.csv", "c v2\n")
    ann.ok("push")
    (Path(remote.url) / "b.csv").unlink()  # gone behind s3sync's back
    r = bob.run("pull")
    assert r.code == 8
    assert sorted(r.err.splitlines()) == [
        "error: a.csv: downloaded bytes do not match the manifest",
        f"error: b.csv not found on {remote.url}"]
    assert r.out.startswith("pulled 1 file (5 B), deleted 0 here; 2 failed; generation 3; ")
    assert bob.read("a.csv") == b"a v1\n"          # left as they were
    assert bob.read("b.csv") == b"b v1\n"
    assert bob.read("c.csv") == b"c v2\n"          # the rest went through
    assert not list((bob.data / ".s3sync" / "tmp").iterdir())
    assert bob.run("status", "--porcelain").out == " M a.csv\n M b.csv\n"


def test_6_plumbing_download_of_a_tampered_object(tampered):
    bob = tampered
    bob.write("a.csv", "a bob\n")
    bob.ok("fetch-manifest", "-q")
    r = bob.run("download", "--force", "a.csv")
    # Every failure of one kind: the exit status of that kind.
    assert r.code == 6
    assert r.err == "error: a.csv: downloaded bytes do not match the manifest\n"
    assert r.out == ""
    assert bob.read("a.csv") == b"a bob\n"
    assert not list((bob.data / ".s3sync" / "tmp").iterdir())


# -- 9: aborted ---------------------------------------------------------------------


def test_9_max_delete(ann, remote):
    for p in ("a.csv", "b.csv"):
        (ann.data / p).unlink()
    before = remote.keys()
    r = ann.run("push")
    assert (r.code, r.err) == (9, "s3sync push: error: 2 deletions exceed --max-delete=50% "
                                  "(1 files); nothing was changed\n")
    assert remote.keys() == before


def test_9_reset_without_confirm(ann, remote):
    before = remote.keys()
    r = ann.run("reset")
    assert (r.code, r.err) == (9, "s3sync reset: error: reset needs --confirm when not run on "
                                  "a terminal\n")
    assert remote.keys() == before


# -- 130: interrupted -----------------------------------------------------------------


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


class CtrlCOnRead(FakeTTY):
    def readline(self, *args):
        raise KeyboardInterrupt


def test_130_interrupted_at_a_prompt(ann, remote, monkeypatch):
    monkeypatch.setenv("S3SYNC_USER", "ann")
    ann.write("d.csv", "d\n")
    before = remote.keys()
    out, err = FakeTTY(), FakeTTY()
    ctx = cli.Context(cwd=str(ann.root), out=out, err=err, stdin=CtrlCOnRead(),
                      env=dict(os.environ))
    assert cli.main(["push"], ctx) == 130
    assert err.getvalue().endswith("Proceed with 1 change? [y/N] "
                                   "s3sync push: interrupted; nothing half-done was committed\n")
    assert remote.keys() == before


def test_130_interrupted_mid_transfer_commits_nothing(ann, bob, remote, monkeypatch):
    for i in range(4):
        ann.write(f"new/{i}.csv", f"{i}\n")
    upload, calls = transfer.upload, []

    def flaky(*args, **kw):
        calls.append(1)
        if len(calls) >= 3:  # Ctrl-C from the third file on: two are up, two are not
            raise KeyboardInterrupt
        return upload(*args, **kw)

    journal = {k for k in remote.keys() if k.startswith(".s3sync/journal/")}
    monkeypatch.setattr(transfer, "upload", flaky)
    r = ann.run("push", "-j", "1")
    assert (r.code, r.err) == (130, "s3sync push: interrupted; nothing half-done was "
                                    "committed\n")
    assert {k for k in remote.keys() if k.startswith(".s3sync/journal/")} == journal
    assert bob.run("pull").out.startswith("already in step at generation 1")

    monkeypatch.setattr(transfer, "upload", upload)
    assert ann.ok("push").out.startswith("pushed 4 files (8 B), deleted 0 on the remote; "
                                         "generation 2; ")
    bob.ok("pull")
    assert bob.files() == ann.files() == remote.data()
    assert len(remote.data()) == 7


def _program(*args: str, cwd: Path, stdout=subprocess.PIPE):
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    env.pop("PYTHONUNBUFFERED", None)  # buffered, as a user's shell has it
    return subprocess.Popen([sys.executable, "-m", "s3sync", *args], cwd=cwd, env=env,
                            stdout=stdout, stderr=subprocess.PIPE)


def test_the_program_flushes_all_its_output_before_it_leaves(team):
    """The program leaves by os._exit, past the interpreter's teardown: what
    it wrote must still all arrive."""
    ann = team("ann")
    for i in range(3):  # a few lines: they wait in the stream's buffer
        ann.write(f"d/f{i}.txt", str(i))
    out, err = _program("scan", cwd=ann.root).communicate(timeout=120)
    assert err == b"" and [line.split("\t")[2] for line in out.decode().splitlines()] == [
        "d/f0.txt", "d/f1.txt", "d/f2.txt"]


def test_scan_leaves_its_files_to_the_end_of_the_process(team):
    """What ``program.entry`` skips freeing (os._exit) is what the command kept."""
    from s3sync.cli import Context, main
    ann = team("ann")
    ann.write("a.txt", "a")
    ctx = Context(cwd=str(ann.root), out=io.StringIO(), err=io.StringIO())
    assert main(["scan"], ctx) == 0
    assert [sorted(kept.files) for kept in ctx.kept] == [["a.txt"]]


def test_a_reader_that_leaves_early_is_not_an_error(team):
    ann = team("ann")
    for i in range(3000):  # some 300 KB of lines: more than a pipe holds
        ann.write(f"d/f{i:04d}.txt", str(i))
    proc = _program("scan", cwd=ann.root)
    first = proc.stdout.readline()
    proc.stdout.close()
    code = proc.wait(timeout=120)
    assert first.decode().endswith("\t1\td/f0000.txt\n")
    assert (code, proc.stderr.read()) == (0, b"")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_8_output_to_a_full_disk_is_one_line(team):
    ann = team("ann")
    ann.write("a.txt", "a")
    with open("/dev/full", "w") as full:
        proc = _program("scan", cwd=ann.root, stdout=full)
        _, err = proc.communicate(timeout=120)
    assert (proc.returncode, err.decode()) == (
        8, "s3sync: error: cannot write the output: No space left on device\n")
