"""Usage: s3sync remotes [--json] [-h]

List the kinds of remote s3sync can use, with the URL form of each.

Options:
  --json      Print one JSON document: {"remotes": [{"kind": ..., "form": ...}]}.
  -h --help   Show this help.

Output: one line a kind, "<kind> TAB <description>".
"""

from libsync.remotes import KINDS

from ..render import write_json, write_lines


def run(args, ctx) -> int:
    if args["--json"]:
        write_json(ctx.out, {"remotes": [{"kind": k, "form": v} for k, v in KINDS.items()]})
    else:
        write_lines(ctx.out, (f"{k}\t{v}" for k, v in KINDS.items()))
    return 0
