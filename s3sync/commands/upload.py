"""Usage: s3sync upload [--json] [-j <n>] [-h] [--] <path>...

Upload files of the data folder and stage them for 's3sync commit'. Each
write is conditional on the remote version last fetched: a new path is
created only if absent, a changed one replaced only if it is still the
version fetched, and that version is first copied to the trash. Paths are
relative to the data folder, as 's3sync diff' prints them.

Options:
  --json           Print one JSON document: {"records": [...], "failed": [...]}.
  -j --jobs=<n>    Files uploaded in parallel [default: 8].
  -h --help        Show this help.

Output: "staged TAB <path>" for each file uploaded.
"""

from libsync import ops
from libsync.errors import UsageError
from libsync.manifest import check_path
from libsync.scan import scan

from ..common import jobs_of, opened
from ..render import records_json, write_json, write_lines
from .download import report


def run(args, ctx) -> int:
    ops.pathspecs(args["<path>"])  # a path outside the data folder: refused before any reading
    jobs = jobs_of(args)
    with opened(ctx, jobs=jobs) as (ws, state, remote):
        scanned = scan(ws.data_dir, state, ignore=ws.config.ignore)
        files = []
        for p in args["<path>"]:
            if check_path(p) not in scanned.files:
                raise UsageError(f"{p} is not a file of the data folder (or it is ignored)")
            files.append(scanned.files[p])
        result = ops.upload(state, remote, ws.data_dir, files, author=ws.author(ctx.env),
                            time=ops.utc_now(), jobs=jobs)
    if args["--json"]:
        write_json(ctx.out, {"records": records_json(result.done),
                             "failed": [{"path": p, "error": e} for p, e in result.failed]})
    else:
        write_lines(ctx.out, (f"staged\t{r.path}" for r in result.done))
    return report(result, ctx)
