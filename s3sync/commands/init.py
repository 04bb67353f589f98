"""Usage: s3sync init <remote> [--data=<dir>] [--endpoint-url=<url>] [--profile=<name>]
                   [--region=<region>] [--adopt] [-h]

Set up this folder as a workspace: write s3sync.json (which holds no
secret and is meant to be committed to git), create the data folder if
missing, and initialise the remote, or attach to one already in use.

<remote> is s3://bucket/prefix, file:///path, or a plain folder path
(taken relative to this folder). A remote prefix that holds files but no
s3sync format marker is refused unless --adopt is given.

Options:
  --data=<dir>          The data folder [default: Data].
  --endpoint-url=<url>  An S3-compatible server (MinIO, Ceph, R2, SeaweedFS).
  --profile=<name>      The AWS profile to use.
  --region=<region>     The AWS region of the bucket.
  --adopt               Take over a prefix that already holds files.
  -h --help             Show this help.
"""

import os

from libsync import journal, layout
from libsync.errors import ConfigError, RemoteError
from libsync.workspace import CONFIG_FILE, Config, Workspace, parse_config


def run(args, ctx) -> int:
    root = os.path.abspath(ctx.cwd)
    path = os.path.join(root, CONFIG_FILE)
    config = Config(remote=args["<remote>"], data_dir=args["--data"],
                    endpoint_url=args["--endpoint-url"], profile=args["--profile"],
                    region=args["--region"])
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            existing = parse_config(f.read(), where=path)
        if existing.remote != config.remote:
            raise ConfigError(f"{path} already names remote {existing.remote}")
        config = existing
    ws = Workspace(root, config)
    remote = ws.open_remote(create=not config.remote.startswith("s3://"))
    with remote:
        if remote.head(layout.FORMAT_KEY) is None:
            if next(iter(remote.list("")), None) is not None and not args["--adopt"]:
                raise RemoteError(f"{config.remote} already holds files but is not an "
                                  "s3sync remote; use --adopt to take them over")
            if args["--adopt"]:
                raise RemoteError("--adopt is not implemented yet")
            created = journal.init_remote(remote)
        else:
            journal.read_format(remote)
            created = False
    os.makedirs(ws.data_dir, exist_ok=True)
    if not os.path.exists(path):
        with open(path, "w", encoding="utf-8") as f:
            f.write(config.to_json())
    with ws.open_state():
        pass
    verb = "initialised" if created else "attached to"
    ctx.out.write(f"{verb} {config.remote}; data folder {config.data_dir}/\n"
                  f"add '{config.data_dir}/' to .gitignore and commit {CONFIG_FILE}\n")
    return 0
