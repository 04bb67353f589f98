"""Usage: s3sync commit [-m <message>] [--json] [-h]

Commit every staged upload and deletion as the remote's next generation.
The commit is one create-if-absent write of journal/<generation>: if
another push committed that generation first, or a staged path changed on
the remote since it was staged, nothing is written and the exit status
is 5; run 's3sync fetch-manifest' and 's3sync diff' again.

Options:
  -m --message=<message>   Say what changed [default: ].
  --json                   Print one JSON document: {"generation": N,
                           "records": [...], "trashed": [...], "left": [...]}.
  -h --help                Show this help.

Output: "committed generation <N> (<n> changes)".
"""

from libsync import ops

from ..common import opened
from ..render import records_json, warn, write_json


def run(args, ctx) -> int:
    with opened(ctx) as (ws, state, remote):
        result = ops.commit(state, remote, author=ws.author(ctx.env), time=ops.utc_now(),
                            message=args["--message"])
    for path in result.left:
        warn(ctx.err, f"{path} changed on the remote after its deletion was committed; "
                      "left in place for the next sync")
    c = result.commit
    if args["--json"]:
        write_json(ctx.out, {"generation": c.generation, "records": records_json(c.changes),
                             "trashed": list(result.trashed), "left": list(result.left)})
    else:
        n = len(c.changes)
        ctx.out.write(f"committed generation {c.generation} ({n} change{'s' * (n != 1)})\n")
    return 0
