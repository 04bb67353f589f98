"""What every scenario shares: trees, servers behind counting proxies, the
tools under test, and one way to run and measure a command.

A measured command runs as a subprocess of this one and is reaped with
``os.wait4``, which gives that one child's resource usage: its peak
resident memory (``ru_maxrss``) and CPU time. Its requests are the
counting proxy's tally between the start and the end of the run.
"""

from __future__ import annotations

import compileall
import importlib
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from proxy import CountingProxy

REPO = Path(__file__).resolve().parent.parent
TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
BUCKET = "bench"
REGION = "us-east-1"
# Old enough that no tool sees the tree as racily clean or "newer than the remote".
TREE_MTIME = 1_704_067_200  # 2024-01-01T00:00:00Z


def load_servers():
    """tests/servers.py, imported from its place (the bench does not copy it)."""
    tests = str(REPO / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    return importlib.import_module("servers")


# -- trees ---------------------------------------------------------------------
def tree_path(i: int) -> str:
    """The i-th file of a tree: 100 files a folder, 100 folders a group."""
    leaf = i // 100
    return f"g{leaf // 100:03d}/d{leaf % 100:02d}/file-{i:06d}.dat"


def build_tree(root: Path, n: int, *, size: int = 4096, seed: int = 1) -> Path:
    """``n`` files of ``size`` seeded random bytes, all with an old fixed mtime."""
    rng = random.Random(seed)
    made = set()
    for i in range(n):
        rel = tree_path(i)
        folder = os.path.dirname(rel)
        if folder not in made:
            os.makedirs(root / folder, exist_ok=True)
            made.add(folder)
        path = root / rel
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, rng.randbytes(size))
        finally:
            os.close(fd)
        os.utime(path, (TREE_MTIME + i, TREE_MTIME + i))
    return root


def build_big(path: Path, size: int, *, seed: int = 7) -> Path:
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    block = 8 << 20
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(block, left)
            f.write(rng.randbytes(n))
            left -= n
    os.utime(path, (TREE_MTIME, TREE_MTIME))
    return path


def rewrite(path: Path, seed: int) -> None:
    """Give a file new content of the same size, replacing it (a new inode)."""
    size = path.stat().st_size
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(random.Random(seed).randbytes(size))
    os.replace(tmp, path)


def hardlink_copy(src: Path, dst: Path) -> None:
    """A copy of a tree that costs no data: every file is a hard link."""
    subprocess.run(["cp", "-al", str(src), str(dst)], check=True)


# -- servers ---------------------------------------------------------------------
@dataclass
class Backend:
    """One S3 server with its counting proxy and bucket."""

    name: str
    server: object
    proxy: CountingProxy
    bucket: str = BUCKET

    @property
    def url(self) -> str:
        return self.proxy.url

    def stop(self) -> None:
        self.proxy.stop()
        self.server.stop()


def start_backend(name: str, workdir: Path) -> Backend:
    servers = load_servers()
    if name == "seaweedfs":
        server = servers.start_seaweedfs(workdir)
    elif name == "moto":
        server = servers.start_moto()
    else:
        raise ValueError(f"unknown server {name!r}")
    try:
        port = int(server.endpoint_url.rsplit(":", 1)[1])
        # The bench's own set-up requests go straight to the server, uncounted.
        servers.client(server).create_bucket(Bucket=BUCKET)
        proxy = CountingProxy("127.0.0.1", port).start()
    except BaseException:
        server.stop()
        raise
    return Backend(name, server, proxy)


# -- running and measuring --------------------------------------------------------
@dataclass
class Cmd:
    argv: list[str]
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)   # added to the base environment
    before: Callable[[], None] | None = None            # untimed, just before the run
    inner: Callable[[str], float] | None = None         # seconds reported by the command


@dataclass
class Measured:
    wall: float
    returncode: int
    maxrss_kb: int
    user: float
    sys: float
    requests: int | None = None
    kinds: dict = field(default_factory=dict)
    bytes_up: int = 0
    bytes_down: int = 0
    inner: float | None = None
    output: str = ""
    first: list = field(default_factory=list)


class Runner:
    def __init__(self, root: Path, base_env: dict[str, str]):
        self.root = root
        self.base_env = base_env
        self._n = 0

    def newdir(self, name: str) -> Path:
        self._n += 1
        path = self.root / "work" / f"{self._n:04d}-{name}"
        path.mkdir(parents=True)
        return path

    def run(self, cmd: Cmd, *, proxy: CountingProxy | None = None, timeout: float = 1800,
            check: bool = False) -> Measured:
        if cmd.before:
            cmd.before()
        env = dict(self.base_env, **cmd.env)
        self._n += 1
        log = self.root / "logs" / f"{self._n:05d}-{Path(cmd.argv[0]).name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        rss_file = log.with_suffix(".rss")
        argv = cmd.argv
        if TIME:
            # A forked child's peak RSS starts at this process's own (exec
            # records the old image's high-water mark), so the peak is taken
            # by /usr/bin/time, a small parent, rather than from our wait4.
            argv = [TIME, "-f", "%M", "-o", str(rss_file), *argv]
        if proxy:
            proxy.take()
        with open(log, "wb") as out:
            started = time.perf_counter()
            # Its own process group, so that a kill reaches the command under
            # /usr/bin/time too.
            proc = subprocess.Popen(argv, cwd=cmd.cwd, env=env, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        reaped = threading.Lock()
        timed_out = []

        def kill():
            with reaped:
                if proc.returncode is None:
                    timed_out.append(True)
                    os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - started
            with reaped:
                proc.returncode = os.waitstatus_to_exitcode(status)
        except BaseException:  # interrupted: take the command down with us
            kill()
            os.waitpid(proc.pid, 0)
            raise
        finally:
            timer.cancel()
        counts = proxy.take() if proxy else None
        text = log.read_text(errors="replace")
        maxrss = usage.ru_maxrss
        if TIME:
            try:
                maxrss = int(rss_file.read_text().split()[-1])
            except (OSError, ValueError, IndexError):
                maxrss = -1
        m = Measured(wall, proc.returncode, maxrss, usage.ru_utime, usage.ru_stime,
                     output=text[-3000:])
        if timed_out:
            m.output += f"\n[bench: killed after {timeout:.0f} s]"
        if counts is not None:
            m.requests = counts.requests
            m.kinds = dict(counts.kinds)
            m.bytes_up, m.bytes_down = counts.bytes_up, counts.bytes_down
            m.first = counts.first
        if cmd.inner and m.returncode == 0:
            try:
                m.inner = cmd.inner(text)
            except (ValueError, IndexError):
                pass
        if check and m.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd.argv)} (in {cmd.cwd}) exited "
                               f"{m.returncode}:\n{m.output}")
        return m


def export_rev(rev: str, dest: Path) -> tuple[Path, str]:
    """The s3sync code of commit ``rev``, unpacked at ``dest``, and its full hash."""
    full = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--verify", rev + "^{commit}"],
                          capture_output=True, text=True, check=True).stdout.strip()
    dest.mkdir(parents=True)
    archive = subprocess.Popen(["git", "-C", str(REPO), "archive", full],
                               stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(dest)], stdin=archive.stdout, check=True)
    archive.stdout.close()
    if archive.wait():
        raise RuntimeError(f"git archive {rev} failed")
    return dest, full


def byte_compile(code: Path) -> None:
    """Compile s3sync's modules as ``pip install`` does, so that no timed run
    pays for it: the peers come byte-compiled from their packages, and with
    PYTHONDONTWRITEBYTECODE set (as on this machine) a run from the source
    tree would compile every module on every start (30 ms of a 0.4 s no-op)."""
    for package in ("libsync", "s3sync"):
        if not compileall.compile_dir(str(code / package), quiet=1):
            raise RuntimeError(f"cannot byte-compile {code / package}")


def base_env(root: Path, code: Path = REPO) -> dict[str, str]:
    servers = load_servers()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "RCLONE_", "S3SYNC_"))}
    (root / "rclone.conf").touch()
    env.update({
        "AWS_ACCESS_KEY_ID": servers.ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": servers.SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(root / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(root / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "RCLONE_CONFIG": str(root / "rclone.conf"),
        "S3SYNC_USER": "bench",
        "PYTHONPATH": str(code),
        "HOME": str(root / "home"),
    })
    (root / "home").mkdir(exist_ok=True)
    return env


# -- the tools -------------------------------------------------------------------
@dataclass
class Place:
    """Where one tool keeps one synced tree: its local folder and remote prefix."""

    tool: str
    backend: Backend
    prefix: str
    local: Path     # what the tool is pointed at (the tree, or s3sync's workspace)
    data: Path      # where the files are (the tree, or the workspace's data folder)


class Tool:
    name = "?"
    missing: str | None = None   # why it cannot run here
    version = ""

    def push_place(self, runner: Runner, backend: Backend, tree: Path, prefix: str) -> Place:
        return Place(self.name, backend, prefix, tree, tree)

    def pull_place(self, runner: Runner, backend: Backend, prefix: str) -> Place:
        dest = runner.newdir(f"pull-{self.name}")
        return Place(self.name, backend, prefix, dest, dest)

    def push(self, place: Place, *, again: bool = False) -> Cmd:
        raise NotImplementedError

    def pull(self, place: Place) -> Cmd:
        raise NotImplementedError

    def put_file(self, place: Place, name: str) -> Cmd:
        """Upload the one file ``place.data/name`` (a cp, not a sync)."""
        return self.push(place)

    def get_file(self, place: Place, name: str) -> Cmd:
        return self.pull(place)

    def start(self) -> Cmd:
        raise NotImplementedError


def _version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"? ({exc})"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) \
        else "?"


def _find(name: str) -> str | None:
    # Console scripts of pip packages live beside the interpreter; the pyenv
    # shim on PATH would add its own start-up time to every run.
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    return shutil.which(name)


class S3sync(Tool):
    name = "s3sync"

    def __init__(self, runner: Runner, jobs: int | None = None, rev: str | None = None):
        self.runner = runner
        self.jobs = jobs
        if jobs is not None:
            self.name = f"s3sync -j{jobs}"
        self.exe = [sys.executable, "-m", "s3sync"]
        if rev is None:
            rev = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                                 capture_output=True, text=True).stdout.strip()
            rev += " (working tree)"
        self.rev = rev
        self.version = f"s3sync {rev}, Python {platform.python_version()}"

    def _jobs(self) -> list[str]:
        return ["-j", str(self.jobs)] if self.jobs else []

    def init(self, ws: Path, backend: Backend, prefix: str) -> None:
        self.runner.run(Cmd([*self.exe, "init", f"s3://{backend.bucket}/{prefix}",
                             "--endpoint-url", backend.url], cwd=str(ws)), check=True)

    def push_place(self, runner, backend, tree, prefix):
        ws = runner.newdir(f"ws-{prefix.replace('/', '-')}")
        hardlink_copy(tree, ws / "Data")
        self.init(ws, backend, prefix)
        return Place(self.name, backend, prefix, ws, ws / "Data")

    def pull_place(self, runner, backend, prefix):
        ws = runner.newdir(f"pull-{prefix.replace('/', '-')}")
        self.init(ws, backend, prefix)
        return Place(self.name, backend, prefix, ws, ws / "Data")

    def push(self, place, *, again=False):
        verb = "sync" if again else "push"
        return Cmd([*self.exe, verb, "--yes", "-q", *self._jobs()], cwd=str(place.local))

    def pull(self, place):
        return Cmd([*self.exe, "pull", "--yes", "-q", *self._jobs()], cwd=str(place.local))

    def command(self, place: Place, *args: str) -> Cmd:
        return Cmd([*self.exe, *args], cwd=str(place.local))

    def start(self):
        return Cmd([*self.exe, "--help"])


class Aws(Tool):
    name = "aws s3 sync"

    def __init__(self):
        self.exe = _find("aws")
        if not self.exe:
            self.missing = "not installed (pip install awscli)"
        else:
            self.version = _version([self.exe, "--version"])

    def _s3(self, place: Place, *args: str) -> Cmd:
        return Cmd([self.exe, "--endpoint-url", place.backend.url, "s3", *args,
                    "--only-show-errors", "--no-progress"])

    def _url(self, place: Place, name: str = "") -> str:
        return f"s3://{place.backend.bucket}/{place.prefix}/{name}"

    def push(self, place, *, again=False):
        return self._s3(place, "sync", str(place.data), self._url(place))

    def pull(self, place):
        return self._s3(place, "sync", self._url(place), str(place.data))

    def put_file(self, place, name):
        return self._s3(place, "cp", str(place.data / name), self._url(place, name))

    def get_file(self, place, name):
        return self._s3(place, "cp", self._url(place, name), str(place.data / name))

    def start(self):
        return Cmd([self.exe, "--version"])


class Rclone(Tool):
    name = "rclone"

    def __init__(self):
        self.exe = shutil.which("rclone")
        if not self.exe:
            self.missing = "not installed (apt-get install rclone)"
        else:
            self.version = _version([self.exe, "version"])

    def _cmd(self, place: Place, *args: str) -> Cmd:
        b = place.backend
        servers = load_servers()
        env = {"RCLONE_CONFIG_BENCH_TYPE": "s3", "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
               "RCLONE_CONFIG_BENCH_ENDPOINT": b.url,
               "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": servers.ACCESS_KEY,
               "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": servers.SECRET_KEY,
               "RCLONE_CONFIG_BENCH_REGION": REGION,
               "RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE": "true"}
        return Cmd([self.exe, *args, "-q"], env=env)

    def _remote(self, place: Place, name: str = "") -> str:
        return f"bench:{place.backend.bucket}/{place.prefix}" + (f"/{name}" if name else "")

    def push(self, place, *, again=False):
        return self._cmd(place, "sync", str(place.data), self._remote(place))

    def pull(self, place):
        return self._cmd(place, "sync", self._remote(place), str(place.data))

    def put_file(self, place, name):
        return self._cmd(place, "copyto", str(place.data / name), self._remote(place, name))

    def get_file(self, place, name):
        return self._cmd(place, "copyto", self._remote(place, name), str(place.data / name))

    def start(self):
        return Cmd([self.exe, "version"])


class S3cmd(Tool):
    name = "s3cmd"

    def __init__(self, root: Path):
        self.root = root
        self.exe = shutil.which("s3cmd")
        if not self.exe:
            self.missing = "not installed (apt-get install s3cmd)"
        else:
            self.version = _version([self.exe, "--version"])

    def _config(self, backend: Backend) -> str:
        servers = load_servers()
        path = self.root / f"s3cmd-{backend.name}.cfg"
        if not path.exists():
            host = backend.url.removeprefix("http://")
            path.write_text(
                "[default]\n"
                f"access_key = {servers.ACCESS_KEY}\nsecret_key = {servers.SECRET_KEY}\n"
                f"host_base = {host}\nhost_bucket = {host}\nbucket_location = {REGION}\n"
                "use_https = False\nsignature_v2 = False\n")
        return str(path)

    def _cmd(self, place: Place, *args: str) -> Cmd:
        return Cmd([self.exe, "-c", self._config(place.backend), *args, "-q", "--no-progress"])

    def _url(self, place: Place, name: str = "") -> str:
        return f"s3://{place.backend.bucket}/{place.prefix}/{name}"

    def push(self, place, *, again=False):
        return self._cmd(place, "sync", f"{place.data}/", self._url(place))

    def pull(self, place):
        return self._cmd(place, "sync", self._url(place), f"{place.data}/")

    def put_file(self, place, name):
        return self._cmd(place, "put", str(place.data / name), self._url(place, name))

    def get_file(self, place, name):
        return self._cmd(place, "get", self._url(place, name), str(place.data / name))

    def start(self):
        return Cmd([self.exe, "--version"])


def machine() -> dict:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem / 2**30, 1),
            "kernel": platform.release(), "python": platform.python_version()}
