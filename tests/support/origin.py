"""A scriptable fake origin for conversation tests (standard library only).

It listens on 127.0.0.1 on an ephemeral port and serves HTTP/1.1 with
keep-alive from background threads, one thread per connection, on raw
sockets so that tests can make it misbehave on purpose.

Scripting::

    with Origin() as o:
        o.route("/a", Reply(200, {"Cache-Control": "no-store"}, b"hello"))
        o.route("/api/", lambda req: Reply(200, body=req.path.encode()), prefix=True)
        ...
        o.wait_for_requests(1, path="/a")
        assert o.requests("/a")[0].header("if-none-match") is None

A handler is a `Reply` or a callable taking the `Request` and returning one.
A `Reply` describes the status, fields and body (bytes, an iterable of byte
chunks, or a zero-argument callable returning such an iterable, so a route
can serve many requests), delays, a gate (an Event to wait on before the
head), and faults: close or reset before answering or mid-body, never answer,
or raw bytes sent verbatim (a malformed response).

Every request is recorded (method, target, fields in order, body, the id of
the connection it came on) before the handler runs. All waits are bounded.
"""

from __future__ import annotations

import hashlib
import socket
import struct
import threading
import time
from typing import Callable, Optional, Sequence, Union

__all__ = ["Origin", "Reply", "Request", "closed_port", "Gate"]

Headers = Union[Sequence[tuple], dict, None]

# Faults a Reply can inject.
CLOSE = "close"                    # close (FIN) instead of answering
RESET = "reset"                    # reset (RST, SO_LINGER 0) instead of answering
CLOSE_MID_BODY = "close_mid_body"  # send the head and part of the body, then FIN
RESET_MID_BODY = "reset_mid_body"  # send the head and part of the body, then RST
HANG = "hang"                      # read the request, never answer
ACTIONS = (None, CLOSE, RESET, CLOSE_MID_BODY, RESET_MID_BODY, HANG)

_MAX_HEAD = 1 << 20       # the origin refuses heads larger than this
_IO_TIMEOUT = 30.0        # per socket operation
_HANG_MAX = 60.0          # a hanging reply gives up after this long
_GATE_MAX = 30.0          # a gated reply waits at most this long

_REASONS = {
    100: "Continue", 200: "OK", 201: "Created", 204: "No Content", 206: "Partial Content",
    301: "Moved Permanently", 302: "Found", 304: "Not Modified", 400: "Bad Request",
    403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 410: "Gone",
    413: "Content Too Large", 500: "Internal Server Error", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout",
}


def closed_port() -> int:
    """A loopback port on which nothing listens (connections are refused)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


class Gate:
    """An Event with a bounded wait, used to hold a reply until the test says go."""

    def __init__(self, max_wait: float = _GATE_MAX):
        self._event = threading.Event()
        self.max_wait = max_wait

    def open(self) -> None:
        self._event.set()

    def is_open(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: Optional[float] = None) -> bool:
        return self._event.wait(self.max_wait if timeout is None else timeout)


def _field_list(headers: Headers) -> list:
    if headers is None:
        return []
    if isinstance(headers, dict):
        return [(str(k), str(v)) for k, v in headers.items()]
    return [(str(k), str(v)) for k, v in headers]


class Fields:
    """An ordered, case-insensitive list of (name, value) field lines."""

    def __init__(self, items: Headers = None):
        self.items = _field_list(items)

    def get_all(self, name: str) -> list:
        n = name.lower()
        return [v for k, v in self.items if k.lower() == n]

    def get(self, name: str, default=None):
        """All field lines with this name joined by ", " (RFC 9110 §5.3), or default."""
        vals = self.get_all(name)
        return ", ".join(vals) if vals else default

    def has(self, name: str) -> bool:
        n = name.lower()
        return any(k.lower() == n for k, _ in self.items)

    def names(self) -> list:
        return [k for k, _ in self.items]

    def tokens(self, name: str) -> list:
        """Comma-separated list members, lower-cased (e.g. Connection options)."""
        out = []
        for v in self.get_all(name):
            out.extend(t.strip().lower() for t in v.split(",") if t.strip())
        return out

    def __contains__(self, name: str) -> bool:
        return self.has(name)

    def __iter__(self):
        return iter(self.items)

    def __len__(self):
        return len(self.items)

    def __repr__(self):
        return f"Fields({self.items!r})"


class Request:
    """One request as the origin received it."""

    def __init__(self, index, conn_id, method, target, version, headers, raw_head):
        self.index = index              # order of arrival at this origin, from 0
        self.conn_id = conn_id          # connection it arrived on, from 1
        self.method = method
        self.target = target
        self.version = version          # "HTTP/1.1"
        self.headers = Fields(headers)
        self.raw_head = raw_head        # bytes, as received (request line to CRLFCRLF)
        self.body = b""
        self.body_len = 0
        self.body_sha256 = hashlib.sha256(b"").hexdigest()
        self.chunked = False            # the body arrived with chunked framing
        self.trailers = Fields()
        self.received_at = time.monotonic()
        self.body_complete = False      # the whole body was read
        self.response_bytes_sent = 0    # bytes of the reply written so far (head + body)
        self.response_done = False

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str:
        return self.target.split("?", 1)[1] if "?" in self.target else ""

    def header(self, name: str, default=None):
        return self.headers.get(name, default)

    def __repr__(self):
        return f"<Request #{self.index} conn={self.conn_id} {self.method} {self.target} {self.headers.items!r}>"


class Reply:
    """What the origin sends back. See the module docstring."""

    def __init__(self, status: int = 200, headers: Headers = None, body=b"", *,
                 reason: Optional[str] = None,
                 chunked: Optional[bool] = None,
                 trailers: Headers = None,
                 delay_head: float = 0.0,
                 delay_chunk: float = 0.0,
                 gate: Optional[Gate] = None,
                 action: Optional[str] = None,
                 raw: Optional[bytes] = None,
                 close: bool = False,
                 sndbuf: Optional[int] = None,
                 keep_body: bool = True,
                 version: str = "HTTP/1.1"):
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}")
        self.status = status
        self.headers = _field_list(headers)
        self.body = body
        self.reason = reason if reason is not None else _REASONS.get(status, "Status")
        # chunked: None = chunked for an iterable body without Content-Length.
        self.chunked = chunked
        self.trailers = _field_list(trailers)
        self.delay_head = delay_head
        self.delay_chunk = delay_chunk
        self.gate = gate
        self.action = action
        self.raw = raw            # sent verbatim instead of a head and body
        self.close = close        # close after this reply even without Connection: close
        self.sndbuf = sndbuf      # SO_SNDBUF for this connection (slow-consumer tests)
        self.keep_body = keep_body  # False: record only the request body's length and hash
        self.version = version

    @staticmethod
    def text(status: int, text: str, headers: Headers = None, **kw) -> "Reply":
        h = [("Content-Type", "text/plain")] + _field_list(headers)
        return Reply(status, h, text.encode(), **kw)


def _has(fields: list, name: str) -> bool:
    n = name.lower()
    return any(k.lower() == n for k, _ in fields)


def _tokens(fields: list, name: str) -> list:
    n = name.lower()
    out = []
    for k, v in fields:
        if k.lower() == n:
            out.extend(t.strip().lower() for t in v.split(",") if t.strip())
    return out


class _PeerGone(Exception):
    pass


class _Conn:
    """Buffered reads from one accepted socket."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = bytearray()

    def fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise _PeerGone()
        self.buf += data

    def read_until(self, sep: bytes, limit: int) -> bytes:
        start = 0
        while True:
            i = self.buf.find(sep, start)
            if i >= 0:
                out = bytes(self.buf[:i + len(sep)])
                del self.buf[:i + len(sep)]
                return out
            if len(self.buf) > limit:
                raise ValueError("line or head too long")
            start = max(0, len(self.buf) - len(sep) + 1)
            self.fill()

    def read_exact(self, n: int, sink) -> None:
        while n > 0:
            if not self.buf:
                self.fill()
            take = min(n, len(self.buf))
            sink(bytes(self.buf[:take]))
            del self.buf[:take]
            n -= take


class Origin:
    """The fake origin server. Use as a context manager, or call close()."""

    def __init__(self, host: str = "127.0.0.1"):
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError("the fake origin listens on loopback only")
        self._lock = threading.RLock()  # re-entrant: wait_for predicates read properties
        self._cond = threading.Condition(self._lock)
        self._routes = {}         # exact path -> handler
        self._prefixes = []       # (prefix, handler), longest first
        self._default = (Reply.text(404, "no route\n"), True)
        self._log = []            # Request, in arrival order
        self._next_index = 0
        self._next_conn = 0
        self._open = {}           # conn_id -> socket
        self._conns_opened = 0
        self._conns_closed = 0
        self._threads = []
        self._stop = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(256)
        self._listener.settimeout(0.1)
        self.host = "127.0.0.1"
        self.port = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept_loop, name=f"origin-{self.port}", daemon=True)
        self._acceptor.start()

    # ---- scripting -------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def authority(self) -> str:
        return f"{self.host}:{self.port}"

    def route(self, path: str, handler, prefix: bool = False, keep_body: bool = True) -> None:
        """Serve `path` (exact match on the path, query ignored) or every path
        starting with it when prefix=True. handler: Reply or callable(Request) -> Reply.
        keep_body=False records only the length and SHA-256 of request bodies (uploads)."""
        with self._lock:
            if prefix:
                self._prefixes = [(p, h, k) for p, h, k in self._prefixes if p != path]
                self._prefixes.append((path, handler, keep_body))
                self._prefixes.sort(key=lambda phk: -len(phk[0]))
            else:
                self._routes[path] = (handler, keep_body)

    def rules(self, table: dict) -> None:
        """Install several routes: {path: Reply or callable}; a key ending in '*' is a prefix."""
        for path, handler in table.items():
            if path.endswith("*"):
                self.route(path[:-1], handler, prefix=True)
            else:
                self.route(path, handler)

    def default(self, handler) -> None:
        """Handler for paths no route matches (default: 404 text)."""
        with self._lock:
            self._default = (handler, True)

    # ---- observation -----------------------------------------------------
    def requests(self, path: Optional[str] = None) -> list:
        """Requests received so far (optionally only those for this path), in order."""
        with self._lock:
            return [r for r in self._log if path is None or r.path == path]

    def request_count(self, path: Optional[str] = None) -> int:
        return len(self.requests(path))

    def wait_for_requests(self, n: int, timeout: float = 5.0, path: Optional[str] = None) -> list:
        """Block until at least n requests (for path) have arrived; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = [r for r in self._log if path is None or r.path == path]
                if len(got) >= n:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"origin: expected {n} request(s){' for ' + path if path else ''} within "
                        f"{timeout}s, got {len(got)}: {[r.method + ' ' + r.target for r in got]}")
                self._cond.wait(min(left, 0.5))

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
        """Block until predicate() is true (checked on every origin event and every 50 ms)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"origin: {what} not reached within {timeout}s")
                self._cond.wait(min(left, 0.05))

    def reset_log(self) -> None:
        with self._lock:
            self._log.clear()

    def connection_ids(self, path: Optional[str] = None) -> set:
        """Ids of the connections that carried the logged requests (for path)."""
        return {r.conn_id for r in self.requests(path)}

    @property
    def connections_opened(self) -> int:
        with self._lock:
            return self._conns_opened

    @property
    def connections_closed(self) -> int:
        with self._lock:
            return self._conns_closed

    @property
    def connections_open(self) -> int:
        with self._lock:
            return len(self._open)

    # ---- lifecycle -------------------------------------------------------
    def close(self) -> None:
        self._stop.set()
        try:
            self._listener.close()
        except OSError:
            pass
        with self._lock:
            socks = list(self._open.values())
            self._cond.notify_all()
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._acceptor.join(5)
        for t in list(self._threads):
            t.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- server internals ------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(_IO_TIMEOUT)
            with self._lock:
                self._next_conn += 1
                conn_id = self._next_conn
                self._open[conn_id] = sock
                self._conns_opened += 1
                self._threads = [t for t in self._threads if t.is_alive()]
                t = threading.Thread(target=self._serve, args=(sock, conn_id),
                                     name=f"origin-{self.port}-c{conn_id}", daemon=True)
                self._threads.append(t)
                self._cond.notify_all()
            t.start()

    def _handler_for(self, path: str):
        """(handler, keep_body) for a path."""
        with self._lock:
            if path in self._routes:
                return self._routes[path]
            for p, h, k in self._prefixes:
                if path.startswith(p):
                    return h, k
            return self._default

    def _serve(self, sock: socket.socket, conn_id: int) -> None:
        conn = _Conn(sock)
        reset = False
        try:
            while not self._stop.is_set():
                req, keep_body = self._read_request(conn, conn_id)
                if req is None:
                    break
                handler, _ = self._handler_for(req.path)
                reply = handler(req) if callable(handler) and not isinstance(handler, Reply) else handler
                if not isinstance(reply, Reply):
                    reply = Reply.text(500, f"handler returned {reply!r}\n")
                keep, reset = self._answer(conn, req, reply)
                if not keep:
                    break
        except (_PeerGone, ConnectionError, socket.timeout, OSError, ValueError):
            pass
        finally:
            if not reset:
                try:
                    sock.close()
                except OSError:
                    pass
            with self._lock:
                self._open.pop(conn_id, None)
                self._conns_closed += 1
                self._cond.notify_all()

    def _read_request(self, conn: _Conn, conn_id: int):
        try:
            head = conn.read_until(b"\r\n\r\n", _MAX_HEAD)
        except _PeerGone:
            return None, True
        # Tolerate (but preserve in raw_head) leading empty lines, RFC 9112 §2.2.
        text = head.decode("latin-1")
        stripped = text.lstrip("\r\n")
        lines = stripped[:-4].split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            raise ValueError(f"origin: bad request line {lines[0]!r}")
        method, target, version = parts
        fields = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise ValueError(f"origin: bad field line {line!r}")
            fields.append((name, value.strip(" \t")))
        with self._lock:
            req = Request(self._next_index, conn_id, method, target, version, fields, head)
            self._next_index += 1
        handler, keep_body = self._handler_for(req.path)
        if isinstance(handler, Reply) and not handler.keep_body:
            keep_body = False
        if "100-continue" in _tokens(fields, "expect"):
            conn.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        # Log the request as soon as its head is in, so tests can see requests
        # whose bodies are still streaming; the body fields fill in after.
        with self._cond:
            self._log.append(req)
            self._cond.notify_all()
        self._read_body(conn, req, keep_body)
        with self._cond:
            req.body_complete = True
            self._cond.notify_all()
        return req, keep_body

    def _read_body(self, conn: _Conn, req: Request, keep_body: bool) -> None:
        h = hashlib.sha256()
        parts = []

        def sink(data: bytes) -> None:
            h.update(data)
            req.body_len += len(data)
            if keep_body:
                parts.append(data)

        te = _tokens(req.headers.items, "transfer-encoding")
        if te:
            if te[-1] != "chunked":
                raise ValueError("origin: unsupported transfer coding")
            req.chunked = True
            for _ in range(10_000_000):
                line = conn.read_until(b"\r\n", 4096).decode("latin-1")
                size = int(line.split(";", 1)[0].strip(), 16)
                if size == 0:
                    break
                conn.read_exact(size, sink)
                if conn.read_until(b"\r\n", 2) != b"\r\n":
                    raise ValueError("origin: bad chunk terminator")
            trailers = []
            for _ in range(1000):
                line = conn.read_until(b"\r\n", 65536).decode("latin-1")
                if line == "\r\n":
                    break
                name, _, value = line[:-2].partition(":")
                trailers.append((name, value.strip()))
            req.trailers = Fields(trailers)
        elif req.headers.has("content-length"):
            n = int(req.headers.get_all("content-length")[0])
            conn.read_exact(n, sink)
        req.body = b"".join(parts)
        req.body_sha256 = h.hexdigest()

    def _send(self, sock: socket.socket, req: Request, data: bytes) -> None:
        if data:
            sock.sendall(data)
            req.response_bytes_sent += len(data)
            with self._cond:
                self._cond.notify_all()

    @staticmethod
    def _rst(sock: socket.socket) -> None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()

    def _body_pieces(self, reply: Reply):
        body = reply.body
        if callable(body):
            body = body()
        if isinstance(body, (bytes, bytearray, memoryview)):
            return bytes(body), None
        return None, iter(body)

    def _answer(self, conn: _Conn, req: Request, reply: Reply):
        """Send the reply. Returns (keep_alive, socket_already_reset)."""
        sock = conn.sock
        if reply.sndbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, reply.sndbuf)
        if reply.gate is not None:
            reply.gate.wait()
        if reply.delay_head:
            self._stop.wait(reply.delay_head)
        if reply.action == CLOSE:
            sock.shutdown(socket.SHUT_RDWR)
            return False, False
        if reply.action == RESET:
            self._rst(sock)
            return False, True
        if reply.action == HANG:
            deadline = time.monotonic() + _HANG_MAX
            sock.settimeout(0.1)
            while not self._stop.is_set() and time.monotonic() < deadline:
                try:
                    if not sock.recv(65536):
                        break
                except socket.timeout:
                    continue
                except OSError:
                    break
            return False, False
        if reply.raw is not None:
            self._send(sock, req, reply.raw)
            req.response_done = True
            return (not reply.close), False

        fixed, pieces = self._body_pieces(reply)
        headers = list(reply.headers)
        no_body = req.method == "HEAD" or reply.status in (204, 304) or 100 <= reply.status < 200
        explicit_len = _has(headers, "content-length")
        explicit_te = _has(headers, "transfer-encoding")
        chunked = reply.chunked
        if chunked is None:
            chunked = explicit_te or (fixed is None and not explicit_len)
        if chunked and not explicit_te and not no_body:
            headers.append(("Transfer-Encoding", "chunked"))
        if not chunked and not explicit_len and fixed is not None and reply.status not in (204, 304) \
                and not 100 <= reply.status < 200:
            headers.append(("Content-Length", str(len(fixed))))
        head = f"{reply.version} {reply.status} {reply.reason}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
        mid_body = reply.action in (CLOSE_MID_BODY, RESET_MID_BODY)

        if no_body:
            self._send(sock, req, head.encode("latin-1"))
        else:
            if fixed is not None:
                pieces = iter([fixed[:len(fixed) // 2], fixed[len(fixed) // 2:]] if mid_body else [fixed])
            self._send(sock, req, head.encode("latin-1"))
            sent_pieces = 0
            for piece in pieces:
                if sent_pieces and reply.delay_chunk:
                    self._stop.wait(reply.delay_chunk)
                if self._stop.is_set():
                    return False, False
                if not piece:
                    continue
                if chunked:
                    self._send(sock, req, b"%x\r\n" % len(piece) + bytes(piece) + b"\r\n")
                else:
                    self._send(sock, req, bytes(piece))
                sent_pieces += 1
                if mid_body:
                    break
            if mid_body:
                if reply.action == RESET_MID_BODY:
                    self._rst(sock)
                    return False, True
                sock.shutdown(socket.SHUT_RDWR)
                return False, False
            if chunked:
                trailer = "".join(f"{k}: {v}\r\n" for k, v in reply.trailers)
                self._send(sock, req, b"0\r\n" + trailer.encode("latin-1") + b"\r\n")
        req.response_done = True
        with self._cond:
            self._cond.notify_all()
        keep = not reply.close
        if "close" in _tokens(headers, "connection") or "close" in req.headers.tokens("connection"):
            keep = False
        if req.version == "HTTP/1.0" and "keep-alive" not in req.headers.tokens("connection"):
            keep = False
        return keep, False
