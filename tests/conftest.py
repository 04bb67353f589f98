"""Shared fixtures: real S3 servers on loopback, remotes, workspaces, the CLI.

S3 is never mocked: the moto server and SeaweedFS run as subprocesses on
127.0.0.1 and the code under test talks to them through boto3 over HTTP,
with credentials from the environment exactly as a user's would come.
"""

from __future__ import annotations

import io
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import servers  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """No developer's AWS set-up, git identity or terminal leaks into a test."""
    for var in list(os.environ):
        if var.startswith("AWS_") or var == "S3SYNC_USER":
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


@pytest.fixture(scope="session")
def moto_server():
    with servers.start_moto() as srv:
        yield srv


@pytest.fixture(scope="session")
def seaweedfs_server(tmp_path_factory):
    with servers.start_seaweedfs(tmp_path_factory.mktemp("weed")) as srv:
        yield srv


def use_server(monkeypatch, server) -> None:
    """Credentials through the environment, as boto3's chain finds them."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", server.secret_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", server.region)


def new_bucket(server) -> str:
    name = f"t-{uuid.uuid4().hex[:16]}"
    servers.client(server).create_bucket(Bucket=name)
    return name


@dataclass(frozen=True)
class RemoteSpec:
    """A remote for a test: its URL, the endpoint, and who serves it."""

    kind: str                 # folder, moto or seaweedfs
    url: str
    endpoint_url: str | None = None
    server: object = None

    def open(self, **kw):
        from libsync.remotes import open_remote
        return open_remote(self.url, endpoint_url=self.endpoint_url, create=True, **kw)

    def keys(self) -> dict[str, bytes]:
        """Every object on the remote (metadata included), by key."""
        with self.open() as r:
            return {i.key: r.get(i.key) for i in r.list("")}

    def data(self) -> dict[str, bytes]:
        return {k: v for k, v in self.keys().items() if not k.startswith(".s3sync/")}


def make_remote(kind: str, request, monkeypatch, tmp_path) -> RemoteSpec:
    if kind == "folder":
        return RemoteSpec("folder", str(tmp_path / "remote"))
    server = request.getfixturevalue(f"{kind}_server")
    use_server(monkeypatch, server)
    return RemoteSpec(kind, f"s3://{new_bucket(server)}/team/data", server.endpoint_url, server)


@pytest.fixture(params=["folder", "moto"])
def remote(request, monkeypatch, tmp_path) -> RemoteSpec:
    """Each test using this runs once on a folder remote and once over S3 (moto)."""
    return make_remote(request.param, request, monkeypatch, tmp_path)


@pytest.fixture
def s3_remote(request, monkeypatch, tmp_path) -> RemoteSpec:
    return make_remote("moto", request, monkeypatch, tmp_path)


@dataclass
class Result:
    code: int
    out: str
    err: str


class Teammate:
    """One person's workspace, driven through the real CLI entry point in-process."""

    def __init__(self, root: Path, name: str):
        self.root = root
        self.name = name
        self.data = root / "Data"

    def run(self, *argv: str, stdin: str = "") -> Result:
        from s3sync.cli import Context, main
        out, err = io.StringIO(), io.StringIO()
        env = dict(os.environ, S3SYNC_USER=self.name)
        ctx = Context(cwd=str(self.root), out=out, err=err, stdin=io.StringIO(stdin), env=env)
        old = os.environ.get("S3SYNC_USER")
        os.environ["S3SYNC_USER"] = self.name
        try:
            code = main(list(argv), ctx)
        finally:
            if old is None:
                os.environ.pop("S3SYNC_USER", None)
            else:
                os.environ["S3SYNC_USER"] = old
        return Result(code, out.getvalue(), err.getvalue())

    def ok(self, *argv: str, stdin: str = "") -> Result:
        r = self.run(*argv, stdin=stdin)
        assert r.code == 0, f"s3sync {' '.join(argv)} -> {r.code}\n{r.out}\n{r.err}"
        return r

    def write(self, path: str, content: str | bytes) -> None:
        p = self.data / path
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            content = content.encode()
        p.write_bytes(content)

    def read(self, path: str) -> bytes:
        return (self.data / path).read_bytes()

    def files(self) -> dict[str, bytes]:
        """Every data file (not s3sync's state) by its data path."""
        out = {}
        for p in sorted(self.data.rglob("*")):
            rel = p.relative_to(self.data).as_posix()
            if p.is_file() and not rel.startswith(".s3sync/"):
                out[rel] = p.read_bytes()
        return out


def join(spec: RemoteSpec, root: Path, name: str) -> Teammate:
    """A workspace at ``root`` initialised (or attached) on the remote ``spec``."""
    t = Teammate(root, name)
    t.root.mkdir(parents=True)
    args = ["init", spec.url]
    if spec.endpoint_url:
        args += ["--endpoint-url", spec.endpoint_url]
    t.ok(*args)
    return t


@pytest.fixture
def team(remote, tmp_path):
    """A factory of teammates sharing ``remote``; the first one initialises it."""

    return lambda name: join(remote, tmp_path / name, name)
