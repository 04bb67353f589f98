"""The program, or else the command line, starts find's listing before it
loads a command that scans.

That listing must be the one the command's scan reads (not a second one),
and it must leave no find behind when the command never gets to its scan.
"""

from __future__ import annotations

import gc
import io
import sys

import pytest

from conftest import make_remote
from libsync import listing as listing_module
from libsync.listing import gnu_find
from s3sync import program

pytestmark = pytest.mark.skipif(gnu_find() is None, reason="needs GNU find")


@pytest.fixture
def remote(request, monkeypatch, tmp_path):
    return make_remote("folder", request, monkeypatch, tmp_path)


@pytest.fixture
def made(monkeypatch):
    """Every Listing the run makes, each with the processes it started and
    how many times a scan read it."""
    made = []
    real_listing, real_popen = listing_module.Listing, listing_module.subprocess.Popen
    current = []

    class Recorded(real_listing):
        def __init__(self, *args, **kw):
            self.procs, self.reads = [], 0
            current[:] = [self]
            made.append(self)
            super().__init__(*args, **kw)

        def __call__(self, data_dir):
            self.reads += 1
            return super().__call__(data_dir)

    def popen(*args, **kw):
        proc = real_popen(*args, **kw)
        current[0].procs.append(proc)
        return proc

    monkeypatch.setattr(listing_module, "Listing", Recorded)
    monkeypatch.setattr(listing_module.subprocess, "Popen", popen)
    return made


@pytest.mark.parametrize("command", [["scan"], ["status"], ["push"], ["pull"], ["sync"]])
def test_the_scan_reads_the_listing_started_first(team, made, command):
    ann = team("ann")
    for name in ("a", "b"):  # two top-level entries: two finds
        ann.write(f"{name}/x.csv", f"{name}\n")
    made.clear()
    result = ann.ok(*command)
    assert [(m.data_dir, m.reads, len(m.procs)) for m in made] == [(str(ann.data), 1, 2)]
    assert all(p.returncode == 0 for p in made[0].procs)
    if command == ["scan"]:
        assert result.out.splitlines()[0].endswith("\t2\ta/x.csv")


def test_a_command_that_stops_early_leaves_no_find_behind(team, made):
    ann = team("ann")
    ann.write("a/x.csv", "a\n")
    ann.write("b/y.csv", "b\n")
    made.clear()
    result = ann.run("status", "--bogus")
    assert result.code == 2 and "unknown option" in result.err
    assert [(m.reads, m.taken, len(m.procs)) for m in made] == [(0, True, 2)]
    assert all(p.returncode is not None for p in made[0].procs)  # stopped and waited for


def test_no_listing_without_a_workspace_for_help_or_other_commands(team, made, tmp_path):
    ann = team("ann")
    ann.write("a.csv", "a\n")
    made.clear()
    assert ann.run("scan", "--help").code == 0
    assert ann.run("log").code == 0
    assert made == []
    from s3sync.cli import Context, main
    nowhere = tmp_path / "nowhere"
    nowhere.mkdir()
    ctx = Context(cwd=str(nowhere), out=io.StringIO(), err=io.StringIO())
    assert main(["status"], ctx) == 3  # the command's own "no s3sync.json" error
    assert made == [] and ctx.listing is None


@pytest.mark.parametrize("argv, listed", [
    (["scan"], True), (["status", "--exit-code"], True), (["-C", "ws", "push"], True),
    (["scan", "--help"], False), (["sync", "-h"], False), (["log"], False),
    (["--version"], False), ([], False),
    (["-Cws", "scan"], False),  # a form left to cli.main, which parses it properly
])
def test_the_program_lists_ahead_for_a_plain_command_line_that_scans(
        tmp_path, argv, listed):
    ws = tmp_path / "ws"
    (ws / "Data").mkdir(parents=True)
    (ws / "s3sync.json").write_text('{"remote": "file:///nowhere"}')
    cwd = str(tmp_path) if argv[:1] in (["-C"], ["-Cws"]) else str(ws)
    listing = program.early_listing(argv, cwd)
    try:
        assert (listing.data_dir if listing else None) == (
            str(ws / "Data") if listed else None)
    finally:
        if listing:
            listing.close()


def test_the_program_lists_nothing_outside_a_workspace(tmp_path):
    assert program.early_listing(["status"], str(tmp_path)) is None


def _run_program(monkeypatch, *argv: str) -> int:
    """program.entry in this process, its os._exit turned into SystemExit."""
    def leave(code):
        raise SystemExit(code)
    monkeypatch.setattr(sys, "argv", ["s3sync", *argv])
    monkeypatch.setattr(program.os, "_exit", leave)
    try:
        with pytest.raises(SystemExit) as left:
            program.entry()
    finally:
        gc.enable()
    return left.value.code


def test_the_program_scan_reads_the_listing_it_started(team, made, monkeypatch, capsys):
    ann = team("ann")
    ann.write("a/x.csv", "x\n")
    ann.write("b/y.csv", "yy\n")
    made.clear()
    from s3sync import cli
    real_main, listings_at_main = cli.main, []

    def main(**kw):
        listings_at_main.append(len(made))
        return real_main(**kw)

    monkeypatch.setattr(cli, "main", main)
    monkeypatch.chdir(ann.root.parent)
    assert _run_program(monkeypatch, "-C", ann.root.name, "scan") == 0
    assert listings_at_main == [1]  # started before the command line ran
    assert [(m.data_dir, m.reads, len(m.procs)) for m in made] == [(str(ann.data), 1, 2)]
    assert [line.split("\t")[1:] for line in capsys.readouterr().out.splitlines()] == [
        ["2", "a/x.csv"], ["3", "b/y.csv"]]


def test_the_program_stops_a_listing_no_scan_read(team, made, monkeypatch, capsys):
    ann = team("ann")
    ann.write("a/x.csv", "x\n")
    ann.write("b/y.csv", "y\n")
    made.clear()
    monkeypatch.chdir(ann.root)
    assert _run_program(monkeypatch, "status", "--bogus") == 2
    assert "unknown option" in capsys.readouterr().err
    assert [(m.reads, m.taken, len(m.procs)) for m in made] == [(0, True, 2)]
    assert all(p.returncode is not None for p in made[0].procs)  # stopped and waited for
