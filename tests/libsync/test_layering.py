"""libsync is plumbing: it never imports the porcelain or its CLI libraries,
and only the S3 remote (s3.py, s3lane.py) loads boto3. Each check runs in a fresh interpreter."""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys

import pytest

import libsync

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODULES = sorted(m.name for m in pkgutil.walk_packages(libsync.__path__, "libsync."))
PORCELAIN = ("s3sync", "docopt", "tabulate", "tqdm")
AWS = ("boto3", "botocore", "s3transfer")


def loaded_after_import(*modules: str, then: str = "") -> set[str]:
    """Top-level names in sys.modules after importing ``modules`` afresh and
    running the statements ``then``."""
    return {n.split(".")[0] for n in loaded_modules_after(*modules, then=then)}


def loaded_modules_after(*modules: str, then: str = "") -> set[str]:
    """Every name in sys.modules after importing ``modules`` afresh and
    running the statements ``then``."""
    code = ("import importlib, json, sys\n"
            f"for m in {list(modules)!r}: importlib.import_module(m)\n"
            f"{then}\n"
            "print(json.dumps(sorted(sys.modules)))")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSTARTUP"}
    env.update(PYTHONPATH=REPO, AWS_ACCESS_KEY_ID="k", AWS_SECRET_ACCESS_KEY="s",
               AWS_DEFAULT_REGION="us-east-1")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env,
                         capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def test_every_module_is_found():
    assert {"libsync.manifest", "libsync.scan", "libsync.diff", "libsync.journal",
            "libsync.transfer", "libsync.state", "libsync.ops", "libsync.workspace",
            "libsync.errors", "libsync.layout", "libsync.remotes.base",
            "libsync.remotes.local", "libsync.remotes.s3"} <= set(MODULES)


def test_importing_all_of_libsync_leaves_the_porcelain_alone():
    loaded = loaded_after_import(*MODULES)
    assert "libsync" in loaded
    assert loaded.isdisjoint(PORCELAIN), sorted(loaded & set(PORCELAIN))


S3_REMOTE = ("libsync.remotes.s3", "libsync.remotes.s3lane")


@pytest.mark.parametrize("module", [m for m in MODULES if m not in S3_REMOTE])
def test_only_the_s3_remote_loads_boto3(module):
    loaded = loaded_after_import(module)
    assert loaded.isdisjoint(AWS), sorted(loaded & set(AWS))


def test_the_check_would_see_botocore():
    # Guards the test above: the S3 remote does load it, and the check notices.
    assert "botocore" in loaded_after_import("libsync.remotes.s3")


def test_the_s3_remote_leaves_boto3_and_s3transfer_alone():
    # botocore's session gives the same client and credential chain; boto3's
    # resources and s3transfer cost 40 ms of every S3 command's start-up.
    loaded = loaded_after_import(
        "libsync.remotes.s3",
        then="r = sys.modules['libsync.remotes.s3'].S3Remote("
             "'s3://bucket/p', endpoint_url='http://127.0.0.1:9')\n"
             "assert r.client.meta.service_model.service_name == 's3'")
    assert "botocore" in loaded
    assert loaded.isdisjoint({"boto3", "s3transfer"}), sorted(loaded & {"boto3", "s3transfer"})


def test_what_the_program_loads_to_start_find_first_is_light(tmp_path):
    """The program starts find before it loads the command line: finding the
    data folder and starting the listing must not load docopt, the command
    line, the configuration's dataclass (and inspect), the scan's, the
    state's or the remote's modules, or starting early gains little."""
    (tmp_path / "Data" / ".s3sync").mkdir(parents=True)
    (tmp_path / "s3sync.json").write_text('{"remote": "file:///nowhere"}')
    start = ("listing = sys.modules['s3sync.program'].early_listing("
             f"['scan'], {str(tmp_path)!r})\n"
             "assert listing is not None and listing.data_dir.endswith('Data')\n"
             "listing.close()")
    modules = loaded_modules_after("s3sync.program", then=start)
    assert {m.split(".")[0] for m in modules}.isdisjoint(
        {"docopt", "typing", "dataclasses", "inspect", "shutil", "tempfile", "pathspec",
         "sqlite3", *AWS})
    assert {m for m in modules if m.startswith(("libsync.", "s3sync."))} == {
        "libsync.paths", "libsync.listing", "libsync.errors", "s3sync.program"}


@pytest.mark.skipif(__import__("shutil").which("find") is None, reason="needs find")
def test_a_scan_that_gives_its_snapshot_back_loads_no_pathspec(tmp_path):
    """The ignore rules are compiled when first matched (ScanResult.rules):
    such a scan matches nothing, and pathspec takes 25 ms to load."""
    data = tmp_path / "Data"
    (data / ".s3sync").mkdir(parents=True)
    for name in ("a.csv", "b.tmp"):
        (data / name).write_text(name)
        os.utime(data / name, (1_600_000_000, 1_600_000_000))  # not racily clean
    scan = ("from libsync.scan import scan\n"
            "from libsync.state import State\n"
            f"with State({str(data)!r}) as state:\n"
            f"    result = scan({str(data)!r}, state, ignore=['*.tmp'])\n"
            "print(result.source, sorted(result.files), file=sys.stderr)\n")
    loaded_after_import("libsync.scan", then=scan)  # the walk: stores the snapshot
    check = ("loaded = 'pathspec' in sys.modules\n"
             "assert result.ignored('b.tmp') and not result.ignored('a.csv')\n"
             "assert (result.source, loaded) == ('snapshot', False), (result.source, loaded)\n")
    assert "pathspec" in loaded_after_import("libsync.scan", then=scan + check)
