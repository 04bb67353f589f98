"""Migrating from s3synchrony: ``s3sync init --from-s3synchrony`` over S3 (moto).

Each test builds, by hand, what s3synchrony leaves behind: ``s3synchrony.json``
as one of its versions wrote it, the data folder with its ``.S3`` state
folder (the CSV tables under their new or their old names, pandas' stray
index column included) and the bucket prefix with its own ``.S3`` folder and
the versions it moved to ``.S3/deleted/``. Then it migrates through the CLI
and checks the outcome, and which S3 requests were sent: a file equal on
both sides is neither downloaded nor uploaded.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

import botocore.session
import pytest
from boto3.s3.transfer import TransferConfig

import servers
from conftest import Teammate
from libsync import journal, layout
from libsync.manifest import Entry, Manifest, Tombstone
from libsync.remotes.s3 import parse_url

NEW = {"versions_remote": "versions_remote.csv", "versions_local": "versions_local.csv",
       "deleted_remote": "deleted_remote.csv", "deleted_local": "deleted_local.csv",
       "ignore": "ignore_remote.txt"}
OLD = {"versions_remote": "versions.csv", "versions_local": "versionsLocal.csv",
       "deleted_remote": "deletedS3.csv", "deleted_local": "deletedLocal.csv",
       "ignore": "ignores3.txt"}

FILES = {
    "a.csv": b"id,a\n1,10\n",
    "raw/b.csv": b"id,b\n" + b"1,20\n" * 200,
    "raw/deep/c.txt": b"deep\n",
}
WHEN = "2023-05-04 10:11:12"
WRITES = {"PutObject", "CopyObject", "DeleteObject", "DeleteObjects",
          "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"}


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def table(rows: dict[str, tuple[str, bytes]], *, index: str | None = None) -> str:
    """An s3synchrony CSV: File, Edited By, Time Edited, Checksum (MD5).

    ``index`` adds the column pandas leaves when a table is written with
    its index: "blank" (a nameless first column, as ``to_csv(path)`` wrote
    it) or "unnamed" (``Unnamed: 0``, as it reads back and is written again).
    """
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    head = ["File", "Edited By", "Time Edited", "Checksum"]
    lead = {"blank": [""], "unnamed": ["Unnamed: 0"]}.get(index, [])
    w.writerow(lead + head)
    for i, (path, (who, content)) in enumerate(rows.items()):
        w.writerow(([str(i)] if lead else []) + [path, who, WHEN, md5(content)])
    return out.getvalue()


class Legacy:
    """The bucket prefix s3synchrony kept in step, written with plain boto3."""

    def __init__(self, spec):
        self.spec = spec
        self.bucket, prefix = parse_url(spec.url)
        self.prefix = prefix.rstrip("/")
        self.s3 = servers.client(spec.server)

    def put(self, key: str, content: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=f"{self.prefix}/{key}", Body=content)

    def etag(self, key: str) -> str:
        return self.s3.head_object(Bucket=self.bucket, Key=f"{self.prefix}/{key}")["ETag"]

    def objects(self, under: str = "") -> dict[str, bytes]:
        out = {}
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{self.prefix}/{under}")
        for page in pages:
            for obj in page.get("Contents", ()):
                body = self.s3.get_object(Bucket=self.bucket, Key=obj["Key"])["Body"].read()
                out[obj["Key"][len(self.prefix) + 1:]] = body
        return out

    def seed(self, files: dict[str, bytes], names: dict[str, str],
             deleted: dict[str, bytes] = {}, *, by_name: bool = False) -> None:  # noqa: B006
        """The prefix as s3synchrony left it: data, its tables, .S3/deleted/."""
        for path, content in files.items():
            self.put(path, content)
        self.put(f".S3/{names['versions_remote']}",
                 table({p: ("ann", c) for p, c in files.items()}).encode())
        self.put(f".S3/{names['deleted_remote']}",
                 table({p: ("ann", c) for p, c in deleted.items()}, index="blank").encode())
        for path, content in deleted.items():
            # The first versions kept only the file name of a deleted file.
            self.put(f".S3/deleted/{path.rsplit('/', 1)[-1] if by_name else path}", content)


def project(tmp_path: Path, spec, name: str, names: dict[str, str], *,
            local: dict[str, bytes], synced: dict[str, bytes],
            deleted: dict[str, bytes] = {}, ignore: tuple[str, ...] = (),  # noqa: B006
            style: str = "new", extra: dict | None = None) -> Teammate:
    """One person's s3synchrony project: s3synchrony.json, Data/ and Data/.S3/.

    ``synced`` is what both sides held after this person's last sync (the
    tables record it); ``local`` is the data folder now.
    """
    t = Teammate(tmp_path / name, name)
    t.root.mkdir()
    bucket, prefix = parse_url(spec.url)
    if style == "new":   # kabbes_s3synchrony
        conf = {"local_data_rel_dir": "Data", "remote_data_dir": prefix.rstrip("/"),
                "aws_bkt": bucket, "template": "default", "platform": "s3"}
    else:                # the first s3synchrony
        conf = {"datafolder": "Data", "aws_bkt": bucket, "aws_prfx": prefix.rstrip("/")}
    conf.update(extra or {})
    (t.root / "s3synchrony.json").write_text(json.dumps(conf, indent=4))
    for path, content in local.items():
        t.write(path, content)
    rows = {p: (name, c) for p, c in synced.items()}
    state = {
        names["versions_local"]: table(rows),
        names["versions_remote"]: table(rows, index="unnamed"),
        names["deleted_local"]: table({}),
        names["deleted_remote"]: table({p: ("ann", c) for p, c in deleted.items()},
                                       index="blank"),
        names["ignore"]: "".join(f"{p}\n" for p in ignore),
        "logs/2023_05_04_10_11_12_abc.txt": "upload_to_s3 error\n",
        "tmp/scratch.csv": "left over\n",
    }
    if style == "old":
        state["user_name.txt"] = name
        state["aws.txt"] = "[analyst]\naws_access_key_id=AKIAOLD\n"
    for rel, text in state.items():
        t.write(f".S3/{rel}", text)
    return t


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def migrate(t: Teammate, spec, *args: str):
    return t.run("init", "--from-s3synchrony", "--endpoint-url", spec.endpoint_url, *args)


@pytest.fixture
def requests(monkeypatch):
    """Every S3 request any botocore client sends, as (operation, bucket key).

    Watched at the wire (``before-send``), which the short PUT path of
    small uploads emits too."""
    calls: list[tuple[str, str]] = []
    real = botocore.session.Session.create_client

    def client(self, *args, **kwargs):
        c = real(self, *args, **kwargs)

        def record(request, event_name, **_):
            parts = unquote(urlsplit(request.url).path).split("/", 2)  # /bucket/key
            calls.append((event_name.rsplit(".", 1)[-1], parts[2] if len(parts) > 2 else ""))

        c.meta.events.register("before-send.s3", record)
        return c

    monkeypatch.setattr(botocore.session.Session, "create_client", client)
    return calls


def relative(calls, spec) -> list[tuple[str, str]]:
    prefix = parse_url(spec.url)[1]
    return [(op, key.removeprefix(prefix)) for op, key in calls]


def journal_of(spec) -> list[int]:
    with spec.open() as r:
        return [layout.generation_of(i.key) for i in r.list(layout.JOURNAL_PREFIX)]


def commit_one(spec):
    with spec.open() as r:
        return journal.read_commit(r, 1)


def porcelain_status(t: Teammate) -> set[str]:
    return set(t.ok("status", "--porcelain").out.splitlines())


@pytest.mark.parametrize("names,style", [(NEW, "new"), (OLD, "old")], ids=["new", "old"])
def test_everything_equal_migrates_without_moving_a_file(
        s3_remote, tmp_path, requests, names, style):
    legacy = Legacy(s3_remote)
    deleted = {"raw/old.csv": b"id,old\n1,1\n"}
    legacy.seed(FILES, names, deleted, by_name=style == "old")
    legacy.put("raw/", b"")  # a folder made in the S3 console
    ann = project(tmp_path, s3_remote, "ann", names, local=FILES | {"scratch/notes.txt": b"x"},
                  synced=FILES, deleted=deleted, ignore=("scratch/notes.txt",), style=style)
    local_s3, remote_s3 = tree(ann.data / ".S3"), legacy.objects(".S3/")

    requests.clear()
    r = migrate(ann, s3_remote)
    assert r.code == 0, r.out + r.err
    sent = relative(requests, s3_remote)

    # s3sync.json: the same prefix, data folder and (no) profile; .S3 ignored team-wide.
    doc = json.loads((ann.root / "s3sync.json").read_text())
    assert doc["remote"] == s3_remote.url
    assert doc["data_dir"] == "Data"
    assert doc["endpoint_url"] == s3_remote.endpoint_url
    assert doc["profile"] is None
    assert doc["ignore"] == [".S3/"]

    # Generation 1 adopts the objects, with their sha256, and the deletion.
    assert journal_of(s3_remote) == [1]
    commit = commit_one(s3_remote)
    entries = {c.path: c for c in commit.changes if isinstance(c, Entry)}
    assert {p: e.sha256 for p, e in entries.items()} == {p: sha(c) for p, c in FILES.items()}
    assert {e.etag.strip('"') for e in entries.values()} == {md5(c) for c in FILES.values()}
    assert {e.author for e in entries.values()} == {"ann"}
    [tomb] = [c for c in commit.changes if isinstance(c, Tombstone)]
    assert (tomb.path, tomb.sha256) == ("raw/old.csv", sha(deleted["raw/old.csv"]))

    # Nothing was downloaded or uploaded: no GET of a data object, and every
    # write went to s3sync's own keys; the .S3 folder was only read.
    assert not [k for op, k in sent if op == "GetObject" and k in FILES]
    writes = [(op, k) for op, k in sent if op in WRITES]
    assert writes and all(k.startswith(".s3sync/") for _, k in writes), writes
    # moto ignores copy conditions (s3sync probes that once), so the copy to
    # the trash, conditional on the version read, went through the client:
    # GET If-Match, then PUT If-None-Match.
    assert ("PutObject", tomb.trash) in writes

    # The deleted version is in the trash.
    assert legacy.objects(".s3sync/trash/") == {tomb.trash: deleted["raw/old.csv"]}

    # The personal ignore list holds s3synchrony's, matching that path only.
    assert "/scratch/notes.txt" in (ann.data / ".s3sync/ignore").read_text().splitlines()

    # The output names the legacy folders, left in place.
    assert "Data/.S3/" in r.out and f"{s3_remote.url}/.S3/" in r.out
    assert "everything is in step" in r.out
    if style == "old":
        assert "aws.txt holds AWS credentials" in r.err

    # In step: status is empty, and the .S3 folders are untouched.
    assert porcelain_status(ann) == set()
    assert tree(ann.data / ".S3") == local_s3
    assert legacy.objects(".S3/") == remote_s3

    # Working on: .S3 never shows up, even when s3synchrony writes to it again.
    ann.write(".S3/versions_local.csv", "File,Edited By,Time Edited,Checksum\n")
    ann.write("new.csv", b"new\n")
    assert porcelain_status(ann) == {"A  new.csv"}
    push = ann.ok("push", "-m", "first s3sync push")
    assert ".S3" not in push.out + push.err
    assert journal_of(s3_remote) == [1, 2]
    assert legacy.objects(".S3/") == remote_s3
    assert porcelain_status(ann) == set()
    with s3_remote.open() as rem:
        manifest, _ = journal.fetch_manifest(rem, Manifest())
    assert not [p for p in manifest.records if p.startswith(".S3")]


def test_mismatches_are_left_to_status(s3_remote, tmp_path, requests):
    v1, v2, v3 = b"v1\n", b"v2 mine\n", b"v3 theirs\n"
    remote_files = {"same.csv": b"same\n", "mine.csv": v1, "theirs.csv": v3,
                    "both.csv": v3, "only_remote.csv": b"r\n", "untracked.csv": b"u\n"}
    local_files = {"same.csv": b"same\n", "mine.csv": v2, "theirs.csv": v1,
                   "both.csv": v2, "only_local.csv": b"l\n", "untracked.csv": b"u\n"}
    synced = {"same.csv": b"same\n", "mine.csv": v1, "theirs.csv": v1, "both.csv": v1}
    legacy = Legacy(s3_remote)
    legacy.seed(remote_files, NEW)
    ann = project(tmp_path, s3_remote, "ann", NEW, local=local_files, synced=synced)

    requests.clear()
    r = migrate(ann, s3_remote)
    assert r.code == 0, r.out + r.err
    sent = relative(requests, s3_remote)

    # Only the objects that differ from the local copy were read, to hash them.
    read = {k for op, k in sent if op == "GetObject" and k in remote_files}
    assert read == {"mine.csv", "theirs.csv", "both.csv", "only_remote.csv"}
    assert all(k.startswith(".s3sync/") for op, k in sent if op in WRITES)
    commit = commit_one(s3_remote)
    assert {c.path: c.sha256 for c in commit.changes} == {p: sha(c)
                                                          for p, c in remote_files.items()}

    # s3synchrony's tables tell a change on one side from a conflict.
    assert porcelain_status(ann) == {
        "M  mine.csv",          # changed here since the last sync
        " M theirs.csv",        # changed there
        "AA both.csv",          # changed on both sides: no base
        "A  only_local.csv",
        " A only_remote.csv",
    }
    assert "5 paths differ" in r.out

    # And each side's change goes its way.
    ann.ok("pull", "theirs.csv")
    assert ann.read("theirs.csv") == v3
    ann.ok("push", "mine.csv")
    assert legacy.objects()["mine.csv"] == v2
    assert porcelain_status(ann) == {"AA both.csv", "A  only_local.csv", " A only_remote.csv"}


def test_a_second_teammate_attaches_without_adopting_again(s3_remote, tmp_path, requests):
    legacy = Legacy(s3_remote)
    legacy.seed(FILES, NEW)
    ann = project(tmp_path, s3_remote, "ann", NEW, local=FILES, synced=FILES,
                  ignore=("mine.txt",))
    ann.ok("init", "--from-s3synchrony", "--endpoint-url", s3_remote.endpoint_url)
    first = commit_one(s3_remote)

    # Bob changed raw/b.csv since his last sync and deleted raw/deep/c.txt;
    # he cloned the project, s3sync.json included, before migrating.
    bob_files = {"a.csv": FILES["a.csv"], "raw/b.csv": b"id,b\nbob\n"}
    bob = project(tmp_path, s3_remote, "bob", NEW, local=bob_files, synced=FILES)
    (bob.root / "s3sync.json").write_bytes((ann.root / "s3sync.json").read_bytes())
    requests.clear()
    r = bob.ok("init", "--from-s3synchrony")
    sent = relative(requests, s3_remote)

    assert "attached to" in r.out and "wrote s3sync.json" not in r.out
    assert journal_of(s3_remote) == [1]
    assert commit_one(s3_remote) == first
    assert not [(op, k) for op, k in sent if op in WRITES]
    assert not [k for op, k in sent if op == "GetObject" and not k.startswith(".s3sync/")]
    # A deletion is not taken from the tables: the file comes back, nothing is lost.
    assert porcelain_status(bob) == {"M  raw/b.csv", " A raw/deep/c.txt"}

    # Running it again changes nothing.
    again = ann.ok("init", "--from-s3synchrony")
    assert "attached to" in again.out and "adopted" not in again.out
    assert journal_of(s3_remote) == [1]
    assert porcelain_status(ann) == set()
    assert (ann.data / ".s3sync/ignore").read_text().splitlines().count("/mine.txt") == 1


def test_a_multipart_object_matches_by_its_etag(s3_remote, tmp_path, requests):
    big = os.urandom(9 << 20)
    legacy = Legacy(s3_remote)
    legacy.seed({}, NEW)
    # As s3synchrony uploaded it: boto3's upload_file, 8 MiB parts.
    mib8 = 8 << 20
    legacy.s3.upload_fileobj(io.BytesIO(big), legacy.bucket, f"{legacy.prefix}/big.bin",
                             Config=TransferConfig(multipart_threshold=mib8,
                                                   multipart_chunksize=mib8))
    assert legacy.etag("big.bin").strip('"').endswith("-2")
    ann = project(tmp_path, s3_remote, "ann", NEW, local={"big.bin": big},
                  synced={"big.bin": big})

    requests.clear()
    migrate(ann, s3_remote)
    sent = relative(requests, s3_remote)

    assert ("GetObject", "big.bin") not in sent
    assert [c.sha256 for c in commit_one(s3_remote).changes] == [sha(big)]
    assert porcelain_status(ann) == set()


def test_the_role_shorthand_becomes_the_profile(s3_remote, tmp_path):
    server = s3_remote.server
    Path(os.environ["AWS_CONFIG_FILE"]).write_text(
        f"[profile analyst]\nregion = {server.region}\n")
    Path(os.environ["AWS_SHARED_CREDENTIALS_FILE"]).write_text(
        f"[analyst]\naws_access_key_id = {server.access_key}\n"
        f"aws_secret_access_key = {server.secret_key}\n")
    Legacy(s3_remote).seed(FILES, NEW)
    ann = project(tmp_path, s3_remote, "ann", NEW, local=FILES, synced=FILES,
                  extra={"aws_role_shorthand": "analyst", "colour": "blue"})

    r = migrate(ann, s3_remote)

    assert r.code == 0, r.out + r.err
    assert json.loads((ann.root / "s3sync.json").read_text())["profile"] == "analyst"
    assert "not used: colour" in r.err
    assert porcelain_status(ann) == set()


def test_without_s3synchrony_json_nothing_happens(s3_remote, tmp_path):
    t = Teammate(tmp_path / "ann", "ann")
    t.root.mkdir()
    r = migrate(t, s3_remote)
    assert r.code == 3
    assert "no s3synchrony.json" in r.err
    assert not (t.root / "s3sync.json").exists()
    assert Legacy(s3_remote).objects() == {}


def test_a_migration_that_died_before_its_commit_is_finished(s3_remote, tmp_path, requests):
    legacy = Legacy(s3_remote)
    legacy.seed(FILES, NEW)
    legacy.put(".s3sync/format", b'{"format":1}')  # the marker, and no journal yet
    ann = project(tmp_path, s3_remote, "ann", NEW, local=FILES, synced=FILES)

    r = migrate(ann, s3_remote)

    assert r.code == 0, r.out + r.err
    assert journal_of(s3_remote) == [1]
    assert {c.path for c in commit_one(s3_remote).changes} == set(FILES)
    assert porcelain_status(ann) == set()


def test_a_remote_other_than_s3synchrony_json_names_is_refused(s3_remote, tmp_path):
    Legacy(s3_remote).seed(FILES, NEW)
    ann = project(tmp_path, s3_remote, "ann", NEW, local=FILES, synced=FILES)
    r = ann.run("init", "s3://elsewhere/data", "--from-s3synchrony")
    assert r.code == 3
    assert "s3synchrony.json names" in r.err
    assert not (ann.root / "s3sync.json").exists()


def test_fsck_leaves_the_legacy_folder_alone(s3_remote, tmp_path):
    legacy = Legacy(s3_remote)
    legacy.seed(FILES, NEW, {"gone.csv": b"gone\n"})
    ann = project(tmp_path, s3_remote, "ann", NEW, local=FILES, synced=FILES)
    ann.ok("init", "--from-s3synchrony", "--endpoint-url", s3_remote.endpoint_url)
    remote_s3 = legacy.objects(".S3/")
    fsck = ann.run("fsck")
    ann.run("fsck", "--repair")
    assert legacy.objects(".S3/") == remote_s3
    assert fsck.code == 0, fsck.out
