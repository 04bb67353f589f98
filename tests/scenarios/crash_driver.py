"""Kill a push or pull at one step boundary; and the remote audit the scenarios share.

As a script, in a child process::

    python crash_driver.py <point> <k> <workspace> [push|pull|sync]

wraps one libsync function so that the process dies with ``os._exit(9)``
(no cleanup, no ``finally``, no flushing: what ``kill -9`` leaves) at
``<point>``, then runs ``s3sync.push`` (or pull, sync) on ``<workspace>``
with one transfer at a time, so "the k-th" is well defined. Production code
has no hooks for this: only module attributes are replaced, here.

Points (``k`` counts from 1):

  upload-recorded   after the k-th upload is on the remote and recorded locally
  upload-orphan     after the k-th upload is on the remote, before it is recorded
  before-commit     after every upload, before the commit is written
  after-commit      after the commit is written, before anything else
  trash             before the k-th trash move of a committed deletion
  trash-half        in the k-th trash move: copied to the trash, not yet deleted
  download          in the k-th download: verified in its temporary file, not renamed
  download-renamed  after the k-th download's rename, before it is recorded
  sigkill-ms        SIGKILL from a timer thread k milliseconds after the start

Each data transfer that finished is appended to ``$CRASH_LOG`` (``up <path>``
or ``down <path>``, fsynced) so the test knows what reached the far side.
An exit status other than 9 (or -9) means the point was never reached.

As a module, ``audit_remote`` checks a remote the way all three scenario
files need: the journal, every object against its manifest entry, the trash.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sys
import threading

CRASH = 9


# -- the audit ------------------------------------------------------------------


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def audit_remote(remote, *, staged=frozenset()):
    """Check a remote against its own journal; return (manifest, orphans).

    - every ``journal/<g>`` parses and names ``g``, and 1..G are all there;
    - replaying the journal gives what ``fetch_manifest`` reads;
    - every live entry's object exists, has the entry's etag, and hashes
      to the entry's sha256;
    - every version a commit replaced or deleted is in
      ``trash/<path>/<sha256>`` and hashes to that sha256.

    ``orphans`` are data objects at keys the manifest does not hold live.
    ``staged`` holds (path, sha256) of uploads some workspace made and has
    not committed yet (its run gave up, or died): such an upload may stand
    at its key in place of the manifest's version, which is in the trash.
    """
    from libsync import journal, layout
    from libsync.manifest import Manifest

    keys = [i.key for i in remote.list(layout.JOURNAL_PREFIX)]
    gens = sorted(layout.generation_of(k) for k in keys if layout.generation_of(k))
    assert len(gens) == len(keys), f"stray keys in the journal: {keys}"
    assert gens == list(range(1, len(gens) + 1)), f"journal generations not contiguous: {gens}"
    manifest = Manifest()
    must_trash: dict[str, str] = {}  # trash key -> the sha256 it must hold
    history: dict[str, list[str]] = {}  # path -> what each commit did to it, for messages
    for g in gens:
        commit = journal.read_commit(remote, g)  # parses; names its own generation
        for rec in commit.changes:
            history.setdefault(rec.path, []).append(
                f"{g} {commit.author} {'deleted' if rec.deleted else 'wrote'} "
                f"{rec.sha256[:8]} {'' if rec.deleted else rec.etag}")
            old = manifest.records.get(rec.path)
            if old is not None and not old.deleted and (rec.deleted or rec.sha256 != old.sha256):
                must_trash[layout.trash_key(rec.path, old.sha256)] = old.sha256
            if rec.deleted:
                assert rec.trash == layout.trash_key(rec.path, rec.sha256), rec
        manifest = manifest.apply(commit)
    fetched, _ = journal.fetch_manifest(remote, Manifest())
    assert fetched == manifest, "fetch_manifest disagrees with replaying the journal"

    for path, entry in sorted(manifest.entries().items()):
        key = layout.data_key(path)
        info = remote.head(key)
        assert info is not None, f"{path}: the manifest's object is missing"
        data = remote.get(key)
        if (path, sha(data)) in staged:  # then the version it replaced is in the trash
            must_trash[layout.trash_key(path, entry.sha256)] = entry.sha256
            continue
        assert sha(data) == entry.sha256 and info.etag == entry.etag, (
            f"{path}: the object ({sha(data)[:8]} {info.etag}: {data[:60]!r}) is not its "
            f"manifest entry; its history: {history[path]}")
    for key, digest in sorted(must_trash.items()):
        info = remote.head(key)
        assert info is not None, f"a replaced or deleted version is not in the trash: {key}"
        assert sha(remote.get(key)) == digest, f"{key} does not hold the version it names"

    live = manifest.entries()
    orphans = sorted(i.key for i in remote.list("")
                     if not i.key.startswith(layout.META) and i.key not in live)
    return manifest, orphans


# -- the driver -----------------------------------------------------------------


def _log(line: str) -> None:
    path = os.environ.get("CRASH_LOG")
    if not path:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def _die() -> None:
    os._exit(CRASH)


def _arm(point: str, k: int, s3: bool) -> None:
    from libsync import journal, state, transfer
    from libsync.remotes.local import LocalRemote

    recorded = threading.Semaphore(0)
    real_add_pending = state.State.add_pending
    calls = {"started": 0, "upload": 0, "add": 0, "trash": 0, "delete": 0, "replace": 0}

    def add_pending(self, record, based_on, **kw):
        real_add_pending(self, record, based_on, **kw)
        calls["add"] += 1
        recorded.release()
        if point == "upload-recorded" and calls["add"] == k:
            _die()

    state.State.add_pending = add_pending

    def watched(real):
        def upload(remote, data_dir, file, *a, **kw):
            calls["started"] += 1
            if point == "upload-recorded" and calls["started"] > k:
                threading.Event().wait()  # the main thread records the k-th, then dies
            out = real(remote, data_dir, file, *a, **kw)
            _log(f"up {file.path}")
            calls["upload"] += 1
            if point == "upload-orphan" and calls["upload"] == k:
                # The k-1 before are recorded (the main thread records them);
                # this one is on the remote and nowhere in the local state.
                for _ in range(k - 1):
                    recorded.acquire(timeout=10)
                _die()
            return out
        return upload

    transfer.upload = watched(transfer.upload)
    transfer.upload_new = watched(transfer.upload_new)  # a file hashed on its way up
    if os.environ.get("CRASH_HASH_ON_UPLOAD"):
        transfer.HASH_ON_UPLOAD = int(os.environ["CRASH_HASH_ON_UPLOAD"])

    real_write_commit = journal.write_commit

    def write_commit(*a, **kw):
        if point == "before-commit":
            _die()
        out = real_write_commit(*a, **kw)
        if point == "after-commit":
            _die()
        return out

    journal.write_commit = write_commit

    real_trash = transfer.trash

    def trash(*a, **kw):
        calls["trash"] += 1
        if point == "trash" and calls["trash"] == k:
            _die()
        return real_trash(*a, **kw)

    transfer.trash = trash

    remote_classes = [LocalRemote]
    if s3:  # boto3 loads only for S3 remotes, as in s3sync itself
        from libsync.remotes.s3 import S3Remote
        remote_classes.append(S3Remote)
    for cls in remote_classes:
        real_delete = cls.delete

        def delete(self, key, *, _real=real_delete, **kw):
            if point == "trash-half" and not key.startswith(".s3sync/"):
                calls["delete"] += 1
                if calls["delete"] == k:
                    _die()
            return _real(self, key, **kw)

        cls.delete = delete

    class Os:
        """``os`` as libsync.transfer sees it, with ``replace`` wrapped."""

        def __getattr__(self, name):
            return getattr(os, name)

        @staticmethod
        def replace(src, dst):
            calls["replace"] += 1
            if point == "download" and calls["replace"] == k:
                _die()
            os.replace(src, dst)
            _log(f"down {os.path.relpath(dst, os.environ['CRASH_DATA'])}")
            if point == "download-renamed" and calls["replace"] == k:
                _die()

    transfer.os = Os()

    if point == "sigkill-ms":
        timer = threading.Timer(k / 1000, os.kill, (os.getpid(), signal.SIGKILL))
        timer.daemon = True
        timer.start()


POINTS = ("upload-recorded", "upload-orphan", "before-commit", "after-commit", "trash",
          "trash-half", "download", "download-renamed", "sigkill-ms")


def main(argv: list[str]) -> int:
    point, k, workspace = argv[0], int(argv[1]), argv[2]
    verb = argv[3] if len(argv) > 3 else "push"
    if point not in POINTS:
        raise SystemExit(f"unknown point {point!r}; one of {', '.join(POINTS)}")
    import s3sync
    from libsync.workspace import Workspace

    ws = Workspace.find(workspace)
    os.environ["CRASH_DATA"] = os.path.realpath(ws.data_dir)
    _arm(point, k, s3=ws.remote_url.startswith("s3://"))
    result = getattr(s3sync, verb)(workspace, jobs=1, max_delete="100%", on_conflict="skip")
    print(f"finished without reaching {point} {k}: {result}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
