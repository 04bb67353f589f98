"""Usage: s3sync tombstone [--json] [-h] [--] <path>...

Stage the deletion of files that are gone from the data folder but live
on the remote. Nothing is written remotely until 's3sync commit'; the
deleted versions then move to the remote's trash.

Options:
  --json       Print one JSON document: {"records": [...]}.
  -h --help    Show this help.

Output: "staged-deletion TAB <path>" for each path.
"""

from libsync import ops

from ..common import opened
from ..render import records_json, write_json, write_lines


def run(args, ctx) -> int:
    ops.pathspecs(args["<path>"])  # a path outside the data folder: refused before any reading
    with opened(ctx, remote=False) as (ws, state, _):
        done = ops.tombstone(state, ws.data_dir, args["<path>"], author=ws.author(ctx.env),
                             time=ops.utc_now())
    if args["--json"]:
        write_json(ctx.out, {"records": records_json(done)})
    else:
        write_lines(ctx.out, (f"staged-deletion\t{t.path}" for t in done))
    return 0
