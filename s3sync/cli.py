"""s3sync: keep a team's data folder in step through Amazon S3.

Usage:
  s3sync [-C <dir>] <command> [<args>...]
  s3sync help [<command>]
  s3sync (-h | --help | --version)

Options:
  -C <dir>      Run as if s3sync was started in <dir>.
  -h --help     Show this screen.
  --version     Show the version.

Porcelain commands:
  init            Set up a workspace and its remote
  status          Show what changed here and on the remote
  push            Send local changes to the remote
  pull            Bring remote changes here
  sync            Push and pull in one go
  reset           Remove s3sync's metadata (never data files)
  log             Show the history of pushes
  restore         Bring back a deleted or replaced version
  remotes         List the kinds of remote

Plumbing commands:
  scan            List local files with their sha256
  fetch-manifest  Read the remote's manifest
  diff            Reconcile local, base and remote into a plan
  upload          Upload files and stage them
  tombstone       Stage the deletion of files
  commit          Commit what is staged as the next generation
  download        Make local files what the remote has
  fsck            Check the remote against its manifest

See 's3sync help <command>' for one command's manual page.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

from docopt import DocoptExit, docopt

from libsync import errors

from .program import SCAN_FIRST, list_ahead

if TYPE_CHECKING:
    from libsync.listing import Listing

# Command name -> module under s3sync.commands, imported only when run so
# that `s3sync --help` and local-only commands never load botocore.
COMMANDS = {
    "init": "init", "status": "status", "push": "push", "pull": "pull",
    "sync": "sync", "reset": "reset", "log": "log", "restore": "restore",
    "remotes": "remotes",
    "scan": "scan", "fetch-manifest": "fetch_manifest", "diff": "diff",
    "upload": "upload", "tombstone": "tombstone", "commit": "commit",
    "download": "download", "fsck": "fsck",
}
# Exit statuses, the one place they are chosen (see s3sync(1), EXIT STATUS).
EXIT_OK = 0
EXIT_DIFFERENT = 1      # out of step (--exit-code), or conflicts left unresolved
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_REMOTE = 4
EXIT_CHANGED = 5        # someone changed the remote, or a local file, meanwhile
EXIT_DATA = 6
EXIT_LOCKED = 7
EXIT_PARTIAL = 8        # some files could not be transferred
EXIT_ABORTED = 9        # stopped before changing anything: a limit, or a "no"
EXIT_INTERRUPTED = 130

_EXIT_FOR = [  # most specific first
    (errors.UsageError, EXIT_USAGE),
    (errors.ConfigError, EXIT_CONFIG),
    (errors.PreconditionFailed, EXIT_CHANGED),
    (errors.LocalChangedError, EXIT_CHANGED),
    (errors.RemoteError, EXIT_REMOTE),
    (errors.FormatError, EXIT_DATA),
    (errors.IntegrityError, EXIT_DATA),
    (errors.UnsafePathError, EXIT_DATA),
    (errors.LockedError, EXIT_LOCKED),
    (errors.AbortedError, EXIT_ABORTED),
    (errors.SyncError, EXIT_PARTIAL),
]


def exit_code_for(exc: errors.SyncError) -> int:
    for kind, code in _EXIT_FOR:
        if isinstance(exc, kind):
            return code
    return EXIT_PARTIAL


def exit_code_for_failures(errors) -> int:
    """Files that failed while others went through: 8, "some files failed".

    When every failure is of the one kind whose remedy differs (5: re-run
    after a fetch; 6: the data itself is refused), that code instead.
    """
    codes = {exit_code_for(e) for e in errors}
    if len(codes) == 1 and codes <= {EXIT_CHANGED, EXIT_DATA}:
        return codes.pop()
    return EXIT_PARTIAL


@dataclass
class Context:
    """What a command may touch of the outside world; tests pass buffers."""

    cwd: str = "."
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    stdin: TextIO = field(default_factory=lambda: sys.stdin)
    env: dict = field(default_factory=lambda: dict(os.environ))
    # find's listing of the data folder for the scan, started by the program
    # (program.entry) or else by ``main``.
    listing: Listing | None = None
    # What a command leaves for the process's end (see ``keep``).
    kept: list = field(default_factory=list)

    @property
    def interactive(self) -> bool:
        return self.stdin.isatty() and self.err.isatty()

    def keep(self, obj) -> None:
        """Hold ``obj`` as long as the context. The ``s3sync`` program leaves
        without freeing what its context holds (see ``program.entry``):
        freeing a scan's 100,000 files one by one costs 15 ms."""
        self.kept.append(obj)


def command_module(name: str):
    return importlib.import_module(f"s3sync.commands.{COMMANDS[name]}")


def parse(doc: str, argv: list[str], ctx: Context, options_first: bool = False):
    """docopt's parse, printing help to ``ctx.out``; an int is the exit status."""
    try:
        args = docopt(doc, argv=argv, default_help=False, options_first=options_first)
    except DocoptExit as exc:
        problem = f"{usage_problem(argv, exc)}\n" if argv else ""
        ctx.err.write(f"{problem}{DocoptExit.usage.strip()}\n")
        return EXIT_USAGE
    if args.get("--help"):
        ctx.out.write(doc.strip() + "\n")
        return EXIT_OK
    return args


def show_manual(command: str | None, ctx: Context) -> int:
    from .manpage import show
    return show(command, ctx)


def usage_problem(argv: list[str], exc: DocoptExit) -> str:
    """A plain sentence for what docopt could not match; it speaks of Patterns."""
    name = "s3sync" if not argv or argv[0].startswith("-") else f"s3sync {argv[0]}"
    text = str(exc)
    option = re.search(r"Option\((?:'(-\w)'|None), (?:'(--[\w-]+)'|None)", text)
    if option:
        return f"{name}: unknown option, or one missing its value: {option[2] or option[1]}"
    if "requires argument" in text or "must not have an argument" in text:
        return f"{name}: {text.splitlines()[0]}"
    extra = [a for a in re.findall(r"Argument\(None, '([^']*)'\)", text) if a != argv[0]]
    if extra:
        return f"{name}: unexpected argument {extra[0]!r}"
    return f"{name}: missing or misplaced arguments"


def main(argv: list[str] | None = None, ctx: Context | None = None) -> int:
    from . import __version__

    argv = sys.argv[1:] if argv is None else argv
    ctx = ctx or Context()
    top = parse(__doc__, argv, ctx, options_first=True)
    if isinstance(top, int):
        return top
    if top["--version"]:
        ctx.out.write(f"s3sync {__version__}\n")
        return EXIT_OK
    if top["-C"]:
        ctx.cwd = os.path.join(ctx.cwd, top["-C"])
    name = top["<command>"]
    if name == "help":  # docopt matches `s3sync <command>` first
        args = top["<args>"]
        return show_manual(args[0] if args else None, ctx)
    if name not in COMMANDS:
        ctx.err.write(f"s3sync: '{name}' is not an s3sync command; see 's3sync --help'\n")
        return EXIT_USAGE
    ahead = (name in SCAN_FIRST and ctx.listing is None
             and not {"-h", "--help"} & set(top["<args>"]))
    try:
        if ahead:
            ctx.listing = list_ahead(ctx.cwd)
        return _run(name, top["<args>"], ctx)
    finally:
        if ahead and ctx.listing is not None:
            ctx.listing.close()
            ctx.listing = None


def _run(name: str, argv: list[str], ctx: Context) -> int:
    module = command_module(name)
    args = parse(module.__doc__, [name, *argv], ctx)
    if isinstance(args, int):
        return args
    try:
        return module.run(args, ctx)
    except errors.SyncError as exc:
        ctx.err.write(f"s3sync {name}: error: {exc}\n")
        return exit_code_for(exc)
    except KeyboardInterrupt:
        ctx.err.write(f"s3sync {name}: interrupted; nothing half-done was committed\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK


