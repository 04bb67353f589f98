"""The commit journal on a folder remote: init, commits, races, reading back."""

from __future__ import annotations

import gzip
import json

import pytest
from libsync_helpers import TIME, entry, tombstone

from libsync import journal, layout
from libsync.errors import (
    CommitRaceError,
    FormatError,
    PreconditionFailed,
    RemoteError,
    RemoteHistoryError,
    UnsafePathError,
)
from libsync.manifest import Commit, Entry, Manifest
from libsync.remotes.local import LocalRemote


class RecordingRemote(LocalRemote):
    """A folder remote that notes which keys were read and which prefixes listed."""

    def __init__(self, url: str):
        super().__init__(url, create=True)
        self.reads: list[str] = []
        self.lists: list[tuple[str, str | None]] = []

    def get(self, key, *, if_match=None):
        self.reads.append(key)
        return super().get(key, if_match=if_match)

    def list(self, prefix="", *, start_after=None):
        self.lists.append((prefix, start_after))
        return super().list(prefix, start_after=start_after)

    def forget(self) -> None:
        self.reads.clear()
        self.lists.clear()


@pytest.fixture
def bare(tmp_path) -> RecordingRemote:
    return RecordingRemote(str(tmp_path / "remote"))


@pytest.fixture
def remote(bare) -> RecordingRemote:
    journal.init_remote(bare)
    bare.forget()
    return bare


def J(g: int) -> str:
    return layout.journal_key(g)


def push(remote, current: Manifest, *changes) -> Manifest:
    manifest, _ = journal.write_commit(remote, current, changes, author="ann", time=TIME)
    return manifest


def history(remote, n: int) -> list[Manifest]:
    """n commits, commit g adding file g.txt; returns the manifest after each."""
    manifests = [Manifest()]
    for g in range(1, n + 1):
        manifests.append(push(remote, manifests[-1], entry(f"{g}.txt", str(g))))
    remote.forget()
    return manifests


# -- the format marker -----------------------------------------------------------------

def test_init_remote_writes_the_format_marker_once(bare):
    assert journal.init_remote(bare) is True
    assert bare.get(layout.FORMAT_KEY) == b'{"format":1}'
    etag = bare.head(layout.FORMAT_KEY).etag
    assert journal.init_remote(bare) is False
    assert bare.head(layout.FORMAT_KEY).etag == etag          # not rewritten
    assert journal.read_format(bare) == 1


def test_init_remote_refuses_a_remote_of_another_format(bare):
    bare.put(layout.FORMAT_KEY, b'{"format":2}')
    with pytest.raises(FormatError, match="format marker has format 2.*upgrade s3sync"):
        journal.init_remote(bare)


def test_read_format_of_an_uninitialised_folder_says_to_run_init(bare):
    with pytest.raises(RemoteError, match=r"is not an s3sync remote yet: "
                       r"run 's3sync init' first") as info:
        journal.read_format(bare)
    assert type(info.value) is RemoteError
    assert bare.url in str(info.value)


def test_fetch_from_an_uninitialised_folder_says_to_run_init(bare):
    with pytest.raises(RemoteError, match="s3sync init"):
        journal.fetch_manifest(bare, Manifest())


def test_fetch_refuses_a_remote_of_an_unknown_format(bare):
    bare.put(layout.FORMAT_KEY, b'{"format":2}')
    with pytest.raises(FormatError, match="has format 2"):
        journal.fetch_manifest(bare, Manifest())


# -- writing commits -------------------------------------------------------------------

def test_write_commit_creates_generations_one_by_one(remote):
    m1, c1 = journal.write_commit(remote, Manifest(), [entry("b.txt"), entry("a.txt")],
                                  author="ann", time=TIME, message="first")
    assert c1 == Commit(1, "ann", TIME, "first", (entry("a.txt"), entry("b.txt")), c1.id)
    assert len(c1.id) == 32  # random: tells this commit from an identical one
    assert m1 == Manifest(1, {"a.txt": entry("a.txt"), "b.txt": entry("b.txt")})
    assert J(1) == ".s3sync/journal/000000000001"
    assert remote.get(J(1)) == c1.to_json()

    m2, c2 = journal.write_commit(remote, m1, [tombstone("a.txt")], author="bob", time=TIME)
    assert c2.generation == 2 and m2.generation == 2
    assert m2.records["a.txt"] == tombstone("a.txt")
    assert [i.key for i in remote.list(layout.JOURNAL_PREFIX)] == [J(1), J(2)]


def test_second_commit_on_the_same_base_loses_the_race(remote):
    _, winner = journal.write_commit(remote, Manifest(), [entry("a.txt", "mine")],
                                     author="ann", time=TIME)
    with pytest.raises(CommitRaceError, match="another push committed generation 1 first"):
        journal.write_commit(remote, Manifest(), [entry("b.txt", "theirs")],
                             author="bob", time=TIME)
    assert remote.get(J(1)) == winner.to_json()
    assert remote.head(J(2)) is None


def test_commit_race_is_a_precondition_failure(remote):
    push(remote, Manifest(), entry("a.txt"))
    with pytest.raises(PreconditionFailed):
        push(remote, Manifest(), entry("a.txt"))


def test_write_commit_validates_before_writing(remote):
    m1 = push(remote, Manifest(), entry("Data.csv"))
    with pytest.raises(FormatError, match="differ only in case"):
        push(remote, m1, entry("data.csv"))
    assert remote.head(J(2)) is None


@pytest.mark.parametrize("bad", [
    Entry("../outside.txt", 1, "0" * 64, 1, "ann", TIME, "e"),
    Entry(".s3sync/format", 1, "0" * 64, 1, "ann", TIME, "e"),
    Entry("a.txt", 1, "not-a-sha", 1, "ann", TIME, "e"),
])
def test_write_commit_refuses_a_record_readers_would_refuse(remote, bad):
    with pytest.raises((UnsafePathError, FormatError)):
        push(remote, Manifest(), bad)
    assert remote.head(J(1)) is None


# -- reading the manifest --------------------------------------------------------------

def test_fetch_from_generation_zero_replays_the_journal(remote):
    m = history(remote, 3)
    manifest, commits = journal.fetch_manifest(remote, Manifest())
    assert manifest == m[3]
    assert [c.generation for c in commits] == [1, 2, 3]
    assert sorted(remote.reads) == sorted([layout.FORMAT_KEY, layout.SNAPSHOT_KEY,
                                           J(1), J(2), J(3)])


def test_fetch_from_a_known_manifest_reads_only_the_new_commits(remote):
    m = history(remote, 5)
    manifest, commits = journal.fetch_manifest(remote, m[3])
    assert manifest == m[5]
    assert [c.generation for c in commits] == [4, 5]
    assert sorted(remote.reads) == [J(4), J(5)]
    # One key earlier than the known generation: the same LIST checks that
    # journal/3 is still the commit that was read.
    assert remote.lists == [(layout.JOURNAL_PREFIX, J(2))]


def test_starting_from_a_snapshot_at_the_head_still_knows_the_head(remote):
    m = history(remote, 3)
    assert journal.maybe_snapshot(remote, m[3], every=1)
    manifest, commits = journal.fetch_manifest(remote, Manifest())
    assert commits == [] and manifest == m[3]
    assert manifest.head_etag == remote.head(J(3)).etag  # so a later reset is noticed
    remote.delete(J(3))
    with pytest.raises(RemoteHistoryError):
        journal.fetch_manifest(remote, manifest)


def test_a_reset_remote_is_told_apart_from_the_history_that_was_read(remote, tmp_path):
    m = history(remote, 3)
    # Someone resets the remote and the team pushes three generations again.
    for g in (1, 2, 3):
        remote.delete(J(g))
    fresh = history(remote, 3)
    assert fresh[3].generation == m[3].generation
    with pytest.raises(RemoteHistoryError, match="s3sync reset --local-only"):
        journal.fetch_manifest(remote, m[3])
    with pytest.raises(RemoteHistoryError):
        journal.fetch_manifest(remote, m[2])
    assert journal.fetch_manifest(remote, fresh[3])[0] is fresh[3]


def test_fetch_with_nothing_new_is_one_list_and_no_read(remote):
    m = history(remote, 2)
    manifest, commits = journal.fetch_manifest(remote, m[2])
    assert manifest is m[2] and commits == []
    assert remote.reads == []
    assert len(remote.lists) == 1


def test_fetch_ignores_stray_keys_in_the_journal(remote):
    m = history(remote, 2)
    remote.put(layout.JOURNAL_PREFIX + "README", b"hello")
    remote.put(layout.JOURNAL_PREFIX + "000000000003.tmp", b"partial")
    manifest, _ = journal.fetch_manifest(remote, Manifest())
    assert manifest == m[2]


def test_log_lists_commits_after_a_generation(remote):
    history(remote, 4)
    assert [c.generation for c in journal.log(remote)] == [1, 2, 3, 4]
    assert [c.generation for c in journal.log(remote, after=2)] == [3, 4]
    assert journal.log(remote, after=4) == []


# -- the snapshot ----------------------------------------------------------------------

def test_maybe_snapshot_writes_only_every_nth_generation(remote):
    m = history(remote, 3)
    assert journal.maybe_snapshot(remote, m[3], every=2) is False
    assert remote.head(layout.SNAPSHOT_KEY) is None
    assert journal.maybe_snapshot(remote, m[2], every=2) is True
    assert Manifest.from_snapshot(remote.get(layout.SNAPSHOT_KEY)) == m[2]
    assert journal.maybe_snapshot(remote, m[3], every=1) is True
    assert Manifest.from_snapshot(remote.get(layout.SNAPSHOT_KEY)) == m[3]


def test_fetch_from_zero_starts_from_the_snapshot(remote):
    m = history(remote, 6)
    journal.maybe_snapshot(remote, m[4], every=1)
    remote.forget()
    manifest, commits = journal.fetch_manifest(remote, Manifest())
    assert manifest == m[6]
    assert [c.generation for c in commits] == [5, 6]
    assert sorted(remote.reads) == sorted([layout.FORMAT_KEY, layout.SNAPSHOT_KEY,
                                           J(5), J(6)])


def test_a_long_way_behind_starts_from_the_snapshot(remote, monkeypatch):
    monkeypatch.setattr(journal, "REPLAY_LIMIT", 3)
    m = history(remote, 8)
    journal.maybe_snapshot(remote, m[7], every=1)
    remote.forget()
    manifest, commits = journal.fetch_manifest(remote, m[1])     # 7 new > 3
    assert manifest == m[8]
    assert [c.generation for c in commits] == [8]
    assert sorted(remote.reads) == [J(8), layout.SNAPSHOT_KEY]


def test_a_few_commits_behind_replays_without_the_snapshot(remote, monkeypatch):
    monkeypatch.setattr(journal, "REPLAY_LIMIT", 3)
    m = history(remote, 8)
    journal.maybe_snapshot(remote, m[8], every=1)
    remote.forget()
    manifest, commits = journal.fetch_manifest(remote, m[5])     # 3 new, not more
    assert manifest == m[8]
    assert sorted(remote.reads) == [J(6), J(7), J(8)]


def test_a_snapshot_older_than_the_known_manifest_is_not_used(remote, monkeypatch):
    monkeypatch.setattr(journal, "REPLAY_LIMIT", 2)
    m = history(remote, 8)
    journal.maybe_snapshot(remote, m[2], every=1)
    manifest, commits = journal.fetch_manifest(remote, m[3])
    assert manifest == m[8]
    assert [c.generation for c in commits] == [4, 5, 6, 7, 8]


@pytest.mark.parametrize("garbage", [b"not gzip", b"\x1f\x8b\x08\x00trunc"])
def test_a_corrupt_snapshot_is_skipped_with_a_warning(remote, garbage):
    m = history(remote, 3)
    remote.put(layout.SNAPSHOT_KEY, garbage)
    warnings = []
    manifest, commits = journal.fetch_manifest(remote, Manifest(), on_warning=warnings.append)
    assert manifest == m[3]
    assert [c.generation for c in commits] == [1, 2, 3]
    assert len(warnings) == 1
    assert warnings[0].startswith("ignoring the remote snapshot: corrupt snapshot")


def test_a_snapshot_of_an_unknown_format_is_refused_not_skipped(remote):
    history(remote, 2)
    remote.put(layout.SNAPSHOT_KEY,
               gzip.compress(b'{"format":2,"generation":2,"records":[]}'))
    with pytest.raises(FormatError, match="snapshot has format 2"):
        journal.fetch_manifest(remote, Manifest())


# -- a damaged or hostile journal ------------------------------------------------------

def test_a_hole_in_the_journal_is_a_format_error(remote):
    m = history(remote, 2)
    remote.put(J(4), Commit(4, "eve", TIME, "", (entry("4.txt"),)).to_json())
    with pytest.raises(FormatError, match="the journal is missing generation 3"):
        journal.fetch_manifest(remote, Manifest())
    with pytest.raises(FormatError, match="the journal is missing generation 3"):
        journal.fetch_manifest(remote, m[2])


def test_a_missing_first_commit_is_a_format_error(remote):
    history(remote, 3)
    remote.delete(J(1))
    with pytest.raises(FormatError, match="the journal is missing generation 1"):
        journal.fetch_manifest(remote, Manifest())


def test_a_commit_claiming_another_generation_is_refused(remote):
    m = history(remote, 1)
    remote.put(J(2), Commit(5, "eve", TIME, "", (entry("x.txt"),)).to_json())
    with pytest.raises(FormatError, match=r"journal/000000000002 claims generation 5"):
        journal.fetch_manifest(remote, m[1])


def test_a_corrupt_commit_is_a_format_error_naming_its_key(remote):
    m = history(remote, 1)
    remote.put(J(2), b'{"format":1,"generation":2,"chan')
    with pytest.raises(FormatError, match=r"corrupt \.s3sync/journal/000000000002"):
        journal.fetch_manifest(remote, m[1])


@pytest.mark.parametrize("path", ["../../etc/passwd", "/etc/passwd", ".s3sync/format"])
def test_a_journal_naming_an_unsafe_path_is_refused(remote, path):
    doc = json.loads(Commit(1, "eve", TIME, "", (entry("ok.txt"),)).to_json())
    doc["changes"][0]["path"] = path
    remote.put(J(1), json.dumps(doc).encode())
    with pytest.raises(UnsafePathError, match=f"unsafe path {path!r}"):
        journal.fetch_manifest(remote, Manifest())
