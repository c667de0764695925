"""A real redis-server for the cluster conversation tests, and a TCP link a
test can cut (standard library only).

    with RedisServer() as r:                  # 127.0.0.1:<free port>, no persistence
        r.command("XLEN", "s")                # RESP2 over a raw socket
        r.kill(); r.start()                   # SIGKILL, then a new empty server on the same port
    with RedisServer(unix=True) as r:         # a Unix socket in a temporary directory
        r.url                                 # "unix:///tmp/.../redis.sock"
    with Link(r.port) as link:                # 127.0.0.1:<link.port> -> 127.0.0.1:<r.port>
        link.cut(); link.restore()            # drop every connection and refuse new ones; then relay again

The server runs with `--save '' --appendonly no`: a restart loses the stream,
as an unpersisted Redis does. Every wait has a deadline; the link's threads
are daemons joined on close.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
from typing import Optional

__all__ = ["RedisServer", "Link", "RedisError"]

START_TIMEOUT = 10.0


class RedisError(Exception):
    """An error reply (-ERR ...)."""


def _encode(args) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class _Reader:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = bytearray()

    def _line(self) -> bytes:
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("redis closed the connection")
            self.buf += data

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n + 2:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("redis closed the connection")
            self.buf += data
        out = bytes(self.buf[:n])
        del self.buf[:n + 2]
        return out

    def reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n).decode("utf-8", "replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise AssertionError(f"unexpected RESP line {line!r}")


class RedisServer:
    """One redis-server process. `port` (TCP, loopback) or `unix` (a socket path)."""

    def __init__(self, *, unix: bool = False, args=(), start: bool = True):
        self.binary = shutil.which("redis-server") or ("/usr/bin/redis-server"
                                                       if os.access("/usr/bin/redis-server", os.X_OK) else None)
        if not self.binary:
            raise unittest.SkipTest("redis-server is not installed (scripts/setup.sh installs it)")
        self.tmp = tempfile.TemporaryDirectory(prefix="cachalot-redis-")
        self.unix = unix
        self.socket_path = os.path.join(self.tmp.name, "redis.sock") if unix else None
        self.port: Optional[int] = None
        self.args = list(args)
        self.proc: Optional[subprocess.Popen] = None
        self.log_path = os.path.join(self.tmp.name, "redis.log")
        if start:
            self.start()

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}" if self.unix else f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (or start again, on the same port or socket) an empty server."""
        first = self.port is None
        for _ in range(3):
            if self.port is None:
                self.port = 0 if self.unix else self._free_port()
            argv = [self.binary, "--save", "", "--appendonly", "no", "--dir", self.tmp.name,
                    "--bind", "127.0.0.1", "--port", str(self.port), "--daemonize", "no",
                    "--logfile", self.log_path, *self.args]
            if self.unix:
                argv += ["--unixsocket", self.socket_path, "--unixsocketperm", "700"]
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, start_new_session=True)
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    if self.command("PING", timeout=1.0) == "PONG":
                        return
                except OSError:
                    pass
                time.sleep(0.02)
            self._reap()
            if first and not self.unix:
                self.port = None  # lost a race for the port: take another
        raise AssertionError(f"redis-server did not start; log:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: the server dies without a word, its stream with it."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self._reap()

    def _reap(self) -> None:
        if self.proc is not None:
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def close(self) -> None:
        self.kill()
        self.tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def log_tail(self, n: int = 20) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def _connect(self, timeout: float) -> socket.socket:
        if self.unix:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            try:
                s.connect(self.socket_path)
            except OSError:
                s.close()
                raise
        else:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        return s

    def command(self, *args, timeout: float = 5.0):
        """One command on a fresh connection; an error reply is raised as RedisError."""
        with self._connect(timeout) as s:
            s.sendall(_encode(args))
            r = _Reader(s).reply()
        if isinstance(r, RedisError):
            raise r
        return r

    def xlen(self, stream: str) -> int:
        return self.command("XLEN", stream)

    def clients(self) -> list:
        """CLIENT LIST as dicts (name, addr, cmd, ...), this query's own connection left out."""
        out = []
        for line in self.command("CLIENT", "LIST").splitlines():
            fields = dict(kv.split("=", 1) for kv in line.split(" ") if "=" in kv)
            if fields.get("cmd") != "client|list" and fields.get("cmd") != "client":
                out.append(fields)
        return out

    def connections_received(self) -> int:
        for line in self.command("INFO", "stats").splitlines():
            if line.startswith("total_connections_received:"):
                return int(line.split(":", 1)[1])
        raise AssertionError("INFO stats has no total_connections_received")

    @staticmethod
    def _free_port() -> int:
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
        finally:
            s.close()



class Link:
    """A TCP relay on loopback: 127.0.0.1:port -> 127.0.0.1:target_port. cut()
    closes every relayed connection and, until restore(), closes each new one
    as soon as it is accepted (the client sees its connection reset or closed)."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self._lock = threading.Lock()
        self._pairs: list = []
        self._cut = False
        self._closed = False
        self._threads: list = []
        self._accept = threading.Thread(target=self._accept_loop, daemon=True)
        self._accept.start()

    def cut(self) -> None:
        with self._lock:
            self._cut = True
            pairs, self._pairs = self._pairs, []
        for a, b in pairs:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def restore(self) -> None:
        with self._lock:
            self._cut = False

    def connections(self) -> int:
        with self._lock:
            return len(self._pairs)

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                cut = self._cut
            if cut:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=2.0)
            except OSError:
                client.close()
                continue
            for s in (client, upstream):
                s.settimeout(None)
            with self._lock:
                self._pairs.append((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                t = threading.Thread(target=self._pump, args=(src, dst), daemon=True)
                t.start()
                self._threads.append(t)

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self._closed = True
        self.cut()
        self.listener.close()
        self._accept.join(2.0)
        for t in self._threads:
            t.join(2.0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
