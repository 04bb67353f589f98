"""The ``s3sync`` program: the command line (``cli.main``) in a process of its own.

Light to import, because the first thing the program does is start find's
listing of the data folder: a warm ``s3sync scan`` or ``status`` of
100,000 files keeps both cores busy, find's two processes (0.25 s of CPU)
beside the command's own work, and until the listing starts only one
core is. The command line's modules and the command's (0.05 s) load
while find runs.
"""

from __future__ import annotations

import gc
import os
import sys

TYPE_CHECKING = False  # not typing's: importing typing would delay find by 2 ms
if TYPE_CHECKING:
    from typing import NoReturn

    from libsync.listing import Listing

# Commands whose first look at the data folder is a scan: their listing is
# started before their modules load (see list_ahead).
SCAN_FIRST = frozenset({"scan", "status", "push", "pull", "sync"})


def list_ahead(cwd: str) -> Listing | None:
    """Start find's listing of the workspace's data folder, or None if there
    is no workspace (the command then says what is wrong, in its words)."""
    from libsync.listing import Listing
    from libsync.paths import data_dir_near
    data_dir = data_dir_near(cwd)
    return None if data_dir is None else Listing(data_dir)


def early_listing(argv: list[str], cwd: str = ".") -> Listing | None:
    """The listing for a command line that plainly runs a command in SCAN_FIRST.

    ``argv`` is read as ``[-C <dir>] <command> [<args>...]`` and nothing
    more: any other form gets None here and is left to ``cli.main``, which
    parses it properly and starts the listing itself if it should.
    """
    if argv[:1] == ["-C"] and len(argv) > 2:
        cwd, argv = os.path.join(cwd, argv[1]), argv[2:]
    if not argv or argv[0] not in SCAN_FIRST or {"-h", "--help"} & set(argv[1:]):
        return None
    return list_ahead(cwd)


def entry() -> NoReturn:
    """The ``s3sync`` program: ``main`` with the cyclic garbage collector off.

    A run builds many long-lived objects (botocore's service model, the
    manifest) and makes few reference cycles; the collector walked the
    former again and again, 80 ms of a 0.4 s no-op sync, and freed nothing
    that reference counting did not (peak memory of a 5,000-file push,
    pull and status unchanged). ``main`` itself leaves it alone, since
    tests and other programs call it in their own process.

    It also leaves without the interpreter's teardown, which frees every
    object one by one (botocore's models; the 100,000 entries of a scan
    that the command kept, ``Context.keep``): 15 ms of a 0.4 s warm scan.
    By then ``main`` has closed the state database, the remote and every
    file it opened; only the standard streams are left to flush. An
    exception out of ``main`` still ends the usual way.
    """
    gc.disable()
    listing = early_listing(sys.argv[1:])
    try:
        from libsync.errors import LocalFileError

        from .cli import Context, exit_code_for, main

        ctx = Context(listing=listing)  # held, with what the command kept, until os._exit
        code = main(ctx=ctx)
    finally:
        if listing is not None:
            listing.close()  # stops the finds of a listing no scan read
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        pass  # the reader left early, as main treats it: not an error
    except OSError as exc:  # a full disk, say: one line, not a traceback
        failure = LocalFileError(f"cannot write the output: {exc.strerror}")
        sys.stderr.write(f"s3sync: error: {failure}\n")
        code = code or exit_code_for(failure)
    try:
        sys.stderr.flush()
    except OSError:
        pass
    os._exit(code)
