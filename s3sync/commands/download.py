"""Usage: s3sync download [--json] [--force] [-j <n>] [-h] [--] <path>...

Make local files what the remote manifest last fetched says: download
changed files (verified against their sha256, written atomically, with
their author's mtime), remove files the remote deleted, and record files
that already match. A local file with changes of its own is not replaced
unless --force is given.

Options:
  --json           Print one JSON document: {"records": [...], "failed": [...]}.
  --force          Replace local files even if they have changes of their own.
  -j --jobs=<n>    Files downloaded in parallel [default: 8].
  -h --help        Show this help.

Output: "downloaded TAB <path>", "deleted TAB <path>", or "recorded TAB
<path>" (already equal, only noted as agreed) for each path.
"""

from libsync import ops
from libsync.scan import scan

from ..cli import exit_code_for_failures
from ..common import jobs_of, opened
from ..render import records_json, write_failures, write_json, write_lines


def report(result, ctx) -> int:
    """One error line a failed file; the exit status of their kind if they share one."""
    write_failures(ctx.err, result.failed)
    return exit_code_for_failures(result.errors) if result.failed else 0


def run(args, ctx) -> int:
    ops.pathspecs(args["<path>"])  # a path outside the data folder: refused before any reading
    jobs = jobs_of(args)
    with opened(ctx, jobs=jobs) as (ws, state, remote):
        scanned = scan(ws.data_dir, state, ignore=ws.config.ignore)
        result = ops.download(state, remote, ws.data_dir, args["<path>"], scanned,
                              force=args["--force"], jobs=jobs)
    if args["--json"]:
        write_json(ctx.out, {"records": records_json(result.done),
                             "failed": [{"path": p, "error": e} for p, e in result.failed]})
    else:
        def verb(r):
            if r.deleted:
                return "deleted"
            local = scanned.files.get(r.path)
            return "recorded" if local and local.sha256 == r.sha256 else "downloaded"
        write_lines(ctx.out, (f"{verb(r)}\t{r.path}" for r in result.done))
    return report(result, ctx)
