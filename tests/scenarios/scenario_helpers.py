"""Helpers shared by the scenario tests: hashing, the remote trash, lost versions.

Named ``scenario_helpers`` rather than ``helpers``: test folders have no
``__init__.py``, so a module's basename must be unique across ``tests/``.
"""

from __future__ import annotations

import hashlib
import traceback

TRASH = ".s3sync/trash/"


def sha(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode()
    return hashlib.sha256(data).hexdigest()


def trash_key(path: str, content: bytes | str) -> str:
    """Where the remote trash keeps ``content`` of ``path`` (named by its sha256)."""
    return f"{TRASH}{path}/{sha(content)}"


def objects(remote, prefix: str = "", *, meta: bool = True) -> dict[str, bytes]:
    """The remote's objects under ``prefix``, by key; ``meta=False`` leaves out
    ``.s3sync/``. Like RemoteSpec.keys(), but reads only what is asked for."""
    with remote.open() as r:
        return {i.key: r.get(i.key) for i in r.list(prefix)
                if meta or not i.key.startswith(".s3sync/")}


def data_of(remote) -> dict[str, bytes]:
    """The remote's data objects (RemoteSpec.data(), without reading the metadata)."""
    return objects(remote, meta=False)


def trash_of(remote) -> dict[str, bytes]:
    """Every object in the remote trash, by key."""
    return objects(remote, TRASH)


def meta_keys(remote) -> dict[str, bytes]:
    return objects(remote, ".s3sync/")


def every_version(remote, *teammates) -> set[bytes]:
    """The bytes of every version still to be found: workspaces, remote data, trash."""
    found: set[bytes] = set()
    for t in teammates:
        found.update(t.files().values())
    for key, content in objects(remote).items():
        if key.startswith(TRASH) or not key.startswith(".s3sync/"):
            found.add(content)
    return found


def state_files(teammate) -> dict[str, bytes]:
    """The files of a workspace's ``Data/.s3sync/`` folder, by relative path."""
    root = teammate.data / ".s3sync"
    if not root.exists():
        return {}
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def teammate(spec, root, name: str):
    """A workspace at ``root`` initialised on the remote ``spec`` (a RemoteSpec)."""
    from conftest import join

    return join(spec, root, name)


def run(teammate, *argv):
    """The CLI as a user runs it: an uncaught exception is a traceback and status 1."""
    try:
        return teammate.run(*argv)
    except Exception:  # noqa: BLE001 - reported as the process would report it
        from conftest import Result
        return Result(1, "", traceback.format_exc())


def error_line(r) -> str:
    """The one line of error s3sync printed (warnings aside), no traceback."""
    assert "Traceback" not in r.err, r.err
    lines = [ln for ln in r.err.splitlines() if ln and not ln.startswith("warning:")]
    assert len(lines) == 1, r.err
    return lines[0]
