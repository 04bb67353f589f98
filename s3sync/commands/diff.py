"""Usage: s3sync diff [--json | -z] [--name-only] [--only=<kinds>] [--exit-code] [-h]
                   [--] [<path>...]

Reconcile the local files, the base (what this workspace last agreed on
with the remote) and the remote manifest last fetched, into a plan. It
does not talk to the remote: run 's3sync fetch-manifest' first.

Actions: upload, delete-remote, download, delete-local, record (both
sides made the same change), conflict.

Options:
  --json            Print one JSON document: {"generation": N, "actions": [...]}.
  -z                Separate lines with NUL instead of newline.
  --name-only       Print only the paths.
  --only=<kinds>    Comma-separated actions to show, e.g. upload,delete-remote.
  --exit-code       Exit with status 1 if the plan is not empty.
  -h --help         Show this help.

Output: one line an action, "<action> TAB <path>".
"""

from libsync import diff, ops
from libsync.errors import UsageError
from libsync.scan import scan

from ..common import opened
from ..render import warn, write_json, write_lines


def action_json(a: diff.Action) -> dict:
    def sha(rec):
        return None if rec is None or rec.deleted else rec.sha256
    return {"action": a.kind, "path": a.path, "local": a.local, "base": sha(a.base),
            "remote": sha(a.remote), "conflict": a.conflict}


def kinds_of(value: str | None) -> frozenset[str] | None:
    if not value:
        return None
    kinds = frozenset(k.strip() for k in value.split(",") if k.strip())
    unknown = sorted(kinds - set(diff.KINDS))
    if unknown:
        raise UsageError(f"unknown action {unknown[0]!r}; actions: {', '.join(diff.KINDS)}")
    return kinds


def run(args, ctx) -> int:
    only = kinds_of(args["--only"])
    ops.pathspecs(args["<path>"])  # a path outside the data folder: refused before any reading
    with opened(ctx, remote=False) as (ws, state, _):
        scanned = scan(ws.data_dir, state, ignore=ws.config.ignore)
        plan = ops.plan(state, scanned, args["<path>"] or None)
        generation = state.remote_head()[0]
    for w in scanned.warnings:
        warn(ctx.err, w)
    if only is not None:
        plan = tuple(a for a in plan if a.kind in only)
    if args["--json"]:
        write_json(ctx.out, {"generation": generation,
                             "actions": [action_json(a) for a in plan]})
    elif args["--name-only"]:
        write_lines(ctx.out, (a.path for a in plan), nul=args["-z"])
    else:
        write_lines(ctx.out, (f"{a.kind}\t{a.path}" for a in plan), nul=args["-z"])
    return 1 if args["--exit-code"] and plan else 0
