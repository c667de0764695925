"""Shared helpers for the cache conversation tests (test_c1*.py, issue #3).

A test class declares CONFIG (merged over the harness' config) and gets one
fake origin and one cachalot process for the whole class. Each test uses its
own paths (self.p, derived from the test name), so tests never see each
other's entries, and asserts on:

  - the `Cache-Status` member named "cachalot" (RFC 9211), parsed by
    cache_status() into a dict: {"hit": True, "fwd": "uri-miss",
    "fwd-status": 200, "stored": True, "ttl": 60, "detail": "no-store", ...};
  - exactly which requests reached the origin (`self.origin.requests(path)`),
    including their conditional fields.

Nothing sleeps for an entry to go stale: advance_until_stale() reads the
entry's ttl from the admin `GET /cache?path=` inspector and moves cachalot's
clock forward by exactly that much (`advance_clock`, test builds). The clock
belongs to the class' one cachalot, so it stays moved for the tests that come
after: a Date (or Expires, Last-Modified) that a test has the origin send is
taken from `self.proxy.now()`, cachalot's clock, not from time.time().
"""

from __future__ import annotations

import email.utils
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from cachalot import Cachalot, RawClient, Response, wait_until  # noqa: E402,F401
from origin import Gate, Origin, Reply  # noqa: E402,F401

HOST = "cachalot.test"   # the Host the harness' clients send by default


def http_date(t: float) -> str:
    """An IMF-fixdate (RFC 9110 §5.6.7) for a Unix time."""
    return email.utils.formatdate(t, usegmt=True)


def now_date(offset: float = 0.0) -> str:
    return http_date(time.time() + offset)


def _unquote(v: str) -> str:
    v = v.strip()
    if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
        return v[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return v


def cache_status(resp: Response, cache: str = "cachalot") -> dict:
    """The parameters of the last Cache-Status member named `cache` (RFC 9211 §2:
    a List; each cache appends its own member). Bare parameters are True;
    fwd-status, ttl and collapsed-like integers become ints. AssertionError if absent."""
    raw = resp.header("cache-status")
    if raw is None:
        raise AssertionError(f"no Cache-Status in the response: {resp!r}")
    members = []
    cur, quoted = "", False
    for ch in raw:                      # split the List on commas outside quoted strings
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            members.append(cur)
            cur = ""
        else:
            cur += ch
    members.append(cur)
    found = None
    for m in members:
        parts = [p.strip() for p in m.split(";")]
        if _unquote(parts[0]) != cache:
            continue
        d = {"_raw": m.strip()}
        for p in parts[1:]:
            if not p:
                continue
            k, sep, v = p.partition("=")
            k = k.strip().lower()
            if not sep:
                d[k] = True
                continue
            v = _unquote(v)
            if k in ("fwd-status", "ttl"):
                try:
                    d[k] = int(v)
                except ValueError:
                    raise AssertionError(f"Cache-Status {k}={v!r} is not an integer: {raw!r}") from None
            else:
                d[k] = v
        found = d
    if found is None:
        raise AssertionError(f"no {cache!r} member in Cache-Status: {raw!r}")
    return found


class CacheTestCase(unittest.TestCase):
    """One origin + one cachalot per class; per-test paths; Cache-Status assertions."""

    CONFIG: dict = {}
    # One worker: a storing miss publishes its entry right after writing the last byte,
    # in the same handler run, so with one event loop the next request (queued behind
    # that write's completion) is deterministically a hit. With several workers a
    # request accepted on another one may land in that gap and be answered
    # "fwd=uri-miss; collapsed" from the finishing fetch instead: correct, but not the
    # hit a test means to check. Sharing across workers has its own test (test_c10).
    WORKERS = 1

    @classmethod
    def setUpClass(cls):
        cls.origin = Origin()
        try:
            cls.proxy = Cachalot(cls.CONFIG, upstream=cls.origin, workers=cls.WORKERS)
        except BaseException:
            cls.origin.close()
            raise

    @classmethod
    def tearDownClass(cls):
        rc = cls.proxy.stop()
        log = cls.proxy.log_tail()
        cls.proxy.close()
        cls.origin.close()
        if rc != 0:
            raise AssertionError(f"cachalot exited with {rc} on SIGTERM\n{log}")

    def setUp(self):
        self.assertTrue(self.proxy.alive(), "cachalot died:\n" + self.proxy.log_tail())
        self.p = "/" + self._testMethodName

    # ---- talking ---------------------------------------------------------
    def get(self, target, headers=None, method="GET", **kw) -> Response:
        return self.proxy.request(method, target, headers, **kw)

    def head(self, target, headers=None) -> Response:
        return self.proxy.request("HEAD", target, headers)

    def admin(self, method: str, path: str, timeout: float = 5.0) -> Response:
        with RawClient(self.proxy.admin_port, timeout=timeout) as c:
            c.request(method, path, None, body=b"" if method == "POST" else None,
                      host=f"127.0.0.1:{self.proxy.admin_port}")
            return c.read_response(method)

    def inspect(self, path: str):
        """Variants the admin inspector lists for a path ([] when not cached)."""
        r = self.admin("GET", f"/cache?path={path}&host={HOST}")
        if r.status == 404:
            return []
        self.assertEqual(r.status, 200, r)
        return json.loads(r.body)["variants"]

    def wait_stored(self, path: str, timeout: float = 5.0) -> list:
        """Poll the inspector until `path` has a stored variant. The client can have the
        whole response a moment before the entry is published (the admin listener runs
        on its own thread), so a test that inspects right after a miss waits here first."""
        return wait_until(lambda: self.inspect(path), timeout, 0.02, what=f"entry {path} stored")

    def advance_until_stale(self, path: str, timeout: float = 5.0) -> None:
        """Wait until `path` is stored, then move cachalot's clock forward by the ttl of
        its freshest variant (the inspector's whole seconds, so exactly enough), and
        check that no variant is fresh any more (ttl <= 0, or gone)."""
        left = max(v["ttl"] for v in self.wait_stored(path, timeout))
        if left > 0:
            self.proxy.advance_clock(left)
        variants = self.inspect(path)
        self.assertTrue(all(v["ttl"] <= 0 for v in variants),
                        f"entry {path} still fresh after moving the clock {left} s: {variants}")

    def origin_hits(self, path: str) -> list:
        return self.origin.requests(path)

    # ---- assertions ------------------------------------------------------
    def assertCacheStatus(self, resp: Response, *, hit=None, fwd=None, fwd_status=None, stored=None,
                          detail=None, ttl=None, msg: str = "") -> dict:
        """Check the cachalot member of Cache-Status. fwd may be a str or a tuple of
        acceptable values; ttl an int or an inclusive (lo, hi) range; detail a str
        (exact) or a tuple of acceptable values; stored=False also asserts no 'stored'."""
        cs = cache_status(resp)
        where = f"Cache-Status {cs['_raw']!r} {msg}"
        if hit is not None:
            self.assertEqual(bool(cs.get("hit")), hit, where)
            if hit:
                self.assertNotIn("fwd", cs, where + ": a hit has no fwd")
        if fwd is not None:
            allowed = (fwd,) if isinstance(fwd, str) else tuple(fwd)
            self.assertIn(cs.get("fwd"), allowed, where)
            self.assertFalse(cs.get("hit"), where + ": forwarded and hit at once")
        if fwd_status is not None:
            self.assertEqual(cs.get("fwd-status"), fwd_status, where)
        if stored is not None:
            self.assertEqual(bool(cs.get("stored")), stored, where)
        if detail is not None:
            allowed = (detail,) if isinstance(detail, str) else tuple(detail)
            self.assertIn(cs.get("detail"), allowed, where)
        if ttl is not None:
            self.assertIn("ttl", cs, where)
            lo, hi = (ttl, ttl) if isinstance(ttl, int) else ttl
            self.assertTrue(lo <= cs["ttl"] <= hi, f"{where}: ttl {cs['ttl']} not in [{lo}, {hi}]")
        return cs

    def assertHit(self, resp: Response, body: bytes = None, status: int = 200, ttl=None, msg: str = ""):
        self.assertEqual(resp.status, status, f"{msg} {resp!r}")
        if body is not None:
            self.assertEqual(resp.body, body, msg)
        cs = self.assertCacheStatus(resp, hit=True, ttl=ttl, msg=msg)
        # RFC 9111 §4 / §5.1: a response served from cache carries Age.
        self.assertRegex(resp.header("age", ""), r"^\d+$", f"hit without a valid Age {msg}")
        return cs

    def assertStoredMiss(self, resp: Response, body: bytes = None, status: int = 200, fwd="uri-miss",
                         ttl=None, msg: str = ""):
        self.assertEqual(resp.status, status, f"{msg} {resp!r}")
        if body is not None:
            self.assertEqual(resp.body, body, msg)
        return self.assertCacheStatus(resp, fwd=fwd, fwd_status=status, stored=True, ttl=ttl, msg=msg)

    def assertNotStored(self, resp: Response, body: bytes = None, status: int = 200, fwd="uri-miss",
                        detail=None, msg: str = ""):
        self.assertEqual(resp.status, status, f"{msg} {resp!r}")
        if body is not None:
            self.assertEqual(resp.body, body, msg)
        cs = self.assertCacheStatus(resp, fwd=fwd, fwd_status=status, stored=False, detail=detail, msg=msg)
        self.assertIn("detail", cs, f"Cache-Status {cs['_raw']!r} of an unstored response names no reason {msg}")
        return cs

    def assertOriginCount(self, path: str, n: int, msg: str = ""):
        reqs = self.origin.requests(path)
        self.assertEqual(len(reqs), n, f"origin requests for {path}: "
                                       f"{[(r.method, r.target) for r in reqs]} {msg}")
        return reqs

    def assertUnconditional(self, req, msg: str = ""):
        for f in ("if-none-match", "if-modified-since", "if-match", "if-unmodified-since", "if-range"):
            self.assertIsNone(req.header(f), f"origin request carries {f}: {req!r} {msg}")


def cache_hit(resp: Response) -> bool:
    """True when the cachalot member of Cache-Status says hit."""
    return bool(cache_status(resp).get("hit"))
