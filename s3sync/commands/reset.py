"""Usage: s3sync reset [--confirm] [--local-only] [--keep-trash] [-h]

Remove s3sync's metadata: the local state in <data>/.s3sync/ (except
your personal ignore list) and, unless --local-only, every object under
the remote's .s3sync/ prefix. No data file is ever touched, here or on
the remote. Afterwards 's3sync init --adopt' starts again from the files.

Without --confirm, reset asks on a terminal and refuses otherwise; a
declined prompt changes nothing.

Options:
  --confirm      Do it without asking.
  --local-only   Leave the remote alone.
  --keep-trash   Keep the remote trash (deleted and replaced versions).
  -h --help      Show this help.
"""

from libsync.errors import AbortedError
from libsync.workspace import Workspace

from .. import porcelain
from ..interact import Prompter


def run(args, ctx) -> int:
    ws = Workspace.find(ctx.cwd)
    if not args["--confirm"]:
        if not ctx.interactive:
            raise AbortedError("reset needs --confirm when not run on a terminal")
        where = "" if args["--local-only"] else f" and on {ws.config.remote}"
        answer = Prompter(ctx.stdin, ctx.err).ask(
            f"Remove s3sync's metadata in {ws.config.data_dir}/.s3sync/{where}? "
            "Data files are not touched. [y/N] ")
        if answer not in ("y", "yes"):
            raise AbortedError("reset aborted; nothing was changed")
    r = porcelain.reset(ws, local_only=args["--local-only"], keep_trash=args["--keep-trash"])
    ctx.out.write(f"removed local state ({len(r.local)} entries)"
                  + ("" if args["--local-only"] else f" and {r.remote} remote metadata objects")
                  + "\n")
    return 0
