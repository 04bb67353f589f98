"""Where everything lives on the remote: the one module that builds keys.

Remotes store bytes under keys relative to their root and never invent a
key themselves, so the layout documented in ``s3sync-format(5)`` is
written down in code exactly once.
"""

from __future__ import annotations

META = ".s3sync/"
FORMAT_KEY = META + "format"
SNAPSHOT_KEY = META + "snapshot"
JOURNAL_PREFIX = META + "journal/"
TRASH_PREFIX = META + "trash/"
LOCK_KEY = META + "lock"

_WIDTH = 12


def data_key(path: str) -> str:
    return path


def journal_key(generation: int) -> str:
    return f"{JOURNAL_PREFIX}{generation:0{_WIDTH}d}"


def generation_of(key: str) -> int | None:
    """The generation a journal key names, or None for a stray key."""
    name = key[len(JOURNAL_PREFIX):]
    if key.startswith(JOURNAL_PREFIX) and len(name) == _WIDTH and name.isdigit():
        return int(name)
    return None


def trash_key(path: str, sha256: str) -> str:
    """Trash keys are named by content: one version, one key, whoever trashes it."""
    return f"{TRASH_PREFIX}{path}/{sha256}"
