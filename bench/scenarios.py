"""The scenarios of issue 5, each run for s3sync and for every peer.

A scenario is a function of the ``Bench``; it runs its repetitions (each
repetition runs every tool once, so that drift over time hits all tools
alike) and records one row per run with ``bench.measure``.
"""

from __future__ import annotations

import shutil
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from harness import Cmd, S3sync, hardlink_copy, rewrite, tree_path

SMALL = 5_000
LARGE = 100_000
FILE_SIZE = 4096


@dataclass(frozen=True)
class Scenario:
    name: str
    label: str          # what is measured, with {n} / {size} filled in
    run: object         # function(bench, scenario)
    quick: bool         # part of --quick's default set
    full: bool = True   # part of the full default set
    server: str = "seaweedfs"


# -- helpers -----------------------------------------------------------------------
def _human(nbytes: int) -> str:
    return f"{nbytes / 2**30:g} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:g} MiB"


def _peers(bench):
    return [t for t in bench.tools if t.name != "s3sync"]


# -- scenarios ----------------------------------------------------------------------
def push(bench, sc):
    """Initial push of SMALL files of 4 KiB into an empty prefix."""
    tree = bench.tree(bench.small)
    for rep in range(bench.reps):
        for tool in bench.available():
            prefix = f"push{bench.small}/{tool.name.replace(' ', '-')}/{rep}"
            place = tool.push_place(bench.runner, bench.backend(sc.server), tree, prefix)
            bench.measure(sc, tool, tool.push(place), place.backend, rep=rep,
                          items=bench.small, nbytes=bench.small * FILE_SIZE, unit="objects/s")
            bench.remember(tool, place.backend, bench.small, place)


def _noop(bench, sc, n):
    backend = bench.backend(sc.server)
    places = {t.name: bench.pushed(t, backend, n) for t in bench.available()}
    for rep in range(bench.reps):
        for tool in bench.available():
            bench.measure(sc, tool, tool.push(places[tool.name], again=True), backend,
                          rep=rep, items=n, unit="files/s")


def noop(bench, sc):
    """A sync with nothing to do, after the first push, over SMALL files."""
    _noop(bench, sc, bench.small)


def noop_large(bench, sc):
    _noop(bench, sc, bench.large)


def change(bench, sc):
    """One file changed among ``large``: sync it (the changed file goes up)."""
    n = bench.large
    backend = bench.backend(sc.server)
    tree = bench.tree(n)
    places = {t.name: bench.pushed(t, backend, n) for t in bench.available()}
    for rep in range(bench.reps):
        rel = tree_path((rep * 7919 + 4242) % n)
        seed = 1000 + rep
        # The peers read the tree itself; s3sync's workspace holds hard links
        # to it, which a rewrite (a new inode) does not touch, so both are rewritten.
        rewrite(tree / rel, seed)
        for place in places.values():
            if place.data != tree:
                rewrite(place.data / rel, seed)
        for tool in bench.available():
            bench.measure(sc, tool, tool.push(places[tool.name], again=True), backend,
                          rep=rep, items=1, nbytes=FILE_SIZE)


def pull(bench, sc):
    """Pull SMALL files into a fresh workspace (or empty folder)."""
    backend = bench.backend(sc.server)
    sources = {t.name: bench.pushed(t, backend, bench.small) for t in bench.available()}
    for rep in range(bench.reps):
        for tool in bench.available():
            place = tool.pull_place(bench.runner, backend, sources[tool.name].prefix)
            bench.measure(sc, tool, tool.pull(place), backend, rep=rep,
                          items=bench.small, nbytes=bench.small * FILE_SIZE, unit="objects/s")
            shutil.rmtree(place.local, ignore_errors=True)


def big_up(bench, sc):
    """One big file up: s3sync push of a workspace holding it, the peers' cp."""
    backend = bench.backend(sc.server)
    folder = bench.big()
    for rep in range(bench.reps):
        for tool in bench.available():
            prefix = f"big/{tool.name.replace(' ', '-')}/{rep}"
            place = tool.push_place(bench.runner, backend, folder, prefix)
            bench.measure(sc, tool, tool.put_file(place, "big.bin"), backend, rep=rep,
                          items=1, nbytes=bench.big_size, unit="MiB/s")
            bench.big_places.setdefault(tool.name, place)


def big_down(bench, sc):
    """The big file down into a fresh workspace (or empty folder)."""
    backend = bench.backend(sc.server)
    if not bench.big_places:
        big_up_once(bench, backend)
    for rep in range(bench.reps):
        for tool in bench.available():
            source = bench.big_places[tool.name]
            place = tool.pull_place(bench.runner, backend, source.prefix)
            bench.measure(sc, tool, tool.get_file(place, "big.bin"), backend, rep=rep,
                          items=1, nbytes=bench.big_size, unit="MiB/s")
            shutil.rmtree(place.local, ignore_errors=True)


def big_up_once(bench, backend):
    folder = bench.big()
    for tool in bench.available():
        place = tool.push_place(bench.runner, backend, folder,
                                f"big/{tool.name.replace(' ', '-')}/setup")
        bench.setup_run(f"upload {bench.big_label}", tool, tool.put_file(place, "big.bin"),
                        backend)
        bench.big_places[tool.name] = place


_INPROCESS_SCAN = """
import sys, time
from libsync.scan import scan
from libsync.workspace import Workspace
ws = Workspace.find(".")
with ws.open_state() as state:
    t = time.perf_counter()
    r = scan(ws.data_dir, state, ignore=ws.config.ignore)
    dt = time.perf_counter() - t
print(f"INNER {dt:.6f} {len(r.files)} {r.hashed}")
"""

_SCANDIR_STAT = """
import os, sys, time
t = time.perf_counter()
n = 0
stack = [sys.argv[1]]
while stack:
    for e in os.scandir(stack.pop()):
        if e.is_dir(follow_symlinks=False):
            stack.append(e.path)
        else:
            e.stat(follow_symlinks=False)
            n += 1
print(f"INNER {time.perf_counter() - t:.6f} {n}")
"""


def _inner(text: str) -> float:
    line = next(ln for ln in text.splitlines() if ln.startswith("INNER "))
    return float(line.split()[1])


def _scan_workspace(bench) -> Path:
    """A workspace over a hard-link copy of the large tree, with no remote use."""
    if bench.scan_ws is None:
        ws = bench.runner.newdir("scan-ws")
        hardlink_copy(bench.tree(bench.large), ws / "Data")
        (ws / "s3sync.json").write_text(
            '{"remote": "s3://bench/scan", "endpoint_url": "http://127.0.0.1:9"}\n')
        bench.scan_ws = ws
    return bench.scan_ws


def _scan(bench, sc, *, first: bool):
    n = bench.large
    ws = _scan_workspace(bench)
    s3sync = bench.s3sync
    state = ws / "Data" / ".s3sync"

    def forget():
        shutil.rmtree(state, ignore_errors=True)

    def once():  # a warm scan needs the stat cache filled, and old enough to trust
        if not (state / "state.db").exists():
            bench.runner.run(Cmd([*s3sync.exe, "scan"], cwd=str(ws)), check=True)

    before = forget if first else once
    cli = Cmd([*s3sync.exe, "scan"], cwd=str(ws), before=before)
    inproc = Cmd([sys.executable, "-c", _INPROCESS_SCAN], cwd=str(ws), before=before,
                 inner=_inner)
    if first:
        data = str(ws / "Data")
        base = Cmd(["bash", "-c", "find . -path ./.s3sync -prune -o -type f -print0 "
                    "| xargs -0 -n 1000 -P 2 sha256sum > /dev/null"], cwd=data)
        base_name = "sha256sum (find | xargs -P2)"
    else:
        base = Cmd([sys.executable, "-c", _SCANDIR_STAT, str(ws / "Data")], inner=_inner)
        base_name = "python scandir+stat"
    rows = [("s3sync scan", cli, True), ("libsync scan() in-process", inproc, False),
            (base_name, base, False)]
    for rep in range(bench.reps):
        for name, cmd, ref in rows:
            bench.measure(sc, name, cmd, None, rep=rep, items=n,
                          nbytes=n * FILE_SIZE, unit="files/s", reference=ref)


def scan_first(bench, sc):
    _scan(bench, sc, first=True)


def scan_warm(bench, sc):
    _scan(bench, sc, first=False)


def status(bench, sc):
    """``s3sync status`` over the large tree, in step: peak memory, and 1 request."""
    backend = bench.backend(sc.server)
    place = bench.pushed(bench.s3sync, backend, bench.large)
    for rep in range(bench.reps):
        bench.measure(sc, bench.s3sync, bench.s3sync.command(place, "status"), backend,
                      rep=rep, items=bench.large, unit="files/s")
        bench.measure(sc, "s3sync status --no-fetch",
                      bench.s3sync.command(place, "status", "--no-fetch"), backend,
                      rep=rep, items=bench.large, unit="files/s", reference=False)


def start(bench, sc):
    """Start-up time: ``s3sync --help`` against the peers' version commands."""
    rows = [(bench.s3sync, bench.s3sync.start(), True),
            ("python -c pass", Cmd([sys.executable, "-c", "pass"]), False),
            ("python -c 'import boto3'", Cmd([sys.executable, "-c", "import boto3"]), False)]
    names = {"aws s3 sync": "aws --version", "rclone": "rclone version",
             "s3cmd": "s3cmd --version"}
    rows += [(names.get(t.name, t.name), t.start(), False)
             for t in _peers(bench) if not t.missing]
    for rep in range(max(bench.reps, 5)):
        for tool, cmd, ref in rows:
            bench.measure(sc, tool, cmd, None, rep=rep, reference=ref)


def jobs(bench, sc):
    """s3sync's initial push of SMALL files by --jobs, to choose the default.

    A sweep, so one run per setting whatever --repeat says.
    """
    tree = bench.tree(bench.small)
    backend = bench.backend(sc.server)
    tools = [bench.s3sync] + [S3sync(bench.runner, jobs=j, rev=bench.s3sync.rev)
                              for j in (1, 4, 16, 32)]
    for rep in range(1):
        for tool in tools:
            prefix = f"jobs/{tool.name.replace(' ', '')}/{rep}"
            place = tool.push_place(bench.runner, backend, tree, prefix)
            bench.measure(sc, tool, tool.push(place), backend, rep=rep,
                          items=bench.small, nbytes=bench.small * FILE_SIZE, unit="objects/s",
                          reference=tool is bench.s3sync)


SCENARIOS = [
    Scenario("push", "initial push, {small} x 4 KiB", push, quick=True),
    Scenario("noop", "no-op sync, {small} files", noop, quick=True),
    Scenario("pull", "pull {small} x 4 KiB, fresh", pull, quick=True),
    Scenario("change", "1 changed file in {large}", change, quick=True),
    Scenario("noop-large", "no-op sync, {large} files", noop_large, quick=False),
    Scenario("status", "s3sync status, {large} files", status, quick=True),
    Scenario("scan-first", "first scan, {large} files", scan_first, quick=True),
    Scenario("scan-warm", "warm scan, {large} files", scan_warm, quick=True),
    Scenario("big-up", "upload 1 file of {big}", big_up, quick=True),
    Scenario("big-down", "download 1 file of {big}", big_down, quick=True),
    Scenario("start", "start-up (--help / --version)", start, quick=True),
    Scenario("noop-moto", "no-op sync, {small} files (moto)", noop, quick=False,
             server="moto"),
    Scenario("jobs", "s3sync push {small} x 4 KiB by -j", jobs, quick=False),
]
BY_NAME = {s.name: s for s in SCENARIOS}


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt_count(n: int) -> str:
    return f"{n:,}"


__all__ = ["BY_NAME", "SCENARIOS", "Scenario", "fmt_count", "median"]
