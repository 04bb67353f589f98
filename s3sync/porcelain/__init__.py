"""The porcelain verbs: plain functions that compose libsync and return plain data.

Nothing here prints; the command modules in ``s3sync.commands`` render
the results, and the Python API (``import s3sync``) calls these directly.
"""

from .history import log, restore
from .init import init
from .pushpull import pull, push, sync
from .reset import reset
from .status import status

__all__ = ["init", "log", "pull", "push", "reset", "restore", "status", "sync"]
