"""The data folder's listing by GNU find, which the scan compares with the
one stored in its tree snapshot (see ``scan``).

A module of its own, light to import, so that the command line can start
find before it loads what the command needs: at 100,000 files the listing
keeps two processes busy for 0.15 s, the loading one core for 0.06 s.
"""

from __future__ import annotations

import contextlib
import os
import subprocess

from .paths import STATE_DIR

TYPE_CHECKING = False  # not typing's: the program imports this module first, in a hurry
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import IO

# One record per entry: type, size, mtime, ctime, inode, then the path (./name),
# NUL-terminated since a name may hold any other byte.
FIND_FORMAT = "%y %s %T@ %C@ %i %p\\0"
# More starting points than this in bytes and one find lists the whole tree.
_MAX_ARGS = 64 * 1024
_UNKNOWN = object()
_find: str | None | object = _UNKNOWN


def gnu_find() -> str | None:
    """The command of GNU find (its ``-printf`` is needed), looked up once, or None."""
    global _find
    if _find is _UNKNOWN:
        try:  # "find" as the PATH gives it, as the listing's own will be run
            out = subprocess.run(["find", "--version"], capture_output=True,
                                 timeout=30, check=False).stdout
        except (OSError, subprocess.SubprocessError):
            out = b""
        _find = "find" if b"GNU findutils" in out else None
    return _find  # type: ignore[return-value]


def _scratch_file(data_dir: str):
    """An unnamed file for find's output: in the state folder where the
    kernel allows (no name to clean up, and no ``tempfile`` to load: 3 ms,
    with ``shutil``), else in the temporary folder."""
    try:
        fd = os.open(os.path.join(data_dir, STATE_DIR), os.O_TMPFILE | os.O_RDWR, 0o600)
    except (AttributeError, OSError):  # no O_TMPFILE here, or no state folder yet
        import tempfile
        return tempfile.TemporaryFile()
    return open(fd, "w+b")


class Listing:
    """find's listing of one data folder, started at once and read by one scan.

    Call it with the data folder (as ``scan(lister=...)`` does) for the
    tree's records (see FIND_FORMAT), or None if find cannot tell: find is
    missing, fails, or says anything on stderr (an unreadable folder, say),
    and the Python walk then reports it properly. ``procs`` finds split the
    top-level entries between them; their outputs are joined in that order,
    so an unchanged tree gives the same bytes (file systems return a
    folder's entries in a stable order). The listing is as of its start.
    """

    def __init__(self, data_dir: str, procs: int = 2):
        self.data_dir = data_dir
        self.taken = False
        self._running: list[tuple[subprocess.Popen, IO[bytes], IO[bytes]]] = []
        self._result: bytes | None = None
        find = gnu_find()
        if find is None:
            return
        try:
            names = sorted(n for n in os.listdir(os.fsencode(data_dir))
                           if n != os.fsencode(STATE_DIR))
        except OSError:
            return
        if not names:
            self._result = b""
            return
        starts = [b"./" + n for n in names]  # "./" keeps a name like "-x" from being an option
        if procs < 2 or len(starts) < 2 or sum(map(len, starts)) > _MAX_ARGS:
            cmds = [[find, ".", "-mindepth", "1", "-path", "./" + STATE_DIR, "-prune",
                     "-o", "-printf", FIND_FORMAT]]
        else:
            step = -(-len(starts) // procs)
            cmds = [[find, *starts[i:i + step], "-printf", FIND_FORMAT]
                    for i in range(0, len(starts), step)]
        env = dict(os.environ, LC_ALL="C")
        files = []
        try:
            for cmd in cmds:
                # Files, not pipes: each find writes at its own pace, nobody drains.
                out = _scratch_file(data_dir)
                files.append(out)
                err = _scratch_file(data_dir)
                files.append(err)
                proc = subprocess.Popen(cmd, cwd=data_dir, stdout=out, stderr=err,
                                        stdin=subprocess.DEVNULL, env=env)
                self._running.append((proc, out, err))
        except OSError:  # the listing is then None: the scan walks
            running, self._running = self._running, []
            _close(running)
            for f in files:
                f.close()

    def __call__(self, data_dir: str) -> bytes | None:
        if self.taken:
            raise RuntimeError("a listing serves one scan")
        if data_dir != self.data_dir:
            raise ValueError(f"a listing of {self.data_dir}, not of {data_dir}")
        self.taken = True
        running, self._running = self._running, []
        if not running:
            return self._result
        try:
            parts = []
            ok = True
            for proc, out, err in running:
                if proc.wait() != 0 or os.fstat(err.fileno()).st_size:
                    ok = False
                out.seek(0)
                parts.append(out.read())
            return b"".join(parts) if ok else None
        except OSError:
            return None
        finally:
            _close(running)

    def close(self) -> None:
        """Stop the processes of a listing no scan will read."""
        self.taken = True
        running, self._running = self._running, []
        _close(running)


def _close(running: list) -> None:
    """Stop and wait for the processes not yet waited for; close their files."""
    for proc, out, err in running:
        if proc.returncode is None:
            with contextlib.suppress(OSError):
                proc.kill()
            proc.wait()
        out.close()
        err.close()


def find_listing(data_dir: str, procs: int = 2) -> bytes | None:
    """The tree's records by GNU find, or None if it cannot tell (see Listing)."""
    return Listing(data_dir, procs)(data_dir)


@contextlib.contextmanager
def listing_ahead(data_dir: str, started: Listing | None = None) -> Iterator[Listing]:
    """Start find's listing now, for a ``scan(lister=...)`` to come.

    For a caller with slow work before its scan: opening an S3 remote (0.2 s
    of importing botocore and loading its model) overlaps the listing of
    the tree (0.18 s at 100,000 files here). The listing is as of now, as
    the scan's own would be as of its start; its processes are stopped on
    leaving if the scan did not take it. ``started``, a listing of
    ``data_dir`` that no scan has read, serves instead of a new one: the
    command line starts one before it loads the command's modules.
    """
    if started is not None and started.data_dir == data_dir and not started.taken:
        listing = started
    else:
        listing = Listing(data_dir)
    try:
        yield listing
    finally:
        listing.close()
