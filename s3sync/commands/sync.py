"""Usage: s3sync sync [-n] [-y] [--max-delete=<n>] [--on-conflict=<how>] [-j <n>]
                   [-m <msg>] [-q] [-h] [--] [<path>...]

Push local changes and pull remote ones in one go. Files changed on both
sides are conflicts, resolved by --on-conflict; no version is ever lost.

Interactive on a terminal: the plan is shown and confirmed, and deletions
are confirmed again, separately.

{options}"""

from ..transfer_cli import OPTIONS
from ..transfer_cli import run as _run

__doc__ = __doc__.format(options=OPTIONS)


def run(args, ctx) -> int:
    return _run("sync", args, ctx)
