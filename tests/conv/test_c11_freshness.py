"""Freshness (issue #3): RFC 9111 §4.2 lifetimes and ages, and the request
directives of §5.2.1 that change whether a stored response may be used.

Lifetimes are checked through the `ttl=` of Cache-Status (lifetime − current age).
Where time must pass, the test moves cachalot's clock (advance_clock, test
builds) instead of sleeping: by an entry's ttl to make it stale, by a second to
age it, or while the origin holds its answer for a response delay. Dates the
origin sends are on cachalot's clock (self.proxy.now()), since the class shares
one cachalot whose clock earlier tests may have moved.
"""

import unittest

from _cachetest import CacheTestCase, Gate, Reply, cache_status, http_date

CC100 = [("Cache-Control", "max-age=100")]


class FreshnessLifetimeTest(CacheTestCase):
    CONFIG = {"cache": {"heuristic_max": "1d"}}

    # ---- §4.2.1 which lifetime wins ------------------------------------------
    def test_s_maxage_beats_max_age_in_a_shared_cache_rfc9111_4_2_1(self):
        for i, cc in enumerate(["max-age=1000, s-maxage=100", "s-maxage=100, max-age=5"]):
            with self.subTest(cache_control=cc):
                path = f"{self.p}/{i}"
                self.origin.route(path, Reply(200, [("Cache-Control", cc)], b"s"))
                self.assertStoredMiss(self.get(path), b"s", ttl=(99, 100))
                self.assertHit(self.get(path), b"s", ttl=(98, 100))
                self.assertOriginCount(path, 1)

    def test_s_maxage_0_makes_a_response_stale_at_once_for_a_shared_cache_rfc9111_5_2_2_10(self):
        self.origin.route(self.p, Reply(200, [("Cache-Control", "max-age=100, s-maxage=0")], b"s0"))
        for j in range(2):
            r = self.get(self.p)
            self.assertEqual((r.status, r.body), (200, b"s0"))
            self.assertFalse(cache_status(r).get("hit"), f"request {j}: {r.headers}")
        self.assertOriginCount(self.p, 2)

    def test_cache_control_split_over_field_lines_is_combined_rfc9110_5_3(self):
        self.origin.route(self.p, Reply(200, [("Cache-Control", "public"), ("Cache-Control", "max-age=100")], b"two"))
        self.assertStoredMiss(self.get(self.p), b"two", ttl=(99, 100))
        self.assertHit(self.get(self.p), b"two")
        self.assertOriginCount(self.p, 1)

    def test_duplicate_max_age_uses_the_first_or_is_stale_rfc9111_4_2_1(self):
        """'When there is more than one value present for a given directive ... either the
        first occurrence should be used or the response should be considered stale.'"""
        self.origin.route(self.p, Reply(200, [("Cache-Control", "max-age=10, max-age=1000")], b"dup"))
        r1 = self.get(self.p)
        self.assertEqual((r1.status, r1.body), (200, b"dup"))
        ttl = cache_status(r1).get("ttl")
        if cache_status(r1).get("stored"):
            self.assertTrue(ttl is not None and ttl <= 10, f"the second max-age was used: {r1.headers}")

    def test_max_age_beats_expires_rfc9111_4_2_1_rfc9111_5_3(self):
        t = self.proxy.now()
        cases = [http_date(t + 1000), http_date(t - 1000), "0"]
        for i, expires in enumerate(cases):
            with self.subTest(expires=expires):
                path = f"{self.p}/{i}"
                self.origin.route(path, Reply(200, [("Date", http_date(t)), ("Expires", expires)] + CC100, b"m"))
                self.assertStoredMiss(self.get(path), b"m", ttl=(98, 100))
                self.assertHit(self.get(path), b"m")
                self.assertOriginCount(path, 1)

    def test_expires_minus_date_is_the_lifetime_without_max_age_rfc9111_4_2_1(self):
        t = self.proxy.now()
        self.origin.route(self.p, Reply(200, [("Date", http_date(t)), ("Expires", http_date(t + 300))], b"e"))
        self.assertStoredMiss(self.get(self.p), b"e", ttl=(298, 300))
        self.assertHit(self.get(self.p), b"e", ttl=(297, 300))
        self.assertOriginCount(self.p, 1)

    def test_expires_is_relative_to_the_origin_date_not_the_local_clock_rfc9111_4_2_1(self):
        """Date 1000 s ago, Expires = Date + 300: the lifetime is 300 s and the apparent age
        (§4.2.3: receive time − Date) 1000 s, so the response is already stale on arrival
        and the next request must not be a hit."""
        t = self.proxy.now() - 1000
        self.origin.route(self.p, Reply(200, [("Date", http_date(t)), ("Expires", http_date(t + 300)),
                                              ("ETag", '"skew"')], b"skewed"))
        r1 = self.get(self.p)
        self.assertEqual((r1.status, r1.body), (200, b"skewed"))
        r2 = self.get(self.p)
        self.assertEqual((r2.status, r2.body), (200, b"skewed"))
        self.assertFalse(cache_status(r2).get("hit"), f"an already-expired response was served fresh: {r2.headers}")
        self.assertOriginCount(self.p, 2)

    def test_invalid_expires_zero_means_already_expired_rfc9111_5_3(self):
        for i, extra in enumerate([[], [("ETag", '"z"')]]):
            with self.subTest(validator=bool(extra)):
                path = f"{self.p}/{i}"
                self.origin.route(path, Reply(200, [("Date", http_date(self.proxy.now())), ("Expires", "0")] + extra,
                                              b"zero"))
                for j in range(2):
                    r = self.get(path)
                    self.assertEqual((r.status, r.body), (200, b"zero"))
                    self.assertFalse(cache_status(r).get("hit"), f"request {j}: {r.headers}")
                self.assertOriginCount(path, 2)

    def test_expires_in_the_past_is_stale_at_once_rfc9111_4_2_1(self):
        t = self.proxy.now()
        self.origin.route(self.p, Reply(200, [("Date", http_date(t)), ("Expires", http_date(t - 60))], b"past"))
        for j in range(2):
            r = self.get(self.p)
            self.assertEqual((r.status, r.body), (200, b"past"))
            self.assertFalse(cache_status(r).get("hit"), f"request {j}: {r.headers}")
        self.assertOriginCount(self.p, 2)

    # ---- §4.2.2 heuristics ------------------------------------------------
    def test_heuristic_lifetime_is_ten_percent_of_date_minus_last_modified_rfc9111_4_2_2(self):
        t = self.proxy.now()
        self.origin.route(self.p, Reply(200, [("Date", http_date(t)), ("Last-Modified", http_date(t - 1000))],
                                        b"heur"))
        self.assertStoredMiss(self.get(self.p), b"heur", ttl=(98, 100))
        self.assertHit(self.get(self.p), b"heur", ttl=(97, 100))
        self.assertOriginCount(self.p, 1)

    def test_heuristic_lifetime_is_capped_by_heuristic_max_rfc9111_4_2_2(self):
        t = self.proxy.now()
        self.origin.route(self.p, Reply(200, [("Date", http_date(t)),
                                              ("Last-Modified", http_date(t - 30 * 86400))], b"old"))
        self.assertStoredMiss(self.get(self.p), b"old", ttl=(86398, 86400))

    def test_heuristics_are_not_used_when_freshness_is_explicit_rfc9111_4_2_2(self):
        t = self.proxy.now()
        lm = ("Last-Modified", http_date(t - 100000))     # heuristics would give 10000 s
        cases = [([("Cache-Control", "max-age=5")], (3, 5)),
                 ([("Expires", http_date(t + 20))], (18, 20))]
        for i, (explicit, ttl) in enumerate(cases):
            with self.subTest(explicit=explicit):
                path = f"{self.p}/{i}"
                self.origin.route(path, Reply(200, [("Date", http_date(t)), lm] + explicit, b"x"))
                self.assertStoredMiss(self.get(path), b"x", ttl=ttl)

    def test_no_explicit_freshness_and_no_last_modified_gives_no_reuse_rfc9111_4_2_2(self):
        self.origin.route(self.p, Reply(200, [("Date", http_date(self.proxy.now()))], b"plain"))
        for j in range(2):
            r = self.get(self.p)
            self.assertEqual((r.status, r.body), (200, b"plain"))
            self.assertFalse(cache_status(r).get("hit"), f"request {j}: {r.headers}")
        self.assertOriginCount(self.p, 2)

    # ---- §4.2.3 age -------------------------------------------------------
    def test_upstream_age_reduces_the_remaining_ttl_rfc9111_4_2_3(self):
        self.origin.route(self.p, Reply(200, CC100 + [("Age", "30")], b"aged"))
        self.assertStoredMiss(self.get(self.p), b"aged", ttl=(69, 70))
        r = self.get(self.p)
        cs = self.assertHit(r, b"aged", ttl=(68, 70))
        age = int(r.header("age"))
        self.assertTrue(30 <= age <= 32, f"Age {age} on a hit of a response that arrived 30 s old")
        self.assertIn(age + cs["ttl"], (99, 100, 101), "Age + ttl must equal the lifetime")
        self.assertOriginCount(self.p, 1)

    def test_upstream_age_beyond_the_lifetime_arrives_stale_rfc9111_4_2_3(self):
        self.origin.route(self.p, Reply(200, [("Cache-Control", "max-age=100"), ("Age", "200")], b"old news"))
        for j in range(2):
            r = self.get(self.p)
            self.assertEqual((r.status, r.body), (200, b"old news"))
            self.assertFalse(cache_status(r).get("hit"), f"request {j}: {r.headers}")
        self.assertOriginCount(self.p, 2)

    def test_response_delay_counts_toward_the_age_rfc9111_4_2_3(self):
        """corrected_age_value = age_value + response_delay: an origin that takes over a
        second to answer (and sends no Date) leaves less than the full lifetime. The
        origin holds its answer while cachalot's clock moves 1.2 s."""
        gate = Gate(10)
        self.origin.route(self.p, Reply(200, CC100, b"slow", gate=gate))
        try:
            with self.proxy.client() as cl:
                cl.request("GET", self.p)
                self.origin.wait_for_requests(1, path=self.p)
                self.proxy.advance_clock(1.2)
                gate.open()
                r = cl.read_response()
        finally:
            gate.open()
        self.assertStoredMiss(r, b"slow", ttl=(97, 99))

    def test_age_on_hits_grows_and_ttl_shrinks_with_time_rfc9111_4_2_3(self):
        self.origin.route(self.p, Reply(200, CC100, b"ticking"))
        self.assertStoredMiss(self.get(self.p), b"ticking")
        first = self.get(self.p)
        cs1 = self.assertHit(first, b"ticking")
        age1 = int(first.header("age"))
        self.proxy.advance_clock(1)
        later = self.get(self.p)
        cs2 = self.assertHit(later, b"ticking")
        age2 = int(later.header("age"))
        self.assertGreater(age2, age1, "Age on a hit must grow")
        self.assertLess(cs2["ttl"], cs1["ttl"], "ttl must shrink as the entry ages")
        self.assertIn(age2 + cs2["ttl"], (99, 100, 101))
        self.assertOriginCount(self.p, 1)

    def test_responses_from_the_cache_carry_age_rfc9111_5_1(self):
        self.origin.route(self.p, Reply(200, CC100, b"a"))
        self.get(self.p)
        r = self.get(self.p)
        self.assertHit(r, b"a")
        self.assertEqual(len(r.header_all("age")), 1, "exactly one Age field")

    def test_forwarded_response_without_date_gets_one_rfc9110_6_6_1(self):
        """'A recipient with a clock that receives a response message without a Date header
        field MUST ... append a corresponding Date header field ... if it is cached or
        forwarded downstream.' Both the forwarded (miss) and the cached (hit) answer."""
        self.origin.route(self.p, Reply(200, CC100, b"undated"))
        r1 = self.get(self.p)
        self.assertStoredMiss(r1, b"undated")
        self.assertIsNotNone(r1.header("date"), f"forwarded response without Date: {r1.headers}")
        r2 = self.get(self.p)
        self.assertHit(r2, b"undated")
        self.assertIsNotNone(r2.header("date"), f"cached response without Date: {r2.headers}")

    # ---- time passes: an entry goes stale -----------------------------------
    def test_entry_is_fresh_until_its_age_reaches_the_lifetime_then_forwarded_rfc9111_4_2(self):
        self.origin.route(self.p, Reply(200, [("Cache-Control", "max-age=1")], b"short"))
        self.assertStoredMiss(self.get(self.p), b"short", ttl=(0, 1))
        self.advance_until_stale(self.p)
        r = self.get(self.p)
        self.assertEqual((r.status, r.body), (200, b"short"))
        self.assertCacheStatus(r, fwd=("stale", "uri-miss"), fwd_status=200, stored=True)
        self.assertOriginCount(self.p, 2)


class RequestDirectivesTest(CacheTestCase):
    """§5.2.1: what the client's Cache-Control (and Pragma) asks of the cache."""

    def _validating_origin(self, path, etag='"v1"', cc="max-age=100", extra=()):
        def handler(req):
            if req.header("if-none-match") == etag:
                return Reply(304, [("ETag", etag), ("Cache-Control", cc)])
            return Reply(200, [("ETag", etag), ("Cache-Control", cc), *extra], b"validated")
        self.origin.route(path, handler)

    def test_request_max_age_0_forces_validation_of_an_aged_entry_rfc9111_5_2_1_1(self):
        # The origin says the response is already 5 s old, so max-age=0 cannot accept it.
        self._validating_origin(self.p, extra=[("Age", "5")])
        self.assertStoredMiss(self.get(self.p), b"validated")
        r = self.get(self.p, [("Cache-Control", "max-age=0")])
        self.assertEqual((r.status, r.body), (200, b"validated"))
        self.assertCacheStatus(r, fwd=("request", "stale"))
        reqs = self.assertOriginCount(self.p, 2)
        self.assertEqual(reqs[1].header("if-none-match"), '"v1"', "validation should be conditional")

    def test_request_max_age_larger_than_the_age_is_a_hit_rfc9111_5_2_1_1(self):
        self._validating_origin(self.p, extra=[("Age", "5")])
        self.get(self.p)
        self.assertHit(self.get(self.p, [("Cache-Control", "max-age=60")]), b"validated")
        self.assertOriginCount(self.p, 1)

    def test_request_no_cache_forces_validation_of_a_fresh_entry_rfc9111_5_2_1_4(self):
        self._validating_origin(self.p)
        self.assertStoredMiss(self.get(self.p), b"validated")
        r = self.get(self.p, [("Cache-Control", "no-cache")])
        self.assertEqual((r.status, r.body), (200, b"validated"))
        self.assertCacheStatus(r, fwd=("request", "stale"))
        reqs = self.assertOriginCount(self.p, 2)
        self.assertEqual(reqs[1].header("if-none-match"), '"v1"')
        # The validated entry is still there for the next ordinary request.
        self.assertHit(self.get(self.p), b"validated")
        self.assertOriginCount(self.p, 2)

    def test_request_min_fresh_beyond_the_ttl_forces_a_forward_rfc9111_5_2_1_3(self):
        self._validating_origin(self.p)
        self.get(self.p)
        self.assertHit(self.get(self.p, [("Cache-Control", "min-fresh=50")]), b"validated")
        self.assertOriginCount(self.p, 1)
        r = self.get(self.p, [("Cache-Control", "min-fresh=200")])
        self.assertEqual((r.status, r.body), (200, b"validated"))
        self.assertCacheStatus(r, fwd=("request", "stale"))
        self.assertOriginCount(self.p, 2)

    def test_only_if_cached_gets_504_on_a_miss_and_a_hit_when_cached_rfc9111_5_2_1_7(self):
        self.origin.route(self.p, Reply(200, CC100, b"cached"))
        r = self.get(self.p, [("Cache-Control", "only-if-cached")])
        self.assertEqual(r.status, 504)
        self.assertCacheStatus(r, hit=False)
        self.assertOriginCount(self.p, 0)
        self.get(self.p)
        self.assertHit(self.get(self.p, [("Cache-Control", "only-if-cached")]), b"cached")
        self.assertOriginCount(self.p, 1)

    def test_pragma_no_cache_forces_validation_only_without_cache_control_rfc9111_5_4_rfc7234_5_4(self):
        self._validating_origin(self.p)
        self.get(self.p)
        r = self.get(self.p, [("Pragma", "no-cache")])
        self.assertEqual((r.status, r.body), (200, b"validated"))
        self.assertCacheStatus(r, fwd=("request", "stale"))
        self.assertOriginCount(self.p, 2)
        # With Cache-Control present, Pragma is ignored.
        self.assertHit(self.get(self.p, [("Pragma", "no-cache"), ("Cache-Control", "max-age=3600")]), b"validated")
        self.assertOriginCount(self.p, 2)

    def test_max_stale_with_a_limit_below_the_staleness_does_not_serve_stale_rfc9111_5_2_1_2(self):
        # max-age=10 and Age: 100: stored about 90 s stale (kept: it has an ETag).
        self._validating_origin(self.p, cc="max-age=10", extra=[("Age", "100")])
        r = self.get(self.p)
        self.assertEqual((r.status, r.body), (200, b"validated"))
        self.assertHit(self.get(self.p, [("Cache-Control", "max-stale=200")]), b"validated")
        self.assertOriginCount(self.p, 1)
        r = self.get(self.p, [("Cache-Control", "max-stale=30")])
        self.assertEqual((r.status, r.body), (200, b"validated"))
        self.assertFalse(cache_status(r).get("hit"), f"served 90 s stale to max-stale=30: {r.headers}")
        reqs = self.assertOriginCount(self.p, 2)
        self.assertEqual(reqs[1].header("if-none-match"), '"v1"')

    # ---- stale entries: max-stale, only-if-cached ---------------------------
    def test_max_stale_serves_a_stale_entry_without_contacting_the_origin_rfc9111_5_2_1_2(self):
        self._validating_origin(self.p, cc="max-age=1")
        self.assertStoredMiss(self.get(self.p), b"validated")
        self.advance_until_stale(self.p)
        for directive in ("max-stale=60", "max-stale"):
            r = self.get(self.p, [("Cache-Control", directive)])
            cs = self.assertHit(r, b"validated", msg=directive)
            self.assertLessEqual(cs["ttl"], 0, f"{directive}: a stale entry must report ttl <= 0")
        self.assertOriginCount(self.p, 1)
        # only-if-cached alone does not accept a stale entry (§5.2.1.7: 'consistent with the
        # other constraints of the request'): 504, still without contacting the origin.
        r = self.get(self.p, [("Cache-Control", "only-if-cached")])
        self.assertEqual(r.status, 504)
        self.assertOriginCount(self.p, 1)
        # An ordinary request validates it.
        r = self.get(self.p)
        self.assertEqual((r.status, r.body), (200, b"validated"))
        self.assertCacheStatus(r, fwd="stale", fwd_status=304)
        reqs = self.assertOriginCount(self.p, 2)
        self.assertEqual(reqs[1].header("if-none-match"), '"v1"')


if __name__ == "__main__":
    unittest.main()
