"""init: write s3sync.json, create the data folder, initialise or attach the remote."""

from __future__ import annotations

import os
import time as _time
from dataclasses import dataclass

from libsync import journal, layout, ops, transfer
from libsync.errors import (
    AccessDeniedError,
    ConfigError,
    PreconditionFailed,
    RemoteError,
    UnsupportedRemoteError,
)
from libsync.manifest import Entry, Manifest, check_path
from libsync.remotes.base import Remote
from libsync.workspace import CONFIG_FILE, Config, Workspace, parse_config

PROBE_KEY = layout.META + "probe"


@dataclass(frozen=True)
class InitResult:
    config: Config
    created: bool                 # a new remote (else attached to one in use)
    adopted: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()  # keys --adopt could not take (unsafe names)


def probe_conditional_writes(remote: Remote) -> None:
    """Refuse a server that ignores If-None-Match: it would lose updates."""
    remote.delete(PROBE_KEY)
    remote.put(PROBE_KEY, b"1", if_none_match=True)
    try:
        remote.put(PROBE_KEY, b"2", if_none_match=True)
    except PreconditionFailed:
        return
    finally:
        remote.delete(PROBE_KEY)
    raise UnsupportedRemoteError(
        f"{remote.url} ignores conditional writes (If-None-Match), so two people "
        "pushing at once could erase each other's work; s3sync refuses to use it")


def init(root: str, config: Config, *, adopt: bool = False, author: str = "") -> InitResult:
    """Set up ``root`` as a workspace of ``config.remote``."""
    path = os.path.join(root, CONFIG_FILE)
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            existing = parse_config(f.read(), where=path)
        if existing.remote != config.remote:
            raise ConfigError(f"{path} already names remote {existing.remote}")
        config = existing
    ws = Workspace(root, config)
    adopted, skipped = (), ()
    with ws.open_remote(create=not config.remote.startswith("s3://")) as remote:
        if remote.head(layout.FORMAT_KEY) is not None:
            journal.read_format(remote)
            created = False
        else:
            existing_keys = [i for i in remote.list("") if not i.key.startswith(layout.META)]
            if existing_keys and not adopt:
                raise RemoteError(f"{config.remote} already holds files but is not an s3sync "
                                  "remote; use --adopt to take them over")
            probe_conditional_writes(remote)
            created = journal.init_remote(remote)
            if existing_keys:
                adopted, skipped = _adopt(remote, existing_keys, author or ws.author())
        os.makedirs(ws.data_dir, exist_ok=True)
        with ws.open_state() as state:
            try:
                ops.learn_server(state, remote)  # now, so that no later push pays for it
            except AccessDeniedError:
                pass  # a teammate who may only read copies nothing; a push asks again
    if not os.path.exists(path):
        with open(path, "w", encoding="utf-8") as f:
            f.write(config.to_json())
    return InitResult(config, created, adopted, skipped)


def _adopt(remote: Remote, infos, author: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Commit the objects already there as generation 1, hashed without a local copy."""
    entries, skipped = [], []
    now = _time.time_ns()
    stamp = _time.strftime("%Y-%m-%dT%H:%M:%SZ", _time.gmtime())
    for info in infos:
        try:
            check_path(info.key)
        except Exception:  # noqa: BLE001 - any unsafe name is skipped, and reported
            skipped.append(info.key)
            continue
        head = remote.head(info.key)
        sha = head.sha256 if head else None
        if sha is None:
            digest = transfer.HashingWriter()
            info = remote.get_into(info.key, digest, if_match=info.etag)
            sha = digest.hexdigest()
        entries.append(Entry(info.key, info.size, sha, now, author, stamp, info.etag))
    if entries:
        journal.write_commit(remote, Manifest(), entries, author=author, time=stamp,
                             message="adopted existing files")
    return tuple(e.path for e in entries), tuple(skipped)
