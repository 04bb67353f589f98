"""s3sync: keep a team's data folder in step through Amazon S3, git-style.

The Python API mirrors the commands and returns plain result objects::

    import s3sync
    s3sync.status("path/to/project")       # -> StatusResult
    s3sync.sync("path/to/project")       # -> SyncResult
    s3sync.run()                           # what `python -m s3sync sync` does

Nothing is printed and nothing is asked, except by ``run()``, which is the
command line.
"""

from __future__ import annotations

__version__ = "0.1.0"


def _workspace(path: str):
    from libsync.workspace import Workspace
    return Workspace.find(path)


def status(path: str = ".", paths=None):
    """What is out of step between the workspace at ``path`` and its remote."""
    from .porcelain import status as _status
    return _status(_workspace(path), paths)


def push(path: str = ".", **options):
    """Send local changes; options as in porcelain.pushpull.run (dry_run, on_conflict, ...)."""
    from .porcelain import push as _push
    return _push(_workspace(path), **options)


def pull(path: str = ".", **options):
    """Bring remote changes here."""
    from .porcelain import pull as _pull
    return _pull(_workspace(path), **options)


def sync(path: str = ".", **options):
    """Push and pull in one go; conflicts are skipped unless ``on_conflict`` says."""
    from .porcelain import sync as _sync
    return _sync(_workspace(path), **options)


def run(argv: list[str] | None = None) -> int:
    """Run ``s3sync sync`` as the command line would (s3synchrony's ``run()``)."""
    from .cli import main
    return main(["sync", *(argv or [])])


__all__ = ["pull", "push", "run", "status", "sync"]
