"""Shared helpers for the c2x/c3x conversation tests (stale serving, coalescing,
refresh-ahead, admin purges, TLS). Not a test file: the name does not start
with test_, so neither unittest discovery nor CTest's glob picks it up.

Everything here is bounded: threads are joined with deadlines, every poll has
a timeout, sockets have timeouts, and only loopback addresses are used.

Nothing here sleeps for an entry to go stale: a test moves cachalot's clock
past the entry's lifetime with `self.proxy.advance_clock(seconds)` (test
builds, see README.md). Each ProxyCase test has its own cachalot, so the
clock a test moves is its own.
"""

from __future__ import annotations

import copy
import json
import os
import re
import sys
import threading
import time
import unittest
from typing import Callable

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from cachalot import Cachalot, IncompleteResponse, RawClient, Response, wait_until  # noqa: E402,F401
from origin import Gate, Origin, Reply, Request  # noqa: E402,F401

REQUESTS_TOTAL = "cachalot_requests_total"
BG_REFRESHES = "cachalot_background_refreshes_total"
COALESCED_WAITS = "cachalot_coalesced_waits_total"
PURGES = "cachalot_purges_total"
UPSTREAM_ERRORS = "cachalot_upstream_errors_total"

# Cache-Status shapes (README "Cache-Status (RFC 9211)").
FRESH_HIT = re.compile(r"^cachalot; hit; ttl=[1-9]\d*$")
SWR_HIT = re.compile(r"^cachalot; hit; ttl=(-\d+|0); detail=stale-while-revalidate$")
# A 200 without ETag or Last-Modified is stored with a synthesized ETag, and
# its first store says so (README, ETags for every response).
STORED_MISS = re.compile(r"^cachalot; fwd=uri-miss; fwd-status=200; stored; ttl=\d+(; detail=etag-synthesized)?$")
COLLAPSED = re.compile(r"^cachalot; fwd=uri-miss; collapsed\b")
REVALIDATED_304 = re.compile(r"^cachalot; fwd=stale; fwd-status=304; ttl=\d+$")


def cache_status(r: Response) -> str:
    return r.header("cache-status", "")


def timed_get(c: Cachalot, target: str, headers=None, timeout: float = 5.0):
    """(response, seconds) for one GET on a fresh connection."""
    t0 = time.monotonic()
    r = c.get(target, headers, timeout=timeout)
    return r, time.monotonic() - t0


def run_concurrently(n: int, fn: Callable[[int], object], timeout: float = 15.0) -> list:
    """Run fn(i) for i in range(n) in n threads released together by a barrier.
    Returns the n results in order; an exception is returned in place of its result.
    Raises AssertionError if some thread is still running after `timeout`."""
    barrier = threading.Barrier(n, timeout=timeout)
    results: list = [None] * n

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = fn(i)
        except BaseException as e:  # noqa: BLE001 - reported to the test
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    alive = sum(t.is_alive() for t in threads)
    if alive:
        raise AssertionError(f"{alive} of {n} client threads still running after {timeout}s")
    return results


def admin_request(c: Cachalot, method: str, path: str, headers=None, timeout: float = 5.0) -> Response:
    with RawClient(c.admin_port, timeout=timeout) as cl:
        cl.request(method, path, headers, body=b"" if method == "POST" else None,
                   host=f"127.0.0.1:{c.admin_port}")
        return cl.read_response(method)


def admin_json(r: Response):
    """The JSON body of an admin answer (AssertionError if it is not JSON)."""
    ctype = r.header("content-type", "")
    if not ctype.startswith("application/json"):
        raise AssertionError(f"admin answer is not JSON: Content-Type {ctype!r}, body {r.body[:200]!r}")
    try:
        return json.loads(r.text)
    except ValueError as e:
        raise AssertionError(f"admin body is not valid JSON ({e}): {r.body[:200]!r}") from None


def metric(c: Cachalot, name: str, **labels) -> float:
    return c.metrics().get(name, **labels)


def conditional(req: Request) -> bool:
    return req.headers.has("if-none-match") or req.headers.has("if-modified-since")


def split_handler(full: Callable[[Request], Reply], revalidation: Callable[[Request], Reply]):
    """An origin handler: `revalidation` answers conditional requests, `full` the rest."""
    def handle(req: Request) -> Reply:
        return revalidation(req) if conditional(req) else full(req)
    return handle


class ProxyCase(unittest.TestCase):
    """A fresh origin and cachalot per test (a crash in one test cannot take the
    others down). CONFIG is merged over the harness' config. tearDown stops
    cachalot and fails the test if it did not exit 0 on SIGTERM, unless the
    test is an expected failure (that verdict belongs to the test body)."""

    CONFIG: dict = {}
    WORKERS = 2

    def config(self) -> dict:
        return copy.deepcopy(self.CONFIG)

    def setUp(self):
        self.origin = Origin()
        try:
            self.proxy = Cachalot(self.config(), upstream=self.origin, workers=self.WORKERS)
        except BaseException:
            self.origin.close()
            raise

    def tearDown(self):
        rc = self.proxy.stop()
        tail = self.proxy.log_tail()
        self.proxy.close()
        self.origin.close()
        method = getattr(self, self._testMethodName)
        if rc != 0 and not getattr(method, "__unittest_expecting_failure__", False):
            raise AssertionError(f"cachalot exited with {rc} on SIGTERM\n{tail}")

    def assert_alive(self):
        self.assertTrue(self.proxy.alive(), "cachalot died:\n" + self.proxy.log_tail())
