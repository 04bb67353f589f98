"""The contract every remote keeps, run against each one.

A folder, the moto server and SeaweedFS, the last two over HTTP on
127.0.0.1. Where a server ignores a condition (moto ignores
CopySourceIfMatch, If-Match on completing a multipart upload and does not
verify checksums) the guarantee resting on
it is checked on the servers that honour it, and the gap is named here.
"""

import hashlib
import io
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import make_remote
from libsync.errors import (
    AccessDeniedError,
    LocalChangedError,
    NotFoundError,
    PreconditionFailed,
    RemoteNotFoundError,
)

# What each server honours beyond the common contract.
VERIFIES_CHECKSUMS = {"folder": True, "moto": False, "seaweedfs": True}
COPY_IF_MATCH = {"folder": True, "moto": False, "seaweedfs": True}


@pytest.fixture(params=["folder", "moto", "seaweedfs"])
def spec(request, monkeypatch, tmp_path):
    return make_remote(request.param, request, monkeypatch, tmp_path)


@pytest.fixture
def store(spec):
    with spec.open() as r:
        yield r


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_with(tmp_path, data: bytes, name="f"):
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


def test_put_get_head_round_trip(store):
    etag = store.put("a/b.txt", b"hello")
    assert store.get("a/b.txt") == b"hello"
    info = store.head("a/b.txt")
    assert (info.key, info.size, info.etag) == ("a/b.txt", 5, etag)


def test_missing_objects(store):
    assert store.head("nope") is None
    with pytest.raises(NotFoundError):
        store.get("nope")
    store.delete("nope")  # deleting what is absent is not an error


def test_create_if_absent(store):
    store.put("k", b"1", if_none_match=True)
    with pytest.raises(PreconditionFailed):
        store.put("k", b"2", if_none_match=True)
    assert store.get("k") == b"1"


def test_replace_if_unchanged(store):
    first = store.put("k", b"1")
    second = store.put("k", b"2", if_match=first)
    assert second != first and store.get("k") == b"2"
    with pytest.raises(PreconditionFailed):
        store.put("k", b"3", if_match=first)
    assert store.get("k") == b"2"


def test_replace_if_unchanged_of_an_absent_key_fails(store):
    etag = store.put("k", b"1")
    store.delete("k")
    with pytest.raises(PreconditionFailed):
        store.put("k", b"again", if_match=etag)
    assert store.head("k") is None


def test_racing_creators_exactly_one_wins(store):
    """The commit point: many writers, one key, If-None-Match."""
    barrier = threading.Barrier(6)

    def attempt(i):
        barrier.wait()
        try:
            store.put("journal-like", f"writer {i}".encode(), if_none_match=True)
            return i
        except PreconditionFailed:
            return None

    with ThreadPoolExecutor(6) as pool:
        winners = [w for w in pool.map(attempt, range(6)) if w is not None]
    assert len(winners) == 1
    assert store.get("journal-like") == f"writer {winners[0]}".encode()


def test_conditional_get(store):
    etag = store.put("k", b"1")
    assert store.get("k", if_match=etag) == b"1"
    store.put("k", b"2")
    with pytest.raises(PreconditionFailed):
        store.get("k", if_match=etag)


def test_conditional_delete(store):
    etag = store.put("k", b"1")
    with pytest.raises(PreconditionFailed):
        store.delete("k", if_match='"0123456789abcdef0123456789abcdef"')
    assert store.get("k") == b"1"
    store.delete("k", if_match=etag)
    assert store.head("k") is None


def test_copy(store):
    etag = store.put("src", b"version 1")
    store.copy("src", "dst", if_match=etag)
    assert store.get("dst") == b"version 1"
    store.put("src", b"version 2")
    with pytest.raises(PreconditionFailed):
        store.copy("src", "dst", if_match=etag)
    assert store.get("dst") == b"version 1"


def test_copy_if_absent_never_overwrites(store):
    """Trash keys are named by content: one that exists is never written again."""
    etag = store.put("src", b"version 2")
    store.put("dst", b"version 1")
    with pytest.raises(PreconditionFailed):
        store.copy("src", "dst", if_match=etag, if_none_match=True)
    assert store.get("dst") == b"version 1"
    store.copy("src", "new", if_match=etag, if_none_match=True)
    assert store.get("new") == b"version 2"


def test_copy_from_a_deleted_version_fails(store):
    etag = store.put("src", b"1")
    store.delete("src")
    with pytest.raises(PreconditionFailed):
        store.copy("src", "dst", if_match=etag, if_none_match=True)
    assert store.head("dst") is None


def test_the_copy_probe_tells_the_servers_apart_and_leaves_nothing(store, spec):
    """The contract above holds everywhere; where the server ignores copy
    conditions (moto) the S3 remote keeps it by copying through the client."""
    assert store.probe_copy_conditions() is COPY_IF_MATCH[spec.kind]
    assert list(store.list("")) == []


def test_put_file_and_stream_back(store, tmp_path):
    data = bytes(range(256)) * 4096  # 1 MiB
    moved = []
    etag = store.put_file("big/file.bin", file_with(tmp_path, data), sha256=sha(data),
                          progress=moved.append)
    assert sum(moved) == len(data)
    out = tmp_path / "out"
    seen = []
    with open(out, "wb") as f:
        info = store.get_into("big/file.bin", f, if_match=etag, progress=seen.append)
    assert out.read_bytes() == data and info.size == len(data) and sum(seen) == len(data)
    head = store.head("big/file.bin")
    assert head.sha256 in (None, sha(data))  # the folder remote does not record it


def test_put_file_conditions(store, tmp_path):
    path = file_with(tmp_path, b"one")
    etag = store.put_file("k", path, sha256=sha(b"one"), if_none_match=True)
    with pytest.raises(PreconditionFailed):
        store.put_file("k", path, sha256=sha(b"one"), if_none_match=True)
    path2 = file_with(tmp_path, b"two", "g")
    store.put_file("k", path2, sha256=sha(b"two"), if_match=etag)
    with pytest.raises(PreconditionFailed):
        store.put_file("k", path2, sha256=sha(b"two"), if_match=etag)
    assert store.get("k") == b"two"


def test_put_file_refuses_bytes_that_do_not_match(store, spec, tmp_path):
    """A file edited during its upload never lands silently as a torn object."""
    store.put("k", b"original")
    path = file_with(tmp_path, b"edited meanwhile")
    with pytest.raises(LocalChangedError):
        store.put_file("k", path, sha256=sha(b"what the scan saw"))
    if VERIFIES_CHECKSUMS[spec.kind]:
        assert store.get("k") == b"original"


def _small_parts(store, monkeypatch):
    from libsync.remotes import s3
    if hasattr(store, "client"):
        monkeypatch.setattr(s3, "MULTIPART_THRESHOLD", 2 << 20)
        monkeypatch.setattr(s3, "PART_SIZE", 1 << 20)
        monkeypatch.setattr(s3, "PARTS_IN_FLIGHT", 1)  # one part read at a time


def _old_file(tmp_path, data):
    path = file_with(tmp_path, data)
    os.utime(path, ns=(1_700_000_000_000_000_000,) * 2)  # any write moves the mtime
    return path, os.stat(path)


def _edit_after_the_first_piece(path, data, edit, edited):
    """A progress callback that edits the file once the first piece is sent."""
    def progress(sent):
        if sent and not edited:
            edited.append(sent)
            with open(path, "r+b") as f:
                if edit == "rewrite":
                    f.seek(len(data) - 1)
                    f.write(b"!")
                elif edit == "grow":
                    f.seek(len(data))
                    f.write(b"more")
                else:
                    f.truncate(len(data) - 1)
    return progress


@pytest.mark.parametrize("edit", ["rewrite", "grow", "shrink"])
def test_a_file_edited_during_a_multipart_upload_is_not_published(
        store, tmp_path, monkeypatch, edit):
    if not hasattr(store, "client"):
        pytest.skip("multipart is S3's")
    _small_parts(store, monkeypatch)
    data = hashlib.sha256(b"seed").digest() * (7 << 14)  # 3.5 MiB: 4 parts
    path = file_with(tmp_path, data)
    edited = []
    with pytest.raises(LocalChangedError):
        store.put_file("mp", path, sha256=sha(data),
                       progress=_edit_after_the_first_piece(path, data, edit, edited))
    assert edited and store.head("mp") is None
    assert store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []


@pytest.mark.parametrize("size", [3, 11 << 20], ids=["small", "multipart"])
def test_put_new_file_hashes_what_it_sends(store, tmp_path, monkeypatch, size):
    from libsync import transfer
    from libsync.remotes import s3
    monkeypatch.setattr(s3, "MULTIPART_THRESHOLD", 6 << 20)
    monkeypatch.setattr(s3, "PART_SIZE", 5 << 20)  # S3's smallest part: 3 parts
    data = (hashlib.sha256(b"seed").digest() * (size // 32 + 1))[:size]
    path, st = _old_file(tmp_path, data)
    etag, digest = store.put_new_file("new/f", path, size=st.st_size, mtime_ns=st.st_mtime_ns)
    assert digest == sha(data) and store.get("new/f") == data
    info = store.head("new/f")
    assert info.etag == etag and transfer.sha_of(store, info) == sha(data)
    if hasattr(store, "client") and size > 3:  # not known when the upload began
        assert info.sha256 is None
    with pytest.raises(PreconditionFailed):  # it only ever creates
        store.put_new_file("new/f", file_with(tmp_path, b"other", "g"), size=5,
                           mtime_ns=os.stat(tmp_path / "g").st_mtime_ns)
    assert store.get("new/f") == data


def test_put_new_file_refuses_a_file_changed_since_the_scan(store, tmp_path):
    path, st = _old_file(tmp_path, b"now")
    with pytest.raises(LocalChangedError, match="changed since it was scanned"):
        store.put_new_file("k", path, size=st.st_size, mtime_ns=st.st_mtime_ns - 1)
    with pytest.raises(LocalChangedError):
        store.put_new_file("k", path, size=st.st_size + 1, mtime_ns=st.st_mtime_ns)
    assert store.head("k") is None


@pytest.mark.parametrize("edit", ["rewrite", "grow", "shrink"])
def test_put_new_file_of_a_file_edited_on_the_way_publishes_nothing(
        store, tmp_path, monkeypatch, edit):
    _small_parts(store, monkeypatch)
    data = hashlib.sha256(b"seed").digest() * (7 << 14)  # 3.5 MiB: 4 parts
    path, st = _old_file(tmp_path, data)
    edited = []
    with pytest.raises(LocalChangedError, match="changed while it was uploaded"):
        store.put_new_file("mp", path, size=st.st_size, mtime_ns=st.st_mtime_ns,
                           progress=_edit_after_the_first_piece(path, data, edit, edited))
    assert edited and store.head("mp") is None
    if hasattr(store, "client"):
        assert store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []


def test_multipart_upload_with_conditions(store, spec, tmp_path, monkeypatch):
    from libsync.remotes import s3
    if not hasattr(store, "client"):
        pytest.skip("multipart is S3's")
    monkeypatch.setattr(s3, "MULTIPART_THRESHOLD", 6 << 20)
    monkeypatch.setattr(s3, "PART_SIZE", 5 << 20)
    data = hashlib.sha256(b"seed").digest() * (12 << 15)  # 12 MiB, 3 parts
    path = file_with(tmp_path, data)
    etag = store.put_file("mp", path, sha256=sha(data), if_none_match=True)
    assert store.get("mp") == data
    with pytest.raises(PreconditionFailed):
        store.put_file("mp", path, sha256=sha(data), if_none_match=True)
    etag = store.put_file("mp", path, sha256=sha(data), if_match=etag)
    if spec.kind != "moto":  # moto ignores If-Match when completing an upload
        with pytest.raises(PreconditionFailed):
            store.put_file("mp", path, sha256=sha(data), if_match='"0-stale"')
    uploads = store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])
    assert uploads == []  # the failed one was aborted, not left to cost money


def test_a_large_object_comes_down_in_parallel_ranges(store, spec, monkeypatch):
    from libsync.remotes import s3
    if not hasattr(store, "client"):
        pytest.skip("ranged reads are S3's")
    monkeypatch.setattr(s3, "RANGED_THRESHOLD", 3 << 20)
    monkeypatch.setattr(s3, "PART_SIZE", 1 << 20)
    data = hashlib.sha256(b"seed").digest() * (11 << 14)  # 5.5 MiB: 1 + 5 ranges
    etag = store.put("big", data)
    sent = []
    store.client.meta.events.register(
        "before-send.s3", lambda request, **_: sent.append(request.headers.get("Range")))
    sink = io.BytesIO()
    info = store.get_into("big", sink, if_match=etag)
    assert sink.getvalue() == data and (info.size, info.etag) == (len(data), etag)
    mib = 1 << 20
    assert sent[0] is None and sorted(sent[1:]) == [
        f"bytes={n * mib}-{min((n + 1) * mib, len(data)) - 1}".encode() for n in range(1, 6)], sent


def test_a_large_object_of_known_size_comes_down_in_ranges_from_the_start(store, monkeypatch):
    from libsync.remotes import s3
    monkeypatch.setattr(s3, "RANGED_THRESHOLD", 3 << 20)
    monkeypatch.setattr(s3, "PART_SIZE", 1 << 20)
    data = hashlib.sha256(b"seed").digest() * (11 << 14)  # 5.5 MiB: 6 ranges
    etag = store.put("big", data)
    sent = []
    if hasattr(store, "client"):
        store.client.meta.events.register(
            "before-send.s3", lambda request, **_: sent.append(request.headers.get("Range")))
    sink = io.BytesIO()
    info = store.get_into("big", sink, if_match=etag, size=len(data))
    assert sink.getvalue() == data and (info.size, info.etag) == (len(data), etag)
    if hasattr(store, "client"):  # no whole-object GET cut short after its first part
        mib = 1 << 20
        assert sorted(sent) == [f"bytes={n * mib}-{min((n + 1) * mib, len(data)) - 1}"
                                .encode() for n in range(6)], sent
    store.put("big", data + b"!")
    with pytest.raises(PreconditionFailed):
        store.get_into("big", io.BytesIO(), if_match=etag, size=len(data))


def test_an_object_replaced_during_a_ranged_read_fails_whole(store, spec, monkeypatch):
    from libsync.remotes import s3
    if not hasattr(store, "client"):
        pytest.skip("ranged reads are S3's")
    monkeypatch.setattr(s3, "RANGED_THRESHOLD", 3 << 20)
    monkeypatch.setattr(s3, "PART_SIZE", 1 << 20)
    store.put("big", b"a" * (4 << 20))
    replaced = []

    def replace_once(n):
        if not replaced:
            replaced.append(store.put("big", b"b" * (4 << 20)))

    with pytest.raises(PreconditionFailed):
        store.get_into("big", io.BytesIO(), progress=replace_once)
    assert store.head("big").etag == replaced[0]


def test_list_order_prefix_and_start_after(store):
    keys = ["a", "b/1", "b/2", "b/10", "c d/é", ".s3sync/journal/000000000001",
            ".s3sync/journal/000000000002"]
    for k in keys:
        store.put(k, b"x")
    assert [i.key for i in store.list("")] == sorted(keys, key=str.encode)
    assert [i.key for i in store.list("b/")] == ["b/1", "b/10", "b/2"]
    assert [i.key for i in store.list(".s3sync/journal/",
                                      start_after=".s3sync/journal/000000000001")] == [
        ".s3sync/journal/000000000002"]
    assert [i.size for i in store.list("b/")] == [1, 1, 1]


def test_list_pages_past_a_thousand_keys(store):
    keys = [f"many/{i:05d}" for i in range(1003)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: store.put(k, b""), keys))
    assert [i.key for i in store.list("many/")] == keys
    assert [i.key for i in store.list("many/", start_after="many/01000")] == keys[1001:]


def test_missing_bucket_or_folder(spec, tmp_path):
    from libsync.remotes import open_remote
    if spec.kind == "folder":
        with pytest.raises(RemoteNotFoundError):
            open_remote(str(tmp_path / "no-such-folder"))
        return
    r = open_remote("s3://no-such-bucket-s3sync/x", endpoint_url=spec.endpoint_url)
    with pytest.raises(RemoteNotFoundError):
        list(r.list(""))


def test_wrong_credentials_are_access_denied(spec, monkeypatch):
    if spec.kind != "seaweedfs":
        pytest.skip("only SeaweedFS checks credentials (moto accepts any; a folder has none)")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    with spec.open() as r, pytest.raises(AccessDeniedError):
        r.put("k", b"1")
