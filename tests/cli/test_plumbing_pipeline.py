"""Porcelain is plumbing composed: a push and a pull done by a shell script.

Two workspaces share one remote (a folder, and a bucket on the moto
server over HTTP); the script uses nothing but the plumbing commands, as a
user's script would, through the real `s3sync` executable.
"""

import os
import subprocess
import sys

PUSH = """
set -eu
s3sync fetch-manifest
s3sync diff --only=upload --name-only -z | xargs -0 -r s3sync upload
s3sync diff --only=delete-remote --name-only -z | xargs -0 -r s3sync tombstone
s3sync commit -m "$1"
"""

PULL = """
set -eu
s3sync fetch-manifest
s3sync diff --only=download,delete-local,record --name-only -z | xargs -0 -r s3sync download
"""

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def shell(script: str, cwd, tmp_path, *args: str) -> str:
    bin_dir = tmp_path / "bin"
    if not bin_dir.exists():
        bin_dir.mkdir()
        wrapper = bin_dir / "s3sync"
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m s3sync "$@"\n')
        wrapper.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run(["sh", "-c", script, "script", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_plumbing_push_and_pull_round_trip(team, remote, tmp_path):
    ann, bob = team("ann"), team("bob")
    ann.write("raw/a.csv", "a\n")
    ann.write("raw/b c.csv", "with a space\n")
    ann.write("notes/ünïcode.txt", "nfc\n")
    out = shell(PUSH, ann.root, tmp_path, "first")
    assert "committed generation 1 (3 changes)" in out
    assert remote.data() == {"raw/a.csv": b"a\n", "raw/b c.csv": b"with a space\n",
                             "notes/ünïcode.txt": b"nfc\n"}

    shell(PULL, bob.root, tmp_path)
    assert bob.files() == ann.files()

    # A change and a deletion go the same way, and the old versions go to the trash.
    bob.write("raw/a.csv", "a changed\n")
    (bob.data / "raw" / "b c.csv").unlink()
    out = shell(PUSH, bob.root, tmp_path, "second")
    assert "committed generation 2 (2 changes)" in out
    keys = remote.keys()
    assert keys["raw/a.csv"] == b"a changed\n"
    assert "raw/b c.csv" not in keys
    trashed = {k.split("/")[-2]: v for k, v in keys.items() if k.startswith(".s3sync/trash/")}
    assert trashed == {"a.csv": b"a\n", "b c.csv": b"with a space\n"}

    shell(PULL, ann.root, tmp_path)
    assert ann.files() == bob.files() == {"raw/a.csv": b"a changed\n",
                                          "notes/ünïcode.txt": b"nfc\n"}
    # Both now agree with the remote: the plumbing diff is empty.
    assert ann.ok("diff").out == ""
    assert ann.ok("status", "--porcelain").out == ""
