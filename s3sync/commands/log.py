"""Usage: s3sync log [-n <n>] [--json] [-h] [<path>]

Show the journal, newest first: each push's generation, author, time,
message and the files it changed (A added, M modified, D deleted). With
<path>, only the pushes that changed that file: its history.

Options:
  -n --max-count=<n>  Show at most <n> pushes.
  --json              One JSON document: {"commits": [...]}.
  -h --help           Show this help.
"""

from libsync.workspace import Workspace

from .. import porcelain
from ..common import number
from ..render import records_json, write_json


def run(args, ctx) -> int:
    limit = number(args, "--max-count")
    ws = Workspace.find(ctx.cwd)
    logged = porcelain.log(ws, limit=limit, path=args["<path>"])
    if args["--json"]:
        write_json(ctx.out, {"commits": [
            {"generation": c.generation, "author": c.author, "time": c.time,
             "message": c.message, "changes": records_json(c.changes)}
            for c in (x.commit for x in logged)]})
        return 0
    for x in logged:
        c = x.commit
        ctx.out.write(f"generation {c.generation}  {c.time}  {c.author}\n")
        if c.message:
            ctx.out.write(f"    {c.message}\n")
        for r, kind in zip(c.changes, x.kinds, strict=True):
            if args["<path>"] is None or r.path == args["<path>"]:
                ctx.out.write(f"    {kind} {r.path}\n")
    return 0
