"""A push hashes large new files as it sends them, not in its scan as well.

``transfer.HASH_ON_UPLOAD`` is lowered so that small files take that road;
the scan's ``_hash`` is watched to tell which files the scan itself read.
"""

import hashlib
import json
import os

import pytest

from libsync import scan as scan_module
from libsync import transfer
from libsync.remotes import s3


@pytest.fixture
def hashed(monkeypatch):
    """The paths the scan hashed itself, in order."""
    seen = []
    real = scan_module._hash

    def spy(fs_path, size, mtime_ns, now_ns):
        seen.append(fs_path.rsplit("Data/", 1)[1])
        return real(fs_path, size, mtime_ns, now_ns)

    monkeypatch.setattr(scan_module, "_hash", spy)
    monkeypatch.setattr(transfer, "HASH_ON_UPLOAD", 1000)
    return seen


def manifest_sha(remote, path):
    with remote.open() as r:
        snapshot = [i.key for i in r.list(".s3sync/journal/")]
        commits = [json.loads(r.get(k)) for k in snapshot]
    shas = [c["sha256"] for commit in commits for c in commit["changes"] if c["path"] == path]
    return shas[-1]


def test_a_large_new_file_is_read_once_and_its_hash_recorded(team, remote, hashed,
                                                            monkeypatch):
    monkeypatch.setattr(s3, "MULTIPART_THRESHOLD", 6 << 20)
    monkeypatch.setattr(s3, "PART_SIZE", 5 << 20)  # 11 MiB: 3 parts over S3
    big = hashlib.sha256(b"big").digest() * (11 << 15)
    ann, bob = team("ann"), team("bob")
    ann.write("big.bin", big)
    ann.write("small.csv", "1\n")
    for name in ("big.bin", "small.csv"):  # not racily clean: a scan may trust its row
        os.utime(ann.data / name, ns=(1_700_000_000_000_000_000,) * 2)
    ann.ok("push", "-q")
    assert hashed == ["small.csv"]  # the big one was hashed on its way up
    assert manifest_sha(remote, "big.bin") == hashlib.sha256(big).hexdigest()
    assert remote.data() == {"big.bin": big, "small.csv": b"1\n"}
    # Its stat cache row came with the upload: the next scan reads nothing.
    assert ann.ok("status", "--porcelain", "--no-fetch").out == ""
    assert hashed == ["small.csv"]
    bob.ok("pull")  # checks every byte against the manifest's sha256
    assert bob.read("big.bin") == big


def test_a_path_the_remote_knows_is_hashed_before_the_plan(team, remote, hashed):
    ann, bob = team("ann"), team("bob")
    ann.write("a.bin", b"x" * 2000)
    ann.write("b.bin", b"y" * 2000)
    ann.ok("push", "-q")
    bob.write("a.bin", b"x" * 2000)  # the same bytes, added on both sides
    bob.write("b.bin", b"z" * 2000)  # other bytes: a conflict, not an overwrite
    r = bob.run("push", "-q")
    assert r.code == 1 and "b.bin" in r.out + r.err
    assert sorted(hashed) == ["a.bin", "b.bin"]
    assert remote.data() == {"a.bin": b"x" * 2000, "b.bin": b"y" * 2000}
    assert bob.ok("status", "--porcelain").out.splitlines() == ["AA b.bin"]


def test_a_renamed_large_file_is_a_move_not_a_deletion(team, remote, hashed):
    ann = team("ann")
    ann.write("old.bin", b"m" * 3000)
    ann.write("other.bin", b"o" * 3000)  # as large: hashed too, and not arriving
    ann.ok("push", "-q")
    (ann.data / "old.bin").rename(ann.data / "new.bin")
    ann.write("later.bin", b"l" * 4000)  # another size: stays for its upload
    ann.ok("push", "-q", "--max-delete=0")  # the move deletes nothing for good
    assert remote.data() == {"new.bin": b"m" * 3000, "other.bin": b"o" * 3000,
                             "later.bin": b"l" * 4000}
    assert hashed[-1:] == ["new.bin"]
