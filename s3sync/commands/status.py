"""Usage: s3sync status [--short | --porcelain [-z] | --json] [--exit-code] [--no-fetch] [-h]
                     [--] [<path>...]

Show what would be pushed, pulled or deleted on either side, and the
conflicts. The remote's new commits are read first (one request when
there are none).

Options:
  --short        One line a path: two letters and the path (see OUTPUT).
  --porcelain    As --short, in a format kept stable for scripts.
  -z             With --porcelain, end each entry with NUL instead of newline.
  --json         One JSON document: {"generation": N, "remote": URL, "changes": [...]}.
  --exit-code    Exit with status 1 if anything is out of step.
  --no-fetch     Compare with the remote as last fetched; no network.
  -h --help      Show this help.

Output of --short and --porcelain: "XY PATH", X the local side and Y the
remote side against the base: A added, M modified, D deleted, space
unchanged. Conflicts are written as git writes unmerged paths: AA (both
added), UU (both modified), DU (deleted here, modified there), UD
(modified here, deleted there).
"""

from libsync.diff import CONFLICT
from libsync.workspace import Workspace

from .. import porcelain
from ..interact import describe, plan_table
from ..porcelain.status import change_codes
from ..render import warn, write_json, write_lines
from .diff import action_json

_UNMERGED = {("A", "A"): "AA", ("M", "M"): "UU", ("D", "M"): "DU", ("M", "D"): "UD"}


def codes(a) -> str:
    x, y = change_codes(a)
    if a.kind == CONFLICT:
        return _UNMERGED.get((x, y), "UU")
    return x + y


def run(args, ctx) -> int:
    ws = Workspace.find(ctx.cwd)
    result = porcelain.status(ws, args["<path>"] or None, fetch=not args["--no-fetch"],
                              listing=ctx.listing)
    for w in result.warnings:
        warn(ctx.err, w)
    actions = result.actions
    if args["--json"]:
        changes = []
        for a in actions:
            doc = action_json(a)
            doc["codes"] = codes(a)
            doc["description"] = describe(a)
            doc["remote_author"] = a.remote.author if a.remote is not None else None
            doc["remote_time"] = a.remote.time if a.remote is not None else None
            changes.append(doc)
        write_json(ctx.out, {"generation": result.generation, "remote": ws.config.remote,
                             "changes": changes})
    elif args["--short"] or args["--porcelain"]:
        write_lines(ctx.out, (f"{codes(a)} {a.path}" for a in actions),
                    nul=bool(args["-z"]))
    else:
        ctx.out.write(f"remote {ws.config.remote}, generation {result.generation}\n")
        if actions:
            ctx.out.write(plan_table(actions) + "\n")
        else:
            ctx.out.write("everything is in step\n")
    return 1 if args["--exit-code"] and actions else 0
