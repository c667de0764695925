"""Issue 11 item 4, the shared L2 store: a fleet of cachalot nodes whose local
misses look the entry up in one real redis-server (no persistence) before
the origin.

    client A  { get /l2/x; expect fwd=uri-miss; stored }      # stored on A, then in L2
    A         { wait cachalot_l2_stores_total + 1 }
    client B  { get /l2/x; expect hit; detail=l2 }            # origin saw one request
    client B  { get /l2/x; expect hit }                       # now a local hit on B
    admin A   { post /purge?tag=... }; A { wait cachalot_l2_markers_total + 1 }
    client C  { get /l2/...; expect fwd=uri-miss }            # the marker voided the record
    100 clients over A, B, C { get /l2/fleet/slow }           # item 5: the origin sees one request

The nodes share no cluster: section here (no invalidation bus), so what B and
C do after a purge on A comes from the L2 markers alone. Every client sends
the same Host (cachalot.test), as a load balancer in front of the fleet
would, so the nodes compute the same keys. Faults: Redis killed mid-run
(requests are still answered, by the origin, without a stall) and started
again (L2 works again). Expired records, in real time: a 1 s lifetime (Redis
drops the record on its PX), and a record past its lifetime but inside
stale-if-error (found, not served). A node whose clock runs ahead sees a
record as old as the others do. Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from cachalot import Cachalot, wait_until  # noqa: E402
from origin import Origin, Reply  # noqa: E402
from redis_server import RedisServer  # noqa: E402

MISS = re.compile(r"^cachalot; fwd=uri-miss; fwd-status=200; stored")
NOT_STORED = re.compile(r"^cachalot; fwd=uri-miss; fwd-status=200; detail=")
HIT = re.compile(r"^cachalot; hit; ttl=\d+$")
L2_HIT = re.compile(r"^cachalot; hit; ttl=\d+; detail=l2$")
WAIT = 10.0
PREFIX = "c41:"


def origin_handler(req):
    """/l2/... paths, cacheable for 300 s with their last segment as a Surrogate-Key;
    special segments ask for personal answers; unsafe methods get 201."""
    if req.method != "GET":
        return Reply(201, [("Content-Type", "text/plain")], b"created")
    last = req.path.rsplit("/", 1)[-1]
    headers = [("Content-Type", "text/plain"), ("Surrogate-Key", last)]
    if last.startswith("private"):
        headers.append(("Cache-Control", "private, max-age=300"))
    elif last.startswith("qualified"):
        headers += [("Cache-Control", 'max-age=300, private="X-User"'), ("X-User", "alice")]
    elif last.startswith("cookie"):
        headers += [("Cache-Control", "max-age=300"), ("Set-Cookie", "session=alice")]
    elif last.startswith("auth"):
        headers.append(("Cache-Control", "public, max-age=300"))
    elif last.startswith("short"):
        headers.append(("Cache-Control", "max-age=1"))
    elif last.startswith("slow"):  # a slow origin: concurrent requests overlap
        return Reply(200, headers + [("Cache-Control", "max-age=300")], ("body of " + req.path).encode(),
                     delay_head=0.5)
    elif last.startswith("sie"):
        headers.append(("Cache-Control", "max-age=1, stale-if-error=60"))
    else:
        headers.append(("Cache-Control", "max-age=300"))
    return Reply(200, headers, ("body of " + req.path).encode())


def node_config(redis_port: int, **l2) -> dict:
    return {
        "cache": {"l2": {"redis": f"redis://127.0.0.1:{redis_port}/1", "timeout": "250ms", "prefix": PREFIX, **l2}},
        "routes": [{"name": "l2", "prefix": "/l2/", "set_cookie": "store_without"}],
        "log": {"level": "info", "access_log": "off"},
    }


def metric(node: Cachalot, name: str, **labels) -> float:
    return node.metrics().get(name, **labels)


def wait_metric(node: Cachalot, name: str, at_least: float, timeout: float = WAIT, **labels) -> None:
    wait_until(lambda: metric(node, name, **labels) >= at_least, timeout,
               what=f"{name}{labels} >= {at_least} on port {node.port}")


def stop_clean(node: Cachalot) -> None:
    rc = node.stop()
    if rc != 0:
        raise AssertionError(f"cachalot on port {node.port} exited with {rc}\n--- stderr ---\n{node.log_tail()}")


class L2Case(unittest.TestCase):
    origin: Origin
    redis: RedisServer

    def get(self, node: Cachalot, path: str, expect: re.Pattern, what: str = "", headers=None):
        r = node.get(path, headers)
        self.assertEqual(r.status, 200, r)
        self.assertRegex(r.header("cache-status", ""), expect, f"{what} {path} on port {node.port}")
        return r

    def fill(self, node: Cachalot, path: str) -> None:
        """A miss on `node`, stored locally and (acknowledged) in L2."""
        before = metric(node, "cachalot_l2_stores_total")
        self.get(node, path, MISS, "first request for")
        wait_metric(node, "cachalot_l2_stores_total", before + 1)

    @classmethod
    def start_fleet(cls, n: int, extra=lambda i, redis_port: {}) -> list:
        """A Redis, an origin and `n` nodes on them (node i's config: node_config plus
        extra(i, port)), all stopped (cleanly) after the class."""
        cls.redis = RedisServer()
        cls.addClassCleanup(cls.redis.close)
        cls.origin = Origin()
        cls.addClassCleanup(cls.origin.close)
        cls.origin.default(origin_handler)
        nodes = []
        for i in range(n):
            node = Cachalot({**node_config(cls.redis.port), **extra(i, cls.redis.port)}, upstream=cls.origin)
            cls.addClassCleanup(node.close)
            cls.addClassCleanup(stop_clean, node)
            nodes.append(node)
        return nodes

    def in_redis(self, path: str) -> bool:
        key = PREFIX + "r:http://cachalot.test" + path
        return self.redis.command("EVAL", "redis.call('SELECT', 1) return redis.call('EXISTS', KEYS[1])", 1, key) == 1


class FleetL2Test(L2Case):
    """A, B and C on one Redis (db 1), no invalidation bus."""

    @classmethod
    def setUpClass(cls):
        cls.nodes = cls.start_fleet(3)
        cls.a, cls.b, cls.c = cls.nodes

    def setUp(self):
        for n in self.nodes:  # every worker's connection
            wait_metric(n, "cachalot_l2_connected", n.workers)

    def test_a_fill_on_A_is_an_l2_hit_on_B_and_C_and_the_origin_sees_one_request(self):
        path = "/l2/hit/x"
        self.fill(self.a, path)
        self.assertTrue(self.in_redis(path))
        r = self.get(self.b, path, L2_HIT, "after a fill on A:")
        self.assertEqual(r.body, b"body of " + path.encode())
        self.get(self.b, path, HIT, "stored locally by the L2 hit:")
        self.get(self.c, path, L2_HIT, "after a fill on A:")
        self.assertEqual(self.origin.request_count(path), 1)
        self.assertGreaterEqual(metric(self.b, "cachalot_l2_hits_total"), 1)
        self.assertGreaterEqual(metric(self.a, "cachalot_l2_misses_total", reason="absent"), 1)

    def test_personal_answers_never_reach_l2(self):
        cases = [  # (path, request headers, the L2 skip reason or None when not even stored locally)
            ("/l2/personal/private", None, None),
            ("/l2/personal/qualified", None, "private"),
            ("/l2/personal/cookie", None, "set-cookie"),
            ("/l2/personal/auth", [("Authorization", "Bearer t")], "authorization"),
        ]
        for path, headers, reason in cases:
            with self.subTest(path):
                skipped = metric(self.a, "cachalot_l2_skipped_total", reason=reason) if reason else 0
                r = self.a.get(path, headers)
                self.assertEqual(r.status, 200, r)
                if reason:
                    self.assertRegex(r.header("cache-status", ""), MISS, "stored locally on A")
                    wait_metric(self.a, "cachalot_l2_skipped_total", skipped + 1, reason=reason)
                    self.get(self.a, path, HIT, "a local hit on A:", headers)
                self.assertFalse(self.in_redis(path), f"{path} reached Redis")
                before = self.origin.request_count(path)
                r = self.b.get(path, headers)
                self.assertEqual(r.status, 200, r)
                self.assertNotIn("detail=l2", r.header("cache-status", ""))
                self.assertEqual(self.origin.request_count(path), before + 1, "B asked the origin itself")

    def purge_on_a(self, how):
        markers = metric(self.a, "cachalot_l2_markers_total")
        how()
        wait_metric(self.a, "cachalot_l2_markers_total", markers + 1)

    def admin_purge(self, query: str):
        def run():
            r = self.a.admin_request("POST", "/purge?" + query)
            self.assertEqual(r.status, 200, r)
        return run

    def test_every_purge_on_A_makes_B_miss_l2_and_ask_the_origin(self):
        def purge_method(path):
            def run():
                r = self.a.request("PURGE", path)
                self.assertEqual(r.status, 200, r)
            return run

        def unsafe_post(path):
            def run():
                r = self.a.request("POST", path, body=b"x")
                self.assertEqual(r.status, 201, r)
            return run

        cases = [  # (name, path filled on A, the purge on A)
            ("url", "/l2/p/url/x", self.admin_purge("path=/l2/p/url/x")),
            ("url soft", "/l2/p/urlsoft/x", self.admin_purge("path=/l2/p/urlsoft/x&soft=1")),
            ("tag", "/l2/p/tag/t-hard", self.admin_purge("tag=t-hard")),
            ("prefix", "/l2/p/pre/x", self.admin_purge("prefix=/l2/p/pre/")),
            ("prefix on a host", "/l2/p/prehost/x", self.admin_purge("prefix=/l2/p/prehost/&host=cachalot.test")),
            ("route", "/l2/p/route/x", self.admin_purge("route=l2")),
            ("PURGE method", "/l2/p/method/x", purge_method("/l2/p/method/x")),
            ("unsafe POST (RFC 9111 §4.4)", "/l2/p/post/x", unsafe_post("/l2/p/post/x")),
            ("all", "/l2/p/all/x", self.admin_purge("all=1")),
        ]
        for name, path, purge in cases:
            with self.subTest(name):
                self.fill(self.a, path)
                self.purge_on_a(purge)
                voided = metric(self.b, "cachalot_l2_invalidated_total")
                before = self.origin.request_count(path)
                self.get(self.b, path, MISS, f"after a {name} purge on A:")
                self.assertEqual(self.origin.request_count(path), before + 1)
                self.assertEqual(metric(self.b, "cachalot_l2_invalidated_total"), voided + 1)

    def test_100_concurrent_cold_requests_over_3_nodes_cost_the_origin_one_request(self):
        # Item 5: each node's leader asks L2; the first takes the key's lock and asks the
        # origin, the other nodes wait for its fill (pub/sub), then serve it from L2.
        path = "/l2/fleet/slow"
        waits = sum(metric(n, "cachalot_l2_waits_total", result="announced") for n in self.nodes)

        def one(i):
            r = self.nodes[i % 3].get(path, timeout=10.0)
            return r.status, r.body, r.header("cache-status", "")

        with ThreadPoolExecutor(max_workers=100) as pool:
            results = list(pool.map(one, range(100), timeout=30))
        self.assertEqual(len(results), 100)
        for status, body, cs in results:
            self.assertEqual(status, 200, cs)
            self.assertEqual(body, b"body of " + path.encode(), cs)
        self.assertEqual(self.origin.request_count(path), 1, sorted({cs for _, _, cs in results}))
        statuses = {cs for _, _, cs in results}
        self.assertTrue(any("collapsed" in cs and "detail=l2" in cs for cs in statuses), statuses)
        self.assertGreaterEqual(sum(metric(n, "cachalot_l2_waits_total", result="announced") for n in self.nodes),
                                waits + 1)

    def test_right_after_a_purge_on_A_its_own_next_request_does_not_get_the_old_record_from_l2(self):
        # The markers are written after the local purge: until Redis has them, A's own
        # lookups of matching keys go to the origin (errors{kind="pending"}), never to L2.
        for i in range(20):  # bounded: 20 purges, each followed at once by a request
            path = f"/l2/own/{i}"
            self.fill(self.a, path)
            r = self.a.request("PURGE", path)
            self.assertEqual(r.status, 200, r)
            before = self.origin.request_count(path)
            self.get(self.a, path, MISS, "right after its own PURGE:")
            self.assertEqual(self.origin.request_count(path), before + 1)

    def test_a_purge_voids_only_what_it_matches(self):
        kept, purged = "/l2/only/kept", "/l2/only/gone"
        self.fill(self.a, kept)
        self.fill(self.a, purged)
        self.purge_on_a(self.admin_purge("path=" + purged))
        self.get(self.b, kept, L2_HIT, "another URL:")
        self.get(self.b, purged, MISS, "the purged URL:")

    def test_expired_records_are_not_served(self):
        path = "/l2/exp/short"  # max-age=1: Redis drops the record after 1 s (PX)
        self.fill(self.a, path)
        deadline = time.monotonic() + 5
        while self.in_redis(path) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertFalse(self.in_redis(path), "the record outlived its PX")
        before = self.origin.request_count(path)
        self.get(self.b, path, MISS, "expired in L2:")
        self.assertEqual(self.origin.request_count(path), before + 1)

    def test_a_stale_record_is_found_but_not_served(self):
        # max-age=1, stale-if-error=60: Redis keeps it 61 s (PX: lifetime + the longest
        # stale window), but after 1 s it may not answer a request unvalidated.
        path = "/l2/exp/sie"
        self.fill(self.a, path)
        time.sleep(1.2)  # real time is the subject: the record's age
        self.assertTrue(self.in_redis(path))
        stale = metric(self.b, "cachalot_l2_misses_total", reason="stale")
        before = self.origin.request_count(path)
        self.get(self.b, path, MISS, "stale in L2:")
        self.assertEqual(self.origin.request_count(path), before + 1)
        self.assertEqual(metric(self.b, "cachalot_l2_misses_total", reason="stale"), stale + 1)

    def test_a_records_age_does_not_depend_on_the_reading_nodes_clock(self):
        # RFC 9111 §4.2.3: age is real time since the response; a node whose clock
        # runs 400 s ahead sees the record as old as every other node does.
        path = "/l2/exp/clock"
        self.fill(self.a, path)
        d = Cachalot(node_config(self.redis.port), upstream=self.origin)
        self.addCleanup(d.close)
        wait_metric(d, "cachalot_l2_connected", d.workers)
        d.advance_clock(400)  # max-age=300
        r = self.get(d, path, L2_HIT, "on a node with another clock:")
        ttl = int(re.search(r"ttl=(\d+)", r.header("cache-status")).group(1))
        self.assertGreaterEqual(ttl, 290)
        self.assertEqual(self.origin.request_count(path), 1)
        stop_clean(d)


class FleetWithBusTest(L2Case):
    """A and B with the invalidation bus and L2 on one Redis: a node that applies a
    bus event finds the markers in Redis already (A publishes once they are written)."""

    @classmethod
    def setUpClass(cls):
        def bus(i, port):
            return {"cluster": {"redis": f"redis://127.0.0.1:{port}/0", "stream": f"c41:{os.getpid()}",
                                "node": "AB"[i], "backoff_min": "50ms", "backoff_max": "300ms", "timeout": "1s"}}
        cls.nodes = cls.start_fleet(2, bus)
        cls.a, cls.b = cls.nodes

    def applied(self, node: Cachalot) -> int:
        return json.loads(node.admin_get("/cluster").text)["applied"]

    def test_a_node_that_applied_the_bus_event_misses_l2_too(self):
        for n in self.nodes:
            wait_metric(n, "cachalot_l2_connected", n.workers)
            wait_until(lambda n=n: json.loads(n.admin_get("/cluster").text)["connected"], WAIT, what="bus up")
        for i in range(10):  # bounded: 10 purges
            path = f"/l2/bus/{i}"
            self.fill(self.a, path)
            self.get(self.b, path, L2_HIT, "before the purge:")
            before = self.applied(self.b)
            r = self.a.admin_request("POST", "/purge?path=" + path)
            self.assertEqual(r.status, 200, r)
            wait_until(lambda: self.applied(self.b) > before, WAIT, what="B applied the purge")
            origin = self.origin.request_count(path)
            self.get(self.b, path, MISS, "right after B applied the bus event:")
            self.assertEqual(self.origin.request_count(path), origin + 1)


class RedisFaultTest(L2Case):
    """Redis killed mid-run: requests are still served (by the origin), at once."""

    @classmethod
    def setUpClass(cls):
        cls.a, cls.b = cls.start_fleet(2)

    def test_redis_killed_then_back(self):
        for n in (self.a, self.b):
            wait_metric(n, "cachalot_l2_connected", n.workers)
        self.fill(self.a, "/l2/fault/before")
        self.get(self.b, "/l2/fault/before", L2_HIT, "before the kill:")

        self.redis.kill()
        wait_until(lambda: metric(self.b, "cachalot_l2_connected") == 0, WAIT, what="B sees Redis gone")
        slowest = 0.0
        for i in range(20):  # bounded: 20 requests, each must be quick
            path = f"/l2/fault/during/{i}"
            t0 = time.monotonic()
            self.get(self.b, path, MISS, "Redis down:")
            slowest = max(slowest, time.monotonic() - t0)
            self.assertEqual(self.origin.request_count(path), 1)
        self.assertLess(slowest, 1.0, "a request waited on the dead Redis")
        self.assertGreaterEqual(metric(self.b, "cachalot_l2_errors_total", kind="down"), 20)

        self.redis.start()  # empty, same port
        for n in (self.a, self.b):
            wait_metric(n, "cachalot_l2_connected", n.workers)
        self.fill(self.a, "/l2/fault/after")
        self.get(self.b, "/l2/fault/after", L2_HIT, "after Redis came back:")

    def test_redis_paused_costs_each_miss_at_most_the_timeout(self):
        # SIGSTOP: connections stay open and nothing answers (a slow Redis, at its worst).
        for n in (self.a, self.b):
            wait_metric(n, "cachalot_l2_connected", n.workers)
        timeouts = metric(self.b, "cachalot_l2_errors_total", kind="timeout")
        self.redis.proc.send_signal(signal.SIGSTOP)
        try:
            slowest = 0.0
            for i in range(10):  # bounded: 10 requests
                path = f"/l2/paused/{i}"
                t0 = time.monotonic()
                self.get(self.b, path, MISS, "Redis paused:")
                slowest = max(slowest, time.monotonic() - t0)
            self.assertLess(slowest, 1.0, "a request waited on the paused Redis beyond cache.l2.timeout")
            self.assertGreaterEqual(metric(self.b, "cachalot_l2_errors_total", kind="timeout"), timeouts + 1)
        finally:
            self.redis.proc.send_signal(signal.SIGCONT)
        for n in (self.a, self.b):
            wait_metric(n, "cachalot_l2_connected", n.workers)
        wait_until(lambda: self._shared_again("/l2/paused/after"), WAIT, what="L2 usable after SIGCONT")

    def _shared_again(self, path: str) -> bool:
        """Fill on A, then an L2 hit on B (a new path each try: a stalled connection may still be reopening)."""
        self._tries = getattr(self, "_tries", 0) + 1
        p = f"{path}/{self._tries}"
        stores = metric(self.a, "cachalot_l2_stores_total")
        self.get(self.a, p, MISS, "after SIGCONT:")
        try:
            wait_metric(self.a, "cachalot_l2_stores_total", stores + 1, timeout=2.0)
        except AssertionError:
            return False
        return "detail=l2" in self.b.get(p).header("cache-status", "")


if __name__ == "__main__":
    unittest.main()
