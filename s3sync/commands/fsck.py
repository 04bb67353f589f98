"""Usage: s3sync fsck [--json] [--verify] [--repair] [-h]

Check the remote against its manifest: every entry's object exists with
its recorded etag and sha256; objects that no commit names (orphans, from
a push that died before committing); committed deletions whose move to
the trash was not finished; versions missing from the trash; objects
changed behind s3sync's back (the console, 'aws s3 cp').

With --repair, what is safe is mended: orphans and unfinished deletions
are moved to the trash, a missing object is copied back from the trash,
and an object changed outside s3sync is adopted as the current version
in one new commit. Nothing is deleted that is not first in the trash.
Objects that the ignore rules cover and no commit names (such as a
legacy .S3/ folder) are not s3sync's, and are left alone.

Options:
  --json      Print one JSON document: {"generation": N, "checked": N,
              "problems": [...], "repaired": [...]}.
  --verify    Read and hash every object rather than trust stored checksums.
  --repair    Mend what can be mended safely.
  -h --help   Show this help.

Output: one line a problem, "<kind> TAB <path> TAB <detail>"; kinds are
missing, changed, corrupt, orphan, untrashed and trash-gone. Exit status 1
if problems remain.
"""

from libsync import fsck, ops
from libsync.scan import ignore_rules

from ..common import opened
from ..render import warn, write_json, write_lines


def run(args, ctx) -> int:
    with opened(ctx) as (ws, state, remote):
        manifest = ops.fetch(state, remote, on_warning=lambda m: warn(ctx.err, m)).manifest
        rules = ignore_rules(ws.data_dir, ws.config.ignore)
        result = fsck.check(remote, manifest, verify=args["--verify"],
                            ignored=rules.match_file)
        if args["--repair"] and result.problems:
            result = fsck.repair(
                remote, manifest, result, author=ws.author(ctx.env), time=ops.utc_now(),
                on_commit=lambda m, changed: state.save_remote(m, changed=changed))
    left = [p for p in result.problems if p not in result.repaired]
    if args["--json"]:
        def doc(p):
            return {"kind": p.kind, "path": p.path, "detail": p.detail}
        write_json(ctx.out, {"generation": result.generation, "checked": result.checked,
                             "problems": [doc(p) for p in result.problems],
                             "repaired": [doc(p) for p in result.repaired]})
    else:
        write_lines(ctx.out, (f"{p.kind}\t{p.path}\t{p.detail}" for p in left))
        for p in result.repaired:
            ctx.out.write(f"repaired\t{p.path}\t{fsck.REPAIRABLE[p.kind]}\n")
    return 1 if left else 0
