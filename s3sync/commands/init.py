"""Usage: s3sync init [<remote>] [--data=<dir>] [--endpoint-url=<url>] [--profile=<name>]
                   [--region=<region>] [--adopt] [-h]

Set up this folder as a workspace: write s3sync.json (which holds no
secret and is meant to be committed to git), create the data folder if
missing, and initialise the remote, or attach to one already in use.

<remote> is s3://bucket/prefix, file:///path, or a plain folder path
(taken relative to this folder). Without it, the remote named by an
s3sync.json already here is used: what a teammate runs after cloning.

A new remote is first probed: a server that ignores conditional writes
is refused. A remote prefix that holds files but no s3sync format marker
is refused unless --adopt is given; then those files become generation
1, hashed from their checksum metadata or by reading them, without a
local copy.

Options:
  --data=<dir>          The data folder [default: Data].
  --endpoint-url=<url>  An S3-compatible server (MinIO, Ceph, R2, SeaweedFS).
  --profile=<name>      The AWS profile to use.
  --region=<region>     The AWS region of the bucket.
  --adopt               Take over a prefix that already holds files.
  -h --help             Show this help.
"""

import os

from libsync.errors import ConfigError
from libsync.workspace import CONFIG_FILE, Config, parse_config

from .. import porcelain


def run(args, ctx) -> int:
    root = os.path.abspath(ctx.cwd)
    remote = args["<remote>"]
    if remote is None:
        path = os.path.join(root, CONFIG_FILE)
        if not os.path.exists(path):
            raise ConfigError(f"no {CONFIG_FILE} here: name the remote, "
                              "e.g. 's3sync init s3://bucket/prefix'")
        with open(path, encoding="utf-8") as f:
            remote = parse_config(f.read(), where=path).remote
    config = Config(remote=remote, data_dir=args["--data"],
                    endpoint_url=args["--endpoint-url"], profile=args["--profile"],
                    region=args["--region"])
    r = porcelain.init(root, config, adopt=args["--adopt"])
    verb = "initialised" if r.created else "attached to"
    ctx.out.write(f"{verb} {r.config.remote}; data folder {r.config.data_dir}/\n")
    if r.adopted:
        ctx.out.write(f"adopted {len(r.adopted)} existing files as generation 1\n")
    for key in r.skipped:
        ctx.out.write(f"skipped {key!r}: not a safe path\n")
    ctx.out.write(f"add '{r.config.data_dir}/' to .gitignore and commit {CONFIG_FILE}\n")
    return 0
