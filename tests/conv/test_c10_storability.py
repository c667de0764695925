"""Storing responses in the shared cache (issue #3): RFC 9111 §3 and the project's
Set-Cookie / size rules.

Every test asserts the status, the body, the cachalot member of Cache-Status and
exactly how many requests reached the origin (and with which conditionals).
"""

import time
import unittest

from _cachetest import CacheTestCase, Reply, cache_hit, http_date
from cachalot import IncompleteResponse

MAX_OBJECT = 64 * 1024
CC60 = [("Cache-Control", "max-age=60")]


class StorabilityTest(CacheTestCase):
    CONFIG = {
        "cache": {"max_object_size": "64KiB"},
        "routes": [{"name": "strip", "prefix": "/strip/", "set_cookie": "strip"}],
    }

    # ---- stored, then reused ------------------------------------------------
    def test_get_with_max_age_is_stored_and_the_next_get_is_a_hit_rfc9111_3(self):
        self.origin.route(self.p, Reply(200, CC60 + [("Content-Type", "text/plain")], b"stored body"))
        r1 = self.get(self.p)
        self.assertStoredMiss(r1, b"stored body", ttl=(59, 60))
        r2 = self.get(self.p)
        self.assertHit(r2, b"stored body", ttl=(58, 60))
        self.assertEqual(r2.header("content-type"), "text/plain")
        self.assertEqual(r2.header("content-length"), str(len(b"stored body")))
        req = self.assertOriginCount(self.p, 1)[0]
        self.assertUnconditional(req)

    def test_head_is_answered_from_a_stored_get_response_rfc9111_4_rfc9110_9_3_2(self):
        """A stored GET response can satisfy HEAD (RFC 9110 §9.3.2: same fields, no content)."""
        self.origin.route(self.p, Reply(200, CC60 + [("X-Kind", "get")], b"0123456789"))
        self.assertStoredMiss(self.get(self.p), b"0123456789")
        with self.proxy.client() as c:
            c.request("HEAD", self.p)
            h = c.read_response("HEAD")
            self.assertHit(h, b"")
            self.assertEqual(h.header("x-kind"), "get")
            if h.has("content-length"):  # RFC 9110 §8.6: the length a GET would have
                self.assertEqual(h.header("content-length"), "10")
            # The connection is still in sync: nothing after the HEAD head was a body.
            c.request("GET", self.p)
            self.assertHit(c.read_response(), b"0123456789")
        self.assertOriginCount(self.p, 1)

    def test_head_on_a_miss_does_not_store_an_empty_body_for_get_rfc9110_9_3_2(self):
        """A HEAD forwarded on a miss must not leave an entry that a GET would serve without content."""
        self.origin.route(self.p, Reply(200, CC60, b"full content"))
        h = self.head(self.p)
        self.assertEqual((h.status, h.body), (200, b""))
        self.assertCacheStatus(h, hit=False)
        g = self.get(self.p)
        self.assertEqual((g.status, g.body), (200, b"full content"))
        self.assertCacheStatus(g, fwd="uri-miss", fwd_status=200, stored=True)
        self.assertHit(self.get(self.p), b"full content")
        self.assertEqual([r.method for r in self.origin_hits(self.p)], ["HEAD", "GET"])

    # ---- methods ----------------------------------------------------------
    def test_post_response_is_not_stored_and_not_reused_for_get_rfc9111_3(self):
        self.origin.route(self.p, lambda req: Reply(200, CC60, req.method.encode() + b" answer"))
        r1 = self.get(self.p, method="POST", body=b"x=1")
        self.assertEqual((r1.status, r1.body), (200, b"POST answer"))
        self.assertCacheStatus(r1, fwd="method", fwd_status=200, stored=False)
        r2 = self.get(self.p, method="POST", body=b"x=1")
        self.assertEqual((r2.status, r2.body), (200, b"POST answer"))
        self.assertCacheStatus(r2, fwd="method", stored=False)
        r3 = self.get(self.p)
        self.assertStoredMiss(r3, b"GET answer")
        self.assertEqual([r.method for r in self.assertOriginCount(self.p, 3)], ["POST", "POST", "GET"])

    # ---- no-store ---------------------------------------------------------
    def test_response_with_no_store_is_not_stored_rfc9111_5_2_2_5(self):
        self.origin.route(self.p, Reply(200, [("Cache-Control", "no-store, max-age=60")], b"secret"))
        for i in range(2):
            self.assertNotStored(self.get(self.p), b"secret", detail="no-store", msg=f"request {i}")
        self.assertOriginCount(self.p, 2)
        self.assertEqual(self.inspect(self.p), [])

    def test_request_with_no_store_does_not_store_the_response_rfc9111_5_2_1_5(self):
        self.origin.route(self.p, Reply(200, CC60, b"body"))
        r1 = self.get(self.p, [("Cache-Control", "no-store")])
        self.assertNotStored(r1, b"body", detail=("request-no-store", "no-store"))
        self.assertEqual(self.inspect(self.p), [])
        # Without the directive the same response is stored, then reused.
        self.assertStoredMiss(self.get(self.p), b"body")
        self.assertHit(self.get(self.p), b"body")
        self.assertOriginCount(self.p, 2)

    # ---- private ----------------------------------------------------------
    def test_unqualified_private_response_is_not_stored_rfc9111_5_2_2_7(self):
        self.origin.route(self.p, Reply(200, [("Cache-Control", "private, max-age=60")], b"mine"))
        for i in range(2):
            self.assertNotStored(self.get(self.p), b"mine", detail="private", msg=f"request {i}")
        self.assertOriginCount(self.p, 2)

    def test_qualified_private_field_is_never_served_from_the_cache_rfc9111_5_2_2_7(self):
        """private="X-Secret": the cache MUST NOT store X-Secret; it MAY store the rest."""
        self.origin.route(self.p, Reply(200, [("Cache-Control", 'private="X-Secret", max-age=60'),
                                              ("X-Secret", "s3cr3t"), ("X-Public", "p")], b"rest"))
        r1 = self.get(self.p)
        self.assertEqual((r1.status, r1.body), (200, b"rest"))
        self.assertEqual(r1.header("x-secret"), "s3cr3t", "the client that caused the fetch gets it all")
        r2 = self.get(self.p)
        self.assertEqual((r2.status, r2.body), (200, b"rest"))
        if cache_hit(r2):
            self.assertIsNone(r2.header("x-secret"), "a private field was stored and served to another client")
            self.assertEqual(r2.header("x-public"), "p")
            self.assertOriginCount(self.p, 1)
        else:
            self.assertOriginCount(self.p, 2)

    # ---- Authorization, §3.5 ----------------------------------------------
    def test_response_to_a_request_with_authorization_is_not_stored_rfc9111_3_5(self):
        self.origin.route(self.p, Reply(200, CC60, b"for alice"))
        auth = [("Authorization", "Bearer alice")]
        self.assertNotStored(self.get(self.p, auth), b"for alice", detail="authorization")
        self.assertNotStored(self.get(self.p, auth), b"for alice", detail="authorization")
        # Nor was it stored for anyone else.
        self.assertStoredMiss(self.get(self.p), b"for alice")
        reqs = self.assertOriginCount(self.p, 3)
        self.assertEqual([r.header("authorization") for r in reqs], ["Bearer alice", "Bearer alice", None])

    def test_authorized_response_with_public_s_maxage_or_must_revalidate_is_stored_and_reused_rfc9111_3_5(self):
        for i, cc in enumerate(["public, max-age=60", "s-maxage=60", "must-revalidate, max-age=60"]):
            with self.subTest(cache_control=cc):
                path = f"{self.p}/{i}"
                self.origin.route(path, Reply(200, [("Cache-Control", cc)], b"shared"))
                self.assertStoredMiss(self.get(path, [("Authorization", "Bearer alice")]), b"shared")
                self.assertHit(self.get(path, [("Authorization", "Bearer bob")]), b"shared")
                self.assertHit(self.get(path), b"shared")
                self.assertOriginCount(path, 1)

    def test_stored_response_without_public_is_not_served_to_an_authorized_request_rfc9111_3_5(self):
        """'A shared cache MUST NOT use a cached response to a request with an Authorization
        header field ... unless' the response says public / s-maxage / must-revalidate."""
        def handler(req):
            who = req.header("authorization")
            return Reply(200, CC60, b"private view" if who else b"anonymous view")
        self.origin.route(self.p, handler)
        self.assertStoredMiss(self.get(self.p), b"anonymous view")
        r = self.get(self.p, [("Authorization", "Bearer alice")])
        self.assertEqual((r.status, r.body), (200, b"private view"))
        self.assertCacheStatus(r, fwd=("request", "uri-miss"), fwd_status=200, stored=False)
        # The authorized answer did not replace the shared entry.
        self.assertHit(self.get(self.p), b"anonymous view")
        reqs = self.assertOriginCount(self.p, 2)
        self.assertEqual(reqs[1].header("authorization"), "Bearer alice")

    # ---- Set-Cookie (project policy, README 'Caching behaviour') -----------------
    def test_set_cookie_response_is_not_stored_by_default(self):
        self.origin.route(self.p, Reply(200, CC60 + [("Set-Cookie", "sid=1")], b"cookie"))
        for i in range(2):
            r = self.get(self.p)
            self.assertNotStored(r, b"cookie", detail="set-cookie", msg=f"request {i}")
            self.assertEqual(r.header_all("set-cookie"), ["sid=1"])
        self.assertOriginCount(self.p, 2)

    def test_set_cookie_strip_route_stores_the_response_without_set_cookie(self):
        path = "/strip" + self.p
        self.origin.route(path, Reply(200, CC60 + [("Set-Cookie", "sid=1"), ("Set-Cookie", "lang=en"),
                                                   ("X-Other", "o")], b"stripped"))
        r1 = self.get(path)
        self.assertStoredMiss(r1, b"stripped")
        self.assertEqual(r1.header_all("set-cookie"), ["sid=1", "lang=en"],
                         "the client that caused the fetch receives its cookies")
        r2 = self.get(path)
        self.assertHit(r2, b"stripped")
        self.assertEqual(r2.header_all("set-cookie"), [], "another client received someone's Set-Cookie")
        self.assertEqual(r2.header("x-other"), "o")
        self.assertOriginCount(path, 1)

    # ---- status codes -----------------------------------------------------
    def test_206_response_is_not_stored_rfc9111_3(self):
        """Without partial-content support a 206 is never stored (§3, §3.3)."""
        self.origin.route(self.p, Reply(206, CC60 + [("Content-Range", "bytes 0-3/10")], b"0123"))
        for i in range(2):
            r = self.get(self.p)
            self.assertEqual((r.status, r.body), (206, b"0123"), f"request {i}")
            self.assertCacheStatus(r, stored=False)
            self.assertFalse(cache_hit(r))
        self.assertOriginCount(self.p, 2)

    def test_a_206_from_the_origin_is_never_stored_rfc9111_3_3(self):
        """§3.3-3.4 allow storing and combining partial responses; Cachalot does
        neither. A Range miss asks for the whole response (no Range); an origin
        that still answers 206 is not stored, and the request is sent again with
        its Range (test_c51_ranges has the ranges cut from stored 200s)."""
        seen = []

        def handler(req):
            seen.append(req.header("range"))
            return Reply(206, CC60 + [("Content-Range", "bytes 0-3/10")], b"0123")
        self.origin.route(self.p, handler)
        for _ in range(2):
            r = self.get(self.p, [("Range", "bytes=0-3")])
            self.assertEqual((r.status, r.body), (206, b"0123"))
            self.assertCacheStatus(r, stored=False)
            self.assertIn("detail=range-not-stored", r.header("cache-status", ""))
        self.assertEqual(seen, [None, "bytes=0-3", None, "bytes=0-3"])
        self.assertOriginCount(self.p, 4)

    def test_404_with_last_modified_is_stored_heuristically_rfc9111_4_2_2_rfc9110_15_1(self):
        t = time.time()
        self.origin.route(self.p, Reply(404, [("Date", http_date(t)), ("Last-Modified", http_date(t - 10000))],
                                        b"not here"))
        self.assertStoredMiss(self.get(self.p), b"not here", status=404, ttl=(998, 1000))
        self.assertHit(self.get(self.p), b"not here", status=404)
        self.assertOriginCount(self.p, 1)

    def test_404_with_max_age_is_stored_rfc9111_3(self):
        self.origin.route(self.p, Reply(404, CC60, b"gone"))
        self.assertStoredMiss(self.get(self.p), b"gone", status=404, ttl=(59, 60))
        self.assertHit(self.get(self.p), b"gone", status=404)
        self.assertOriginCount(self.p, 1)

    def test_500_without_explicit_freshness_is_not_stored_rfc9111_3_rfc9110_15_1(self):
        """500 is not heuristically cacheable: without explicit freshness it is not stored,
        even with a Last-Modified that heuristics could use."""
        t = time.time()
        self.origin.route(self.p, Reply(500, [("Date", http_date(t)), ("Last-Modified", http_date(t - 10000))],
                                        b"boom"))
        for i in range(2):
            self.assertNotStored(self.get(self.p), b"boom", status=500, msg=f"request {i}")
        self.assertOriginCount(self.p, 2)

    # ---- no-cache: stored, validated every time ------------------------------
    def test_no_cache_response_is_stored_but_revalidated_on_every_use_rfc9111_5_2_2_4(self):
        def handler(req):
            if req.header("if-none-match") == '"nc1"':
                return Reply(304, [("ETag", '"nc1"'), ("Cache-Control", "no-cache")])
            return Reply(200, [("Cache-Control", "no-cache"), ("ETag", '"nc1"')], b"validated body")
        self.origin.route(self.p, handler)
        self.assertStoredMiss(self.get(self.p), b"validated body")
        for i in range(2):
            r = self.get(self.p)
            self.assertEqual((r.status, r.body), (200, b"validated body"), f"use {i}")
            self.assertCacheStatus(r, fwd="stale", fwd_status=304, msg=f"use {i}")
        reqs = self.assertOriginCount(self.p, 3)
        self.assertUnconditional(reqs[0])
        self.assertEqual([q.header("if-none-match") for q in reqs[1:]], ['"nc1"', '"nc1"'],
                         "each reuse must be validated with the stored ETag")

    def test_qualified_no_cache_field_is_not_served_from_the_cache_without_validation_rfc9111_5_2_2_4(self):
        """no-cache="X-Token": the rest may be reused, X-Token only after validation."""
        self.origin.route(self.p, Reply(200, [("Cache-Control", 'no-cache="X-Token", max-age=60'),
                                              ("X-Token", "t0k3n"), ("X-Public", "p")], b"partly"))
        r1 = self.get(self.p)
        self.assertEqual((r1.status, r1.body), (200, b"partly"))
        self.assertEqual(r1.header("x-token"), "t0k3n")
        r2 = self.get(self.p)
        self.assertEqual((r2.status, r2.body), (200, b"partly"))
        if cache_hit(r2):
            self.assertIsNone(r2.header("x-token"), "a no-cache field was reused without validation")
            self.assertEqual(r2.header("x-public"), "p")
            self.assertOriginCount(self.p, 1)
        else:
            self.assertOriginCount(self.p, 2)

    # ---- Vary: * ----------------------------------------------------------
    def test_vary_star_response_is_never_reused_rfc9111_4_1(self):
        for i, vary in enumerate(["*", "Accept-Encoding, *"]):
            with self.subTest(vary=vary):
                path = f"{self.p}/{i}"
                self.origin.route(path, Reply(200, CC60 + [("Vary", vary)], b"varies"))
                for j in range(2):
                    r = self.get(path)
                    self.assertEqual((r.status, r.body), (200, b"varies"))
                    self.assertCacheStatus(r, fwd=("uri-miss", "vary-miss"), fwd_status=200, stored=False,
                                           msg=f"request {j}")
                self.assertOriginCount(path, 2)

    # ---- size -------------------------------------------------------------
    def test_body_over_max_object_size_is_streamed_in_full_and_not_stored(self):
        big = bytes(range(256)) * (MAX_OBJECT // 256 * 3)          # 192 KiB, Content-Length
        self.origin.route(self.p, Reply(200, CC60, big))
        for i in range(2):
            r = self.get(self.p, timeout=10)
            self.assertEqual(r.status, 200)
            self.assertEqual(len(r.body), len(big), f"request {i}")
            self.assertEqual(r.body, big, f"request {i}")
            self.assertCacheStatus(r, fwd="uri-miss", fwd_status=200, stored=False, msg=f"request {i}")
        self.assertOriginCount(self.p, 2)

    def test_chunked_body_growing_over_max_object_size_is_streamed_in_full_and_not_stored(self):
        piece = b"c" * 16384
        n = MAX_OBJECT // len(piece) * 3                               # 192 KiB in 16 KiB chunks
        self.origin.route(self.p, Reply(200, CC60, body=lambda: iter([piece] * n)))
        for i in range(2):
            r = self.get(self.p, timeout=10)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, piece * n, f"request {i}")
            self.assertTrue(r.complete)
            self.assertFalse(cache_hit(r), f"request {i}")
        self.assertOriginCount(self.p, 2)
        self.assertEqual(self.inspect(self.p), [])

    def test_body_at_exactly_max_object_size_is_stored(self):
        body = b"e" * MAX_OBJECT
        self.origin.route(self.p, Reply(200, CC60, body))
        self.assertStoredMiss(self.get(self.p), body)
        self.assertHit(self.get(self.p), body)
        self.assertOriginCount(self.p, 1)

    # ---- incomplete responses, §3.3 ---------------------------------------------
    def test_response_cut_short_by_the_origin_is_not_stored_rfc9111_3_3(self):
        for kind in ("content-length", "chunked"):
            with self.subTest(framing=kind):
                path = f"{self.p}/{kind}"
                full = b"A" * 4000 + b"B" * 4000
                if kind == "content-length":
                    self.origin.route(path, Reply(200, CC60, full, action="close_mid_body"))
                else:
                    self.origin.route(path, Reply(200, CC60, body=lambda: iter([b"A" * 4000, b"B" * 4000]),
                                                  action="close_mid_body"))
                with self.proxy.client() as c:
                    c.request("GET", path)
                    with self.assertRaises(IncompleteResponse, msg="a truncated body was presented as complete"):
                        c.read_response()
                self.origin.route(path, Reply(200, CC60, full))
                r = self.get(path)
                self.assertStoredMiss(r, full, msg="the request after a truncated fetch must go to the origin")
                self.assertHit(self.get(path), full)
                self.assertOriginCount(path, 2)


class SharedAcrossWorkersTest(CacheTestCase):
    """The store is one cache for every worker (SO_REUSEPORT spreads connections)."""
    WORKERS = 4

    def test_entry_stored_through_one_connection_is_a_hit_on_every_other_rfc9111_3(self):
        self.origin.route(self.p, Reply(200, CC60, b"shared by all"))
        self.assertStoredMiss(self.get(self.p), b"shared by all")
        self.wait_stored(self.p)   # published a moment after the client has the last byte
        for i in range(16):       # fresh connections, spread over the 4 workers by the kernel
            self.assertHit(self.get(self.p), b"shared by all", msg=f"connection {i}")
        self.assertOriginCount(self.p, 1)


if __name__ == "__main__":
    unittest.main()
