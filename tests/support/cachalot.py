"""Run the real cachalot binary for conversation tests, and talk raw HTTP/1.1 to it.

    with Origin() as o, Cachalot({"routes": BYPASS_ALL}, upstream=o) as c:
        r = c.get("/a")                      # one request on a new connection
        with c.client() as cl:               # a raw connection
            cl.send(b"GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
            r = cl.read_response()
        m = c.metrics()                      # Prometheus text, parsed
        c.advance_clock(61)                  # test builds: move cachalot's clock, no sleep
        c.now()                              # time.time() on cachalot's clock (for Date fields)
        rc = c.stop()                        # SIGTERM, wait, exit code

The binary is $CACHALOT_BIN; without it, <source>/build-conv/cachalot or
<source>/build/cachalot (<source> is $CACHALOT_SOURCE_DIR or this checkout).
The config is a dict written as YAML by a small emitter; the harness fills
in the listen addresses (free loopback ports), the admin listener and the
upstream URL, and merges the test's dict over them. stderr goes to a file
(`log_text()`, `wait_for_log()`). Every wait has a deadline.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
from typing import Optional, Sequence

__all__ = [
    "Cachalot", "RawClient", "Response", "Metrics", "BYPASS_ALL", "binary_path", "source_dir",
    "to_yaml", "free_port", "build_request", "pipeline", "parse_metrics", "wait_until", "run_binary",
]

# A route that turns caching off for every path.
BYPASS_ALL = [{"name": "all", "prefix": "/", "bypass": True}]

START_TIMEOUT = 10.0
STOP_TIMEOUT = 15.0


# ---- locating things ------------------------------------------------------

def source_dir() -> str:
    env = os.environ.get("CACHALOT_SOURCE_DIR")
    if env:
        return env
    return os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def binary_path() -> str:
    """$CACHALOT_BIN (must exist), else a build in the source tree; SkipTest if none."""
    env = os.environ.get("CACHALOT_BIN")
    if env:
        if not os.access(env, os.X_OK):
            raise FileNotFoundError(f"CACHALOT_BIN={env} is not an executable file")
        return env
    for sub in ("build-conv", "build"):
        p = os.path.join(source_dir(), sub, "cachalot")
        if os.access(p, os.X_OK):
            return p
    raise unittest.SkipTest("no cachalot binary: set CACHALOT_BIN or build into build-conv/")


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def wait_until(predicate, timeout: float = 5.0, interval: float = 0.02, what: str = "condition"):
    """Poll predicate() until it returns a truthy value (returned) or the deadline passes."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = predicate()
            if v:
                return v
        except (OSError, ValueError, AssertionError) as e:  # noqa: PERF203 - polling
            last_exc = e
        if time.monotonic() >= deadline:
            extra = f" (last error: {last_exc!r})" if last_exc else ""
            raise AssertionError(f"{what} not reached within {timeout}s{extra}")
        time.sleep(interval)


# ---- YAML emitter ---------------------------------------------------------

def _scalar(v) -> str:
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid YAML double-quoted scalar
    raise TypeError(f"cannot emit {type(v).__name__} as YAML")


def _flow(v) -> str:
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_scalar(str(k))}: {_flow(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_flow(x) for x in v) + "]"
    return _scalar(v)


def to_yaml(obj, indent: int = 0) -> str:
    """Block-style YAML for dicts of dicts; lists of scalars in flow style; lists of
    dicts as block sequences. Keys are plain (they are identifiers); strings quoted."""
    pad = " " * indent
    if not isinstance(obj, dict):
        raise TypeError("top level must be a dict")
    out = []
    for k, v in obj.items():
        key = str(k)
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", key):
            key = _scalar(key)
        if isinstance(v, dict) and v:
            out.append(f"{pad}{key}:\n{to_yaml(v, indent + 2)}")
        elif isinstance(v, (list, tuple)) and v and all(isinstance(x, dict) for x in v):
            out.append(f"{pad}{key}:")
            for item in v:
                lines = to_yaml(item, 0).splitlines() if item else ["{}"]
                out.append(f"{pad}  - {lines[0]}")
                out.extend(f"{pad}    {line}" for line in lines[1:])
        else:
            out.append(f"{pad}{key}: {_flow(v)}")
    return "\n".join(out) + ("\n" if indent == 0 else "")


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


# ---- raw HTTP/1.1 client --------------------------------------------------

class Response:
    """One parsed response. headers: list of (name, value); lookups are case-insensitive."""

    def __init__(self, version, status, reason, headers, raw_head):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers
        self.raw_head = raw_head
        self.body = b""
        self.trailers = []
        self.chunked = False
        self.complete = False         # the body ended as its framing says
        self.until_close = False      # the body was delimited by the connection closing
        self.interim = []             # 1xx responses seen before this one

    def header_all(self, name: str) -> list:
        n = name.lower()
        return [v for k, v in self.headers if k.lower() == n]

    def header(self, name: str, default=None):
        vals = self.header_all(name)
        return ", ".join(vals) if vals else default

    def has(self, name: str) -> bool:
        return bool(self.header_all(name))

    def tokens(self, name: str) -> list:
        out = []
        for v in self.header_all(name):
            out.extend(t.strip().lower() for t in v.split(",") if t.strip())
        return out

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        b = self.body[:80]
        return f"<Response {self.status} {self.reason!r} {self.headers!r} body[{len(self.body)}]={b!r}>"


class IncompleteResponse(AssertionError):
    """The connection ended before the response did."""


def build_request(method: str = "GET", target: str = "/", headers=None, body: Optional[bytes] = None,
                  *, host: Optional[str] = "cachalot.test", chunks: Optional[Sequence[bytes]] = None,
                  version: str = "HTTP/1.1") -> bytes:
    """Bytes of one request. Adds Host (unless host=None or given), Content-Length for
    a body, or chunked framing for `chunks`."""
    fields = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    names = {k.lower() for k, _ in fields}
    if host is not None and "host" not in names:
        fields.insert(0, ("Host", host))
    payload = b""
    if chunks is not None:
        if "transfer-encoding" not in names:
            fields.append(("Transfer-Encoding", "chunked"))
        payload = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks if c) + b"0\r\n\r\n"
    elif body is not None:
        if "content-length" not in names:
            fields.append(("Content-Length", str(len(body))))
        payload = body
    head = f"{method} {target} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields) + "\r\n"
    return head.encode("latin-1") + payload


class RawClient:
    """One TCP connection to a loopback port, with a response reader."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 5.0,
                 rcvbuf: Optional[int] = None, sndbuf: Optional[int] = None):
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError("loopback only")
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if sndbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect((host, port))
        except OSError:
            self.sock.close()
            raise
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = bytearray()
        self.eof = False

    # -- writing
    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, method="GET", target="/", headers=None, body=None, **kw) -> None:
        self.send(build_request(method, target, headers, body, **kw))

    # -- reading
    def _fill(self, max_bytes: int = 65536) -> bool:
        """Read more; False on EOF. Raises socket.timeout / ConnectionResetError."""
        if self.eof:
            return False
        data = self.sock.recv(max_bytes)
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _read_until(self, sep: bytes, limit: int = 1 << 20) -> bytes:
        start = 0
        while True:
            i = self.buf.find(sep, start)
            if i >= 0:
                out = bytes(self.buf[:i + len(sep)])
                del self.buf[:i + len(sep)]
                return out
            if len(self.buf) > limit:
                raise AssertionError(f"no {sep!r} within {limit} bytes")
            start = max(0, len(self.buf) - len(sep) + 1)
            if not self._fill():
                raise IncompleteResponse(f"connection closed while waiting for {sep!r}; have {bytes(self.buf[:200])!r}")

    def read_head(self) -> Response:
        """Read one final response head (1xx heads are collected in .interim)."""
        interim = []
        for _ in range(100):
            raw = self._read_until(b"\r\n\r\n")
            text = raw.decode("latin-1")
            lines = text[:-4].split("\r\n")
            m = re.fullmatch(r"(HTTP/\d\.\d) (\d{3})(?: (.*))?", lines[0])
            if not m:
                raise AssertionError(f"malformed status line {lines[0]!r}")
            headers = []
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if not sep or name != name.strip() or not name:
                    raise AssertionError(f"malformed field line {line!r}")
                headers.append((name, value.strip(" \t")))
            resp = Response(m.group(1), int(m.group(2)), m.group(3) or "", headers, raw)
            if 100 <= resp.status < 200 and resp.status != 101:
                interim.append(resp)
                continue
            resp.interim = interim
            return resp
        raise AssertionError("too many interim responses")

    def iter_body(self, resp: Response, method: str = "GET", max_piece: int = 65536):
        """Yield body bytes as they arrive (decoded from chunked); sets resp.complete.
        Raises IncompleteResponse if the connection ends early."""
        if method == "HEAD" or resp.status in (204, 304) or 100 <= resp.status < 200:
            resp.complete = True
            return
        te = resp.tokens("transfer-encoding")
        if te:
            if te[-1] != "chunked":
                raise AssertionError(f"unexpected transfer-encoding {te}")
            resp.chunked = True
            for _ in range(100_000_000):
                line = self._read_until(b"\r\n", 4096).decode("latin-1")
                if not re.fullmatch(r"[0-9A-Fa-f]+(;.*)?\r\n", line):
                    raise AssertionError(f"bad chunk-size line {line!r}")
                size = int(line.split(";", 1)[0].strip(), 16)
                if size == 0:
                    break
                left = size
                while left:
                    if not self.buf and not self._fill(min(max_piece, left + 2)):
                        raise IncompleteResponse(f"closed inside a chunk ({left} of {size} left)")
                    take = min(left, len(self.buf))
                    piece = bytes(self.buf[:take])
                    del self.buf[:take]
                    left -= take
                    yield piece
                crlf = self._read_until(b"\r\n", 2)
                if crlf != b"\r\n":
                    raise AssertionError(f"bad chunk terminator {crlf!r}")
            for _ in range(1000):
                line = self._read_until(b"\r\n", 65536).decode("latin-1")
                if line == "\r\n":
                    break
                name, _, value = line[:-2].partition(":")
                resp.trailers.append((name, value.strip()))
            resp.complete = True
            return
        cls = resp.header_all("content-length")
        if cls:
            if len(set(v.strip() for v in cls)) != 1 or "," in cls[0]:
                raise AssertionError(f"bad Content-Length in response: {cls}")
            left = int(cls[0])
            while left:
                if not self.buf and not self._fill(min(max_piece, left)):
                    raise IncompleteResponse(f"closed with {left} of {cls[0]} body bytes missing")
                take = min(left, len(self.buf))
                piece = bytes(self.buf[:take])
                del self.buf[:take]
                left -= take
                yield piece
            resp.complete = True
            return
        resp.until_close = True
        while True:
            if self.buf:
                piece = bytes(self.buf)
                self.buf.clear()
                yield piece
            if not self._fill(max_piece):
                break
        resp.complete = True

    def read_response(self, method: str = "GET") -> Response:
        resp = self.read_head()
        resp.body = b"".join(self.iter_body(resp, method))
        return resp

    def read_responses(self, n: int, methods: Optional[Sequence[str]] = None) -> list:
        return [self.read_response(methods[i] if methods else "GET") for i in range(n)]

    def wait_closed(self, timeout: float = 3.0) -> str:
        """Wait for the server to close: 'eof' (FIN) or 'reset' (RST). Raises
        AssertionError on timeout or if more bytes arrive."""
        if self.buf:
            raise AssertionError(f"unexpected bytes after the response: {bytes(self.buf[:200])!r}")
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"connection still open after {timeout}s")
                self.sock.settimeout(left)
                try:
                    data = self.sock.recv(65536)
                except socket.timeout:
                    raise AssertionError(f"connection still open after {timeout}s") from None
                if not data:
                    return "eof"
                raise AssertionError(f"unexpected bytes while waiting for close: {data[:200]!r}")
        except ConnectionResetError:
            return "reset"
        finally:
            self.sock.settimeout(self.timeout)

    def is_open(self, wait: float = 0.0) -> bool:
        """True if the server has not closed this connection (after waiting up to `wait`)."""
        self.sock.settimeout(max(wait, 0.001))
        try:
            data = self.sock.recv(65536, socket.MSG_PEEK)
            return bool(data)
        except (socket.timeout, BlockingIOError):
            return True
        except OSError:
            return False
        finally:
            self.sock.settimeout(self.timeout)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def pipeline(port: int, requests: Sequence[bytes], methods: Optional[Sequence[str]] = None,
             timeout: float = 5.0) -> list:
    """Send all requests in one write on one connection; read as many responses, in order."""
    with RawClient(port, timeout=timeout) as c:
        c.send(b"".join(requests))
        return c.read_responses(len(requests), methods)


# ---- Prometheus text ------------------------------------------------------

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


def _unescape(v: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "\\": "\\", '"': '"'}.get(m.group(1), m.group(0)), v)


def parse_metrics(text: str) -> "Metrics":
    samples = {}
    types = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 4 and parts[1] == "TYPE":
                types[parts[2]] = parts[3].strip()
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise AssertionError(f"metrics line {lineno} is not Prometheus text: {line!r}")
        name, labels_text, value = m.group(1), m.group(3) or "", m.group(4)
        labels = {}
        pos = 0
        while pos < len(labels_text):
            lm = _LABEL.match(labels_text, pos)
            if not lm:
                raise AssertionError(f"metrics line {lineno}: bad labels {labels_text!r}")
            labels[lm.group(1)] = _unescape(lm.group(2))
            pos = lm.end()
        key = (name, tuple(sorted(labels.items())))
        if key in samples:
            raise AssertionError(f"metrics line {lineno}: duplicate series {key}")
        samples[key] = float(value)
    return Metrics(samples, types, text)


class Metrics:
    """Parsed samples: {(name, ((label, value), ...)): float} plus # TYPE lines."""

    def __init__(self, samples: dict, types: dict, text: str):
        self.samples = samples
        self.types = types
        self.text = text

    def series(self, name: str) -> dict:
        """{labels-dict-as-tuple: value} for one sample name."""
        return {labels: v for (n, labels), v in self.samples.items() if n == name}

    def get(self, name: str, default: float = 0.0, **labels) -> float:
        """Sum of the samples named `name` whose labels include all of `labels`."""
        found = False
        total = 0.0
        for (n, lbl), v in self.samples.items():
            if n != name:
                continue
            d = dict(lbl)
            if all(d.get(k) == str(val) for k, val in labels.items()):
                total += v
                found = True
        return total if found else default

    def has(self, name: str) -> bool:
        return any(n == name for n, _ in self.samples)

    def names(self) -> set:
        return {n for n, _ in self.samples}

    def label_values(self, name: str, label: str) -> set:
        return {dict(lbl).get(label) for (n, lbl) in self.samples if n == name} - {None}


# ---- the daemon -----------------------------------------------------------

def run_binary(args: Sequence[str], timeout: float = 10.0) -> subprocess.CompletedProcess:
    """Run cachalot with arguments (e.g. --version) and capture its output."""
    return subprocess.run([binary_path(), *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


class Cachalot:
    """One cachalot process with its own temp dir, config file and log file."""

    def __init__(self, config: Optional[dict] = None, *, upstream=None, workers: int = 2,
                 admin: bool = True, start: bool = True, env: Optional[dict] = None):
        self.binary = binary_path()
        self.tmp = tempfile.TemporaryDirectory(prefix="cachalot-conv-")
        self.config_path = os.path.join(self.tmp.name, "cachalot.yaml")
        self.log_path = os.path.join(self.tmp.name, "stderr.log")
        self.stdout_path = os.path.join(self.tmp.name, "stdout.log")
        self.user_config = config or {}
        if upstream is None:
            upstream_url = "http://127.0.0.1:9"
        elif isinstance(upstream, str):
            upstream_url = upstream
        else:
            upstream_url = upstream.url
        self.upstream_url = upstream_url
        self.workers = workers
        self.admin_enabled = admin
        self.env = env
        self.proc = None
        self.port = None
        self.admin_port = None
        self._log_file = None
        self._stdout_file = None
        self.returncode = None
        self.clock_offset = 0.0  # seconds advance_clock() has moved this process' clock
        if start:
            self.start()

    # -- config
    def full_config(self, config: Optional[dict] = None) -> dict:
        base = {
            "server": {"listen": [f"127.0.0.1:{self.port}"], "workers": self.workers},
            "upstream": {"url": self.upstream_url},
            "admin": {"listen": f"127.0.0.1:{self.admin_port}" if self.admin_enabled else ""},
            "log": {"level": "info"},
        }
        return _merge(base, self.user_config if config is None else config)

    def write_config(self, config: Optional[dict] = None) -> str:
        text = to_yaml(self.full_config(config))
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.config_path)  # atomic: a reload never reads half a file
        return text

    # -- lifecycle
    def start(self, attempts: int = 3) -> None:
        last = None
        for _ in range(attempts):
            self.port, self.admin_port = free_port(), free_port()
            while self.admin_port == self.port:
                self.admin_port = free_port()
            self.write_config()
            self._log_file = open(self.log_path, "ab")
            self._stdout_file = open(self.stdout_path, "ab")
            self.clock_offset = 0.0  # a new process starts on the real clock
            self.proc = subprocess.Popen([self.binary, "--config", self.config_path],
                                         stdin=subprocess.DEVNULL, stdout=self._stdout_file,
                                         stderr=self._log_file, env=self.env, start_new_session=True)
            try:
                self._wait_ready()
                return
            except _StartFailed as e:
                last = e
                self._close_files()
                if "in use" not in self.log_text().lower():
                    break  # not a port race: do not retry
        raise AssertionError(f"cachalot did not start: {last}\n--- stderr ---\n{self.log_tail()}")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            rc = self.proc.poll()
            if rc is not None:
                raise _StartFailed(f"exited with {rc} during startup")
            try:
                if self.admin_enabled:
                    ok = self.admin_get("/healthz", timeout=1.0).status == 200
                else:
                    ok = True
                if ok:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1.0).close()
                    return
            except (OSError, AssertionError):
                pass
            if time.monotonic() > deadline:
                self._kill()
                raise _StartFailed(f"not ready within {START_TIMEOUT}s")
            time.sleep(0.02)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def signal(self, sig) -> None:
        self.proc.send_signal(sig)

    def reload(self, config: Optional[dict] = None) -> None:
        """Rewrite the config file (the harness' ports are kept) and send SIGHUP.
        The reload is asynchronous: poll for its observable effect."""
        if config is not None:
            self.user_config = config
        self.write_config()
        self.proc.send_signal(signal.SIGHUP)

    def reload_text(self, yaml_text: str) -> None:
        """Write this exact YAML text and send SIGHUP (for invalid configs)."""
        with open(self.config_path, "w") as f:
            f.write(yaml_text)
        self.proc.send_signal(signal.SIGHUP)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM and wait. Returns the exit code (-N for a signal); kills after timeout."""
        if self.proc is None:
            return self.returncode
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill()
                self.returncode = "timeout"
                self._close_files()
                return self.returncode
        self.returncode = self.proc.returncode
        self._close_files()
        return self.returncode

    def wait_exit(self, timeout: float = STOP_TIMEOUT):
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass

    def _close_files(self) -> None:
        for f in (self._log_file, self._stdout_file):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass
        self._log_file = self._stdout_file = None

    def close(self) -> None:
        self.stop()
        self._kill()
        self._close_files()
        self.tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- log
    def log_text(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])

    def log_offset(self) -> int:
        return len(self.log_text())

    def wait_for_log(self, pattern: str, timeout: float = 5.0, since: int = 0, flags=re.I) -> re.Match:
        """Poll the stderr log (from character offset `since`) for a regex."""
        rx = re.compile(pattern, flags)

        def found():
            return rx.search(self.log_text()[since:])
        try:
            return wait_until(found, timeout, 0.02, what=f"log line /{pattern}/")
        except AssertionError:
            raise AssertionError(f"log line /{pattern}/ not seen within {timeout}s\n--- stderr ---\n"
                                 f"{self.log_tail()}") from None

    # -- /proc
    def _status_kb(self, field: str) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise AssertionError(f"{field} not in /proc/{self.pid}/status")

    def rss_kb(self) -> int:
        return self._status_kb("VmRSS")

    def peak_rss_kb(self) -> int:
        return self._status_kb("VmHWM")

    def reset_peak_rss(self) -> bool:
        """Reset VmHWM to the current RSS (writing 5 to clear_refs, Linux >= 4.0)."""
        try:
            with open(f"/proc/{self.pid}/clear_refs", "w") as f:
                f.write("5")
            return True
        except OSError:
            return False

    def rss_sampler(self, interval: float = 0.01) -> "RssSampler":
        return RssSampler(self, interval)

    def fd_count(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    # -- talking to it
    def client(self, timeout: float = 5.0, **kw) -> RawClient:
        return RawClient(self.port, timeout=timeout, **kw)

    def request(self, method: str = "GET", target: str = "/", headers=None, body=None,
                timeout: float = 5.0, **kw) -> Response:
        """One request on a fresh connection; returns the full response."""
        with self.client(timeout) as c:
            c.request(method, target, headers, body, **kw)
            return c.read_response(method)

    def get(self, target: str = "/", headers=None, **kw) -> Response:
        return self.request("GET", target, headers, **kw)

    def admin_get(self, path: str, headers=None, timeout: float = 5.0) -> Response:
        with RawClient(self.admin_port, timeout=timeout) as c:
            c.request("GET", path, headers, host=f"127.0.0.1:{self.admin_port}")
            return c.read_response()

    def admin_request(self, method: str, path: str, headers=None, body: Optional[bytes] = None,
                      host: Optional[str] = None, timeout: float = 5.0) -> Response:
        """One admin request on a fresh connection. `host` defaults to the admin
        listener's own address (127.0.0.1:port); POST gets an empty body."""
        if body is None and method == "POST":
            body = b""
        with RawClient(self.admin_port, timeout=timeout) as c:
            c.request(method, path, headers, body, host=host or f"127.0.0.1:{self.admin_port}")
            return c.read_response(method)

    def advance_clock(self, seconds: float) -> int:
        """Move cachalot's clock (core::Clock: freshness, ages, Date) forward by
        `seconds`, through the admin API's POST /test/clock, which exists only
        in builds configured with -DCACHALOT_TEST_CLOCK=ON. Timeouts keep real
        time. Returns the clock's total offset in milliseconds.

        $CACHALOT_TEST_CLOCK (set by CTest from the build's option) decides what
        a binary without the endpoint means: OFF skips the test before asking;
        ON, or unset, fails it, saying how to build or skip."""
        promised = os.environ.get("CACHALOT_TEST_CLOCK", "")
        if promised.upper() in ("OFF", "0", "FALSE", "NO"):
            raise unittest.SkipTest("CACHALOT_TEST_CLOCK=OFF: this binary cannot move its clock")
        if not self.admin_enabled:
            raise AssertionError("advance_clock needs the admin listener (Cachalot(admin=True))")
        ms = round(seconds * 1000)
        if ms < 0:
            raise ValueError("the clock only moves forward")
        headers = []
        token = self.full_config().get("admin", {}).get("token")
        if token:
            headers.append(("Authorization", f"Bearer {token}"))
        r = self.admin_request("POST", f"/test/clock?advance={ms}ms", headers)
        if r.status == 404:
            state = f"CACHALOT_TEST_CLOCK={promised}" if promised else "CACHALOT_TEST_CLOCK is unset"
            raise AssertionError(
                f"{self.binary} has no POST /test/clock ({state}): configure the build with "
                f"-DCACHALOT_TEST_CLOCK=ON, or set CACHALOT_TEST_CLOCK=OFF to skip the tests that move the clock")
        if r.status != 200:
            raise AssertionError(f"POST /test/clock answered {r.status}: {r.body[:200]!r}")
        offset_ms = int(json.loads(r.text)["offset_ms"])
        self.clock_offset = offset_ms / 1000
        return offset_ms

    def now(self) -> float:
        """The Unix time on cachalot's clock: real time plus what advance_clock()
        added. A Date (or Expires, Last-Modified) a test has the origin send must
        be on this clock; one on the real clock looks `clock_offset` seconds old
        to cachalot (RFC 9111 §4.2.3: apparent_age = response_time - date_value)."""
        return time.time() + self.clock_offset

    def metrics(self) -> Metrics:
        r = self.admin_get("/metrics")
        if r.status != 200:
            raise AssertionError(f"/metrics answered {r.status}: {r.body[:200]!r}")
        return parse_metrics(r.text)


class _StartFailed(Exception):
    pass


class RssSampler:
    """Context manager: samples the process' VmRSS in a thread; .max_kb is the peak seen."""

    def __init__(self, proc: Cachalot, interval: float = 0.01):
        self.proc = proc
        self.interval = interval
        self.max_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.max_kb = max(self.max_kb, self.proc.rss_kb())
            except (OSError, AssertionError):
                return
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)
