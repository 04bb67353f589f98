"""A counting HTTP proxy: plain TCP forwarding that parses request lines.

Every client under test talks to the server through one of these, so each
one is counted the same way, whatever its HTTP library: the proxy reads
the client's byte stream as a sequence of HTTP/1.1 requests (request line,
headers, then a body framed by Content-Length or chunked transfer coding),
counts each request, and forwards every byte unchanged. Responses are
forwarded without parsing. Keep-alive connections carry many requests;
each is counted once. Nothing is rewritten, so SigV4 signatures (which
cover the Host header the client sent) still verify.

    with CountingProxy("127.0.0.1", 8333) as proxy:
        ...  # point the client at proxy.url
        counts = proxy.take()  # requests since the last take()
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

HOST = "127.0.0.1"
FIRST_LINES = 12


@dataclass
class Counts:
    """Requests and bytes seen between two ``take()`` calls."""

    requests: int = 0
    kinds: Counter = field(default_factory=Counter)
    bytes_up: int = 0      # client to server, headers included
    bytes_down: int = 0    # server to client
    connections: int = 0
    first: list = field(default_factory=list)   # the first request lines, for the record

    def to_dict(self) -> dict:
        return {"requests": self.requests, "kinds": dict(sorted(self.kinds.items())),
                "bytes_up": self.bytes_up, "bytes_down": self.bytes_down,
                "connections": self.connections, "first": self.first}


def classify(method: str, target: str, headers: dict[str, str]) -> str:
    """A short S3 name for a request: LIST, GET, HEAD, PUT, COPY, DELETE, MPU-* ..."""
    parts = urlsplit(target)
    query = parse_qs(parts.query, keep_blank_values=True)
    segments = [s for s in parts.path.split("/") if s]
    if method == "GET" and len(segments) <= 1:
        return "LIST" if segments else "LIST-BUCKETS"
    if method == "PUT" and "x-amz-copy-source" in headers:
        return "COPY"
    if method == "POST" and "uploads" in query:
        return "MPU-CREATE"
    if method == "PUT" and "partNumber" in query:
        return "MPU-PART"
    if method == "POST" and "uploadId" in query:
        return "MPU-COMPLETE"
    if method == "DELETE" and "uploadId" in query:
        return "MPU-ABORT"
    if method == "POST" and "delete" in query:
        return "DELETE-MULTI"
    if method == "PUT" and len(segments) == 1:
        return "CREATE-BUCKET"
    return method


class CountingProxy:
    """Listens on 127.0.0.1 (a free port) and forwards to ``upstream``."""

    def __init__(self, upstream_host: str, upstream_port: int):
        self.upstream = (upstream_host, upstream_port)
        self.port: int | None = None
        self._counts = Counts()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    # -- counters ---------------------------------------------------------
    def take(self) -> Counts:
        """The counts since the last call, and start counting afresh."""
        with self._lock:
            counts, self._counts = self._counts, Counts()
        return counts

    def _add(self, **kw) -> None:
        with self._lock:
            c = self._counts
            if "kind" in kw:
                c.requests += 1
                c.kinds[kw["kind"]] += 1
                if len(c.first) < FIRST_LINES:
                    c.first.append(kw["line"])
            c.bytes_up += kw.get("up", 0)
            c.bytes_down += kw.get("down", 0)
            c.connections += kw.get("connections", 0)

    # -- life cycle ---------------------------------------------------------
    def start(self) -> CountingProxy:
        ready = threading.Event()
        failure: list[BaseException] = []

        def main():
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    loop.create_server(self._connection, HOST, 0, backlog=512))
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:  # noqa: BLE001 - reported to start()
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            self._server.close()
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.close()

        self._thread = threading.Thread(target=main, name="counting-proxy", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._loop and self._thread and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- forwarding -------------------------------------------------------
    # asyncio protocols rather than streams: bytes are forwarded the moment
    # they arrive and only the request side is scanned, so the proxy costs
    # each client as little CPU as it can (it shares the cores with them).
    def _connection(self) -> _ClientSide:
        return _ClientSide(self)


class _Side(asyncio.Protocol):
    """One socket of a relayed connection; ``peer`` is the other one."""

    def __init__(self):
        self.transport: asyncio.Transport | None = None
        self.peer: _Side | None = None
        self._early: list[bytes] = []

    def send(self, data: bytes) -> None:
        if self.transport is None:
            self._early.append(data)
        elif not self.transport.is_closing():
            self.transport.write(data)

    def connection_made(self, transport) -> None:
        self.transport = transport
        for data in self._early:
            transport.write(data)
        self._early.clear()

    def pause_writing(self) -> None:  # our buffer is full: stop reading the peer
        if self.peer and self.peer.transport:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer and self.peer.transport:
            self.peer.transport.resume_reading()

    def eof_received(self):
        if self.peer and self.peer.transport and self.peer.transport.can_write_eof():
            self.peer.transport.write_eof()
            return True  # keep our side open for the answer
        return False

    def connection_lost(self, exc) -> None:
        if self.peer and self.peer.transport:
            self.peer.transport.close()


class _ClientSide(_Side):
    def __init__(self, proxy: CountingProxy):
        super().__init__()
        self.proxy = proxy
        self.counter = _RequestCounter(proxy._add)

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self.proxy._add(connections=1)
        upstream = _Side()
        upstream.peer, self.peer = self, upstream
        upstream.data_received = self._answer
        loop = asyncio.get_running_loop()

        async def connect():
            try:
                await loop.create_connection(lambda: upstream, *self.proxy.upstream)
            except OSError:
                transport.close()

        loop.create_task(connect())

    def _answer(self, data: bytes) -> None:
        self.proxy._add(down=len(data))
        self.send(data)

    def data_received(self, data: bytes) -> None:
        self.proxy._add(up=len(data))
        self.counter.feed(data)
        self.peer.send(data)


class _RequestCounter:
    """Reads a client's byte stream as consecutive HTTP/1.1 requests, counting each.

    Bodies are framed by Content-Length or by chunked transfer coding; their
    bytes are skipped, not copied.
    """

    def __init__(self, add):
        self.add = add
        self.state = "head"
        self.buf = bytearray()   # the head, or a chunk-size / trailer line
        self.left = 0            # body bytes still to skip

    def feed(self, data: bytes) -> None:
        pos, n = 0, len(data)
        while pos < n:
            if self.state in ("body", "chunk"):
                take = min(self.left, n - pos)
                pos += take
                self.left -= take
                if not self.left:
                    self.state = "head" if self.state == "body" else "size"
                continue
            # head, size and trailer states collect a line or a head first
            end = b"\r\n\r\n" if self.state == "head" else b"\r\n"
            seen = len(self.buf)
            self.buf += data[pos:]
            i = self.buf.find(end, max(0, seen - len(end) + 1))
            if i < 0:
                return
            stop = i + len(end)
            pos += stop - seen
            piece = bytes(self.buf[:stop])
            self.buf.clear()
            self._done(piece)

    def _done(self, piece: bytes) -> None:
        if self.state == "size":
            size = int(piece.split(b";", 1)[0].strip() or b"0", 16)
            if size:
                self.state, self.left = "chunk", size + 2  # the data and its CRLF
            else:
                self.state = "trailer"
            return
        if self.state == "trailer":
            if piece == b"\r\n":
                self.state = "head"
            return
        lines = piece.decode("latin-1").split("\r\n")
        method, target = (lines[0].split(" ", 2) + ["", ""])[:2]
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        self.add(kind=classify(method, target, headers), line=lines[0][:200])
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self.state = "size"
        else:
            length = int(headers.get("content-length", "0") or 0)
            if length:
                self.state, self.left = "body", length
