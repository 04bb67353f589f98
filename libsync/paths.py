"""Where a workspace keeps its files: the names it reserves on disk, and
the search for its root.

Light to import (os and json): the ``s3sync`` program reads it to start
find's listing of the data folder before it loads anything else, the
configuration's dataclass (and the ``inspect`` module under it, 8 ms)
included.
"""

from __future__ import annotations

import json
import os

from .errors import ConfigError

CONFIG_FILE = "s3sync.json"
# Names reserved inside the data folder: s3sync's state lives there.
STATE_DIR = ".s3sync"
DEFAULT_DATA_DIR = "Data"


def find_root(start: str) -> str:
    """The nearest folder at or above ``start`` that holds ``s3sync.json``."""
    here = os.path.abspath(start)
    while True:
        if os.path.isfile(os.path.join(here, CONFIG_FILE)):
            return here
        parent = os.path.dirname(here)
        if parent == here:
            raise ConfigError(f"no {CONFIG_FILE} in {os.path.abspath(start)} or any "
                              "parent folder; run 's3sync init <remote>' first")
        here = parent


def data_dir_near(start: str) -> str | None:
    """The data folder of the workspace at or above ``start``, as its
    ``s3sync.json`` names it, or None if that cannot be read at a glance.

    Only a guess, to start a listing early: ``config.read_config`` checks
    the whole file, and a listing of another folder is never used.
    """
    try:
        root = find_root(start)
        with open(os.path.join(root, CONFIG_FILE), encoding="utf-8") as f:
            doc = json.load(f)
    except (ConfigError, OSError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    name = doc.get("data_dir")
    if name is None:
        name = DEFAULT_DATA_DIR
    return os.path.join(root, name) if isinstance(name, str) else None
