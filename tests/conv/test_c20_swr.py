"""stale-while-revalidate (RFC 5861 §3, issue #4): a stale entry inside the
window is served at once and refreshed in the background, one conditional
request per key at a time, whatever the client does meanwhile.

    origin o1 { expect GET /a; reply 200 cache-control:"max-age=1, stale-while-revalidate=30" etag:"e1" }
    client c1 { get /a; expect cache-status ~ fwd=uri-miss; stored }
    (1 s passes)
    client c1..c50 { get /a; expect cache-status ~ hit; ttl=-N; detail=stale-while-revalidate, fast }
    origin o1 { expect GET /a if-none-match:"e1" (once); reply 304 after 2 s }
    client c1 { get /a; expect cache-status ~ hit; ttl=58 }

Real time is the subject (max-age=1), so each test sleeps once for about a
second until its entry is stale; everything else is polled with deadlines.
"""

import time
import unittest

from _revaltest import (BG_REFRESHES, FRESH_HIT, REQUESTS_TOTAL, STORED_MISS, SWR_HIT, Cachalot, Gate, Origin,
                        Reply, cache_status, conditional, metric, run_concurrently, sleep_until_stale, split_handler,
                        timed_get, wait_until)

SWR = "max-age=1, stale-while-revalidate=30"
FAST = 0.2  # "within milliseconds": a stale hit must not wait for the origin


def full(body: bytes, etag: str = '"e1"', cc: str = SWR, **kw):
    return lambda req: Reply(200, [("Cache-Control", cc), ("ETag", etag), ("Content-Type", "text/plain")], body, **kw)


class StaleWhileRevalidateTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.origin = Origin()
        try:
            cls.proxy = Cachalot({}, upstream=cls.origin)
        except BaseException:
            cls.origin.close()
            raise

    @classmethod
    def tearDownClass(cls):
        rc = cls.proxy.stop()
        cls.proxy.close()
        cls.origin.close()
        if rc != 0:
            raise AssertionError(f"cachalot exited with {rc} on SIGTERM\n{cls.proxy.log_tail()}")

    def setUp(self):
        self.assertTrue(self.proxy.alive(), "cachalot died:\n" + self.proxy.log_tail())

    # ---- helpers --------------------------------------------------------------
    def prime(self, path: str, body: bytes = b"v1") -> float:
        """Store `path` (one origin request) and return when the response arrived."""
        r = self.proxy.get(path)
        stored_at = time.monotonic()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, body)
        self.assertRegex(cache_status(r), STORED_MISS)
        self.assertEqual(self.origin.request_count(path), 1)
        return stored_at

    def assert_stale_hit(self, r, body: bytes = b"v1"):
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, body)
        self.assertRegex(cache_status(r), SWR_HIT)

    def revalidations(self, path: str) -> list:
        return [q for q in self.origin.requests(path) if conditional(q)]

    # ---- tests ------------------------------------------------------------------
    def test_stale_hits_are_served_at_once_while_one_slow_revalidation_runs_and_its_304_freshens_the_entry(self):
        """RFC 5861 §3: served stale "while it revalidates it in the background";
        50 concurrent stale hits share one conditional request (README: one
        request per key); the 304 updates the stored entry (RFC 9111 §4.3.4)."""
        path = "/swr/slow-304"
        self.origin.route(path, split_handler(
            full(b"v1"),
            lambda req: Reply(304, [("Cache-Control", "max-age=60, stale-while-revalidate=30"), ("ETag", '"e1"')],
                              delay_head=2.0)))
        stored_at = self.prime(path)
        m0 = self.proxy.metrics()
        bg0 = m0.get(BG_REFRESHES)
        stale0 = m0.get(REQUESTS_TOTAL, result="stale")
        sleep_until_stale(stored_at, 1)

        r, took = timed_get(self.proxy, path)
        self.assert_stale_hit(r)
        self.assertLess(took, FAST, "a stale hit inside stale-while-revalidate waited for the origin")
        reval = self.origin.wait_for_requests(2, path=path)[1]
        self.assertEqual(reval.method, "GET")
        self.assertEqual(reval.header("if-none-match"), '"e1"', "the refresh must be conditional on the stored ETag")

        results = run_concurrently(50, lambda i: timed_get(self.proxy, path))
        for res in results:
            self.assertNotIsInstance(res, BaseException, res)
            resp, _ = res
            self.assert_stale_hit(resp)
        slowest = max(t for _, t in results)
        self.assertLess(slowest, 1.5, "50 stale hits must not wait for the 2 s revalidation")
        self.assertFalse(reval.response_done, "the batch should have finished while the 304 was still pending")
        self.assertEqual(len(self.revalidations(path)), 1, "exactly one background refresh per key at a time")
        self.assertEqual(self.origin.request_count(path), 2)
        wait_until(lambda: self.proxy.metrics().get(REQUESTS_TOTAL, result="stale") - stale0 == 51, 5,
                   what="requests_total{result=stale} += 51")
        self.assertEqual(self.proxy.metrics().get(BG_REFRESHES) - bg0, 1, "background refreshes += 1")

        # The 304 arrives: the entry is fresh again (max-age=60 from the 304).
        self.origin.wait_for(lambda: reval.response_done, 5, "the delayed 304 sent")
        r = wait_until(lambda: (lambda x: x if FRESH_HIT.match(cache_status(x)) else None)(self.proxy.get(path)),
                       5, what="a fresh hit after the 304")
        self.assertEqual(r.body, b"v1")
        ttl = int(cache_status(r).rsplit("ttl=", 1)[1])
        self.assertGreaterEqual(ttl, 50, "the 304's Cache-Control: max-age=60 must update the entry (RFC 9111 §4.3.4)")
        for _ in range(3):
            self.assertRegex(cache_status(self.proxy.get(path)), FRESH_HIT)
        self.assertEqual(self.origin.request_count(path), 2, "fresh hits after the 304 must not reach the origin")

    def test_a_200_to_the_background_revalidation_replaces_the_entry(self):
        """RFC 9111 §4.3.3: a full response to a conditional request replaces the stored one."""
        path = "/swr/replaced"
        self.origin.route(path, split_handler(full(b"v1"), full(b"v2-new", etag='"e2"', cc="max-age=60")))
        stored_at = self.prime(path)
        sleep_until_stale(stored_at, 1)
        self.assert_stale_hit(self.proxy.get(path))
        reval = self.origin.wait_for_requests(2, path=path)[1]
        self.assertEqual(reval.header("if-none-match"), '"e1"')
        self.origin.wait_for(lambda: reval.response_done, 5, "the 200 to the revalidation sent")

        def new_body():
            r = self.proxy.get(path)
            self.assertIn(r.body, (b"v1", b"v2-new"), "only the old or the new representation")
            return r if r.body == b"v2-new" else None
        r = wait_until(new_body, 5, what="the new representation served")
        self.assertRegex(cache_status(r), FRESH_HIT)
        self.assertEqual(r.header("etag"), '"e2"')
        self.assertEqual(self.origin.request_count(path), 2)
        self.assertEqual(len(self.revalidations(path)), 1)

    def _error_keeps_the_stale_entry(self, path: str, failure: Reply):
        self.origin.route(path, split_handler(full(b"v1"), lambda req: failure))
        stored_at = self.prime(path)
        sleep_until_stale(stored_at, 1)
        self.assert_stale_hit(self.proxy.get(path))
        self.origin.wait_for_requests(2, path=path)
        # The failed refresh must leave the entry in place: every later request is
        # still the stale v1 (never the error), and once the failed refresh is over
        # the next stale hit starts another one (the entry is still there to refresh).
        deadline = time.monotonic() + 5
        for _ in range(250):
            r = self.proxy.get(path)
            self.assert_stale_hit(r)
            if self.origin.request_count(path) >= 3:
                break
            self.assertLess(time.monotonic(), deadline, "no second refresh after the failed one")
            time.sleep(0.02)
        reqs = self.origin.requests(path)
        self.assertGreaterEqual(len(reqs), 3)
        self.assertTrue(all(conditional(q) for q in reqs[1:]), [q.raw_head for q in reqs[1:]])
        self.assert_stale_hit(self.proxy.get(path))

    def test_a_500_to_the_background_revalidation_leaves_the_stale_entry_in_place(self):
        """RFC 9111 §4.3.3: on a 5xx while validating, a cache can act as if the
        server failed to respond; the background refresh must not evict v1."""
        self._error_keeps_the_stale_entry("/swr/err500", Reply.text(500, "boom"))

    def test_a_reset_during_the_background_revalidation_leaves_the_stale_entry_in_place(self):
        self._error_keeps_the_stale_entry("/swr/reset", Reply(action="reset"))

    def test_a_client_that_disconnects_does_not_cancel_the_background_refresh(self):
        path = "/swr/client-leaves"
        gate = Gate(max_wait=10)
        self.origin.route(path, split_handler(
            full(b"v1"),
            lambda req: Reply(304, [("Cache-Control", "max-age=60"), ("ETag", '"e1"')], gate=gate)))
        stored_at = self.prime(path)
        sleep_until_stale(stored_at, 1)
        import socket
        import struct
        cl = self.proxy.client()
        try:
            cl.request("GET", path)
            reval = self.origin.wait_for_requests(2, path=path)[1]
            self.assertEqual(reval.header("if-none-match"), '"e1"')
        finally:
            # Leave abruptly (RST), without reading the response.
            cl.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            cl.close()
        gate.open()
        self.origin.wait_for(lambda: reval.response_done, 5, "the 304 sent")
        r = wait_until(lambda: (lambda x: x if FRESH_HIT.match(cache_status(x)) else None)(self.proxy.get(path)),
                       5, what="the entry freshened by the refresh the departed client started")
        self.assertEqual(r.body, b"v1")
        self.assertEqual(self.origin.request_count(path), 2, "the refresh must complete once, not be retried")


if __name__ == "__main__":
    unittest.main()
