"""Usage: s3sync pull [-n] [-y] [--max-delete=<n>] [--on-conflict=<how>] [-j <n>]
                   [-m <msg>] [-q] [-h] [--] [<path>...]

Bring the remote's changes here: download new and changed files and delete
here what was deleted on the remote. The remote is not changed (except
that a local version given up to resolve a conflict is kept in its trash).

Interactive on a terminal: the plan is shown and confirmed, and deletions
are confirmed again, separately.

{options}"""

from ..transfer_cli import OPTIONS
from ..transfer_cli import run as _run

__doc__ = __doc__.format(options=OPTIONS)


def run(args, ctx) -> int:
    return _run("pull", args, ctx)
