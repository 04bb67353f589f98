"""Hashing batches of small files in helper processes.

A first scan of many small files costs Python an open, a read, an fstat,
a close and a hash per file, all under the GIL, so threads only fight
over it. A helper process (this file, run as a script by the same
interpreter, as git runs its checkout workers) hashes whole batches sent
through a pipe while the scan's thread walks on, so both cores work.

A helper stats each file on the descriptor it reads, before and after
the read, and answers with that stat: a file the stat cache does not know
(every file of a first scan) then costs the scan's thread no stat at all.

GNU sha256sum was tried instead: its own SHA-256 took four times the CPU
of OpenSSL's, and the scan came out slower than hashing in Python.

This module imports nothing from libsync: the helper runs it alone.
"""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import stat
import struct
import subprocess
import sys
import threading

# A request: the length of the paths ("<IQ"), a size limit, then the paths,
# each followed by a NUL.
_REQUEST = struct.Struct("<IQ")
# One answer a path, in order: the sha256 digest, the size, mtime, ctime and
# inode of an fstat before the read, and a code: 0, an errno, or one below.
ANSWER = struct.Struct("<32sqqqQi")
CHANGED = -1      # size or mtime differed after the read: no digest
LARGE = -2        # larger than the limit: stat only, not read
NOT_REGULAR = -3  # not a regular file (swapped in after the walk saw one)
# A file is read in one call of its size and a byte more (which tells growth)
# when that is at most this, else in reads of this.
_READ_MAX = 1 << 20
# Non-blocking: a FIFO swapped in for a file must not hang the open.
_FLAGS = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
          | getattr(os, "O_NONBLOCK", 0))


def hash_one(path: bytes | str, limit: int) -> tuple[bytes, int, int, int, int, int]:
    """One file's answer (see ANSWER): read once, from one descriptor.

    The scan's own thread and pool hash by it too, so a helper and the scan
    judge a file alike (a FIFO swapped in hangs neither).
    """
    try:
        fd = os.open(path, _FLAGS)
    except OSError as exc:
        return b"", 0, 0, 0, 0, exc.errno or errno.EIO
    try:
        st = os.fstat(fd)
        size = st.st_size
        fields = (size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        if not stat.S_ISREG(st.st_mode):
            return (b"", *fields, NOT_REGULAR)
        if size > limit:
            return (b"", *fields, LARGE)
        h = hashlib.sha256()
        got = 0
        want = min(size + 1, _READ_MAX)
        while chunk := os.read(fd, want):
            h.update(chunk)
            got += len(chunk)
            if got >= size and len(chunk) < want:
                break  # a short read at the size: the end (the fstat below checks)
        after = os.fstat(fd)
        if (after.st_size, after.st_mtime_ns) != (size, fields[1]) or got != size:
            return (b"", *fields, CHANGED)
        return (h.digest(), *fields, 0)
    except OSError as exc:
        return b"", 0, 0, 0, 0, exc.errno or errno.EIO
    finally:
        os.close(fd)


class HashWorkers:
    """Up to ``n`` helper processes, started when first needed, one batch each at a time.

    ``hash`` returns None when no helper can serve (none could start, or one
    died): the caller then hashes the batch itself.
    """

    @staticmethod
    def available() -> bool:
        """Whether this interpreter can run the helper: not so in a frozen program."""
        return bool(sys.executable) and not getattr(sys, "frozen", False) \
            and os.path.exists(__file__)

    def __init__(self, n: int):
        self.n = n
        self._idle: list[_Worker] = []
        self._started: list[_Worker] = []
        self._broken = False
        self._free = threading.Condition()

    def start(self) -> None:
        """Start every helper now, for a scan that will surely need them."""
        with self._free:
            while len(self._started) < self.n and (worker := self._spawn()) is not None:
                self._idle.append(worker)

    def hash(self, paths: list[str], limit: int) -> list[tuple] | None:
        """ANSWER's fields for each path; files over ``limit`` bytes are not read."""
        worker = self._take()
        if worker is None:
            return None
        try:
            answers = worker.hash(paths, limit)
        except (OSError, ValueError):
            worker.kill()
            with self._free:
                self._broken = True
                self._free.notify_all()
            return None
        with self._free:
            self._idle.append(worker)
            self._free.notify()
        return answers

    def _take(self) -> _Worker | None:
        with self._free:
            while True:
                if self._broken:
                    return None
                if self._idle:
                    return self._idle.pop()
                if len(self._started) < self.n:
                    return self._spawn()
                self._free.wait()

    def _spawn(self) -> _Worker | None:
        """A new helper (the lock held), or None if none can start."""
        if self._broken:
            return None
        try:
            worker = _Worker()
        except OSError:
            self._broken = True
            return None
        self._started.append(worker)
        return worker

    @property
    def running(self) -> bool:
        return bool(self._started) and not self._broken

    def close(self) -> None:
        started, self._started = self._started, []
        for worker in started:
            worker.close()


class _Worker:
    def __init__(self):
        # -I: no user site, no PYTHON* variables, no cwd on the path; -S: no
        # site at all, so the helper starts in milliseconds.
        self.proc = subprocess.Popen([sys.executable, "-I", "-S", __file__],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)

    def hash(self, paths: list[str], limit: int) -> list[tuple]:
        blob = b"".join([os.fsencode(p) + b"\0" for p in paths])
        self.proc.stdin.write(_REQUEST.pack(len(blob), limit) + blob)
        self.proc.stdin.flush()
        want = len(paths) * ANSWER.size
        data = self.proc.stdout.read(want)
        if len(data) != want:
            raise OSError("a hashing helper stopped")
        return list(ANSWER.iter_unpack(data))

    def kill(self) -> None:
        self.proc.kill()
        self.close()

    def close(self) -> None:
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        self.proc.wait()


def serve(inp, out) -> None:
    """The helper: answer requests until the scan closes the pipe."""
    while len(head := inp.read(_REQUEST.size)) == _REQUEST.size:
        length, limit = _REQUEST.unpack(head)
        paths = inp.read(length).split(b"\0")[:-1]
        out.write(b"".join([ANSWER.pack(*hash_one(p, limit)) for p in paths]))
        out.flush()

if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the scan's to handle
    serve(sys.stdin.buffer, sys.stdout.buffer)
