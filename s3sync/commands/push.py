"""Usage: s3sync push [-n] [-y] [--max-delete=<n>] [--on-conflict=<how>] [-j <n>]
                   [-m <msg>] [-q] [-h] [--] [<path>...]

Send local changes to the remote: upload new and changed files and delete
remotely what was deleted here, then commit them as one generation. Local
files are never changed: a conflict resolved in the remote's favour waits
for pull or sync.

Interactive on a terminal: the plan is shown and confirmed, and deletions
are confirmed again, separately.

{options}"""

from ..transfer_cli import OPTIONS
from ..transfer_cli import run as _run

__doc__ = __doc__.format(options=OPTIONS)


def run(args, ctx) -> int:
    return _run("push", args, ctx)
