"""Turning conflicts into actions, by the user's ``--on-conflict`` choice.

Whatever the choice, no version is lost: the side that gives way is kept
in the remote trash (``local`` and ``remote``) or beside the file as a
conflict copy (``keep-both``). Delete against modify keeps the modified
version under ``keep-both``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from libsync.diff import CONFLICT, DELETE_LOCAL, DELETE_REMOTE, DOWNLOAD, UPLOAD, Action

CHOICES = ("ask", "skip", "keep-both", "local", "remote")


@dataclass(frozen=True)
class Resolution:
    action: Action            # what to do now (never a CONFLICT)
    keep_local: bool = False  # save the local version to the trash first
    rename_to: str | None = None  # keep-both: move the local file here first


def conflict_name(path: str, user: str, stamp: str) -> str:
    """``name.conflict-<user>-<YYYYmmddTHHMMSS>.ext`` beside the original."""
    folder, name = os.path.split(path)
    stem, ext = os.path.splitext(name)
    if stem.startswith(".") and not ext:  # dotfiles such as .env
        stem, ext = name, ""
    safe_user = "".join(c if c.isalnum() or c in "-_" else "_" for c in user) or "user"
    new = f"{stem}.conflict-{safe_user}-{stamp}{ext}"
    return f"{folder}/{new}" if folder else new


def resolve(action: Action, choice: str, *, user: str, stamp: str) -> Resolution | None:
    """The resolution of one conflict, or None to leave it (``skip``)."""
    assert action.kind == CONFLICT
    local, remote = action.local, action.remote_sha
    if choice == "local":
        kind = DELETE_REMOTE if local is None else UPLOAD
        return Resolution(replace(action, kind=kind, conflict=None))
    if choice == "remote":
        kind = DELETE_LOCAL if remote is None else DOWNLOAD
        return Resolution(replace(action, kind=kind, conflict=None),
                          keep_local=local is not None)
    if choice == "keep-both":
        if remote is None:
            return Resolution(replace(action, kind=UPLOAD, conflict=None))
        if local is None:
            return Resolution(replace(action, kind=DOWNLOAD, conflict=None))
        return Resolution(replace(action, kind=DOWNLOAD, conflict=None),
                          rename_to=conflict_name(action.path, user, stamp))
    if choice == "skip":
        return None
    raise ValueError(f"unknown conflict choice {choice!r}")
