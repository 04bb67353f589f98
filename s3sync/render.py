"""Output formats: tables for people, stable JSON and NUL-separated lists for scripts.

Machine formats are promised to scripts (see s3sync-format(5), MACHINE
OUTPUT): fields are only ever added, never renamed or removed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from itertools import islice
from typing import TextIO

from libsync.manifest import Record


def write_json(out: TextIO, doc) -> None:
    out.write(json.dumps(doc, sort_keys=True, ensure_ascii=False) + "\n")


def write_lines(out: TextIO, lines: Iterable[str], *, nul: bool = False) -> None:
    end = "\0" if nul else "\n"
    lines = iter(lines)
    while chunk := list(islice(lines, 4096)):  # one write a few thousand lines
        out.write(end.join(chunk) + end)


def records_json(records: Iterable[Record]) -> list[dict]:
    return [r.to_dict() for r in records]


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def write_failures(err: TextIO, failed) -> None:
    """One "error:" line a failed path; messages that name the path keep it once."""
    for path, error in failed:
        err.write(f"error: {error}\n" if error.startswith(path) else
                  f"error: {path}: {error}\n")


def warn(err: TextIO, message: str) -> None:
    err.write(f"warning: {message}\n")
