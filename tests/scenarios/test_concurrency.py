"""Up to eight teammates pushing to one remote at the same moment, again and again.

Teammates are threads of this process (each running the CLI entry point)
or separate ``python -m s3sync`` processes, released together by a barrier
or a start file. They push overlapping changes (the same files edited,
deleted or created by several) and disjoint ones (a file of their own).
After every round, read straight from the remote:

- every journal commit parses and the generations are contiguous;
- no write was lost: each teammate's change is in the remote manifest, or
  that teammate's run reported it as a conflict and their file still holds it;
- every data object hashes to the sha256 its manifest entry records;
- every replaced or deleted version is in ``.s3sync/trash/<path>/<sha256>``.

Then everyone syncs with ``--on-conflict=keep-both`` until nothing moves,
and every workspace equals the remote.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from scenarios.crash_driver import audit_remote, sha
from scenarios.scenario_helpers import TRASH

from conftest import Result
from libsync import journal
from libsync.manifest import Manifest
from libsync.state import State
from s3sync.porcelain.pushpull import RACED, UNCOMMITTED

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SHARED = ("shared/s0.csv", "shared/s1.csv", "shared/s2.csv")
ARGS = ("push", "--yes", "--max-delete=100%", "-q")



@dataclass(frozen=True)
class Change:
    who: str
    path: str
    content: bytes | None  # None: deleted


def cli(t, *argv: str) -> Result:
    """The CLI entry point in this thread; the author comes from s3sync.json."""
    from s3sync.cli import Context, main
    out, err = io.StringIO(), io.StringIO()
    ctx = Context(cwd=str(t.root), out=out, err=err, stdin=io.StringIO(), env=dict(os.environ))
    return Result(main(list(argv), ctx), out.getvalue(), err.getvalue())


def set_user(t) -> None:
    """Name the author in s3sync.json: threads must not share S3SYNC_USER."""
    path = t.root / "s3sync.json"
    doc = json.loads(path.read_text())
    doc["user"] = t.name
    path.write_text(json.dumps(doc))


def push_in_threads(teammates) -> dict[str, Result]:
    barrier = threading.Barrier(len(teammates))
    results: dict[str, Result] = {}

    def one(t):
        barrier.wait()
        try:
            results[t.name] = cli(t, *ARGS)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            results[t.name] = Result(-1, "", f"raised {exc!r}")

    threads = [threading.Thread(target=one, args=(t,)) for t in teammates]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    return results


# Each child imports s3sync, says it is ready, waits for the start file, and
# then runs ``python -m s3sync`` exactly as a shell would.
GATED = """
import os, runpy, sys, time
ready, gate, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
import s3sync.cli, s3sync.transfer_cli, s3sync.commands.push
if os.environ.get("WARM_S3"):
    import libsync.remotes.s3
open(ready, "w").close()
while not os.path.exists(gate):
    time.sleep(0.001)
sys.argv = ["s3sync", *argv]
runpy.run_module("s3sync", run_name="__main__", alter_sys=True)
"""


def push_in_processes(teammates, tmp: Path, warm_s3: bool) -> dict[str, Result]:
    gate = tmp / f"go-{uuid.uuid4().hex}"
    procs = {}
    for t in teammates:
        env = dict(os.environ, PYTHONPATH=str(REPO), S3SYNC_USER=t.name)
        if warm_s3:
            env["WARM_S3"] = "1"
        procs[t.name] = (tmp / f"ready-{t.name}-{gate.name}", subprocess.Popen(
            [sys.executable, "-c", GATED, str(tmp / f"ready-{t.name}-{gate.name}"), str(gate),
             *ARGS], cwd=t.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True))
    deadline = time.monotonic() + 60
    while not all(ready.exists() for ready, _ in procs.values()):
        assert time.monotonic() < deadline, "the pushers never got ready"
        time.sleep(0.01)
    gate.touch()
    results = {}
    for name, (_, proc) in procs.items():
        out, err = proc.communicate(timeout=120)
        results[name] = Result(proc.returncode, out, err)
    return results


def make_changes(teammates, rnd: int, rng: random.Random,
                 unresolved: set[tuple[str, str]]) -> list[Change]:
    """Overlapping and disjoint edits, made before anyone pushes.

    Nobody touches a file whose last change is still unresolved (theirs did
    not land and they were told so): a person sorts out a conflict before
    editing on, and otherwise they, not s3sync, would lose that version.
    """
    changes = []

    def free(t, path):
        return (t.name, path) not in unresolved

    def write(t, path):
        if free(t, path):
            content = f"{t.name} round {rnd} {path} {uuid.uuid4().hex}\n".encode()
            t.write(path, content)
            changes.append(Change(t.name, path, content))

    for i, t in enumerate(teammates):
        write(t, f"own/{t.name}.csv")                   # disjoint
        write(t, SHARED[(i + rnd) % len(SHARED)])       # several edit each shared file
        if i % 3 == 0:
            write(t, f"new/round{rnd}.csv")             # several create one new path
        if i % 4 == 3:                                  # some delete what others edit
            path = SHARED[(i + rnd + 1) % len(SHARED)]
            if (t.data / path).exists() and free(t, path):
                (t.data / path).unlink()
                changes.append(Change(t.name, path, None))
    rng.shuffle(changes)
    return changes


# Servers that ignore CopySourceIfMatch (tests/remotes/test_contract.py names
# the gap): a racing pusher may copy the wrong bytes to a trash key there.
def reported(r: Result, path: str) -> bool:
    """Whether a run told its user that its change of ``path`` did not land.

    A conflict (exit 1) is what the design promises; a path blocked by
    another teammate's orphan is an error (exit 5 or 8, a known gap pinned
    below), and a push that keeps losing the commit race for a minute gives
    up (exit 5).
    """
    named = re.compile(rf"(conflict|error): {re.escape(path)}[: ]", re.M)
    return (r.code != 0 and named.search(r.err) is not None
            or r.code == 5 and "lost the race to commit" in r.err)


def staged_uploads(teammates) -> set[tuple[str, str]]:
    """(path, sha256) of every upload a workspace made and has not committed."""
    out = set()
    for t in teammates:
        with State(str(t.data)) as state:
            out.update((p, rec.sha256) for p, (rec, _) in state.pending().items()
                       if not rec.deleted)
    return out


def states_since(store, generation: int) -> set[tuple[str, str | None]]:
    """(path, sha256 or None if deleted) of every path in every manifest from ``generation`` on."""
    manifest = Manifest()
    states = set()
    for commit in journal.log(store):
        manifest = manifest.apply(commit)
        if manifest.generation >= generation:
            states.update((p, manifest.sha(p)) for p in manifest.records)
            if manifest.generation == generation:
                states.update((p, None) for p in SHARED if p not in manifest.records)
    return states


def check_round(remote, teammates, changes, results, since: int) -> set[tuple[str, str]]:
    """Check one round; return (teammate, path) of the changes that did not land."""
    by_name = {t.name: t for t in teammates}
    for name, r in results.items():
        assert r.code in (0, 1, 5, 8), f"{name}: exit {r.code}\n{r.out}{r.err}"
        for line in r.err.splitlines():
            assert line.startswith(("conflict: ", "hint: ", "error: ", "s3sync push: error: ")
                                   ), f"{name}: {line}"
            if "error: " in line:
                assert re.search("changed|not found|lost the race", line), f"{name}: {line}"
    with remote.open() as store:
        audit_remote(store, staged=staged_uploads(teammates))
        states = states_since(store, since)
    unresolved = set()
    for c in changes:
        r, t = results[c.who], by_name[c.who]
        if (c.path, c.content and sha(c.content)) in states:
            continue  # landed (a deletion may have met someone else's first)
        unresolved.add((c.who, c.path))
        assert reported(r, c.path), (
            f"{c.who}'s change of {c.path} is neither on the remote nor reported:\n{r.err}")
        local = t.data / c.path
        if c.content is None:
            assert not local.exists(), f"{c.who}'s deletion of {c.path} was undone"
        else:
            assert local.read_bytes() == c.content, f"{c.who}'s {c.path} was overwritten"
    return unresolved


# A pusher whose commit lost takes its upload back at once, but one who gave
# up (60 s of lost races) leaves it staged until its next run; until then it
# blocks other pushes of its path, since a live push and a dead one look
# alike. A pass of the convergence may meet such a path, and the next pass
# (after the upload's author has synced) must mend it.
BLOCKED_BY_AN_ORPHAN = re.compile(
    r"error: \S+ .*changed.*|conflict: \S+: changed here, changed on the remote meanwhile"
    r"|hint: resolve conflicts with .*")


def converge(remote, teammates, passes: int = 6) -> dict[str, bytes]:
    """Everyone out of step syncs, keeping both sides of every conflict, until all agree.

    Returns every key of the remote, with its bytes.
    """
    with remote.open() as store:
        manifest = Manifest()

        def live() -> dict[str, str]:
            nonlocal manifest
            manifest, _ = journal.fetch_manifest(store, manifest)  # one LIST if unchanged
            return {p: e.sha256 for p, e in manifest.entries().items()}

        for _ in range(passes):
            synced = False
            for t in teammates:
                if {p: sha(c) for p, c in t.files().items()} == live():
                    continue
                r = cli(t, "sync", "--on-conflict=keep-both", "--yes", "--max-delete=100%",
                        "-q")
                assert r.code in (0, 1, 5, 8), f"{t.name}: exit {r.code}\n{r.out}{r.err}"
                for line in r.err.splitlines():
                    assert BLOCKED_BY_AN_ORPHAN.fullmatch(line), f"{t.name}: {line}"
                synced = True
            if not synced:
                break
    with remote.open() as store:
        manifest, orphans = audit_remote(store)
    assert orphans == [], f"objects no commit names: {orphans}"
    keys = remote.keys()
    data = {k: v for k, v in keys.items() if not k.startswith(".s3sync/")}
    assert {p: sha(c) for p, c in data.items()} == {
        p: e.sha256 for p, e in manifest.entries().items()}
    for t in teammates:
        assert t.files() == data, t.name
    return keys


def scenario(remote, team, n: int, rounds: int, push) -> None:
    teammates = [team(f"t{i}") for i in range(n)]
    for t in teammates:
        set_user(t)
    first = teammates[0]
    for path in SHARED:
        first.write(path, f"seed {path}\n")
    assert cli(first, *ARGS).code == 0
    for t in teammates[1:]:
        assert cli(t, "pull", "-q").code == 0

    rng = random.Random(n * 100 + rounds)
    written: set[bytes] = set()
    unresolved: set[tuple[str, str]] = set()
    for rnd in range(rounds):
        changes = make_changes(teammates, rnd, rng, unresolved)
        written.update(c.content for c in changes if c.content is not None)
        with remote.open() as store:
            since = journal.fetch_manifest(store, Manifest())[0].generation
        results = push(teammates)
        unresolved |= check_round(remote, teammates, changes, results, since)
    keys = converge(remote, teammates)
    # Every version anyone wrote is still somewhere: a workspace (maybe as a
    # conflict copy), the remote's data, or its trash.
    found = {v for k, v in keys.items() if not k.startswith(".s3sync/") or k.startswith(TRASH)}
    for t in teammates:
        found.update(t.files().values())
    missing = written - found
    assert not missing, f"{len(missing)} versions lost, e.g. {sorted(missing)[:3]}"


@pytest.mark.slow
def test_eight_threads_push_at_once(remote, team):
    scenario(remote, team, n=8, rounds=4 if remote.kind == "folder" else 2,
             push=push_in_threads)


@pytest.mark.slow
def test_processes_push_at_once(remote, team, tmp_path):
    """Separate ``python -m s3sync push`` processes: eight on a folder, six over HTTP."""
    scenario(remote, team, n=8 if remote.kind == "folder" else 6, rounds=2,
             push=lambda ts: push_in_processes(ts, tmp_path, remote.kind != "folder"))


# -- each race, one at a time and deterministic -----------------------------------
#
# One teammate's run is held at a plumbing call (only module attributes are
# replaced, in this process) while another one's runs to the end.


class Hold:
    """Stop the runs of one thread at ``module.name`` until released."""

    def __init__(self, monkeypatch, module, name: str, thread: str):
        self.reached, self.go = threading.Event(), threading.Event()
        real = getattr(module, name)

        def held(*a, **kw):
            if threading.current_thread().name == thread and not self.go.is_set():
                self.reached.set()
                assert self.go.wait(60), "never released"
            return real(*a, **kw)

        monkeypatch.setattr(module, name, held)


def start(name: str, fn, *args) -> tuple[threading.Thread, dict]:
    box: dict = {}
    th = threading.Thread(target=lambda: box.update(result=fn(*args)), name=name)
    th.start()
    return th, box


def finish(th: threading.Thread, box: dict) -> Result:
    th.join(60)
    assert not th.is_alive()
    return box["result"]


P = "raw/p.csv"
V0, ANN_V, BOB_V = b"p,0\n", b"p,ann\n", b"p,bob\n"


@pytest.fixture
def pair(team):
    ann, bob = team("ann"), team("bob")
    for t in (ann, bob):
        set_user(t)
    ann.write(P, V0)
    assert cli(ann, *ARGS).code == 0
    assert cli(bob, "pull").code == 0
    return ann, bob


BUG_LOST_UPLOAD = (
    "BUG: s3sync/porcelain/pushpull.py _execute(): an upload whose conditional PUT (or "
    "trash copy) loses to a teammate's push is put in `failed` (exit 5 or 8, 'error: ... "
    "was changed on the remote by someone else', or '... not found' when it was deleted) "
    "instead of being reported as a conflict (exit 1, 'conflict: <path>: ...') as the "
    "design says")


@pytest.mark.parametrize("theirs", ["edit", "delete"])
def test_a_lost_upload_race_is_a_conflict(pair, remote, monkeypatch, theirs):
    """bob plans his push; ann's lands first; bob's upload then loses its condition."""
    from libsync import ops
    ann, bob = pair
    if theirs == "edit":
        ann.write(P, ANN_V)
    else:
        (ann.data / P).unlink()
    bob.write(P, BOB_V)
    hold = Hold(monkeypatch, ops, "upload", thread="bob")
    th, box = start("bob", cli, bob, *ARGS)
    assert hold.reached.wait(60)
    assert cli(ann, *ARGS).code == 0
    hold.go.set()
    r = finish(th, box)

    assert bob.read(P) == BOB_V
    assert (r.code, r.err.splitlines()[0].split(": ")[:2]) == (1, ["conflict", P]), r
    r = cli(bob, "sync", "--on-conflict=keep-both", "--yes", "--max-delete=100%")
    assert r.code == 0, r.err
    assert cli(ann, "sync", "--max-delete=100%").code == 0
    assert ann.files() == bob.files() == remote.data()
    assert BOB_V in bob.files().values()


@pytest.mark.parametrize("remote", ["folder", "moto"], indirect=True)
def test_a_lost_upload_race_leaves_the_trash_intact(pair, remote, monkeypatch):
    from libsync import ops
    ann, bob = pair
    ann.write(P, ANN_V)
    bob.write(P, BOB_V)
    hold = Hold(monkeypatch, ops, "upload", thread="bob")
    th, box = start("bob", cli, bob, *ARGS)
    assert hold.reached.wait(60)
    assert cli(ann, *ARGS).code == 0
    hold.go.set()
    assert finish(th, box).code != 0
    with remote.open() as store:
        audit_remote(store)
    assert remote.keys()[f".s3sync/trash/{P}/{sha(V0)}"] == V0


def test_a_push_outpaced_by_seven_teammates_still_commits(pair, remote, team, monkeypatch):
    from libsync import ops
    ann, bob = pair
    real = ops.commit
    raced = []
    inside = threading.local()

    def commit(*a, **kw):
        if threading.current_thread().name == "bob" and len(raced) < 7 and not inside.__dict__:
            raced.append(1)
            ann.write(f"ann/{len(raced)}.csv", f"ann {len(raced)}\n")
            inside.ann = True
            try:
                assert cli(ann, *ARGS).code == 0  # one more teammate got there first
            finally:
                del inside.ann
        return real(*a, **kw)

    monkeypatch.setattr(ops, "commit", commit)
    bob.write("bob.csv", b"bob\n")
    r = finish(*start("bob", cli, bob, *ARGS))
    assert r.code == 0, r.err
    assert len(raced) == 7
    assert remote.data()["bob.csv"] == b"bob\n"


def test_a_push_that_loses_its_commit_takes_its_upload_back(pair, remote, team, monkeypatch):
    """No orphan is left to block the path: the loser's bytes go to the trash."""
    from libsync import ops
    ann, bob = pair
    cy = team("cy")
    set_user(cy)
    assert cli(cy, "pull").code == 0
    (cy.data / P).unlink()
    bob.write(P, BOB_V)
    hold = Hold(monkeypatch, ops, "commit", thread="bob")
    th, box = start("bob", cli, bob, *ARGS)
    assert hold.reached.wait(60)          # bob's upload is at P, not committed
    assert cli(cy, *ARGS).code == 0       # cy's deletion is committed first
    hold.go.set()
    r = finish(th, box)
    assert (r.code, r.err.splitlines()[0]) == (1, f"conflict: {P}: {RACED}"), r
    assert bob.read(P) == BOB_V
    keys = remote.keys()
    assert P not in keys
    assert keys[f".s3sync/trash/{P}/{sha(BOB_V)}"] == BOB_V
    assert keys[f".s3sync/trash/{P}/{sha(V0)}"] == V0
    with remote.open() as store:
        assert audit_remote(store)[1] == []

    assert cli(ann, "pull", "--max-delete=100%").code == 0
    ann.write(P, ANN_V)                   # ann makes P anew
    r = cli(ann, *ARGS)
    assert r.code == 0, r.err
    assert remote.data()[P] == ANN_V


def test_an_upload_left_by_a_dead_push_is_named_and_fsck_repair_clears_it(pair, remote, team):
    """A push that died after uploading never comes back: the path is blocked,
    the message says why and what to do, and fsck --repair unblocks it."""
    ann, bob = pair
    bob.write(P, BOB_V)
    assert cli(bob, "upload", P).code == 0   # staged at its key, never committed
    (ann.data / P).unlink()
    assert cli(ann, *ARGS).code == 0         # P deleted; its object is bob's upload
    ann.write(P, ANN_V)
    r = cli(ann, *ARGS)
    assert (r.code, r.err.splitlines()[0]) == (1, f"conflict: {P}: {UNCOMMITTED}"), r
    assert remote.data()[P] == BOB_V

    r = cli(ann, "fsck", "--repair")
    assert r.code == 0, r.err
    r = cli(ann, *ARGS)
    assert r.code == 0, r.err
    keys = remote.keys()
    assert keys[P] == ANN_V
    assert keys[f".s3sync/trash/{P}/{sha(BOB_V)}"] == BOB_V
    assert keys[f".s3sync/trash/{P}/{sha(V0)}"] == V0
    assert bob.read(P) == BOB_V


def test_a_pull_during_a_teammates_push_gets_the_committed_version(pair, remote, monkeypatch):
    from libsync import ops
    ann, bob = pair
    ann.write(P, ANN_V)
    assert cli(ann, *ARGS).code == 0      # bob has not pulled this yet
    ann.write(P, b"p,ann,2\n")
    hold = Hold(monkeypatch, ops, "commit", thread="ann")
    th, box = start("ann", cli, ann, *ARGS)
    assert hold.reached.wait(60)          # ann's second version is uploaded, not committed
    try:
        r = cli(bob, "pull")
    finally:
        hold.go.set()
        finish(th, box)
    assert r.code == 0, r.err
    assert bob.read(P) == ANN_V
