"""A fault-injecting HTTP proxy on 127.0.0.1, in front of one S3 server.

The proxy speaks just enough HTTP/1.1 to find where each request and each
response begins and ends, so faults can be aimed at one request: by method
and by a regular expression searched in the request's percent-decoded path
(``/bucket/prefix/key``). Everything it does not touch passes through byte
for byte, Host header included, so signatures still verify upstream.

    with FaultProxy(server.endpoint_url) as proxy:
        proxy.slow_down(times=3, method="PUT")       # three 503 SlowDown, then through
        proxy.drop_response(after=10, path=r"/a\\.csv$")  # 10 body bytes, then a cut
        ... s3sync with endpoint_url=proxy.url ...
        assert proxy.count(method="PUT") == 4

A fault applies to the next ``times`` matching requests (``times=None``:
to every one); the first fault registered that matches wins. Only loopback
addresses are ever connected to or listened on, every socket has a
timeout, every loop is bounded, and leaving the ``with`` block stops the
server and closes every connection it holds.
"""

from __future__ import annotations

import http
import ipaddress
import re
import socket
import socketserver
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

HOST = "127.0.0.1"
IO_TIMEOUT = 10.0          # seconds any one socket operation may block
MAX_HEAD = 64 << 10        # bytes of a request or response head
MAX_REQUESTS = 1000        # per client connection
MAX_DELAY = 30.0
_CHUNK = 64 << 10


@dataclass
class Fault:
    kind: str                      # error, drop_request, drop_response, truncate, delay
    times: int | None = 1          # None: every matching request
    method: str | None = None
    path: re.Pattern | None = None
    status: int = 0
    code: str = ""
    message: str = ""
    after: int | None = 0          # bytes let through before a drop or truncation
    seconds: float = 0.0
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.method is not None and self.method != method:
            return False
        return self.path is None or self.path.search(path) is not None


@dataclass(frozen=True)
class Seen:
    """One request as the proxy saw it, and what it did to it."""

    method: str
    path: str
    query: str
    fault: str | None       # the kind of fault applied, or None
    status: int | None      # the status the client got, if it got one


@dataclass
class _Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]] = field(default_factory=list)

    def header(self, name: str) -> str:
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v.strip()
        return ""

    @property
    def path(self) -> str:
        return unquote(urlsplit(self.target).path)

    @property
    def query(self) -> str:
        return urlsplit(self.target).query


class _Stream:
    """Buffered reads from a socket: heads up to a blank line, exact lengths."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = b""

    def _fill(self) -> bool:
        data = self.sock.recv(_CHUNK)
        self.buf += data
        return bool(data)

    def head(self) -> bytes | None:
        """Up to and including the blank line; None on a clean EOF."""
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > MAX_HEAD:
                raise ConnectionError("head too large")
            if not self._fill():
                if self.buf:
                    raise ConnectionError("connection closed inside a head")
                return None
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        return head + b"\r\n\r\n"

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if len(self.buf) > MAX_HEAD:
                raise ConnectionError("line too long")
            if not self._fill():
                raise ConnectionError("connection closed inside a line")
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line + b"\r\n"

    def exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise ConnectionError(f"connection closed after {len(self.buf)} of {n} bytes")
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def at_most(self, n: int) -> bytes:
        """Up to ``n`` bytes: what is buffered, else one read (b"" at EOF)."""
        if not self.buf:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def chunked(self) -> bytes:
        """A whole chunked body, raw (sizes, chunks, trailers)."""
        out = []
        for _ in range(1 << 20):  # chunks; bounded
            size_line = self.line()
            out.append(size_line)
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                for _ in range(1000):  # trailers, up to the blank line
                    trailer = self.line()
                    out.append(trailer)
                    if trailer == b"\r\n":
                        return b"".join(out)
                raise ConnectionError("too many trailers")
            out.append(self.exactly(size + 2))
        raise ConnectionError("too many chunks")


def _parse_head(raw: bytes) -> tuple[str, list[tuple[str, str]]]:
    lines = raw.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    return lines[0], headers


def _build_head(first: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [first, *(f"{k}: {v}" for k, v in headers), "", ""]
    return "\r\n".join(lines).encode("latin-1")


def _get(headers: list[tuple[str, str]], name: str) -> str:
    for k, v in headers:
        if k.lower() == name:
            return v
    return ""


def _without(headers: list[tuple[str, str]], *names: str) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers if k.lower() not in names]


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _error_body(status: int, code: str, message: str, resource: str, n: int) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<Resource>{resource}</Resource><RequestId>faultproxy-{n}</RequestId>"
        f"<HostId>faultproxy</HostId></Error>"
    ).encode()


class FaultProxy:
    """A proxy on a free loopback port; ``url`` is what clients use as endpoint."""

    def __init__(self, upstream_url: str):
        parts = urlsplit(upstream_url)
        if parts.scheme != "http" or not parts.hostname or not _loopback(parts.hostname):
            raise ValueError(f"the fault proxy only fronts http on loopback: {upstream_url}")
        self.upstream = (parts.hostname, parts.port or 80)
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._seen: list[Seen] = []
        self._sockets: set[socket.socket] = set()
        self._server: socketserver.ThreadingTCPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # -- life cycle ------------------------------------------------------
    def start(self) -> FaultProxy:
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                proxy._handle(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True
            block_on_close = False

        self._server = Server((HOST, 0), Handler)
        self.url = f"http://{HOST}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="faultproxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            socks, self._sockets = list(self._sockets), set()
        for s in socks:
            _close(s)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- faults ------------------------------------------------------------
    def add(self, kind: str, *, times: int | None = 1, method: str | None = None,
            path: str | None = None, **kw) -> Fault:
        fault = Fault(kind, times, method, re.compile(path) if path else None, **kw)
        with self._lock:
            self._faults.append(fault)
        return fault

    def error(self, status: int, code: str, message: str | None = None, **match) -> Fault:
        """Answer matching requests with an S3 XML error; the server never sees them."""
        return self.add("error", status=status, code=code,
                        message=message or http.HTTPStatus(status).phrase, **match)

    def slow_down(self, **match) -> Fault:
        return self.error(503, "SlowDown", "Please reduce your request rate.", **match)

    def internal_error(self, **match) -> Fault:
        return self.error(500, "InternalError",
                          "We encountered an internal error. Please try again.", **match)

    def deny(self, **match) -> Fault:
        return self.error(403, "AccessDenied", "Access Denied", **match)

    def drop_request(self, after: int = 0, **match) -> Fault:
        """Pass ``after`` bytes of the request body to the server, then cut both sides."""
        return self.add("drop_request", after=after, **match)

    def drop_response(self, after: int | None = 0, **match) -> Fault:
        """The server handles the request; the client gets the response head and
        ``after`` bytes of its body, then the connection is cut. ``after=None``:
        the client gets nothing at all (the server did the work)."""
        return self.add("drop_response", after=after, **match)

    def truncate(self, to: int, **match) -> Fault:
        """Shorten the response body to ``to`` bytes, Content-Length rewritten to
        match: a response that looks complete but is not."""
        return self.add("truncate", after=to, **match)

    def delay(self, seconds: float, **match) -> Fault:
        """Hold the server's response back for ``seconds`` before passing it on."""
        return self.add("delay", seconds=min(seconds, MAX_DELAY), **match)

    def clear(self) -> None:
        """Remove every fault; from now on everything passes through."""
        with self._lock:
            self._faults.clear()

    # -- what happened -------------------------------------------------------
    @property
    def seen(self) -> list[Seen]:
        with self._lock:
            return list(self._seen)

    def count(self, *, method: str | None = None, path: str | None = None,
              fault: str | None = None) -> int:
        """Requests seen that match (``path`` is a regex searched in the path)."""
        pattern = re.compile(path) if path else None
        return sum(1 for s in self.seen
                   if (method is None or s.method == method)
                   and (pattern is None or pattern.search(s.path))
                   and (fault is None or s.fault == fault))

    def reset_counts(self) -> None:
        with self._lock:
            self._seen.clear()

    # -- the work ---------------------------------------------------------------
    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)
        _close(sock)

    def _pick(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.hits += 1
                    return fault
        return None

    def _note(self, req: _Request, fault: Fault | None, status: int | None) -> None:
        with self._lock:
            self._seen.append(Seen(req.method, req.path, req.query,
                                   fault.kind if fault else None, status))

    def _handle(self, client: socket.socket) -> None:
        client.settimeout(IO_TIMEOUT)
        self._track(client)
        stream = _Stream(client)
        try:
            for _ in range(MAX_REQUESTS):
                raw = stream.head()
                if raw is None:
                    return
                first, headers = _parse_head(raw)
                method, target, version = (first.split(" ", 2) + ["", ""])[:3]
                req = _Request(method, target, version, headers)
                if not self._exchange(stream, req):
                    return
        except (OSError, ValueError):
            return  # a cut, a timeout or garbage: this connection is over
        finally:
            self._untrack(client)

    def _exchange(self, client: _Stream, req: _Request) -> bool:
        """Serve one request; False when the client connection must close."""
        fault = self._pick(req.method, req.path)
        expect = req.header("expect").lower() == "100-continue"
        length = int(req.header("content-length") or 0)
        chunked = "chunked" in req.header("transfer-encoding").lower()

        if fault is not None and fault.kind == "error":
            if not expect:  # read what was sent, so the client is not cut mid-send
                client.chunked() if chunked else client.exactly(length)
            self._note(req, fault, fault.status)  # before the answer: the client may exit on it
            self._send_error(client.sock, req, fault)
            return False

        if expect:
            client.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        head = _build_head(f"{req.method} {req.target} {req.version}",
                           _without(req.headers, "expect", "connection", "keep-alive")
                           + [("Connection", "close")])

        upstream = socket.create_connection(self.upstream, timeout=IO_TIMEOUT)
        self._track(upstream)
        try:
            if fault is not None and fault.kind == "drop_request":
                part = client.exactly(min(fault.after or 0, length)) if not chunked \
                    else client.at_most(fault.after or 0)
                upstream.sendall(head + part)
                self._note(req, fault, None)
                return False
            body = client.chunked() if chunked else client.exactly(length)
            upstream.sendall(head + body)
            return self._relay(_Stream(upstream), client.sock, req, fault)
        finally:
            self._untrack(upstream)

    def _relay(self, upstream: _Stream, client: socket.socket, req: _Request,
               fault: Fault | None) -> bool:
        for _ in range(10):  # skip interim 1xx responses
            raw = upstream.head()
            if raw is None:
                raise ConnectionError("upstream closed without a response")
            first, headers = _parse_head(raw)
            status = int(first.split(" ", 2)[1])
            if status >= 200:
                break
        else:
            raise ConnectionError("too many interim responses")
        kind = fault.kind if fault else None

        if kind == "delay":
            time.sleep(fault.seconds)
        if kind == "drop_response" and fault.after is None:
            self._note(req, fault, None)
            return False

        no_body = req.method == "HEAD" or status in (204, 304)
        length_text = _get(headers, "content-length")
        chunked = "chunked" in _get(headers, "transfer-encoding").lower()
        length = int(length_text) if length_text and not chunked else None
        framed = no_body or chunked or length is not None
        out_headers = _without(headers, "connection", "keep-alive")

        limit = None  # body bytes the client may have
        if kind == "drop_response":
            limit = fault.after
        elif kind == "truncate" and length is not None and not no_body:
            limit = min(fault.after or 0, length)
            out_headers = [(k, str(limit) if k.lower() == "content-length" else v)
                           for k, v in out_headers]
        if not framed:
            out_headers.append(("Connection", "close"))
        # Noted before the client has the answer, which may be its last: a count
        # read once the client process has exited then always includes it.
        self._note(req, fault, status)
        client.sendall(_build_head(first, out_headers))

        if no_body:
            remaining = 0
        elif chunked or length is None:
            remaining = None  # raw until the server closes
        else:
            remaining = length
        sent = 0
        for _ in range(1 << 24):  # bounded: every pass moves at least one byte or ends
            if remaining == 0 or (limit is not None and sent >= limit):
                break
            want = _CHUNK if remaining is None else min(_CHUNK, remaining)
            if limit is not None:
                want = min(want, limit - sent)
            data = upstream.at_most(want)
            if not data:
                if remaining is not None:
                    raise ConnectionError("upstream cut the response short")
                break
            client.sendall(data)
            sent += len(data)
            if remaining is not None:
                remaining -= len(data)
        if kind == "drop_response":
            return False
        return framed and req.header("connection").lower() != "close"

    def _send_error(self, client: socket.socket, req: _Request, fault: Fault) -> None:
        with self._lock:
            n = len(self._seen)
        body = _error_body(fault.status, fault.code, fault.message, req.path, n)
        headers = [("Content-Type", "application/xml"),
                   ("x-amz-request-id", f"faultproxy-{n}"),
                   ("Content-Length", "0" if req.method == "HEAD" else str(len(body))),
                   ("Connection", "close")]
        phrase = http.HTTPStatus(fault.status).phrase
        head = _build_head(f"HTTP/1.1 {fault.status} {phrase}", headers)
        client.sendall(head if req.method == "HEAD" else head + body)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
