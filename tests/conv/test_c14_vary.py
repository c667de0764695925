"""Vary (issue #3): RFC 9111 §4.1. One URL, several stored variants selected by the
request's (normalized) values of the fields the response's Vary names, at most
cache.max_variants of them.
"""

import unittest

from _cachetest import CacheTestCase, Reply, wait_until

MAX_VARIANTS = 4


def echo_encoding(req):
    """The body names the Accept-Encoding the origin saw, so a wrong variant shows."""
    ae = req.header("accept-encoding")
    return Reply(200, [("Cache-Control", "max-age=100"), ("Vary", "Accept-Encoding")],
                 b"ae=" + (ae.encode() if ae is not None else b"<none>"))


class VaryTest(CacheTestCase):
    CONFIG = {"cache": {"max_variants": MAX_VARIANTS}}

    def test_different_values_are_separate_variants_rfc9111_4_1(self):
        self.origin.route(self.p, echo_encoding)
        self.assertStoredMiss(self.get(self.p, [("Accept-Encoding", "gzip")]), b"ae=gzip", fwd="uri-miss")
        self.assertStoredMiss(self.get(self.p, [("Accept-Encoding", "br")]), b"ae=br", fwd="vary-miss")
        self.assertHit(self.get(self.p, [("Accept-Encoding", "gzip")]), b"ae=gzip")
        self.assertHit(self.get(self.p, [("Accept-Encoding", "br")]), b"ae=br")
        reqs = self.assertOriginCount(self.p, 2)
        self.assertEqual([r.header("accept-encoding") for r in reqs], ["gzip", "br"])
        self.assertEqual(len(self.inspect(self.p)), 2)

    def test_absent_field_only_matches_absent_rfc9111_4_1(self):
        self.origin.route(self.p, echo_encoding)
        self.assertStoredMiss(self.get(self.p), b"ae=<none>")
        self.assertStoredMiss(self.get(self.p, [("Accept-Encoding", "gzip")]), b"ae=gzip", fwd="vary-miss")
        self.assertHit(self.get(self.p), b"ae=<none>")
        self.assertHit(self.get(self.p, [("Accept-Encoding", "gzip")]), b"ae=gzip")
        self.assertOriginCount(self.p, 2)

    def test_values_equal_after_normalization_select_the_same_variant_rfc9111_4_1(self):
        """§4.1: the cache MAY normalize values 'in a way that is known to have identical
        semantics' — whitespace in a list, member order, content-coding case (RFC 9110 §8.4.1)."""
        self.origin.route(self.p, echo_encoding)
        self.assertStoredMiss(self.get(self.p, [("Accept-Encoding", "gzip, br")]), b"ae=gzip, br")
        for same in ["gzip,br", "gzip ,  br", "br, gzip", "GZIP, Br", "gzip,\tbr"]:
            with self.subTest(accept_encoding=same):
                self.assertHit(self.get(self.p, [("Accept-Encoding", same)]), b"ae=gzip, br")
        with self.subTest(two_field_lines=True):
            self.assertHit(self.get(self.p, [("Accept-Encoding", "gzip"), ("Accept-Encoding", "br")]),
                           b"ae=gzip, br")
        self.assertOriginCount(self.p, 1)

    def test_values_of_fields_with_unknown_semantics_are_not_normalized_rfc9111_4_1(self):
        """Normalization is allowed only 'in a way that is known to have identical semantics':
        an extension field's case and member order may matter, so they select other variants."""
        self.origin.route(self.p, lambda req: Reply(200, [("Cache-Control", "max-age=100"), ("Vary", "X-Custom")],
                                                    req.header("x-custom", "-").encode()))
        values = ["Abc", "abc", "a, b", "b, a"]
        for i, v in enumerate(values):
            self.assertStoredMiss(self.get(self.p, [("X-Custom", v)]), v.encode(),
                                  fwd="uri-miss" if i == 0 else "vary-miss", msg=v)
        for v in values:
            self.assertHit(self.get(self.p, [("X-Custom", v)]), v.encode(), msg=v)
        self.assertOriginCount(self.p, len(values))

    def test_every_field_named_by_vary_must_match_rfc9111_4_1(self):
        def handler(req):
            ae = req.header("accept-encoding", "-")
            al = req.header("accept-language", "-")
            return Reply(200, [("Cache-Control", "max-age=100"), ("Vary", "Accept-Encoding, Accept-Language")],
                         f"{ae}|{al}".encode())
        self.origin.route(self.p, handler)
        self.assertStoredMiss(self.get(self.p, [("Accept-Encoding", "gzip"), ("Accept-Language", "en")]),
                              b"gzip|en")
        self.assertStoredMiss(self.get(self.p, [("Accept-Encoding", "gzip"), ("Accept-Language", "fr")]),
                              b"gzip|fr", fwd="vary-miss")
        self.assertHit(self.get(self.p, [("Accept-Language", "en"), ("Accept-Encoding", "gzip")]), b"gzip|en")
        self.assertHit(self.get(self.p, [("Accept-Encoding", "gzip"), ("Accept-Language", "fr")]), b"gzip|fr")
        self.assertOriginCount(self.p, 2)

    def test_fields_not_named_by_vary_do_not_split_the_entry_rfc9111_4_1(self):
        self.origin.route(self.p, echo_encoding)
        self.assertStoredMiss(self.get(self.p, [("Accept-Encoding", "gzip"), ("Accept-Language", "en")]),
                              b"ae=gzip")
        self.assertHit(self.get(self.p, [("Accept-Encoding", "gzip"), ("Accept-Language", "de"),
                                         ("User-Agent", "other")]), b"ae=gzip")
        self.assertOriginCount(self.p, 1)

    def test_variants_per_url_are_capped_at_max_variants(self):
        self.origin.route(self.p, echo_encoding)
        m0 = self.proxy.metrics().get("cachalot_cache_evictions_total", reason="variant-cap")
        n = MAX_VARIANTS + 2
        for i in range(n):
            r = self.get(self.p, [("Accept-Encoding", f"x-enc-{i}")])
            self.assertStoredMiss(r, b"ae=x-enc-%d" % i, fwd="uri-miss" if i == 0 else "vary-miss", msg=f"variant {i}")
        self.assertOriginCount(self.p, n)
        # The last entry is published a moment after its client has the response: poll.
        wait_until(lambda: self.proxy.metrics().get("cachalot_cache_evictions_total", reason="variant-cap") - m0
                   >= n - MAX_VARIANTS, 5.0, 0.02, what="variant-cap evictions")
        variants = self.inspect(self.p)
        self.assertEqual(len(variants), MAX_VARIANTS, f"variants kept: {variants}")
        m1 = self.proxy.metrics().get("cachalot_cache_evictions_total", reason="variant-cap")
        self.assertEqual(m1 - m0, n - MAX_VARIANTS, "one variant-cap eviction per variant over the cap")
        # The newest variant survives and is served as a hit.
        self.assertHit(self.get(self.p, [("Accept-Encoding", f"x-enc-{n - 1}")]), b"ae=x-enc-%d" % (n - 1))
        for i in range(n):
            r = self.get(self.p, [("Accept-Encoding", f"x-enc-{i}")])
            self.assertEqual((r.status, r.body), (200, b"ae=x-enc-%d" % i), f"variant {i}")
        self.assertLessEqual(len(self.inspect(self.p)), MAX_VARIANTS)


if __name__ == "__main__":
    unittest.main()
