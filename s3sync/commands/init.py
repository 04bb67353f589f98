"""Usage: s3sync init [<remote>] [--data=<dir>] [--endpoint-url=<url>] [--profile=<name>]
                   [--region=<region>] [--adopt] [--from-s3synchrony] [-h]

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

With --from-s3synchrony, a project that s3synchrony kept in step becomes
a workspace of the same prefix without uploading a data file or
writing one here: the bucket, prefix, data folder and profile come from
s3synchrony.json; the objects under the prefix become generation 1, an
object whose ETag equals the local copy's MD5 hashed from the local
copy and any other read once to hash it; files equal on both sides
become the base, and 's3sync status' shows the rest. The versions in
the remote .S3/deleted/ folder are copied into the trash;
.S3/ignore_remote.txt becomes the personal ignore list.
The .S3 folders, in the data folder and under the prefix, are left as
they are and ignored (the rule ".S3/" in s3sync.json's "ignore"). Each
teammate runs it once; the second attaches to what the first set up.

Options:
  --data=<dir>          The data folder (default: Data; when migrating, the
                        one s3synchrony.json names).
  --endpoint-url=<url>  An S3-compatible server (MinIO, Ceph, R2, SeaweedFS).
  --profile=<name>      The AWS profile to use.
  --region=<region>     The AWS region of the bucket.
  --adopt               Take over a prefix that already holds files.
  --from-s3synchrony    Migrate this s3synchrony project (s3synchrony.json
                        and the data folder's .S3 folder) to s3sync.
  -h --help             Show this help.
"""

import os

from libsync.errors import ConfigError
from libsync.workspace import CONFIG_FILE, Config, parse_config

from .. import porcelain
from ..render import warn


def run(args, ctx) -> int:
    root = os.path.abspath(ctx.cwd)
    if args["--from-s3synchrony"]:
        return run_migrate(args, ctx, root)
    remote = args["<remote>"]
    if remote is None:
        path = os.path.join(root, CONFIG_FILE)
        if not os.path.exists(path):
            raise ConfigError(f"no {CONFIG_FILE} here: name the remote, "
                              "e.g. 's3sync init s3://bucket/prefix'")
        with open(path, encoding="utf-8") as f:
            remote = parse_config(f.read(), where=path).remote
    config = Config(remote=remote, data_dir=args["--data"] or "Data",
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


def run_migrate(args, ctx, root: str) -> int:
    from ..porcelain.migrate import LEGACY_CONFIG, LEGACY_RULE, migrate

    r = migrate(root, remote=args["<remote>"], data_dir=args["--data"],
                endpoint_url=args["--endpoint-url"], profile=args["--profile"],
                region=args["--region"])
    for w in r.warnings:
        warn(ctx.err, w)
    out = ctx.out.write
    verb = "initialised" if r.created else "attached to"
    out(f"migrated from {LEGACY_CONFIG}: {verb} {r.config.remote} (generation "
        f"{r.generation}); data folder {r.config.data_dir}/\n")
    if r.found:
        out(f"read {', '.join(r.found)}\n")
    if r.adopted:
        out(f"adopted {_n(r.adopted, 'remote file')} as generation 1, uploading nothing\n")
    if r.hashed_remote:
        out(f"read {_n(r.hashed_remote, 'remote file')} to hash (no equal local copy here);"
            " nothing was written here\n")
    out(f"{_n(r.matched, 'file')} equal here and on the remote: recorded, not transferred\n")
    if r.one_sided:
        out(f"{_n(r.one_sided, 'file')} changed on one side only since s3synchrony's "
            "last sync\n")
    for key, trash in r.trashed:
        out(f"kept deleted version {key} in the trash as {trash}\n")
    if r.tombstoned:
        out(f"recorded {_n(r.tombstoned, 'deletion')} from s3synchrony; "
            "see 's3sync log' and 's3sync restore'\n")
    for key, why in r.skipped:
        out(f"skipped {key!r}: {why}\n")
    if r.ignore_added:
        out(f"personal ignore list: {_n(r.ignore_added, 'path')} added to "
            f"{r.config.data_dir}/.s3sync/ignore\n")
    for folder in r.legacy:
        out(f"left {folder} in place, ignored (rule '{LEGACY_RULE}' in {CONFIG_FILE}); "
            "delete it once the whole team has switched\n")
    if r.pending:
        out(f"{_n(r.pending, 'path')} differ: see 's3sync status'\n")
    else:
        out("everything is in step\n")
    if r.config_written:
        out(f"wrote {CONFIG_FILE}: commit it, and add '{r.config.data_dir}/' to .gitignore\n")
    return 0


def _n(items, word: str) -> str:
    return f"{len(items)} {word}" + ("" if len(items) == 1 else "s")
