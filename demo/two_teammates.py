"""Two teammates keep one data folder in step through a local S3 server.

Starts the moto S3 server on 127.0.0.1, makes a bucket, and walks ann and
bob through a morning with s3sync: the first push, a pull, edits on both
sides, a conflict kept as two files, a deletion, and a final sync after
which both folders are identical. Every step is the real `s3sync` command
line, printed before it runs.
"""

from __future__ import annotations

import filecmp
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                             "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the moto server did not start")


def step(who: str, root: str, *args: str, env: dict, expect=(0,)) -> None:
    print(f"\n[{who}] $ s3sync {shlex.join(args)}", flush=True)
    code = subprocess.call([sys.executable, "-m", "s3sync", *args], cwd=root,
                           env=dict(env, S3SYNC_USER=who))
    if code not in expect:
        raise SystemExit(f"s3sync {args[0]} exited with {code}")


def write(root: str, path: str, text: str) -> None:
    full = os.path.join(root, "Data", path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w") as f:
        f.write(text)
    print(f"\n[{os.path.basename(root)}] edits Data/{path}")


def same_tree(a: str, b: str) -> bool:
    cmp = filecmp.dircmp(a, b, ignore=[".s3sync"])
    if cmp.left_only or cmp.right_only or cmp.diff_files or cmp.funny_files:
        return False
    return all(same_tree(os.path.join(a, d), os.path.join(b, d)) for d in cmp.common_dirs)


def main() -> int:
    port = free_port()
    server = start_moto(port)
    endpoint = f"http://127.0.0.1:{port}"
    env = dict(os.environ, AWS_ACCESS_KEY_ID="demo", AWS_SECRET_ACCESS_KEY="demo",
               AWS_DEFAULT_REGION="us-east-1")
    try:
        import boto3
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                     aws_access_key_id="demo", aws_secret_access_key="demo"
                     ).create_bucket(Bucket="team-bucket")
        top = tempfile.mkdtemp(prefix="s3sync-demo-")
        ann, bob = os.path.join(top, "ann"), os.path.join(top, "bob")
        os.makedirs(ann)
        os.makedirs(bob)
        remote = ["s3://team-bucket/projects/churn", "--endpoint-url", endpoint]
        print(f"S3 server: {endpoint}; workspaces in {top}")

        step("ann", ann, "init", *remote, env=env)
        write(ann, "raw/customers.csv", "id,name\n1,Ada\n2,Grace\n")
        write(ann, "models/params.json", '{"alpha": 0.1}\n')
        step("ann", ann, "status", env=env)
        step("ann", ann, "push", "-m", "first data", env=env)

        step("bob", bob, "init", *remote, env=env)
        step("bob", bob, "pull", env=env)

        write(bob, "raw/customers.csv", "id,name\n1,Ada\n2,Grace\n3,Edsger\n")
        write(ann, "notes.txt", "train on Monday\n")
        step("bob", bob, "sync", env=env)
        step("ann", ann, "status", env=env)
        step("ann", ann, "sync", env=env)

        write(ann, "models/params.json", '{"alpha": 0.2}\n')
        write(bob, "models/params.json", '{"alpha": 0.3}\n')
        step("ann", ann, "sync", env=env)
        step("bob", bob, "sync", env=env, expect=(1,))  # a conflict: nothing overwritten
        step("bob", bob, "sync", "--on-conflict=keep-both", env=env)

        os.remove(os.path.join(ann, "Data", "notes.txt"))
        print("\n[ann] deletes Data/notes.txt")
        step("ann", ann, "sync", "--yes", env=env)
        for _ in range(2):
            step("bob", bob, "sync", "--yes", env=env)
            step("ann", ann, "sync", "--yes", env=env)
        step("ann", ann, "log", env=env)

        a, b = os.path.join(ann, "Data"), os.path.join(bob, "Data")
        if not same_tree(a, b):
            print("\nthe two folders differ", file=sys.stderr)
            return 1
        files = sorted(p for p in os.listdir(a) if p != ".s3sync")
        print(f"\nboth folders are identical: {files}")
        return 0
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    sys.exit(main())
