"""Hostile and bad input: a remote that lies, a broken config, a full disk.

A journal or snapshot is written straight into the remote (a file in the
folder remote, a PUT with boto3 into the moto bucket), as a malicious or
broken client could. Each case must end in a non-zero exit with one line
of error naming the problem, and touch nothing outside the data folder.

Nothing here ever aims at the real /etc: a link "to /etc" points at a
decoy folder under tmp_path, so a bug cannot damage the machine.
"""

from __future__ import annotations

import builtins
import errno
import gzip
import hashlib
import json
import os
import re
import subprocess
import uuid
from pathlib import Path

import pytest
from scenarios.scenario_helpers import error_line, run, sha

import servers
from conftest import RemoteSpec, Result, Teammate, make_remote, use_server
from conftest import join as join_remote
from libsync.errors import SyncError

BIG = bytes(range(256)) * 800            # 200 KiB: more than the tiny disk holds
BIG_V2 = bytes(reversed(range(256))) * 800



# -- helpers ----------------------------------------------------------------------


def names(line: str, path: str) -> bool:
    """Whether an error line names ``path``, as is or as Python escapes it."""
    return path in line or repr(path)[1:-1] in line


def join(spec: RemoteSpec, tmp_path: Path, name: str) -> Teammate:
    return join_remote(spec, tmp_path / name, name)


def put_raw(spec: RemoteSpec, key: str, data: bytes) -> None:
    """Write bytes at a key behind s3sync's back: a file, or a boto3 PUT."""
    if spec.kind == "folder":
        path = Path(spec.url, *key.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    else:
        bucket, _, prefix = spec.url.removeprefix("s3://").partition("/")
        servers.client(spec.server).put_object(Bucket=bucket, Key=f"{prefix}/{key}", Body=data)


def entry(path: str, content: bytes = b"pwned\n", etag: str = "0") -> dict:
    return {"path": path, "size": len(content), "sha256": sha(content), "mtime_ns": 0,
            "author": "mallory", "time": "2024-01-01T00:00:00Z", "etag": etag}


def put_commit(spec: RemoteSpec, generation: int, changes: list[dict], fmt=1) -> None:
    doc = {"format": fmt, "generation": generation, "author": "mallory",
           "time": "2024-01-01T00:00:00Z", "message": "", "changes": changes}
    put_raw(spec, f".s3sync/journal/{generation:012d}", json.dumps(doc).encode())


def journal(spec: RemoteSpec) -> list[dict]:
    keys = spec.keys()
    names_ = sorted(k for k in keys if k.startswith(".s3sync/journal/"))
    commits = [json.loads(keys[k]) for k in names_]
    assert [c["generation"] for c in commits] == list(range(1, len(commits) + 1))
    return commits


def live_records(spec: RemoteSpec) -> dict[str, dict]:
    live: dict[str, dict] = {}
    for commit in journal(spec):
        for rec in commit["changes"]:
            live[rec["path"]] = rec
    return {p: r for p, r in live.items() if not r.get("deleted")}


def assert_consistent(spec: RemoteSpec) -> dict[str, bytes]:
    """Every live entry the journal names is an object with exactly its sha256."""
    data = spec.data()
    for path, rec in live_records(spec).items():
        assert sha(data[path]) == rec["sha256"], f"{path}: object does not match its entry"
    return data


def tree(root: Path, *skip: Path) -> dict[str, object]:
    """Everything under ``root`` (links as links, never followed), but ``skip``."""
    out: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if here / d not in skip]
        for name in dirnames + filenames:
            p = here / name
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_file():
                out[rel] = p.read_bytes()
            else:
                out[rel] = "dir"
    return out


def etc_passwd() -> str:
    with open("/etc/passwd", "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def tmp_files(teammate) -> list[str]:
    tmp = teammate.data / ".s3sync" / "tmp"
    return sorted(os.listdir(tmp)) if tmp.exists() else []


@pytest.fixture
def pair(team, remote):
    """ann pushed generation 1 and bob pulled it."""
    ann, bob = team("ann"), team("bob")
    ann.write("raw/a.csv", "id,a\n1,10\n")
    ann.ok("push")
    bob.ok("pull")
    return ann, bob


# -- a journal naming paths it must not -------------------------------------------

HOSTILE = {
    "dot-dot": ["../x"],
    "deep dot-dot": ["raw/../../x"],
    "absolute": ["/etc/passwd"],
    "drive": ["C:\\x"],
    "drive-relative": ["C:x"],
    "state": [".s3sync/state"],
    "state db": [".s3sync/state.db"],
    "nul": ["a\0b"],
    "control": ["a\nb"],
    "case": ["Report.csv", "report.csv"],
    "normalisation": ["caf\u00e9.txt", "cafe\u0301.txt"],
    "case across commits": ["RAW/a.csv"],
}


@pytest.mark.parametrize("paths", HOSTILE.values(), ids=HOSTILE.keys())
def test_pull_refuses_a_journal_naming_unsafe_paths(pair, remote, tmp_path, paths):
    ann, bob = pair
    put_commit(remote, 2, [entry(p) for p in paths])
    before = tree(tmp_path, bob.data / ".s3sync")
    passwd = etc_passwd()

    r = run(bob, "pull")
    assert r.code == 6, r.err
    line = error_line(r)
    assert any(names(line, p) for p in paths), line

    assert tree(tmp_path, bob.data / ".s3sync") == before
    assert etc_passwd() == passwd
    assert not (tmp_path / "x").exists() and not (bob.root / "x").exists()
    assert bob.files() == {"raw/a.csv": b"id,a\n1,10\n"}
    # A fresh teammate is refused the same way.
    cy = join(remote, tmp_path, "cy")
    r = run(cy, "pull")
    assert r.code == 6, r.err
    assert any(names(error_line(r), p) for p in paths)
    assert cy.files() == {}


def test_pull_refuses_the_state_folder_in_another_case(pair, remote, tmp_path):
    ann, bob = pair
    with remote.open() as r:
        etag = r.put(".S3SYNC/state.db", b"pwned\n")
    put_commit(remote, 2, [entry(".S3SYNC/state.db", etag=etag)])
    r = run(bob, "pull")
    assert r.code == 6, r.err
    assert names(error_line(r), ".S3SYNC/state.db")
    assert not (bob.data / ".S3SYNC").exists()


def test_a_snapshot_naming_unsafe_paths_writes_nothing(pair, remote, tmp_path):
    ann, bob = pair
    doc = {"format": 1, "generation": 1, "records": [entry("../x")]}
    put_raw(remote, ".s3sync/snapshot", gzip.compress(json.dumps(doc).encode()))
    cy = join(remote, tmp_path, "cy")
    before = tree(tmp_path, cy.data / ".s3sync")
    r = run(cy, "pull")
    # Refusing, or ignoring the bad cache and replaying the journal, are both safe.
    assert r.code in (0, 6), r.err
    if r.code == 6:
        assert names(error_line(r), "../x")
        assert tree(tmp_path, cy.data / ".s3sync") == before
    else:
        assert cy.files() == ann.files()
    assert not (tmp_path / "x").exists() and not (cy.root / "x").exists()


def test_paths_the_local_disk_cannot_hold_fail_cleanly(pair, remote):
    """A name longer than the file system allows, and a file where a folder
    must go: one line each, and the local file is left alone."""
    ann, bob = pair
    bob.write("report", "bob's own, not pushed\n")
    ann.write("report/x.csv", "x\n")
    ann.ok("push")
    long_name = "n" * 300 + ".csv"
    etag = "0"
    with remote.open() as r:
        try:
            etag = r.put(long_name, b"pwned\n")
        except SyncError:
            pass  # a folder remote cannot hold it either
    put_commit(remote, 3, [entry(long_name, etag=etag)])
    r = run(bob, "pull")
    assert r.code not in (0, 1), r.err
    assert "Traceback" not in r.err, r.err
    lines = [ln for ln in r.err.splitlines() if ln and not ln.startswith("warning:")]
    assert len(lines) == 2, r.err
    assert any(long_name in ln for ln in lines) and any("report/x.csv" in ln for ln in lines)
    assert bob.read("report") == b"bob's own, not pushed\n"
    assert tmp_files(bob) == []


# -- a broken snapshot is only a cache ----------------------------------------------


def _snapshot(spec: RemoteSpec, generation: int) -> bytes:
    records = [dict(r, deleted=True) if r.get("deleted") else r
               for r in sorted(live_records(spec).values(), key=lambda r: r["path"])]
    doc = {"format": 1, "generation": generation, "records": records}
    return gzip.compress(json.dumps(doc).encode())


SNAPSHOTS = {
    "truncated": lambda good: good[: len(good) // 2],
    "bit flip": lambda good: good[:20] + bytes([good[20] ^ 0xFF]) + good[21:],
    "empty": lambda good: b"",
    "not gzip": lambda good: b"this is not a snapshot",
    "not json": lambda good: gzip.compress(b'{"format": 1, "generation": 2, "rec'),
    "wrong shape": lambda good: gzip.compress(b'{"format": 1, "generation": 2, "records": 7}'),
    "bad record": lambda good: gzip.compress(json.dumps(
        {"format": 1, "generation": 2,
         "records": [{"path": "raw/a.csv", "sha256": "zz"}]}).encode()),
}


@pytest.fixture
def two_generations(team, remote):
    ann = team("ann")
    ann.write("raw/a.csv", "a1\n")
    ann.write("raw/b.csv", "b1\n")
    ann.ok("push")
    ann.write("raw/a.csv", "a2\n")
    (ann.data / "raw" / "b.csv").unlink()
    ann.write("c.csv", "c1\n")
    ann.ok("push", "-y")
    return ann


@pytest.mark.parametrize("damage", SNAPSHOTS.values(), ids=SNAPSHOTS.keys())
def test_a_broken_snapshot_is_skipped_and_the_journal_replayed(two_generations, remote,
                                                               tmp_path, damage):
    ann = two_generations
    put_raw(remote, ".s3sync/snapshot", damage(_snapshot(remote, 2)))
    cy = join(remote, tmp_path, "cy")
    r = run(cy, "pull")
    assert r.code == 0, r.err
    assert "snapshot" in r.err                                    # a warning says so
    assert cy.files() == ann.files() == {"raw/a.csv": b"a2\n", "c.csv": b"c1\n"}


def test_a_snapshot_ahead_of_the_journal_is_not_trusted(two_generations, remote, tmp_path):
    ann = two_generations
    put_raw(remote, ".s3sync/snapshot", _snapshot(remote, 99))
    cy = join(remote, tmp_path, "cy")
    run(cy, "pull")
    cy.write("d.csv", "d1\n")
    run(cy, "push")
    journal(remote)                                               # no gap
    assert ann.ok("pull").code == 0
    assert ann.files() == cy.files()


# -- format versions ------------------------------------------------------------------


def test_an_unknown_format_version_is_refused(pair, remote, tmp_path):
    ann, bob = pair
    cy = join(remote, tmp_path, "cy")                            # joined, never fetched
    put_raw(remote, ".s3sync/format", b'{"format": 2}')
    r = run(cy, "pull")
    assert r.code == 6, r.err
    assert re.search(r"\bformat 2\b", error_line(r)), r.err
    assert cy.files() == {}

    dee = Teammate(tmp_path / "dee", "dee")                      # a newcomer
    dee.root.mkdir()
    args = ["init", remote.url]
    if remote.endpoint_url:
        args += ["--endpoint-url", remote.endpoint_url]
    r = run(dee, *args)
    assert r.code == 6, r.err
    assert re.search(r"\bformat 2\b", error_line(r)), r.err


def test_a_push_into_a_remote_of_a_newer_format_is_refused(pair, remote):
    """A newer s3sync moves a remote to its format by committing in it (s3sync-format(5))."""
    ann, bob = pair
    put_raw(remote, ".s3sync/format", b'{"format": 2}')
    put_commit(remote, 2, [], fmt=2)
    before = remote.keys()
    ann.write("raw/new.csv", "new\n")
    r = run(ann, "push")
    assert r.code == 6, r.err
    assert re.search(r"\bformat 2\b", error_line(r)), r.err
    assert remote.keys() == before  # refused before any write


def test_a_commit_of_an_unknown_format_is_refused(pair, remote):
    ann, bob = pair
    put_commit(remote, 2, [entry("raw/z.csv")], fmt=7)
    r = run(bob, "pull")
    assert r.code == 6, r.err
    assert re.search(r"\bformat 7\b", error_line(r)), r.err
    assert bob.files() == {"raw/a.csv": b"id,a\n1,10\n"}


# -- s3sync.json ---------------------------------------------------------------------

CONFIGS = {
    "bad json": b'{"remote": "remote",',
    "empty": b"",
    "not an object": b'["remote"]',
    "remote missing": b'{"data_dir": "Data"}',
    "remote not text": b'{"remote": 5}',
    "unknown key": b'{"remote": "remote", "endpont_url": "http://example.com"}',
    "ignore not a list": b'{"remote": "remote", "ignore": "*.tmp"}',
    "not utf-8": b'{"remote": "caf\xe9"}',
}


@pytest.mark.parametrize("text", [pytest.param(v, id=k) for k, v in CONFIGS.items()])
@pytest.mark.parametrize("command", ["pull", "status"])
def test_a_malformed_config_exits_3_naming_the_file(tmp_path, text, command):
    t = Teammate(tmp_path / "ws", "ann")
    (t.root / "Data").mkdir(parents=True)
    (t.root / "s3sync.json").write_bytes(text)
    before = tree(tmp_path)
    r = run(t, command)
    assert r.code == 3, r.err
    assert "s3sync.json" in error_line(r)
    assert tree(tmp_path) == before


# -- the remote: wrong bucket, no or wrong credentials ----------------------------------


def test_a_wrong_bucket_exits_4(s3_remote, tmp_path):
    bucket = f"no-such-{uuid.uuid4().hex[:12]}"
    t = Teammate(tmp_path / "ws", "ann")
    (t.root / "Data").mkdir(parents=True)
    (t.root / "s3sync.json").write_text(json.dumps(
        {"remote": f"s3://{bucket}/team", "endpoint_url": s3_remote.endpoint_url}))
    for argv in (["pull"], ["push"]):
        r = run(t, *argv)
        assert r.code == 4, r.err
        line = error_line(r)
        assert "bucket" in line and "does not exist" in line, line
    u = Teammate(tmp_path / "ws2", "ann")
    u.root.mkdir()
    r = run(u, "init", f"s3://{bucket}/team", "--endpoint-url", s3_remote.endpoint_url)
    assert r.code == 4, r.err
    assert "bucket" in error_line(r)


def test_no_credentials_exits_4(s3_remote, tmp_path, monkeypatch):
    ann = join(s3_remote, tmp_path, "ann")
    ann.write("a.csv", "a\n")
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(var)
    for argv in (["pull"], ["push"], ["status"]):
        r = run(ann, *argv)
        assert r.code == 4, r.err
        assert "credentials" in error_line(r), r.err
    use_server(monkeypatch, s3_remote.server)
    assert s3_remote.keys().keys() == {".s3sync/format"}


@pytest.mark.parametrize("var, value", [("AWS_SECRET_ACCESS_KEY", "wrong-secret"),
                                        ("AWS_ACCESS_KEY_ID", "nobody")])
def test_wrong_credentials_are_access_denied(request, monkeypatch, tmp_path, var, value):
    spec = make_remote("seaweedfs", request, monkeypatch, tmp_path)
    ann = join(spec, tmp_path, "ann")
    ann.write("a.csv", "a\n")
    monkeypatch.setenv(var, value)
    for argv in (["pull"], ["push"]):
        r = run(ann, *argv)
        assert r.code == 4, r.err
        assert "access denied" in error_line(r).lower(), r.err
    use_server(monkeypatch, spec.server)
    assert spec.keys().keys() == {".s3sync/format"}


# -- a disk that fills during a download -----------------------------------------------


@pytest.fixture
def mount_tiny(tmp_path):
    """Mount a 64 KiB tmpfs on a folder (root only); unmounted after the test."""
    mounted = []

    def mount(path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(path)],
                              capture_output=True, text=True, timeout=10)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(path)

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", str(path)], capture_output=True, timeout=10)


class _FullDisk:
    """A file that takes ``room`` bytes, then fails as a full disk does."""

    def __init__(self, f, room: int):
        self._f = f
        self._room = room

    def write(self, data):
        if len(data) > self._room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._room -= len(data)
        return self._f.write(data)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()

    def __getattr__(self, name):
        return getattr(self._f, name)


def simulate_full_disk(monkeypatch, folder: Path, room: int = 64 << 10) -> None:
    """Files opened for writing under ``folder`` take ``room`` bytes, then ENOSPC."""
    folder = os.path.realpath(folder)
    real_fdopen, real_open = os.fdopen, builtins.open

    def inside(fd_or_path) -> bool:
        try:
            where = (os.readlink(f"/proc/self/fd/{fd_or_path}") if isinstance(fd_or_path, int)
                     else os.path.realpath(fd_or_path))
        except (OSError, TypeError):
            return False
        return where.startswith(folder + os.sep)

    def fdopen(fd, mode="r", *a, **kw):
        f = real_fdopen(fd, mode, *a, **kw)
        return _FullDisk(f, room) if any(c in mode for c in "wa") and inside(fd) else f

    def open_(file, mode="r", *a, **kw):
        f = real_open(file, mode, *a, **kw)
        return _FullDisk(f, room) if any(c in mode for c in "wa") and inside(file) else f

    monkeypatch.setattr(os, "fdopen", fdopen)
    monkeypatch.setattr(builtins, "open", open_)


@pytest.mark.parametrize("how", ["tmpfs", "simulated"])
def test_a_disk_that_fills_during_download(pair, remote, mount_tiny, how):
    ann, bob = pair
    ann.write("big.bin", BIG)
    ann.ok("push")
    bob.ok("pull")
    ann.write("big.bin", BIG_V2)
    ann.ok("push")
    tmp = bob.data / ".s3sync" / "tmp"
    with pytest.MonkeyPatch.context() as mp:
        if how == "tmpfs":
            mount_tiny(tmp)
        else:
            simulate_full_disk(mp, tmp)
        r = run(bob, "pull")
    assert r.code not in (0, 1), r.err
    line = error_line(r)
    assert "big.bin" in line, line
    assert re.search(r"no space|disk.*full|full.*disk", line, re.I), line
    assert "remote" not in line.lower(), line                    # it is the local disk
    assert bob.read("big.bin") == BIG
    assert tmp_files(bob) == []


# -- a file that changes while it is uploaded ---------------------------------------------


def push_changing(teammate, path: str, new: bytes) -> Result:
    """Push, rewriting ``path`` after the scan hashed it, just before its upload."""
    import libsync.transfer as transfer

    real = transfer.upload
    done = []

    def upload(remote, data_dir, file, *args, **kw):
        if file.path == path and not done:
            done.append(path)
            teammate.write(path, new)
        return real(remote, data_dir, file, *args, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(transfer, "upload", upload)
        r = run(teammate, "push")
    assert done, "the upload was never attempted"
    return r


@pytest.fixture(params=["folder", "seaweedfs"])
def verifying_remote(request, monkeypatch, tmp_path) -> RemoteSpec:
    """Remotes that check the uploaded bytes against the checksum sent."""
    return make_remote(request.param, request, monkeypatch, tmp_path)


@pytest.mark.parametrize("existing", [False, True], ids=["new file", "changed file"])
def test_a_file_changed_during_upload_is_never_committed_torn(verifying_remote, tmp_path,
                                                              monkeypatch, existing):
    spec = verifying_remote
    ann = join(spec, tmp_path, "ann")
    if existing:
        ann.write("a.csv", b"A" * 5000)
        ann.ok("push")
    ann.write("a.csv", b"B" * 5000)
    ann.write("other.csv", "other\n")
    r = push_changing(ann, "a.csv", b"C" * 5000)
    assert r.code != 0, r.err
    line = error_line(r)
    assert "a.csv" in line and re.search(r"changed|checksum", line), line
    committed = live_records(spec)
    assert committed.get("a.csv", {}).get("sha256") in (
        {sha(b"A" * 5000)} if existing else {None})
    assert_consistent(spec)

    assert "pushed 1 file" in ann.ok("push").out
    assert assert_consistent(spec)["a.csv"] == b"C" * 5000


@pytest.mark.parametrize("then", ["push the new content", "revert and push"])
def test_a_file_changed_during_upload_to_a_non_verifying_server(s3_remote, tmp_path,
                                                                monkeypatch, then):
    ann = join(s3_remote, tmp_path, "ann")
    ann.write("a.csv", b"A" * 5000)
    r = push_changing(ann, "a.csv", b"C" * 5000)
    assert r.code != 0 and "a.csv" in error_line(r), r.err
    assert live_records(s3_remote) == {}
    if then == "revert and push":
        ann.write("a.csv", b"A" * 5000)
    r = run(ann, "push")
    assert_consistent(s3_remote)
    assert r.code == 0, r.err
    assert s3_remote.data()["a.csv"] == ann.read("a.csv")


# -- symlinks in the data folder ------------------------------------------------------------


@pytest.fixture
def decoy(tmp_path) -> Path:
    """Stands in for /etc: a folder outside the data folder that must stay untouched."""
    etc = tmp_path / "outside" / "etc"
    etc.mkdir(parents=True)
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    return etc


@pytest.fixture(params=["link", "sub/link"])
def linked(request, team, remote, decoy):
    """ann pushed ``<link>/passwd``; in bob's data folder ``<link>`` links to the decoy."""
    link = request.param
    ann, bob = team("ann"), team("bob")
    ann.write(f"{link}/passwd", "pwned\n")
    ann.write("ok.csv", "fine\n")
    ann.ok("push")
    (bob.data / link).parent.mkdir(parents=True, exist_ok=True)
    (bob.data / link).symlink_to(decoy, target_is_directory=True)
    return link, bob


def test_pull_never_writes_through_a_linked_folder(linked, decoy, tmp_path):
    link, bob = linked
    before = tree(tmp_path / "outside")
    passwd = etc_passwd()
    r = run(bob, "pull")
    assert "Traceback" not in r.err, r.err
    assert link in r.err                                         # the link is reported
    assert tree(tmp_path / "outside") == before
    assert (bob.data / link).is_symlink() and os.readlink(bob.data / link) == str(decoy)
    assert etc_passwd() == passwd
    assert bob.read("ok.csv") == b"fine\n"
    assert tmp_files(bob) == []


def test_pull_through_a_linked_folder_is_refused_with_exit_6(linked):
    link, bob = linked
    r = run(bob, "pull")
    assert r.code == 6, r.err
    line = error_line(r)
    assert f"{link}/passwd" in line and "link" in line, line


def test_pull_never_writes_through_a_linked_file(team, remote, decoy, tmp_path):
    ann, bob = team("ann"), team("bob")
    ann.write("passwd", "pwned\n")
    ann.ok("push")
    (bob.data / "passwd").symlink_to(decoy / "passwd")
    before = tree(tmp_path / "outside")
    r = run(bob, "pull")
    assert "Traceback" not in r.err, r.err
    assert "passwd" in r.err                                    # reported, not silently done
    assert tree(tmp_path / "outside") == before
    assert os.readlink(bob.data / "passwd") == str(decoy / "passwd")
