"""Usage: s3sync scan [--json | -z] [-j <n>] [-h]

List every file of the data folder with its sha256 and size, applying the
ignore rules. Only files whose stat changed since the last scan are read.

Options:
  --json             Print one JSON document: {"files": [...], "warnings": [...]}.
  -z                 Separate lines with NUL instead of newline.
  -j --jobs=<n>      Files hashed in parallel [default: 4].
  -h --help          Show this help.

Output: one line a file, "<sha256> TAB <size> TAB <path>".
"""

from libsync.listing import listing_ahead
from libsync.scan import scan

from ..common import jobs_of, opened
from ..render import warn, write_json, write_lines


def run(args, ctx) -> int:
    with opened(ctx, remote=False) as (ws, state, _), \
            listing_ahead(ws.data_dir, ctx.listing) as lister:
        result = scan(ws.data_dir, state, ignore=ws.config.ignore, jobs=jobs_of(args),
                      lister=lister)
    ctx.keep(result)  # not freed one by one on leaving (15 ms at 100,000 files)
    if args["--json"]:
        write_json(ctx.out, {"files": [{"path": f.path, "size": f.size, "sha256": f.sha256,
                                        "mtime_ns": f.mtime_ns}
                                       for f in result.files.values()],
                             "warnings": list(result.warnings)})
        return 0
    for w in result.warnings:
        warn(ctx.err, w)
    # Unpacked rather than read by field name: 100,000 lines in half the time.
    write_lines(ctx.out, (f"{sha}\t{size}\t{path}" for path, size, _, sha
                          in result.files.values()), nul=args["-z"])
    return 0
