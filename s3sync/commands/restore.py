"""Usage: s3sync restore [--generation=<g>] [-h] [--] <path>

Bring back a deleted or replaced version of a file from the remote trash,
as a local change that the next 's3sync push' shares. By default the
version most recently deleted or replaced comes back.
A local file with unpushed changes is not overwritten.

Options:
  --generation=<g>   Bring back the version the file had at generation <g>.
  -h --help          Show this help.
"""

from libsync.workspace import Workspace

from .. import porcelain
from ..common import number


def run(args, ctx) -> int:
    ws = Workspace.find(ctx.cwd)
    r = porcelain.restore(ws, args["<path>"], generation=number(args, "--generation"))
    ctx.out.write(f"restored {r.path} as of generation {r.generation} "
                  f"(sha256 {r.sha256[:12]}); run 's3sync push' to share it\n")
    return 0
