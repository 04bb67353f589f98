"""``s3sync help``: show a command's manual page, or the usage if man is missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

# A source checkout keeps the pages in man/; an install puts them under
# <prefix>/share/man/man1 (setup.cfg data_files).
MAN_DIRS = (os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "man"),
            os.path.join(sys.prefix, "share", "man", "man1"))


def page_for(command: str | None) -> str:
    name = "s3sync" if not command else f"s3sync-{command}"
    for folder in MAN_DIRS:
        page = os.path.join(folder, f"{name}.1")
        if os.path.exists(page):
            return page
    return os.path.join(MAN_DIRS[0], f"{name}.1")


def show(command: str | None, ctx) -> int:
    from .cli import COMMANDS, EXIT_USAGE, command_module

    if command and command not in COMMANDS:
        ctx.err.write(f"s3sync: no manual page for '{command}'\n")
        return EXIT_USAGE
    page = page_for(command)
    if os.path.exists(page) and shutil.which("man") and ctx.out.isatty():
        return subprocess.call(["man", "-l", page])
    if os.path.exists(page) and shutil.which("groff"):
        text = subprocess.run(["groff", "-man", "-Tutf8", "-P-c", "-P-b", "-P-u", page],
                              capture_output=True, text=True).stdout
        if text:
            ctx.out.write(text)
            return 0
    from . import cli
    doc = command_module(command).__doc__ if command else cli.__doc__
    ctx.out.write(doc.strip() + "\n")
    return 0
