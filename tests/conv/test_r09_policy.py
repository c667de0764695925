"""Policy drift: stale-if-error applies to the errors RFC 5861 names and no others;
a route's stale_if_error default makes a response without validators storable;
a revalidation answered with a full 200 is a miss, not a revalidation.

Entries are `max-age=0`, stale from the moment they are stored, so no clock is
needed: the stale-if-error window (60 s) is what lets them be served.

    origin o1 { expect GET /p; reply 200 cache-control:"max-age=0, stale-if-error=60" etag:"s1" }
    origin o1 { expect GET /p if-none-match:"s1"; reply 503 }
    client c1 { get /p; expect 200 "stored"; cache-status ~ fwd-status=503; detail=stale-if-error }
    origin o1 { expect GET /p if-none-match:"s1"; reply 501 }
    client c1 { get /p; expect 501 }
"""

import unittest

from _cachetest import CacheTestCase, Reply, wait_until

REQUESTS_TOTAL = "cachalot_requests_total"
STORED = b"the stored, stale body"
SIE = [("Cache-Control", "max-age=0, stale-if-error=60"), ("ETag", '"s1"')]


class StaleIfErrorPolicyTest(CacheTestCase):
    CONFIG = {"routes": [{"name": "sie", "prefix": "/sie-route/", "stale_if_error": "60s"}]}

    def store(self, path, fields):
        self.origin.route(path, Reply(200, fields, STORED))
        self.assertStoredMiss(self.get(path), STORED, msg=path)
        self.wait_stored(path)

    # ---- which errors, RFC 5861 §4 -------------------------------------------------------------
    def test_stale_if_error_serves_the_stale_entry_for_500_502_503_504_rfc5861_4(self):
        """'An error is any situation that would result in a 500, 502, 503, or 504
        HTTP response status code being returned.'"""
        for status in (500, 502, 503, 504):
            with self.subTest(status=status):
                path = f"{self.p}/{status}"
                self.store(path, SIE)
                self.origin.route(path, Reply.text(status, f"origin error {status}"))
                r = self.get(path)
                self.assertEqual((r.status, r.body), (200, STORED), r)
                cs = self.assertCacheStatus(r, fwd="stale", fwd_status=status, detail="stale-if-error")
                self.assertNotIn("stored", cs)
                reqs = self.assertOriginCount(path, 2)
                self.assertEqual(reqs[1].header("if-none-match"), '"s1"')

    def test_stale_if_error_serves_the_stale_entry_when_the_connection_fails_rfc5861_4(self):
        """RFC 5861 §4: a connection failure is an error that would have produced a 502."""
        path = self.p
        self.store(path, SIE)
        self.origin.route(path, Reply(action="reset"))
        r = self.get(path)
        self.assertEqual((r.status, r.body), (200, STORED), r)
        cs = self.assertCacheStatus(r, fwd="stale")
        self.assertRegex(cs.get("detail", ""), r"^stale-if-error", cs["_raw"])

    def test_stale_if_error_does_not_apply_to_501_and_505_rfc5861_4(self):
        """501 Not Implemented and 505 HTTP Version Not Supported are answers, not
        failures: the client gets them, not the stale body."""
        for status in (501, 505):
            with self.subTest(status=status):
                path = f"{self.p}/{status}"
                self.store(path, SIE)
                self.origin.route(path, Reply.text(status, f"origin says {status}"))
                r = self.get(path)
                self.assertEqual((r.status, r.body), (status, f"origin says {status}".encode()),
                                 f"stale-if-error was used for a {status}: {r!r}")
                cs = self.assertCacheStatus(r, fwd="stale", fwd_status=status)
                self.assertNotIn("stale-if-error", cs.get("detail", ""), cs["_raw"])
                reqs = self.assertOriginCount(path, 2)
                self.assertEqual(reqs[1].header("if-none-match"), '"s1"')

    # ---- route defaults --------------------------------------------------------------------------
    def test_a_route_stale_if_error_default_makes_a_response_without_validators_storable(self):
        """routes[].stale_if_error is the window 'when the origin sends none' (config):
        an entry stale on arrival (max-age=0, no validators) is still useful for that
        long, so it is stored, and served when the origin then answers 503."""
        path = "/sie-route" + self.p
        self.origin.route(path, Reply(200, [("Cache-Control", "max-age=0")], STORED))
        r = self.get(path)
        self.assertStoredMiss(r, STORED, msg="max-age=0 without validators on a stale_if_error route")
        self.wait_stored(path)
        self.origin.route(path, Reply.text(503, "down"))
        r = self.get(path)
        self.assertEqual((r.status, r.body), (200, STORED), r)
        self.assertCacheStatus(r, fwd="stale", fwd_status=503, detail="stale-if-error")
        reqs = self.assertOriginCount(path, 2)
        self.assertUnconditional(reqs[1], "the entry has no validators")

    # ---- accounting ------------------------------------------------------------------------------
    def test_a_revalidation_answered_with_a_200_counts_as_a_miss_rfc9111_4_3_3(self):
        """The stored response was not reused: a full 200 replaces it (RFC 9111 §4.3.3),
        so the request is a miss in cachalot_requests_total, and Cache-Status says the
        stale entry was forwarded and the new response stored."""
        path = self.p
        self.store(path, [("Cache-Control", "max-age=0"), ("ETag", '"v1"')])
        self.origin.route(path, Reply(200, [("Cache-Control", "max-age=0"), ("ETag", '"v2"')], b"new body"))
        m0 = self.proxy.metrics()
        r = self.get(path)
        self.assertEqual((r.status, r.body), (200, b"new body"))
        self.assertStoredMiss(r, b"new body", fwd="stale")
        self.assertEqual(self.origin.requests(path)[-1].header("if-none-match"), '"v1"')

        def delta(result):
            return self.proxy.metrics().get(REQUESTS_TOTAL, result=result) - m0.get(REQUESTS_TOTAL, result=result)
        wait_until(lambda: delta("miss") + delta("revalidated") >= 1, 3, what="the request counted")
        self.assertEqual((delta("miss"), delta("revalidated")), (1, 0),
                         'a revalidation answered 200 must count as result="miss"')


if __name__ == "__main__":
    unittest.main()
