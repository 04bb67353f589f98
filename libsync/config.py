"""``s3sync.json`` and the names a workspace keeps on disk.

``s3sync.json`` is shared through git, so it holds no secret: credentials
come from boto3's own chain. Unknown keys are refused, since a misspelt
``endpoint_url`` would otherwise send a team's data somewhere unintended.

Light to import (json and dataclasses only): the command line reads the
configuration to find the data folder and start its listing (see
``listing``) before it loads the modules a command needs.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields

from .errors import ConfigError

CONFIG_FILE = "s3sync.json"
# Names reserved inside the data folder: s3sync's state lives there.
STATE_DIR = ".s3sync"


@dataclass(frozen=True)
class Config:
    remote: str
    data_dir: str = "Data"
    endpoint_url: str | None = None
    profile: str | None = None
    region: str | None = None
    user: str | None = None
    ignore: tuple[str, ...] = field(default_factory=tuple)
    sse: str | None = None
    sse_kms_key_id: str | None = None

    def to_json(self) -> str:
        doc = {f.name: getattr(self, f.name) for f in fields(self)}
        doc["ignore"] = list(self.ignore)
        return json.dumps(doc, indent=2) + "\n"


def parse_config(text: str, *, where: str = CONFIG_FILE) -> Config:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{where} is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"{where} must hold a JSON object")
    known = {f.name for f in fields(Config)}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} "
                          f"(known: {', '.join(sorted(known))})")
    if not isinstance(doc.get("remote"), str) or not doc["remote"]:
        raise ConfigError(f"{where}: \"remote\" is required, e.g. \"s3://bucket/prefix\"")
    for key in known - {"ignore"}:
        if doc.get(key) is not None and not isinstance(doc[key], str):
            raise ConfigError(f"{where}: \"{key}\" must be a string")
    ignore = doc.get("ignore") or []
    if not isinstance(ignore, list) or not all(isinstance(i, str) for i in ignore):
        raise ConfigError(f"{where}: \"ignore\" must be a list of patterns")
    if doc.get("sse") not in (None, "AES256", "aws:kms", "aws:kms:dsse"):
        raise ConfigError(f"{where}: \"sse\" must be AES256, aws:kms or aws:kms:dsse")
    doc["ignore"] = tuple(ignore)
    if doc.get("data_dir") is None:
        doc.pop("data_dir", None)
    return Config(**doc)


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


def read_config(start: str) -> tuple[str, Config]:
    """The workspace root at or above ``start``, and its parsed configuration."""
    root = find_root(start)
    path = os.path.join(root, CONFIG_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text") from exc
    return root, parse_config(text, where=path)


def data_dir_of(root: str, config: Config) -> str:
    return os.path.join(root, config.data_dir)
