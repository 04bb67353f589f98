"""Usage: s3sync fetch-manifest [--json | -q] [-h]

Read the remote's manifest from the last generation this workspace saw
and keep it as the workspace's view of the remote. When nothing was
pushed since, this costs one request, whatever the number of files.

Options:
  --json       Print one JSON document: {"generation": N, "previous": N,
               "records": [...]}, tombstones included.
  -q --quiet   Print nothing.
  -h --help    Show this help.

Output: "generation <N>", and how many commits were new.
"""

from libsync import ops

from ..common import opened
from ..render import records_json, warn, write_json


def run(args, ctx) -> int:
    with opened(ctx) as (_, state, remote):
        result = ops.fetch(state, remote, on_warning=lambda m: warn(ctx.err, m))
    m = result.manifest
    if args["--json"]:
        write_json(ctx.out, {"generation": m.generation, "previous": result.previous,
                             "records": records_json(m.records[p] for p in sorted(m.records))})
    elif not args["--quiet"]:
        new = m.generation - result.previous
        ctx.out.write(f"generation {m.generation} ({new} new commit{'s' * (new != 1)})\n")
    return 0
