"""init --from-s3synchrony: switch a team from s3synchrony without moving its data.

s3synchrony kept its bookkeeping in a ``.S3`` folder, in the data folder and
under the remote prefix: CSV tables of ``File, Edited By, Time Edited,
Checksum`` (an MD5) and a list of ignored paths. Migration reads them and
the objects under the prefix, and

- commits the objects already there as generation 1, without uploading
  anything: a single-part object's ETag is its MD5 (a multipart one's is
  the MD5 of its parts' MD5s), so where the local copy's MD5 equals it the
  sha256 is taken from the local file; any other object is read once to
  hash it, and nothing is written locally;
- records, as this workspace's base, every file equal on both sides, so
  none is transferred; where s3synchrony's tables show that only one side
  changed since its last sync, that side's change is what ``status``
  shows; the rest is left for ``status`` to report (a file that differs
  with no such history shows as added on both sides);
- copies the versions s3synchrony moved to ``.S3/deleted/`` server-side into
  the trash, and records the deletions as tombstones, so ``log`` and
  ``restore`` know them;
- turns ``ignore_remote.txt`` into the personal ignore list.

The ``.S3`` folders themselves are left in place, untouched, and ignored
through ``s3sync.json``. A second teammate who migrates the same prefix
attaches to the remote the first one set up.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import os
import re
import time as _time
import unicodedata
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import pathspec

from libsync import diff, journal, layout, ops
from libsync.errors import CommitRaceError, ConfigError, SyncError, UnsafePathError
from libsync.manifest import Entry, Manifest, Record, Tombstone, check_path
from libsync.remotes.base import ObjectInfo, Remote
from libsync.scan import IGNORE_FILE, PERSONAL_IGNORE, ScanResult, scan
from libsync.state import State
from libsync.workspace import CONFIG_FILE, Config, Workspace, parse_config

from .init import probe_conditional_writes

LEGACY_CONFIG = "s3synchrony.json"
LEGACY_DIR = ".S3"
LEGACY_RULE = ".S3/"          # gitignore style: a folder named .S3, at any depth
LEGACY_DELETED = LEGACY_DIR + "/deleted/"
CREDENTIAL_FILES = ("aws.txt",)  # the first s3synchrony kept keys here, in plain text

# Every name each known version gave its files, newest first.
TABLES = {
    "versions_remote": ("versions_remote.csv", "versions.csv"),
    "versions_local": ("versions_local.csv", "versionsLocal.csv"),
    "deleted_remote": ("deleted_remote.csv", "deletedS3.csv"),
    "deleted_local": ("deleted_local.csv", "deletedLocal.csv"),
}
IGNORE_NAMES = ("ignore_remote.txt", "ignores3.txt")

# s3synchrony.json keys: the ones read, then the ones known and not needed.
_DATA_KEYS = ("datafolder", "local_data_rel_dir")
_PREFIX_KEYS = ("aws_prfx", "remote_data_dir")
_KNOWN_KEYS = {"aws_bkt", "aws_role_shorthand", *_DATA_KEYS, *_PREFIX_KEYS,
               "platform", "template", "credentials", "name", "_name",
               "data_lDir", "data_rDir"}
_DEFAULT_PREFIX = "Data"   # kabbes_s3synchrony's remote_data_dir default
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_MD5 = re.compile(r"[0-9a-f]{32}")
_CHUNK = 1 << 20
# Part sizes a multipart ETag is tried against: boto3's default (what
# s3synchrony uploaded with) first, then other common choices.
_PART_SIZES = (8 << 20, 5 << 20, 16 << 20, 15 << 20, 64 << 20)


# -- s3synchrony.json ------------------------------------------------------

@dataclass(frozen=True)
class LegacyConfig:
    bucket: str
    prefix: str
    data_dir: str
    profile: str | None
    ignored_keys: tuple[str, ...]    # keys this migration does not know
    has_credentials: bool            # it holds a "credentials" object

    @property
    def remote(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


def read_legacy_config(root: str) -> LegacyConfig:
    """Read ``s3synchrony.json`` as any known version wrote it."""
    path = os.path.join(root, LEGACY_CONFIG)
    try:
        with open(path, encoding="utf-8-sig") as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise ConfigError(f"no {LEGACY_CONFIG} in {root}: nothing to migrate") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"{path} must hold a JSON object")

    def pick(*keys: str) -> str | None:
        for key in keys:
            value = doc.get(key)
            if value is None or value == "":
                continue
            if not isinstance(value, str):
                raise ConfigError(f"{path}: \"{key}\" must be a string")
            return value
        return None

    bucket = pick("aws_bkt")
    if bucket is None:
        raise ConfigError(f"{path} names no bucket (\"aws_bkt\")")
    bucket = bucket.removeprefix("s3://").strip("/")
    prefix = pick(*_PREFIX_KEYS)
    prefix = (_DEFAULT_PREFIX if prefix is None else prefix).strip("/")
    return LegacyConfig(bucket, prefix, pick(*_DATA_KEYS) or "Data",
                        pick("aws_role_shorthand"),
                        tuple(sorted(set(doc) - _KNOWN_KEYS)),
                        bool(doc.get("credentials")))


# -- the .S3 state folder ----------------------------------------------------

@dataclass(frozen=True)
class LegacyRow:
    """One line of an s3synchrony table."""

    path: str
    editor: str
    time: str
    md5: str | None

    def mtime_ns(self) -> int | None:
        """'Time Edited', a local time as s3synchrony wrote it, in ns."""
        try:
            return int(datetime.strptime(self.time, _TIME_FORMAT).timestamp()) * 10**9
        except (ValueError, OverflowError, OSError):
            return None


@dataclass(frozen=True)
class LegacyState:
    folder: str | None                          # the .S3 folder, if there is one
    tables: Mapping[str, Mapping[str, LegacyRow]]
    ignore: tuple[str, ...]                     # ignore_remote.txt's paths
    found: tuple[str, ...]                      # the names read
    warnings: tuple[str, ...] = ()

    def table(self, name: str) -> Mapping[str, LegacyRow]:
        return self.tables.get(name, {})

    def agreed(self, path: str) -> str | None:
        """The MD5 both sides had after s3synchrony's last sync here, if they agreed."""
        local = self.table("versions_local").get(path)
        remote = self.table("versions_remote").get(path)
        if local is not None and remote is not None and local.md5 and local.md5 == remote.md5:
            return local.md5
        return None


def _nfc(path: str) -> str:
    return unicodedata.normalize("NFC", path.strip().replace("\\", "/"))


def parse_table(text: str, *, where: str) -> tuple[dict[str, LegacyRow], list[str]]:
    """The rows of an s3synchrony CSV by path; later rows win, as they did there.

    Columns other than File, Edited By, Time Edited and Checksum (pandas'
    stray index column, ``Unnamed: 0`` or nameless) are ignored.
    """
    reader = csv.DictReader(io.StringIO(text))
    fields = reader.fieldnames or []
    if not fields:
        return {}, []
    if "File" not in fields:
        return {}, [f"{where}: no 'File' column; not read"]
    rows = {}
    for row in reader:
        path = _nfc(row.get("File") or "")
        if not path:
            continue
        md5 = (row.get("Checksum") or "").strip().lower()
        rows[path] = LegacyRow(path, (row.get("Edited By") or "").strip(),
                               (row.get("Time Edited") or "").strip(),
                               md5 if _MD5.fullmatch(md5) else None)
    return rows, []


def read_legacy_state(data_dir: str) -> LegacyState:
    """The tables and ignore list of ``<data>/.S3``, under their new or old names."""
    folder = os.path.join(data_dir, LEGACY_DIR)
    if not os.path.isdir(folder):
        return LegacyState(None, {}, (), ())
    tables, found, warnings = {}, [], []
    for name, candidates in TABLES.items():
        for filename in candidates:
            text = _read_text(os.path.join(folder, filename))
            if text is None:
                continue
            rows, problems = parse_table(text, where=f"{LEGACY_DIR}/{filename}")
            tables[name] = rows
            found.append(filename)
            warnings.extend(problems)
            break
    ignore: list[str] = []
    for filename in IGNORE_NAMES:
        text = _read_text(os.path.join(folder, filename))
        if text is not None:
            ignore = [_nfc(line) for line in text.splitlines() if line.strip()]
            found.append(filename)
            break
    return LegacyState(folder, tables, tuple(ignore), tuple(found), tuple(warnings))


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:
            return f.read()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def ignore_pattern(path: str) -> str:
    """A gitignore line matching exactly the one path s3synchrony ignored."""
    out = re.sub(r"([\\*?\[\]])", r"\\\1", path)
    if out[:1] in ("#", "!"):
        out = "\\" + out
    if out.endswith(" "):
        out = out[:-1] + "\\ "
    return "/" + out


def write_personal_ignore(data_dir: str, paths: Iterable[str]) -> tuple[str, ...]:
    """Add s3synchrony's ignored paths to ``<data>/.s3sync/ignore``; returns those added."""
    target = os.path.join(data_dir, PERSONAL_IGNORE)
    existing = (_read_text(target) or "").splitlines()
    new = [p for p in dict.fromkeys(ignore_pattern(p) for p in paths) if p not in existing]
    if new:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "a", encoding="utf-8") as f:
            if existing and existing[-1] != "":
                f.write("\n")
            f.write("# from s3synchrony's ignore list (.S3/ignore_remote.txt)\n")
            f.writelines(line + "\n" for line in new)
    return tuple(new)


# -- hashing -----------------------------------------------------------------

class Digests:
    """A sink taking the sha256, the MD5 and S3 multipart ETags of what it is fed."""

    def __init__(self, part_sizes: Iterable[int] = ()):
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5(usedforsecurity=False)
        self._parts = {size: [hashlib.md5(usedforsecurity=False), 0, []]
                       for size in part_sizes}

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.md5.update(data)
        for size, part in self._parts.items():
            view = memoryview(data)
            while view:
                take = min(len(view), size - part[1])
                part[0].update(view[:take])
                part[1] += take
                view = view[take:]
                if part[1] == size:
                    part[2].append(part[0].digest())
                    part[0], part[1] = hashlib.md5(usedforsecurity=False), 0
        return len(data)

    def etags(self) -> set[str]:
        """Every ETag S3 could have given these bytes, unquoted."""
        out = {self.md5.hexdigest()}
        for digest, filled, done in self._parts.values():
            parts = done + ([digest.digest()] if filled else [])
            joined = hashlib.md5(b"".join(parts), usedforsecurity=False).hexdigest()
            out.add(f"{joined}-{len(parts)}")
        return out


def plain_etag(etag: str) -> str:
    return etag.strip().strip('"').lower()


def etag_md5(etag: str) -> str | None:
    """The MD5 an ETag is, for a single-part object (not SSE-KMS)."""
    tag = plain_etag(etag)
    return tag if _MD5.fullmatch(tag) else None


def part_sizes(size: int, etag: str) -> tuple[int, ...]:
    """Part sizes that could have produced a multipart ``etag`` for ``size`` bytes."""
    tag = plain_etag(etag)
    _, dash, count = tag.partition("-")
    if not dash or not count.isdigit() or int(count) < 1:
        return ()
    n = int(count)
    guess = -(-size // n)
    guess = -(-guess // _CHUNK) * _CHUNK
    sizes = [s for s in (*_PART_SIZES, guess) if -(-size // s) == n]
    return tuple(dict.fromkeys(sizes))


def local_digests(path: str, etag: str, size: int) -> Digests:
    sink = Digests(part_sizes(size, etag))
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            sink.write(chunk)
    return sink


def remote_digests(remote: Remote, info: ObjectInfo) -> Digests:
    """Read an object once to hash it; nothing is written to disk."""
    sink = Digests()
    remote.get_into(info.key, sink, if_match=info.etag or None)
    return sink


# -- the migration -------------------------------------------------------------

@dataclass(frozen=True)
class MigrateResult:
    config: Config
    created: bool                       # this run set up the remote (else attached)
    generation: int
    adopted: tuple[str, ...]            # objects committed as generation 1 by this run
    hashed_remote: tuple[str, ...]      # objects read to hash them (no local copy equal)
    matched: tuple[str, ...]            # equal on both sides: base, no transfer
    one_sided: tuple[str, ...]          # base from s3synchrony's tables: one side changed
    pending: tuple[str, ...]            # what 's3sync status' shows
    trashed: tuple[tuple[str, str], ...]  # (legacy key, trash key) copied server-side
    tombstoned: tuple[str, ...]         # deletions recorded from .S3/deleted/
    skipped: tuple[tuple[str, str], ...]  # (remote key, why it was not adopted)
    ignore_added: tuple[str, ...]       # lines added to <data>/.s3sync/ignore
    legacy: tuple[str, ...]             # the .S3 folders left in place
    found: tuple[str, ...]              # the s3synchrony files read
    config_written: bool                # s3sync.json created or changed
    warnings: tuple[str, ...]


def migrate(root: str, *, remote: str | None = None, data_dir: str | None = None,
            endpoint_url: str | None = None, profile: str | None = None,
            region: str | None = None, author: str = "", jobs: int = 8) -> MigrateResult:
    """Make ``root``, an s3synchrony project, an s3sync workspace of the same prefix."""
    legacy_config = read_legacy_config(root)
    url = legacy_config.remote
    if remote is not None and remote.rstrip("/") != url:
        raise ConfigError(f"{LEGACY_CONFIG} names {url}, not {remote}")
    config = Config(remote=url, data_dir=data_dir or legacy_config.data_dir,
                    endpoint_url=endpoint_url, profile=profile or legacy_config.profile,
                    region=region, ignore=(LEGACY_RULE,))
    config, config_text = _merge_config(root, config)
    ws = Workspace(root, config)
    warnings = _config_warnings(legacy_config)
    os.makedirs(ws.data_dir, exist_ok=True)
    legacy = read_legacy_state(ws.data_dir)
    warnings.extend(legacy.warnings)
    if legacy.folder is None:
        warnings.append(f"no {LEGACY_DIR} folder in {config.data_dir}/: without "
                        "s3synchrony's tables, only files equal on both sides get a base")
    for name in CREDENTIAL_FILES:
        if legacy.folder and os.path.isfile(os.path.join(legacy.folder, name)):
            warnings.append(f"{config.data_dir}/{LEGACY_DIR}/{name} holds AWS credentials in "
                            "plain text; s3sync never reads it: delete it and rotate the keys")
    ignore_added = write_personal_ignore(ws.data_dir, legacy.ignore)
    author = author or ws.author()

    with ws.open_state() as state, ws.open_remote(jobs=jobs) as rem:
        run = _Run(ws, state, rem, legacy, author, jobs, warnings)
        run.go()
    config_written = _write_config(root, config_text)
    legacy_dirs = []
    if legacy.folder:
        legacy_dirs.append(os.path.join(config.data_dir, LEGACY_DIR) + "/")
    if run.remote_legacy:
        legacy_dirs.append(f"{url.rstrip('/')}/{LEGACY_DIR}/")
    return MigrateResult(
        config, run.created, run.manifest.generation, tuple(run.adopted),
        tuple(sorted(run.hashed)), tuple(run.matched), tuple(run.one_sided),
        tuple(run.pending), tuple(run.trashed), tuple(run.tombstoned),
        tuple(run.skipped), ignore_added, tuple(legacy_dirs), legacy.found,
        config_written, tuple(warnings))


def _config_warnings(legacy: LegacyConfig) -> list[str]:
    out = []
    if legacy.ignored_keys:
        out.append(f"{LEGACY_CONFIG}: not used: {', '.join(legacy.ignored_keys)}")
    if legacy.has_credentials:
        out.append(f"{LEGACY_CONFIG} holds credentials; s3sync takes them only from "
                   "boto3's chain (profile, environment, SSO): remove them from it")
    return out


def _merge_config(root: str, config: Config) -> tuple[Config, str | None]:
    """The config to use, and the text to write (None: s3sync.json is right as it is).

    An ``s3sync.json`` already here (a teammate committed it) is kept, with
    the rule that ignores ``.S3`` added if it lacks it.
    """
    path = os.path.join(root, CONFIG_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            existing = parse_config(f.read(), where=path)
    except FileNotFoundError:
        return config, config.to_json()
    if existing.remote.rstrip("/") != config.remote:
        raise ConfigError(f"{path} names remote {existing.remote}, but {LEGACY_CONFIG} "
                          f"names {config.remote}")
    if LEGACY_RULE in existing.ignore:
        return existing, None
    existing = dataclasses.replace(existing, ignore=(*existing.ignore, LEGACY_RULE))
    return existing, existing.to_json()


def _write_config(root: str, text: str | None) -> bool:
    if text is None:
        return False
    path = os.path.join(root, CONFIG_FILE)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
    return True


class _Run:
    """One migration's working state; ``go`` does it, the fields say what happened."""

    def __init__(self, ws: Workspace, state: State, remote: Remote, legacy: LegacyState,
                 author: str, jobs: int, warnings: list[str]):
        self.ws, self.state, self.remote, self.legacy = ws, state, remote, legacy
        self.author, self.jobs, self.warnings = author, jobs, warnings
        self.created = False
        self.manifest = Manifest()
        self.adopted: list[str] = []
        self.hashed: list[str] = []
        self.matched: list[str] = []
        self.one_sided: list[str] = []
        self.pending: list[str] = []
        self.trashed: list[tuple[str, str]] = []
        self.tombstoned: list[str] = []
        self.skipped: list[tuple[str, str]] = []
        self.remote_legacy = False
        self.md5: dict[str, str] = {}       # path -> MD5 of the remote version, when known
        self.legacy_keys: Mapping[str, ObjectInfo] = {}   # the remote .S3/ folder
        self.stamp = ops.utc_now()
        self.scanned: ScanResult | None = None

    def go(self) -> None:
        stamp = self.stamp
        self.scanned = scan(self.ws.data_dir, self.state, ignore=self.ws.config.ignore,
                            jobs=self.jobs, on_warning=self.warnings.append)
        fresh = self.remote.head(layout.FORMAT_KEY) is None
        if not fresh:
            self.manifest = ops.fetch(self.state, self.remote, jobs=self.jobs,
                                      on_warning=self.warnings.append).manifest
            # A marker with an empty journal: a migration (or init) that died
            # before its first commit. Its objects are still to be adopted.
            self.remote_legacy = any(True for _ in self.remote.list(LEGACY_DIR + "/"))
        if fresh or self.manifest.generation == 0:
            self._adopt(stamp, probe=fresh)
        self._record_bases()
        plan = ops.plan(self.state, self.scanned)
        self.pending = [a.path for a in plan if a.kind != diff.RECORD]

    # -- the remote: generation 1 --------------------------------------
    def _adopt(self, stamp: str, *, probe: bool) -> None:
        if probe:  # before anything is written: refuse a server that would lose updates
            probe_conditional_writes(self.remote)
        rules = _team_rules(self.ws)
        objects, legacy_keys = [], {}
        for info in self.remote.list(""):
            key = info.key
            if key.startswith(layout.META):
                continue
            if key.startswith(LEGACY_DIR + "/"):
                legacy_keys[key] = info
                continue
            if key.endswith("/") and info.size == 0:
                continue  # a "folder" made in the S3 console
            if rules.match_file(key):
                self.skipped.append((key, "ignored"))
                continue
            try:
                check_path(key)
            except UnsafePathError as exc:
                self.skipped.append((key, str(exc)))
                continue
            objects.append(info)
        self.remote_legacy = bool(legacy_keys)
        self.legacy_keys = legacy_keys
        entries = self._hash_objects(objects)
        tombstones = self._import_deleted(legacy_keys, {e.path for e in entries})
        self.created = journal.init_remote(self.remote) or not probe
        records: list[Record] = [*entries, *tombstones]
        if not records:
            self.state.save_remote(self.manifest)
            return
        try:
            manifest, _ = journal.write_commit(
                self.remote, Manifest(), records, author=self.author, time=stamp,
                message="migrated from s3synchrony")
        except CommitRaceError:
            # Another teammate migrated the same prefix at the same moment.
            self.created = False
            self.manifest = ops.fetch(self.state, self.remote, jobs=self.jobs,
                                      on_warning=self.warnings.append).manifest
            return
        self.state.save_remote(manifest)
        self.manifest = manifest
        self.adopted = sorted(e.path for e in entries)

    def _hash_objects(self, objects: list[ObjectInfo]) -> list[Entry]:
        """Each object's entry: its sha256 from the local copy if equal, else read."""
        local = self.scanned.files
        versions = _merged(self.legacy.table("versions_remote"),
                           self._remote_table("versions_remote"))
        now = _time.time_ns()
        entries, to_read = [], []
        for info in objects:
            f = local.get(info.key)
            if f is not None and f.size == info.size:
                try:
                    d = local_digests(os.path.join(self.ws.data_dir, *info.key.split("/")),
                                      info.etag, info.size)
                except OSError:
                    d = None
                if (d is not None and d.sha256.hexdigest() == f.sha256
                        and plain_etag(info.etag) in d.etags()):
                    md5 = d.md5.hexdigest()
                    self.md5[info.key] = md5
                    entries.append(self._entry(info, f.sha256, md5, f.mtime_ns, versions))
                    continue
            to_read.append(info)
        with ThreadPoolExecutor(max_workers=max(1, min(self.jobs, len(to_read) or 1))) as pool:
            for info, d in zip(to_read, pool.map(lambda i: remote_digests(self.remote, i),
                                                 to_read), strict=True):
                md5 = d.md5.hexdigest()
                self.md5[info.key] = md5
                self.hashed.append(info.key)
                row = versions.get(info.key)
                mtime = (row.mtime_ns() if row is not None and row.md5 == md5 else None) or now
                entries.append(self._entry(info, d.sha256.hexdigest(), md5, mtime, versions))
        return entries

    def _entry(self, info: ObjectInfo, sha: str, md5: str, mtime_ns: int,
               versions: Mapping[str, LegacyRow]) -> Entry:
        row = versions.get(info.key)
        who = row.editor if row is not None and row.md5 == md5 and row.editor else self.author
        return Entry(info.key, info.size, sha, mtime_ns, who, self.stamp, info.etag)

    def _remote_table(self, name: str) -> dict[str, LegacyRow]:
        """A table as the remote ``.S3`` folder holds it (the team's latest)."""
        for filename in TABLES[name]:
            key = f"{LEGACY_DIR}/{filename}"
            if key not in self.legacy_keys:
                continue
            text = self.remote.get(key).decode("utf-8-sig", errors="replace")
            rows, problems = parse_table(text, where=f"remote {key}")
            self.warnings.extend(problems)
            return rows
        return {}

    def _import_deleted(self, legacy_keys: Mapping[str, ObjectInfo],
                        live: set[str]) -> list[Tombstone]:
        """Copy ``.S3/deleted/`` into the trash; tombstone what is not live any more."""
        deleted = [i for k, i in sorted(legacy_keys.items())
                   if k.startswith(LEGACY_DELETED) and not k.endswith("/")]
        if not deleted:
            return []
        rows = _merged(self.legacy.table("deleted_local"), self.legacy.table("deleted_remote"),
                       self._remote_table("deleted_remote"))
        by_name: dict[str, set[str]] = {}
        for p in rows:
            by_name.setdefault(p.rsplit("/", 1)[-1], set()).add(p)
        tombstones: dict[str, Tombstone] = {}
        for info in deleted:
            path = _deleted_path(info.key[len(LEGACY_DELETED):], rows, by_name)
            try:
                check_path(path)
            except UnsafePathError as exc:
                self.skipped.append((info.key, str(exc)))
                continue
            sha = remote_digests(self.remote, info).sha256.hexdigest()
            trash = layout.trash_key(path, sha)
            try:
                self.remote.copy(info.key, trash, if_match=info.etag or None)
            except SyncError as exc:
                self.skipped.append((info.key, f"not copied to the trash: {exc}"))
                continue
            self.trashed.append((info.key, trash))
            if path not in live:
                row = rows.get(path)
                who = row.editor if row is not None and row.editor else self.author
                tombstones[path] = Tombstone(path, info.size, sha, who, self.stamp, trash)
        self.tombstoned = sorted(tombstones)
        return list(tombstones.values())

    # -- the local base -----------------------------------------------------
    def _record_bases(self) -> None:
        """Base every file equal on both sides; where s3synchrony's tables show
        that only one side changed since its last sync, base the other side.

        A path that already has a base row (a migration run before) keeps it.
        """
        have = self.state.base()
        local = self.scanned.files
        bases: list[Record] = []
        for path, entry in sorted(self.manifest.entries().items()):
            f = local.get(path)
            if f is None or path in have:
                continue
            if f.sha256 == entry.sha256:
                bases.append(entry)
                self.matched.append(path)
                continue
            agreed = self.legacy.agreed(path)
            if agreed is None:
                continue
            try:
                local_md5 = local_digests(os.path.join(self.ws.data_dir, *path.split("/")),
                                          "", f.size).md5.hexdigest()
            except OSError:
                continue
            if local_md5 == agreed:
                # Unchanged here since s3synchrony's last sync: the remote changed.
                row = self.legacy.table("versions_local")[path]
                bases.append(Entry(path, f.size, f.sha256, f.mtime_ns, row.editor, "", ""))
                self.one_sided.append(path)
            elif self.md5.get(path, etag_md5(entry.etag)) == agreed:
                # The remote is as it was at that sync: the change is local.
                bases.append(entry)
                self.one_sided.append(path)
        if bases:
            self.state.set_base(bases)


def _merged(*tables: Mapping[str, LegacyRow]) -> dict[str, LegacyRow]:
    out: dict[str, LegacyRow] = {}
    for t in tables:
        out.update(t)
    return out


def _deleted_path(name: str, rows: Mapping[str, LegacyRow],
                  by_name: Mapping[str, set[str]]) -> str:
    """The data path of a ``.S3/deleted/`` object.

    Newer s3synchrony kept the relative path; the first versions kept only
    the file name, so a name that one deleted path ends with is taken to
    be that path.
    """
    name = _nfc(name)
    if "/" in name or name in rows:
        return name
    candidates = by_name.get(name, set())
    return next(iter(candidates)) if len(candidates) == 1 else name


def _team_rules(ws: Workspace) -> pathspec.PathSpec:
    """The team's ignore rules (s3sync.json and .s3syncignore), not the personal ones."""
    lines = list(ws.config.ignore)
    text = _read_text(os.path.join(ws.data_dir, IGNORE_FILE))
    if text:
        lines.extend(text.splitlines())
    return pathspec.GitIgnoreSpec.from_lines(lines)


__all__ = ["LEGACY_CONFIG", "LEGACY_DIR", "LEGACY_RULE", "LegacyConfig",
           "LegacyState", "MigrateResult", "migrate", "read_legacy_config",
           "read_legacy_state"]
