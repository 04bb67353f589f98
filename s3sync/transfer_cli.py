"""What push, pull and sync share on the command line: options, prompts, summary."""

from __future__ import annotations

from libsync.workspace import Workspace

from .cli import EXIT_DIFFERENT, EXIT_OK, exit_code_for_failures
from .common import jobs_of
from .interact import Bars, Prompter, plan_table
from .porcelain import pushpull
from .render import human_size, warn, write_failures

OPTIONS = """Options:
  -n --dry-run            Show what would be done; change nothing on either side.
  -y --yes                Ask nothing (also when not on a terminal).
  --max-delete=<n>        Abort, changing nothing, if more than <n> files (or <n>%
                          of the files) would be deleted. Without a terminal or
                          with --yes the limit is 50% unless given.
  --on-conflict=<how>     ask, skip, keep-both, local or remote. Default: ask on
                          a terminal, skip otherwise.
  -j --jobs=<n>           Files transferred in parallel [default: 8].
  -m --message=<msg>      Say what changed, for 's3sync log' [default: ].
  -q --quiet              No progress bars.
  -h --help               Show this help.
"""


def run(verb: str, args, ctx) -> int:
    ws = Workspace.find(ctx.cwd)
    interactive = ctx.interactive and not args["--yes"]
    prompter = Prompter(ctx.stdin, ctx.err)
    on_conflict = args["--on-conflict"] or ("ask" if interactive else "skip")
    result = pushpull.run(
        ws, verb, paths=args["<path>"] or None, dry_run=args["--dry-run"],
        on_conflict=on_conflict, max_delete=args["--max-delete"], jobs=jobs_of(args),
        message=args["--message"], confirm=prompter.confirm if interactive else None,
        choose=prompter.choose if interactive else None,
        progress=Bars(ctx.err, enabled=not args["--quiet"] and ctx.err.isatty()),
        listing=ctx.listing)
    for w in result.warnings:
        warn(ctx.err, w)
    if result.dry_run:
        if result.plan or result.conflicts:
            ctx.out.write(plan_table(result.plan + result.conflicts) + "\n")
        ctx.out.write(f"dry run: {len(result.plan)} change"
                      f"{'s' * (len(result.plan) != 1)} planned, nothing done\n")
        write_failures(ctx.err, result.failed)
        if result.failed:
            return exit_code_for_failures(result.errors)
        return EXIT_DIFFERENT if result.conflicts else EXIT_OK
    for path, copy in result.kept:
        ctx.out.write(f"kept your version of {path} as {copy}\n")
    for a in result.conflicts:
        ctx.err.write(f"conflict: {a.path}: {a.conflict}\n")
    write_failures(ctx.err, result.failed)
    for path in result.declined_deletions:
        ctx.out.write(f"not deleted: {path}\n")
    ctx.out.write(summary(result) + "\n")
    if result.conflicts:
        ctx.err.write("hint: resolve conflicts with --on-conflict=keep-both, local or remote\n")
    if result.failed:
        return exit_code_for_failures(result.errors)
    return EXIT_DIFFERENT if result.conflicts else EXIT_OK


def summary(r) -> str:
    if not (r.plan or r.conflicts or r.failed):
        return f"already in step at generation {r.generation}"
    parts = []
    if r.uploaded or r.deleted_remote:
        parts.append(f"pushed {len(r.uploaded)} file{'s' * (len(r.uploaded) != 1)} "
                     f"({human_size(r.bytes_up)}), deleted {len(r.deleted_remote)} on the remote")
    if r.downloaded or r.deleted_local:
        parts.append(f"pulled {len(r.downloaded)} file{'s' * (len(r.downloaded) != 1)} "
                     f"({human_size(r.bytes_down)}), deleted {len(r.deleted_local)} here")
    if r.conflicts:
        parts.append(f"{len(r.conflicts)} conflict{'s' * (len(r.conflicts) != 1)} left")
    if r.failed:
        parts.append(f"{len(r.failed)} failed")
    if not parts:
        parts.append("nothing to transfer")
    return "; ".join(parts) + f"; generation {r.generation}; {r.seconds:.1f} s"
