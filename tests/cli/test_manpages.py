"""The manual pages agree with the code: usage, options, exit codes, packaging.

Each command's SYNOPSIS is its docopt usage word for word, every option
of its Options section is documented, s3sync(1) lists every exit status
that s3sync/cli.py defines, every page renders without a groff warning,
and setup.cfg installs exactly the pages there are.
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from s3sync import cli

ROOT = Path(__file__).resolve().parents[2]
MAN = ROOT / "man"
PAGES = sorted(p for p in MAN.glob("*.[1-9]")) if MAN.is_dir() else []

# Roff escapes that stand for text; font escapes (\fB ...) and the names of
# font macros (.B, .BR ...) are dropped.
_TEXT_ESCAPES = {r"\-": "-", r"\e": "\\", r"\&": "", r"\%": "", r"\ ": " ", r"\~": " ",
                 r"\(aq": "'", r"\(dq": '"', r"\(lq": '"', r"\(rq": '"'}
_FONT = re.compile(r"\\f(\[[^\]]*\]|\(..|.)")
_FONT_MACRO = re.compile(r"^\.(?:B|I|BR|BI|IB|IR|RB|RI)(?:\s+|$)")


def roff_text(lines: list[str], *, font_macros: bool = False) -> str:
    """The words of roff source lines, escapes undone.

    Macro lines are dropped; with ``font_macros``, the arguments of the
    font macros (.B, .BR, ...) are kept as text.
    """
    words = []
    for line in lines:
        if font_macros and _FONT_MACRO.match(line):
            line = _FONT_MACRO.sub("", line).replace('"', "")
        elif line.startswith((".", "'")):
            continue
        line = _FONT.sub("", line)
        for escape, text in _TEXT_ESCAPES.items():
            line = line.replace(escape, text)
        words.append(line)
    return " ".join(" ".join(words).split())


def sections(page: Path) -> dict[str, list[str]]:
    """The source lines of each .SH section, by its title."""
    out: dict[str, list[str]] = {}
    current = None
    for line in page.read_text(encoding="utf-8").splitlines():
        m = re.match(r'\.SH\s+"?([^"]*)"?\s*$', line)
        if m:
            current = m.group(1).strip()
            out[current] = []
        elif current is not None:
            out[current].append(line)
    return out


def usage_of(doc: str) -> str:
    """docopt's usage: the text after "Usage:" up to the first blank line."""
    text = doc.split("Usage:", 1)[1]
    text = re.split(r"\n\s*\n", text, maxsplit=1)[0]
    return " ".join(text.split())


def options_of(doc: str) -> list[str]:
    """Every option name (-x, --long) of the docopt Options section."""
    m = re.search(r"^Options:\s*\n(.*?)(?:\n\s*\n|\Z)", doc, re.S | re.M)
    assert m, "no Options section"
    names = []
    for line in m.group(1).splitlines():
        line = line.strip()
        if not line.startswith("-"):
            continue  # a wrapped description
        spec = re.split(r"\s{2,}", line, maxsplit=1)[0]
        names += re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", spec)
    return names


def page_of(name: str) -> Path:
    return MAN / f"s3sync-{name}.1"


COMMAND_NAMES = sorted(cli.COMMANDS)


@pytest.mark.parametrize("name", COMMAND_NAMES)
def test_command_synopsis_is_the_docopt_usage(name):
    page = page_of(name)
    assert page.is_file(), f"{page.relative_to(ROOT)} is missing"
    synopsis = sections(page).get("SYNOPSIS")
    assert synopsis is not None, f"{page.name} has no SYNOPSIS section"
    assert roff_text(synopsis) == usage_of(cli.command_module(name).__doc__)


def test_top_level_synopsis_is_the_docopt_usage():
    synopsis = sections(MAN / "s3sync.1").get("SYNOPSIS")
    assert synopsis is not None, "s3sync.1 has no SYNOPSIS section"
    assert roff_text(synopsis) == usage_of(cli.__doc__)


def test_no_page_for_a_command_that_does_not_exist():
    pages = {p.name[len("s3sync-"):-len(".1")] for p in MAN.glob("s3sync-*.1")}
    assert pages - set(cli.COMMANDS) == set()


@pytest.mark.parametrize("name", [None, *COMMAND_NAMES], ids=lambda n: n or "s3sync")
def test_every_option_is_documented(name):
    page = MAN / "s3sync.1" if name is None else page_of(name)
    doc = cli.__doc__ if name is None else cli.command_module(name).__doc__
    options = sections(page).get("OPTIONS")
    assert options is not None, f"{page.name} has no OPTIONS section"
    text = roff_text(options, font_macros=True)
    missing = [o for o in options_of(doc)
               if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", text)]
    assert missing == [], f"{page.name}: OPTIONS does not mention {missing}"


def test_every_exit_status_is_documented():
    codes = {v for k, v in vars(cli).items() if k.startswith("EXIT_") and isinstance(v, int)}
    lines = sections(MAN / "s3sync.1").get("EXIT STATUS")
    assert lines is not None, "s3sync.1 has no EXIT STATUS section"
    # The tag line after each .TP names one status.
    tags = {roff_text([lines[i + 1]], font_macros=True)
            for i, line in enumerate(lines[:-1]) if line.startswith(".TP")}
    documented = {int(t) for t in tags if t.isdigit()}
    assert codes - documented == set(), "undocumented exit statuses"
    assert documented - codes == set(), "documented statuses that s3sync/cli.py lacks"


@pytest.mark.skipif(shutil.which("groff") is None,
                    reason="groff is not installed, so the pages cannot be rendered")
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_renders_without_warnings(page):
    done = subprocess.run(["groff", "-man", "-ww", "-z", str(page)],
                          capture_output=True, text=True, timeout=60)
    assert done.stderr == ""
    assert done.returncode == 0


def test_setup_cfg_installs_exactly_the_pages():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg", encoding="utf-8")
    listed = set()
    for value in cfg["options.data_files"].values():
        listed |= {f.strip() for f in re.split(r"[,\n]", value) if f.strip()}
    listed = {f for f in listed if f.startswith("man/")}
    present = {f"man/{p.name}" for p in PAGES}
    assert listed - present == set(), "setup.cfg lists pages that do not exist"
    assert present - listed == set(), "pages that setup.cfg does not install"


def test_pages_go_to_the_man_section_they_name():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg", encoding="utf-8")
    for target, value in cfg["options.data_files"].items():
        m = re.fullmatch(r"share/man/man(\d)", target)
        if not m:
            continue
        for f in (f.strip() for f in re.split(r"[,\n]", value) if f.strip()):
            assert f.endswith("." + m.group(1)), f"{f} installed under {target}"


def test_s3sync_help_shows_the_manual_page_of_a_command():
    import io

    from s3sync.cli import Context, main
    out, err = io.StringIO(), io.StringIO()
    assert main(["help", "push"], Context(out=out, err=err)) == 0
    text = out.getvalue()
    assert "NAME" in text and "s3sync-push" in text and "--on-conflict" in text.replace("‐", "-")
    out, err = io.StringIO(), io.StringIO()
    assert main(["help", "nope"], Context(out=out, err=err)) == 2
    assert err.getvalue() == "s3sync: no manual page for 'nope'\n"
