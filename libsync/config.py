"""``s3sync.json``, the workspace's configuration.

``s3sync.json`` is shared through git, so it holds no secret: credentials
come from boto3's own chain. Unknown keys are refused, since a misspelt
``endpoint_url`` would otherwise send a team's data somewhere unintended.

The names on disk and the search for the workspace's root are in
``paths``, which the program reads before anything else loads.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields

from .errors import ConfigError
from .paths import CONFIG_FILE, DEFAULT_DATA_DIR, find_root


@dataclass(frozen=True)
class Config:
    remote: str
    data_dir: str = DEFAULT_DATA_DIR
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
