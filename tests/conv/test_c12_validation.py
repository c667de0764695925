"""Validation of stale entries (issue #3): RFC 9111 §4.3, and the directives that
forbid serving stale (§4.2.4, §5.2.2.2, §5.2.2.8, §5.2.2.10).

Entries live 1 s; each test moves cachalot's clock forward by the entry's ttl
(advance_until_stale: advance_clock, test builds) rather than sleeping. Dates the
origin sends are on cachalot's clock (self.proxy.now()): earlier tests in the
class have moved it. The cache has a 60 s
stale_if_error grace, so a failing origin *would* get a stale answer for an
ordinary entry (checked by a control test) and the must-revalidate tests show
that the directive, not the configuration, keeps it from being served.
"""

import unittest

from _cachetest import CacheTestCase, Reply, cache_status, http_date


class ValidationTest(CacheTestCase):
    CONFIG = {"cache": {"stale_if_error": "60s"}}

    def _store(self, path, headers, body):
        """Put a 1-second entry in the cache and move the clock until it is stale."""
        self.origin.route(path, Reply(200, headers, body))
        r = self.get(path)
        self.assertStoredMiss(r, body, msg=path)
        self.advance_until_stale(path)

    # ---- conditional requests for stale entries, §4.3.1 -----------------------------
    def test_stale_entry_with_etag_is_revalidated_with_if_none_match_and_a_304_freshens_it_rfc9111_4_3_1(self):
        self._store(self.p, [("Cache-Control", "max-age=1"), ("ETag", '"e1"'), ("X-Version", "1")], b"one")

        def handler(req):
            if req.header("if-none-match") == '"e1"':
                return Reply(304, [("ETag", '"e1"'), ("Cache-Control", "max-age=100"), ("X-Version", "2")])
            return Reply(200, [("Cache-Control", "max-age=100"), ("ETag", '"e1"')], b"unconditional")
        self.origin.route(self.p, handler)
        r = self.get(self.p)
        self.assertEqual((r.status, r.body), (200, b"one"))
        self.assertCacheStatus(r, fwd="stale", fwd_status=304, ttl=(98, 100))
        # §4.3.4: the stored header fields are updated from the 304.
        self.assertEqual(r.header("x-version"), "2")
        self.assertEqual(r.header("cache-control"), "max-age=100")
        reqs = self.assertOriginCount(self.p, 2)
        self.assertUnconditional(reqs[0])
        self.assertEqual(reqs[1].header("if-none-match"), '"e1"')
        self.assertIsNone(reqs[1].header("if-modified-since"), "no Last-Modified was stored")
        # Freshened: the next request is a hit, with the updated fields.
        h = self.get(self.p)
        self.assertHit(h, b"one", ttl=(97, 100))
        self.assertEqual(h.header("x-version"), "2")
        self.assertOriginCount(self.p, 2)

    def test_proxy_specific_fields_are_never_stored_nor_merged_from_a_304_rfc9111_3_1(self):
        """§3.1: Proxy-Authenticate, Proxy-Authentication-Info and Proxy-Authorization
        MUST NOT be stored (Cachalot's key names no proxy): the miss relays what the
        origin sent, a hit carries none of them, nor does an entry a 304 updated."""
        proxy_fields = [("Proxy-Authorization", "Basic c2VjcmV0"), ("Proxy-Authenticate", 'Basic realm="p"'),
                        ("Proxy-Authentication-Info", "nextnonce=1")]
        self.origin.route(self.p, Reply(200, [("Cache-Control", "max-age=1"), ("ETag", '"p1"')] + proxy_fields,
                                        b"proxied"))
        r = self.get(self.p)
        self.assertStoredMiss(r, b"proxied")
        self.assertEqual(r.header("proxy-authorization"), "Basic c2VjcmV0", "the miss relays the origin's answer")
        h = self.get(self.p)
        self.assertHit(h, b"proxied")
        for name, _ in proxy_fields:
            self.assertIsNone(h.header(name), f"{name} was stored")
        self.advance_until_stale(self.p)

        def handler(req):
            if req.header("if-none-match") == '"p1"':
                return Reply(304, [("ETag", '"p1"'), ("Cache-Control", "max-age=100")] + proxy_fields)
            return Reply(200, [("Cache-Control", "max-age=100")], b"unconditional")
        self.origin.route(self.p, handler)
        self.assertCacheStatus(self.get(self.p), fwd="stale", fwd_status=304)
        h = self.get(self.p)
        self.assertHit(h, b"proxied")
        for name, _ in proxy_fields:
            self.assertIsNone(h.header(name), f"{name} was merged from the 304")
        reqs = self.assertOriginCount(self.p, 2)
        self.assertEqual(reqs[1].header("if-none-match"), '"p1"')

    def test_entry_freshened_by_a_304_without_date_is_still_served_with_a_date_rfc9110_6_6_1(self):
        self._store(self.p, [("Cache-Control", "max-age=1"), ("ETag", '"d1"'),
                             ("Date", http_date(self.proxy.now()))], b"dated")
        self.origin.route(self.p, Reply(304, [("ETag", '"d1"'), ("Cache-Control", "max-age=100")]))
        r = self.get(self.p)
        self.assertEqual((r.status, r.body), (200, b"dated"))
        self.assertCacheStatus(r, fwd="stale", fwd_status=304)
        self.assertIsNotNone(r.header("date"), f"revalidated response without Date: {r.headers}")
        h = self.get(self.p)
        self.assertHit(h, b"dated")
        self.assertIsNotNone(h.header("date"), f"freshened entry served without Date: {h.headers}")

    def test_stale_entry_with_last_modified_is_revalidated_with_if_modified_since_rfc9111_4_3_1(self):
        lm = http_date(self.proxy.now() - 3600)
        self._store(self.p, [("Cache-Control", "max-age=1"), ("Last-Modified", lm)], b"dated")

        def handler(req):
            if req.header("if-modified-since") == lm:
                return Reply(304, [("Cache-Control", "max-age=100"), ("Last-Modified", lm)])
            return Reply(200, [("Cache-Control", "max-age=100"), ("Last-Modified", lm)], b"unconditional")
        self.origin.route(self.p, handler)
        r = self.get(self.p)
        self.assertEqual((r.status, r.body), (200, b"dated"))
        self.assertCacheStatus(r, fwd="stale", fwd_status=304)
        reqs = self.assertOriginCount(self.p, 2)
        self.assertEqual(reqs[1].header("if-modified-since"), lm, "IMS must carry the stored Last-Modified")
        self.assertIsNone(reqs[1].header("if-none-match"), "no ETag was stored")
        self.assertHit(self.get(self.p), b"dated")
        self.assertOriginCount(self.p, 2)

    def test_stale_entry_with_both_validators_sends_both_rfc9111_4_3_1(self):
        lm = http_date(self.proxy.now() - 3600)
        self._store(self.p, [("Cache-Control", "max-age=1"), ("ETag", '"b1"'), ("Last-Modified", lm)], b"both")
        self.origin.route(self.p, Reply(304, [("ETag", '"b1"'), ("Cache-Control", "max-age=100")]))
        r = self.get(self.p)
        self.assertEqual((r.status, r.body), (200, b"both"))
        self.assertCacheStatus(r, fwd="stale", fwd_status=304)
        req = self.assertOriginCount(self.p, 2)[1]
        self.assertEqual(req.header("if-none-match"), '"b1"')
        self.assertEqual(req.header("if-modified-since"), lm)

    def test_200_answer_to_a_revalidation_replaces_the_stored_response_rfc9111_4_3_3(self):
        self._store(self.p, [("Cache-Control", "max-age=1"), ("ETag", '"old"')], b"old body")
        self.origin.route(self.p, Reply(200, [("Cache-Control", "max-age=100"), ("ETag", '"new"')], b"new body"))
        r = self.get(self.p)
        self.assertEqual((r.status, r.body), (200, b"new body"))
        self.assertCacheStatus(r, fwd="stale", fwd_status=200, stored=True, ttl=(99, 100))
        self.assertEqual(r.header("etag"), '"new"')
        reqs = self.assertOriginCount(self.p, 2)
        self.assertEqual(reqs[1].header("if-none-match"), '"old"')
        h = self.get(self.p)
        self.assertHit(h, b"new body")
        self.assertEqual(h.header("etag"), '"new"')
        self.assertOriginCount(self.p, 2)

    def test_stale_entry_without_validators_is_fetched_unconditionally_rfc9111_4_3_1(self):
        self._store(self.p, [("Cache-Control", "max-age=1")], b"v1")
        self.origin.route(self.p, Reply(200, [("Cache-Control", "max-age=100")], b"v2"))
        r = self.get(self.p)
        self.assertEqual((r.status, r.body), (200, b"v2"))
        self.assertCacheStatus(r, fwd=("stale", "uri-miss"), fwd_status=200, stored=True)
        reqs = self.assertOriginCount(self.p, 2)
        self.assertUnconditional(reqs[1])
        self.assertHit(self.get(self.p), b"v2")

    def test_client_conditional_on_a_stale_entry_is_answered_304_after_revalidation_rfc9111_4_3_2(self):
        self._store(self.p, [("Cache-Control", "max-age=1"), ("ETag", '"c1"')], b"cond")
        self.origin.route(self.p, Reply(304, [("ETag", '"c1"'), ("Cache-Control", "max-age=100")]))
        r = self.get(self.p, [("If-None-Match", '"c1"')])
        self.assertEqual((r.status, r.body), (304, b""))
        self.assertEqual(r.header("etag"), '"c1"')
        self.assertCacheStatus(r, fwd="stale", fwd_status=304)
        req = self.assertOriginCount(self.p, 2)[1]
        self.assertEqual(req.header("if-none-match"), '"c1"')
        # A client validator the cache does not hold is not what validates the entry.
        self._store(self.p + "/x", [("Cache-Control", "max-age=1"), ("ETag", '"mine"')], b"x")
        self.origin.route(self.p + "/x", Reply(304, [("ETag", '"mine"'), ("Cache-Control", "max-age=100")]))
        r = self.get(self.p + "/x", [("If-None-Match", '"theirs"')])
        self.assertEqual((r.status, r.body), (200, b"x"))
        req = self.assertOriginCount(self.p + "/x", 2)[1]
        self.assertIn('"mine"', req.header("if-none-match", ""), "the stored ETag must be sent")

    def test_max_age_0_response_with_etag_is_revalidated_on_every_use_rfc9111_4_2_4(self):
        def handler(req):
            if req.header("if-none-match") == '"z0"':
                return Reply(304, [("ETag", '"z0"'), ("Cache-Control", "max-age=0")])
            return Reply(200, [("Cache-Control", "max-age=0"), ("ETag", '"z0"')], b"zero")
        self.origin.route(self.p, handler)
        r = self.get(self.p)
        self.assertEqual((r.status, r.body), (200, b"zero"))
        for i in range(2):
            r = self.get(self.p)
            self.assertEqual((r.status, r.body), (200, b"zero"))
            self.assertCacheStatus(r, fwd="stale", fwd_status=304, msg=f"use {i}")
        reqs = self.assertOriginCount(self.p, 3)
        self.assertEqual([q.header("if-none-match") for q in reqs], [None, '"z0"', '"z0"'])

    def test_304_with_a_different_strong_etag_does_not_freshen_the_entry_rfc9111_4_3_4(self):
        """'If none of the initial set contains at least one of the same strong validators,
        then the cache MUST NOT use the new response to update any stored responses.'"""
        self._store(self.p, [("Cache-Control", "max-age=1"), ("ETag", '"a"')], b"version a")
        self.origin.route(self.p, Reply(304, [("ETag", '"b"'), ("Cache-Control", "max-age=100")]))
        r1 = self.get(self.p)
        self.assertIn(r1.status, (200, 502, 504), r1)
        if r1.status == 200:
            self.assertNotEqual(cache_status(r1).get("ttl"), 100, "the mismatched 304 freshened the entry")
        self.origin.route(self.p, Reply(200, [("Cache-Control", "max-age=100"), ("ETag", '"b"')], b"version b"))
        n = self.origin.request_count(self.p)
        r2 = self.get(self.p)
        self.assertFalse(cache_status(r2).get("hit"), f"entry freshened by a 304 for another representation: "
                                                       f"{r2.headers} {r2.body!r}")
        self.assertGreater(self.origin.request_count(self.p), n)

    # ---- never served stale, §4.2.4 ------------------------------------------------
    NEVER_STALE = [("must-revalidate", "max-age=1, must-revalidate", "rfc9111_5_2_2_2"),
                   ("proxy-revalidate", "max-age=1, proxy-revalidate", "rfc9111_5_2_2_8"),
                   ("s-maxage", "s-maxage=1", "rfc9111_5_2_2_10")]

    def test_control_an_ordinary_stale_entry_is_served_when_the_origin_fails_rfc5861_4(self):
        """The setup of the tests below serves stale without must-revalidate & co."""
        self._store(self.p, [("Cache-Control", "max-age=1"), ("ETag", '"c"')], b"control")
        self.origin.route(self.p, Reply(200, action="close"))
        r = self.get(self.p)
        self.assertEqual((r.status, r.body), (200, b"control"))
        self.assertCacheStatus(r, fwd="stale")

    def test_must_revalidate_entries_are_never_served_stale_when_the_origin_is_unreachable_rfc9111_5_2_2_2(self):
        paths = {}
        for name, cc, _ in self.NEVER_STALE:
            path = f"{self.p}/{name}"
            paths[name] = path
            self.origin.route(path, Reply(200, [("Cache-Control", cc), ("ETag", '"mr"')], b"stale body"))
            self.assertStoredMiss(self.get(path), b"stale body", msg=name)
        for path in paths.values():
            self.advance_until_stale(path)
        for name, cc, ref in self.NEVER_STALE:
            with self.subTest(directive=name, rfc=ref):
                path = paths[name]
                n = self.origin.request_count(path)
                self.origin.route(path, Reply(200, action="close"))
                r = self.get(path)
                self.assertIn(r.status, (502, 504), f"{name}: {r!r}")
                self.assertNotEqual(r.body, b"stale body")
                self.assertFalse(cache_status(r).get("hit"), r.headers)
                reqs = self.origin.requests(path)[n:]
                self.assertGreaterEqual(len(reqs), 1, "the cache must try the origin")
                self.assertEqual(reqs[0].header("if-none-match"), '"mr"')

    def test_must_revalidate_entries_are_not_served_stale_on_an_origin_5xx_rfc9111_5_2_2_2(self):
        paths = {}
        for name, cc, _ in self.NEVER_STALE:
            path = f"{self.p}/{name}"
            paths[name] = path
            self.origin.route(path, Reply(200, [("Cache-Control", cc), ("ETag", '"mr"')], b"stale body"))
            self.assertStoredMiss(self.get(path), b"stale body", msg=name)
        for path in paths.values():
            self.advance_until_stale(path)
        for name, cc, ref in self.NEVER_STALE:
            with self.subTest(directive=name, rfc=ref):
                path = paths[name]
                self.origin.route(path, Reply.text(503, "down"))
                r = self.get(path)
                self.assertEqual((r.status, r.body), (503, b"down"), name)
                self.assertFalse(cache_status(r).get("hit"), r.headers)
                self.assertOriginCount(path, 2)

    def test_max_stale_does_not_override_must_revalidate_rfc9111_4_2_4(self):
        paths = {}
        for name, cc, _ in self.NEVER_STALE:
            path = f"{self.p}/{name}"
            paths[name] = path
            self.origin.route(path, Reply(200, [("Cache-Control", cc), ("ETag", '"ms"')], b"stale body"))
            self.assertStoredMiss(self.get(path), b"stale body", msg=name)
        for path in paths.values():
            self.advance_until_stale(path)
        for name, cc, ref in self.NEVER_STALE:
            with self.subTest(directive=name, rfc=ref):
                path = paths[name]
                self.origin.route(path, Reply(304, [("ETag", '"ms"'), ("Cache-Control", cc.replace("1", "100"))]))
                r = self.get(path, [("Cache-Control", "max-stale=3600")])
                self.assertEqual((r.status, r.body), (200, b"stale body"))
                self.assertCacheStatus(r, fwd="stale", fwd_status=304)
                reqs = self.assertOriginCount(path, 2)
                self.assertEqual(reqs[1].header("if-none-match"), '"ms"')


if __name__ == "__main__":
    unittest.main()
