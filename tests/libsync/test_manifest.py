"""Paths, records, commits and manifests: the storage format's rules."""

from __future__ import annotations

import gzip
import json

import pytest
from libsync_helpers import entry, sha, tombstone

from libsync.errors import FormatError, UnsafePathError
from libsync.manifest import (
    FORMAT,
    Commit,
    Entry,
    Manifest,
    Tombstone,
    check_path,
    record_from_dict,
)

NFC_E = "\u00e9"          # é as one code point
NFD_E = "e\u0301"         # é as e + combining acute accent


def commit_doc(*changes: dict, generation: int = 1, **extra) -> bytes:
    doc = {"format": FORMAT, "generation": generation, "author": "ann",
           "time": "2024-05-01T12:00:00Z", "message": "", "changes": list(changes)}
    doc.update(extra)
    return json.dumps(doc).encode()


def snapshot_doc(*records: dict, generation: int = 1, **extra) -> bytes:
    doc = {"format": FORMAT, "generation": generation, "records": list(records)}
    doc.update(extra)
    return gzip.compress(json.dumps(doc).encode())


# -- check_path ------------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    "a.txt",
    "raw/2024/data.csv",
    "with space/and-dash_underscore.txt",
    ".hidden",
    ".s3syncignore",           # the team's ignore file is data, not state
    "a..b/c...txt",            # dots inside a name are not '..'
    f"caf{NFC_E}/r{NFC_E}sum{NFC_E}.txt",
    "日本語/ファイル.txt",
])
def test_check_path_accepts_relative_posix_nfc_paths(path):
    assert check_path(path) == path


@pytest.mark.parametrize("path, reason", [
    ("../x", r"'\.\.' segment"),
    ("a/../b", r"'\.\.' segment"),
    ("a/..", r"'\.\.' segment"),
    ("..", r"'\.\.' segment"),
    (".", r"'\.' or"),
    ("./a", r"'\.' or"),
    ("a/./b", r"'\.' or"),
    ("a//b", "empty, "),
    ("a/", "empty, "),
    ("/etc/passwd", "absolute"),
    ("/", "absolute"),
    ("C:x", "absolute"),
    ("c:/windows", "absolute"),
    ("C:\\x", "backslash"),
    ("a\\b", "backslash"),
    ("..\\x", "backslash"),
    (".s3sync/state", "inside .s3sync/"),
    (".s3sync", "inside .s3sync/"),
    (".s3sync/journal/000000000001", "inside .s3sync/"),
    ("a\0b", "control character"),
    ("a\nb", "control character"),
    ("a\tb", "control character"),
    ("\x1b[31mred", "control character"),
    ("", "empty or not text"),
    (f"caf{NFD_E}.txt", "not NFC-normalised"),
    (f"{NFD_E}/x", "not NFC-normalised"),
])
def test_check_path_rejects_unsafe_paths(path, reason):
    with pytest.raises(UnsafePathError, match=reason) as info:
        check_path(path)
    assert str(info.value).startswith(f"unsafe path {path!r}: ")


@pytest.mark.parametrize("value", [None, 5, b"a.txt", ["a.txt"]])
def test_check_path_rejects_non_text(value):
    with pytest.raises(UnsafePathError, match="empty or not text"):
        check_path(value)


# -- records ---------------------------------------------------------------------------

def test_entry_round_trips_through_its_dict():
    e = entry(f"dir/caf{NFC_E}.csv", "1,2\n", etag='"abc"', mtime_ns=123)
    d = e.to_dict()
    assert d == {"path": f"dir/caf{NFC_E}.csv", "size": 4, "sha256": sha("1,2\n"),
                 "mtime_ns": 123, "author": "ann", "time": "2024-05-01T12:00:00Z",
                 "etag": '"abc"'}
    back = record_from_dict(d)
    assert back == e and type(back) is Entry and back.deleted is False


def test_tombstone_round_trips_through_its_dict():
    t = tombstone("dir/gone.txt", "old")
    d = t.to_dict()
    assert d["deleted"] is True
    assert d["trash"] == f".s3sync/trash/dir/gone.txt/{sha('old')}"
    back = record_from_dict(d)
    assert back == t and type(back) is Tombstone and back.deleted is True


def test_record_with_deleted_false_is_an_entry():
    e = entry("a.txt")
    assert record_from_dict({**e.to_dict(), "deleted": False}) == e


def test_record_from_dict_does_not_change_its_argument():
    d = tombstone("a.txt").to_dict()
    copy = dict(d)
    record_from_dict(d)
    assert d == copy


GOOD = entry("a.txt", "hello").to_dict()


@pytest.mark.parametrize("bad, message", [
    ({k: v for k, v in GOOD.items() if k != "sha256"}, "malformed manifest record"),
    ({k: v for k, v in GOOD.items() if k != "etag"}, "malformed manifest record"),
    ({**GOOD, "colour": "red"}, "malformed manifest record"),
    ({**GOOD, "sha256": "abc"}, "malformed sha256 'abc'"),
    ({**GOOD, "sha256": GOOD["sha256"].upper()}, "malformed sha256"),
    ({**GOOD, "sha256": None}, "malformed sha256 None"),
    ({**GOOD, "sha256": "g" * 64}, "malformed sha256"),
    ({**GOOD, "size": -1}, "bad size for 'a.txt'"),
    ({**GOOD, "size": "5"}, "bad size for 'a.txt'"),
    ({**GOOD, "size": 5.0}, "bad size for 'a.txt'"),
    ({**tombstone("a.txt").to_dict(), "sha256": "0" * 63}, "malformed sha256"),
    ({k: v for k, v in tombstone("a.txt").to_dict().items() if k != "trash"},
     "malformed manifest record"),
    # A tombstone's fields on a record not marked deleted: not an Entry.
    ({k: v for k, v in tombstone("a.txt").to_dict().items() if k != "deleted"},
     "malformed manifest record"),
    (None, "malformed manifest record None"),
    (5, "malformed manifest record 5"),
])
def test_malformed_records_raise_format_error(bad, message):
    with pytest.raises(FormatError, match=message):
        record_from_dict(bad)


def test_record_without_path_is_a_format_error():
    with pytest.raises(FormatError, match="malformed manifest record"):
        record_from_dict({k: v for k, v in GOOD.items() if k != "path"})


def test_record_with_an_unsafe_path_is_refused():
    with pytest.raises(UnsafePathError, match=r"'\.\./\.\./etc/passwd'"):
        record_from_dict({**GOOD, "path": "../../etc/passwd"})


@pytest.mark.parametrize("field, value", [
    ("mtime_ns", "soon"), ("mtime_ns", 1.5), ("etag", ["x"]), ("author", None),
    ("time", 20240501), ("size", True),
])
def test_record_fields_of_the_wrong_type_raise_format_error(field, value):
    with pytest.raises(FormatError):
        Commit.from_json(commit_doc({**GOOD, field: value}))


# -- commits ---------------------------------------------------------------------------

def small_commit(**kw) -> Commit:
    fields = dict(generation=7, author="ann", time="2024-05-01T12:00:00Z",
                  message="first", changes=(entry("b.txt", "B", etag="e"),
                                            tombstone("a.txt", "A")))
    fields.update(kw)
    return Commit(**fields)


def test_commit_json_is_exact_sorted_and_compact():
    c = Commit(1, "ann", "T", "m", (Entry(f"{NFC_E}.txt", 1, "0" * 64, 5, "ann", "T", "e"),))
    assert c.to_json() == (
        '{"author":"ann","changes":[{"author":"ann","etag":"e","mtime_ns":5,'
        f'"path":"{NFC_E}.txt","sha256":"{"0" * 64}","size":1,"time":"T"}}],'
        '"format":1,"generation":1,"message":"m","time":"T"}').encode()


def test_commit_json_is_deterministic():
    a, b = small_commit(), small_commit()
    assert a is not b
    assert a.to_json() == b.to_json()
    doc = json.loads(a.to_json())
    assert list(doc) == sorted(doc)
    for change in doc["changes"]:
        assert list(change) == sorted(change)


def test_commit_json_differs_when_content_differs():
    assert small_commit().to_json() != small_commit(message="second").to_json()


def test_commit_round_trips():
    c = small_commit()
    assert Commit.from_json(c.to_json()) == c


@pytest.mark.parametrize("version", [2, 0, "1", None])
def test_commit_of_an_unknown_format_is_refused(version):
    data = json.dumps({**json.loads(small_commit().to_json()), "format": version}).encode()
    with pytest.raises(FormatError, match=rf"journal/7 has format {version!r}, "
                       r"this s3sync reads format 1; upgrade s3sync"):
        Commit.from_json(data, where="journal/7")


def test_commit_without_a_format_is_refused():
    doc = json.loads(small_commit().to_json())
    del doc["format"]
    with pytest.raises(FormatError, match="has format None"):
        Commit.from_json(json.dumps(doc).encode())


@pytest.mark.parametrize("data, message", [
    (b"", "corrupt commit"),
    (b"{not json", "corrupt commit"),
    (b"\xff\xfe\x00", "corrupt commit"),
    (b"[1, 2]", "corrupt commit: not a JSON object"),
    (json.dumps({"format": 1, "generation": 1}).encode(), "malformed commit"),
    (commit_doc(generation="one"), "malformed commit"),
    (commit_doc(changes=5), "malformed commit"),
    (commit_doc(GOOD, changes={"a.txt": GOOD}), "malformed"),
    (commit_doc({**GOOD, "sha256": "nope"}), "malformed sha256 'nope'"),
])
def test_malformed_commits_raise_format_error(data, message):
    with pytest.raises(FormatError, match=message):
        Commit.from_json(data)


def test_commit_paths_differing_only_in_case_are_refused():
    data = commit_doc(entry("Data.csv").to_dict(), entry("data.csv").to_dict())
    with pytest.raises(FormatError, match="'Data.csv' and 'data.csv' differ only in case"):
        Commit.from_json(data)


def test_commit_with_a_non_nfc_path_is_refused_before_it_can_collide():
    data = commit_doc(entry(f"{NFC_E}.txt").to_dict(), entry(f"{NFD_E}.txt").to_dict())
    with pytest.raises(UnsafePathError, match="not NFC-normalised"):
        Commit.from_json(data)


# -- manifests and snapshots -----------------------------------------------------------

def manifest(*records, generation: int = 3) -> Manifest:
    return Manifest(generation, {r.path: r for r in records})


def test_manifest_entries_and_sha_leave_out_tombstones():
    m = manifest(entry("a.txt", "A"), tombstone("b.txt", "B"))
    assert m.entries() == {"a.txt": entry("a.txt", "A")}
    assert m.sha("a.txt") == sha("A")
    assert m.sha("b.txt") is None
    assert m.sha("missing.txt") is None


def test_snapshot_round_trips():
    m = manifest(entry("z/a.txt", "A"), tombstone("b.txt", "B"), entry(f"{NFC_E}", "C"))
    back = Manifest.from_snapshot(m.to_snapshot())
    assert back == m
    assert back.generation == 3


def test_snapshot_bytes_are_deterministic_whatever_the_insertion_order():
    records = [entry("b.txt", "B"), entry("a.txt", "A"), tombstone("c.txt")]
    one = Manifest(3, {r.path: r for r in records})
    two = Manifest(3, {r.path: r for r in reversed(records)})
    assert one.to_snapshot() == two.to_snapshot()
    doc = json.loads(gzip.decompress(one.to_snapshot()))
    assert [r["path"] for r in doc["records"]] == ["a.txt", "b.txt", "c.txt"]
    assert doc["format"] == 1 and doc["generation"] == 3


@pytest.mark.parametrize("version", [2, 99])
def test_snapshot_of_an_unknown_format_is_refused(version):
    with pytest.raises(FormatError, match=rf"snapshot has format {version}.*upgrade s3sync"):
        Manifest.from_snapshot(snapshot_doc(GOOD, format=version))


def test_corrupt_gzip_snapshot_is_a_format_error():
    with pytest.raises(FormatError, match="corrupt snapshot"):
        Manifest.from_snapshot(b"this is not gzip at all")


@pytest.mark.parametrize("keep", [0, 5, 15, -9, -1])
def test_truncated_snapshot_is_a_format_error(keep):
    data = manifest(entry("a.txt", "A" * 1000), entry("b.txt", "B")).to_snapshot()
    with pytest.raises(FormatError, match="corrupt snapshot"):
        Manifest.from_snapshot(data[:keep])


def test_snapshot_with_a_flipped_byte_is_a_format_error():
    data = bytearray(manifest(entry("a.txt", "A" * 1000)).to_snapshot())
    data[-6] ^= 0xFF   # inside the CRC32 trailer
    with pytest.raises(FormatError, match="corrupt snapshot"):
        Manifest.from_snapshot(bytes(data))


def test_snapshot_of_truncated_json_is_a_format_error():
    whole = json.dumps({"format": 1, "generation": 1, "records": [GOOD]}).encode()
    with pytest.raises(FormatError, match="corrupt snapshot"):
        Manifest.from_snapshot(gzip.compress(whole[:-10]))


def test_snapshot_without_records_is_malformed():
    with pytest.raises(FormatError, match="malformed snapshot"):
        Manifest.from_snapshot(gzip.compress(b'{"format":1,"generation":4}'))


def test_snapshot_paths_differing_only_in_case_are_refused():
    data = snapshot_doc(entry("README.md").to_dict(), entry("readme.md").to_dict())
    with pytest.raises(FormatError, match="'README.md' and 'readme.md' differ only in case"):
        Manifest.from_snapshot(data)


def test_apply_adds_changes_at_the_next_generation_and_leaves_the_old_manifest():
    old = manifest(entry("a.txt", "A"), entry("b.txt", "B"), generation=3)
    c = Commit(4, "bob", "T", "", (entry("a.txt", "A2"), tombstone("b.txt", "B"),
                                   entry("c.txt", "C")))
    new = old.apply(c)
    assert new.generation == 4
    assert new.records == {"a.txt": entry("a.txt", "A2"), "b.txt": tombstone("b.txt", "B"),
                           "c.txt": entry("c.txt", "C")}
    assert old.generation == 3
    assert old.records == {"a.txt": entry("a.txt", "A"), "b.txt": entry("b.txt", "B")}


@pytest.mark.parametrize("generation", [3, 5, 0, 100])
def test_apply_refuses_a_non_consecutive_generation(generation):
    old = manifest(entry("a.txt"), generation=3)
    with pytest.raises(FormatError, match=f"commit {generation} does not follow generation 3"):
        old.apply(Commit(generation, "bob", "T", "", (entry("b.txt"),)))


def test_apply_refuses_a_path_differing_only_in_case_from_a_live_one():
    old = manifest(entry("Report.CSV"))
    with pytest.raises(FormatError, match="'Report.CSV' and 'report.csv' differ only in case"):
        old.apply(Commit(4, "bob", "T", "", (entry("report.csv"),)))


def test_apply_refuses_a_path_differing_only_in_unicode_normalisation():
    # Entry() itself does not check paths; apply() is what write_commit relies on.
    old = manifest(entry(f"caf{NFC_E}.txt"))
    with pytest.raises(FormatError, match="differ only in case"):
        old.apply(Commit(4, "bob", "T", "", (entry(f"caf{NFD_E}.txt"),)))


def test_a_deleted_path_does_not_block_a_new_path_differing_in_case():
    old = manifest(tombstone("Report.csv"))
    new = old.apply(Commit(4, "bob", "T", "", (entry("report.csv"),)))
    assert new.sha("report.csv") == sha("x")
