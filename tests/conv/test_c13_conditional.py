"""Clients' conditional requests answered by the cache (issue #3): RFC 9110 §13
(If-None-Match, If-Modified-Since, their precedence) and RFC 9111 §4.3.2.

A fresh entry answers a matching conditional with 304 without contacting the
origin; the 304 carries the fields a 200 would have carried for caching
(RFC 9110 §15.4.5) and no content. On a miss the cache fetches the full
response unconditionally (it wants something to store) and evaluates the
client's conditional itself.
"""

import time
import unittest

from _cachetest import CacheTestCase, Reply, http_date

T0 = time.time()
LM = http_date(T0 - 86400)


class ConditionalTest(CacheTestCase):
    def _entry(self, path, etag='"abc"', status=200, body=b"representation", extra=()):
        headers = [("Cache-Control", "max-age=100"), ("ETag", etag), ("Last-Modified", LM),
                   ("Date", http_date(time.time())), ("Vary", "Accept-Encoding"),
                   ("Content-Location", path + ".txt"), ("Content-Type", "text/plain"), *extra]
        self.origin.route(path, Reply(status, headers, body))
        r = self.get(path)
        self.assertStoredMiss(r, body, status=status)
        return r

    def assertNotModifiedFromCache(self, path, headers, etag='"abc"', msg=""):
        with self.proxy.client() as c:
            c.request("GET", path, headers)
            r = c.read_response()
            self.assertEqual(r.status, 304, f"{msg} {r!r}")
            self.assertEqual(r.body, b"")
            self.assertCacheStatus(r, hit=True, msg=msg)
            # RFC 9110 §15.4.5: the fields a 200 would carry for caching.
            self.assertEqual(r.header("etag"), etag, msg)
            self.assertEqual(r.header("cache-control"), "max-age=100", msg)
            self.assertEqual(r.header("vary"), "Accept-Encoding", msg)
            self.assertEqual(r.header("content-location"), path + ".txt", msg)
            self.assertIsNotNone(r.header("date"), msg)
            self.assertFalse(r.has("transfer-encoding"), msg)
            cl = r.header("content-length")
            # RFC 9110 §8.6: only the length a 200 would have had, if any.
            self.assertIn(cl, (None, str(len(b"representation"))), f"{msg}: 304 Content-Length {cl}")
            # The connection is in sync: no body followed the 304.
            c.request("GET", path)
            follow = c.read_response()
            self.assertHit(follow, b"representation", msg=msg)
        return r

    def assertFullFromCache(self, path, headers, msg=""):
        r = self.get(path, headers)
        self.assertHit(r, b"representation", msg=msg)
        return r

    # ---- If-None-Match, RFC 9110 §13.1.2 --------------------------------------------
    def test_if_none_match_exact_is_answered_304_from_a_fresh_entry_rfc9110_13_1_2(self):
        self._entry(self.p)
        self.assertNotModifiedFromCache(self.p, [("If-None-Match", '"abc"')])
        self.assertOriginCount(self.p, 1)

    def test_if_none_match_uses_weak_comparison_rfc9110_8_8_3_2(self):
        self._entry(self.p)
        self.assertNotModifiedFromCache(self.p, [("If-None-Match", 'W/"abc"')], msg="weak tag vs strong entry")
        weak = f"{self.p}/weak"
        self._entry(weak, etag='W/"abc"')
        self.assertNotModifiedFromCache(weak, [("If-None-Match", '"abc"')], etag='W/"abc"', msg="strong vs weak")
        self.assertNotModifiedFromCache(weak, [("If-None-Match", 'W/"abc"')], etag='W/"abc"', msg="weak vs weak")
        self.assertOriginCount(self.p, 1)
        self.assertOriginCount(weak, 1)

    def test_if_none_match_list_matches_any_member_rfc9110_13_1_2(self):
        self._entry(self.p)
        self.assertNotModifiedFromCache(self.p, [("If-None-Match", '"x", "abc", "y"')], msg="one line")
        self.assertNotModifiedFromCache(self.p, [("If-None-Match", '"x"'), ("If-None-Match", '"abc"')],
                                        msg="two field lines")
        self.assertFullFromCache(self.p, [("If-None-Match", '"x", "y"')], msg="no member matches")
        self.assertOriginCount(self.p, 1)

    def test_if_none_match_star_is_answered_304_when_a_representation_exists_rfc9110_13_1_2(self):
        self._entry(self.p)
        self.assertNotModifiedFromCache(self.p, [("If-None-Match", "*")])
        self.assertOriginCount(self.p, 1)

    def test_non_matching_if_none_match_gets_200_with_the_body_rfc9110_13_1_2(self):
        self._entry(self.p)
        r = self.assertFullFromCache(self.p, [("If-None-Match", '"other"')])
        self.assertEqual(r.header("etag"), '"abc"')
        self.assertOriginCount(self.p, 1)

    def test_head_with_matching_if_none_match_gets_304_rfc9110_13_1_2(self):
        self._entry(self.p)
        r = self.proxy.request("HEAD", self.p, [("If-None-Match", '"abc"')])
        self.assertEqual((r.status, r.body), (304, b""))
        self.assertCacheStatus(r, hit=True)
        self.assertOriginCount(self.p, 1)

    # ---- If-Modified-Since, RFC 9110 §13.1.3 -----------------------------------------
    def test_if_modified_since_not_before_last_modified_is_answered_304_rfc9110_13_1_3(self):
        self._entry(self.p)
        self.assertNotModifiedFromCache(self.p, [("If-Modified-Since", LM)], msg="equal")
        self.assertNotModifiedFromCache(self.p, [("If-Modified-Since", http_date(T0 - 3600))], msg="later")
        self.assertOriginCount(self.p, 1)

    def test_if_modified_since_before_last_modified_gets_200_rfc9110_13_1_3(self):
        self._entry(self.p)
        self.assertFullFromCache(self.p, [("If-Modified-Since", http_date(T0 - 2 * 86400))])
        self.assertOriginCount(self.p, 1)

    def test_invalid_if_modified_since_is_ignored_rfc9110_13_1_3(self):
        self._entry(self.p)
        self.assertFullFromCache(self.p, [("If-Modified-Since", "yesterday")])
        self.assertOriginCount(self.p, 1)

    def test_if_modified_since_without_last_modified_is_compared_with_the_stored_date_rfc9111_4_3_2(self):
        date = time.time() - 100
        # Date 100 s ago: max-age=1000 keeps it fresh; no Last-Modified.
        self.origin.route(self.p, Reply(200, [("Cache-Control", "max-age=1000"), ("Date", http_date(date))],
                                        b"undated"))
        self.assertStoredMiss(self.get(self.p), b"undated")
        r = self.get(self.p, [("If-Modified-Since", http_date(date + 50))])
        self.assertEqual((r.status, r.body), (304, b""))
        self.assertCacheStatus(r, hit=True)
        self.assertHit(self.get(self.p, [("If-Modified-Since", http_date(date - 1000))]), b"undated")
        self.assertOriginCount(self.p, 1)

    def test_if_none_match_takes_precedence_over_if_modified_since_rfc9110_13_2_2(self):
        self._entry(self.p)
        self.assertFullFromCache(self.p, [("If-None-Match", '"other"'), ("If-Modified-Since", LM)],
                                 msg="INM false, IMS would say 304")
        self.assertNotModifiedFromCache(self.p, [("If-None-Match", '"abc"'),
                                                 ("If-Modified-Since", http_date(T0 - 2 * 86400))],
                                        msg="INM true, IMS would say 200")
        self.assertOriginCount(self.p, 1)

    def test_preconditions_are_ignored_for_a_stored_non_2xx_response_rfc9110_13_2_1(self):
        """'A server MUST ignore all received preconditions if its response to the same
        request without those conditions ... would have been a status code other than a 2xx.'"""
        self.origin.route(self.p, Reply(404, [("Cache-Control", "max-age=100"), ("ETag", '"nf"')], b"not found"))
        self.assertStoredMiss(self.get(self.p), b"not found", status=404)
        r = self.get(self.p, [("If-None-Match", '"nf"')])
        self.assertHit(r, b"not found", status=404)
        self.assertOriginCount(self.p, 1)

    # ---- on a miss, RFC 9111 §4.3.2 ------------------------------------------------
    def test_matching_conditional_on_a_miss_gets_304_and_the_origin_an_unconditional_request_rfc9111_4_3_2(self):
        for i, cond in enumerate([("If-None-Match", '"abc"'), ("If-Modified-Since", LM)]):
            with self.subTest(conditional=cond[0]):
                path = f"{self.p}/{i}"
                self.origin.route(path, Reply(200, [("Cache-Control", "max-age=100"), ("ETag", '"abc"'),
                                                    ("Last-Modified", LM)], b"full"))
                with self.proxy.client() as c:
                    c.request("GET", path, [cond])
                    r = c.read_response()
                    self.assertEqual((r.status, r.body), (304, b""))
                    self.assertCacheStatus(r, fwd="uri-miss", stored=True)
                    self.assertEqual(r.header("etag"), '"abc"')
                    c.request("GET", path)
                    self.assertHit(c.read_response(), b"full", msg="the full response was stored")
                reqs = self.assertOriginCount(path, 1)
                self.assertUnconditional(reqs[0])

    def test_non_matching_conditional_on_a_miss_gets_200_and_the_origin_an_unconditional_request_rfc9111_4_3_2(self):
        for i, cond in enumerate([("If-None-Match", '"zzz"'), ("If-Modified-Since", http_date(T0 - 2 * 86400))]):
            with self.subTest(conditional=cond[0]):
                path = f"{self.p}/{i}"
                self.origin.route(path, Reply(200, [("Cache-Control", "max-age=100"), ("ETag", '"abc"'),
                                                    ("Last-Modified", LM)], b"full"))
                r = self.get(path, [cond])
                self.assertStoredMiss(r, b"full")
                reqs = self.assertOriginCount(path, 1)
                self.assertUnconditional(reqs[0])


if __name__ == "__main__":
    unittest.main()
