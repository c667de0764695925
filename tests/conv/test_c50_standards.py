"""Completing the standards (issue #12): RFC 9213 targeted cache-control, final
statuses and must-understand (RFC 9111 §3, §5.2.2.3), Vary normalisation of
Accept-Encoding / Accept-Language (RFC 9111 §4.1, RFC 9110 §12.5.3, §12.5.4),
`set_cookie: store_without`, stale on a dead origin (RFC 9111 §4.2.4) and HEAD
responses updating stored GET responses (RFC 9111 §4.3.5).

    origin o1 { expect GET /t; reply 200 cache-control:"no-store" cdn-cache-control:"max-age=60" }
    client c1 { get /t; expect cache-status ~ stored }
    client c1 { get /t; expect cache-status ~ hit }

The policy (cache_control.h, evaluate.h, validation.h, vary.h) is wired into
the admission gate (targeted fields), the responder and the fills' heads
(drop_targeted_cache_control), the forwarded request (accept_encoding) and
the origin fetch (the disconnect grace, HEAD responses).

Time moves with advance_clock (test builds); nothing sleeps.
"""

import os
import sys
import tempfile
import textwrap
import unittest

from _cachetest import CacheTestCase, Reply
from _revaltest import COALESCED_WAITS, REQUESTS_TOTAL, STORED_MISS, Gate, ProxyCase, wait_until

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from cachalot import run_binary  # noqa: E402

CC60 = [("Cache-Control", "max-age=60")]
STORE_DECISIONS = "cachalot_store_decisions_total"


def status_of(r) -> str:
    return r.header("cache-status", "")


class StandardsTest(CacheTestCase):
    CONFIG = {
        "cache": {
            "targeted_cache_control": ["Cachalot-Cache-Control", "CDN-Cache-Control"],
            "drop_targeted_cache_control": ["Cachalot-Cache-Control"],
        },
        "routes": [{"name": "cookie", "prefix": "/cookie/", "set_cookie": "store_without"}],
    }

    def assertStoredThenHit(self, path, body, status=200):
        self.assertStoredMiss(self.get(path), body, status=status)
        self.assertHit(self.get(path), body, status=status)
        self.assertOriginCount(path, 1)

    # ---- RFC 9111 §3: any final status with explicit freshness -----------------------------
    def test_unknown_final_statuses_with_explicit_freshness_are_stored_rfc9111_3(self):
        """§3: "the response status code is final"; 299, 499 and 599 are final, and
        max-age / s-maxage / Expires make them explicitly cacheable."""
        for status, fields in ((299, CC60), (499, [("Cache-Control", "s-maxage=60")]),
                               (599, [("Expires", "Fri, 31 Dec 9999 23:59:59 GMT")])):
            with self.subTest(status=status):
                path = f"{self.p}/{status}"
                self.origin.route(path, Reply(status, fields, b"unknown %d" % status))
                self.assertStoredThenHit(path, b"unknown %d" % status, status)

    def test_unknown_status_without_explicit_freshness_is_not_stored_rfc9111_3(self):
        """§3 / RFC 9110 §15.1: without explicit freshness only heuristically
        cacheable statuses are stored; 299 is not one of them."""
        self.origin.route(self.p, Reply(299, [("Last-Modified", "Tue, 14 Nov 2023 22:13:20 GMT")], b"x"))
        for _ in range(2):
            self.assertNotStored(self.get(self.p), b"x", status=299, detail="status")
        self.assertOriginCount(self.p, 2)

    def test_must_understand_with_an_unknown_status_is_not_stored_rfc9111_5_2_2_3(self):
        """§5.2.2.3: must-understand "limits caching of the response to a cache that
        understands and conforms to the requirements for that response's status code"."""
        for status, cc in ((299, "no-store, must-understand, max-age=60"), (599, "must-understand, max-age=60")):
            with self.subTest(status=status):
                path = f"{self.p}/{status}"
                self.origin.route(path, Reply(status, [("Cache-Control", cc)], b"mu"))
                for _ in range(2):
                    self.assertNotStored(self.get(path), b"mu", status=status, detail="must-understand")
                self.assertOriginCount(path, 2)

    def test_must_understand_lifts_no_store_for_an_understood_status_rfc9111_5_2_2_3(self):
        """§5.2.2.3: a cache that understands the status "SHOULD ignore the no-store directive"."""
        self.origin.route(self.p, Reply(200, [("Cache-Control", "no-store, must-understand, max-age=60")], b"mu"))
        self.assertStoredThenHit(self.p, b"mu")

    # ---- RFC 9111 §4.1: Vary normalisation -------------------------------------------------
    @staticmethod
    def echo(field):
        def handler(req):
            v = req.header(field)
            return Reply(200, [("Cache-Control", "max-age=100"), ("Vary", field)],
                         field.encode() + b"=" + (v.encode() if v is not None else b"<none>"))
        return handler

    def test_accept_encoding_weights_case_and_order_select_one_variant_rfc9111_4_1_rfc9110_12_5_3(self):
        """RFC 9110 §12.5.3: only weights express preference; q=1.0 is no weight, a
        coding with q=0 is as unacceptable as one not listed."""
        self.origin.route(self.p, self.echo("Accept-Encoding"))
        first = "gzip, br;q=0.8"
        self.assertStoredMiss(self.get(self.p, [("Accept-Encoding", first)]))
        for same in ("br;q=0.80, GZIP;q=1.0", "gzip,br; Q=0.8, deflate;q=0", "x-gzip, br;q=0.8, gzip"):
            with self.subTest(value=same):
                self.assertHit(self.get(self.p, [("Accept-Encoding", same)]), b"Accept-Encoding=" + first.encode())
        for other in ("gzip, br", "gzip, br;q=0.8, identity;q=0"):
            with self.subTest(value=other):
                self.assertStoredMiss(self.get(self.p, [("Accept-Encoding", other)]), fwd="vary-miss")
        self.assertOriginCount(self.p, 3)

    def test_accept_language_with_distinct_weights_matches_in_any_order_rfc9110_12_5_4(self):
        """§12.5.4 example "da, en-gb;q=0.8, en;q=0.7": weights decide, so any order
        and spacing of the same weighted ranges selects the same variant."""
        self.origin.route(self.p, self.echo("Accept-Language"))
        first = "da, en-gb;q=0.8, en;q=0.7"
        self.assertStoredMiss(self.get(self.p, [("Accept-Language", first)]))
        self.assertHit(self.get(self.p, [("Accept-Language", "en;q=0.7 , EN-GB;q=0.80,da;q=1")]),
                       b"Accept-Language=" + first.encode())
        self.assertOriginCount(self.p, 1)

    def test_accept_language_with_equal_weights_keeps_its_order_rfc9110_12_5_4(self):
        """§12.5.4: "some recipients treat the order in which language tags are listed
        as an indication of descending priority, particularly for tags that are
        assigned equal quality values": "en, fr" and "fr, en" are two variants."""
        self.origin.route(self.p, self.echo("Accept-Language"))
        self.assertStoredMiss(self.get(self.p, [("Accept-Language", "en, fr")]))
        self.assertStoredMiss(self.get(self.p, [("Accept-Language", "fr, en")]), fwd="vary-miss")
        self.assertHit(self.get(self.p, [("Accept-Language", "EN,FR")]), b"Accept-Language=en, fr")
        self.assertOriginCount(self.p, 2)

    # ---- set_cookie: store_without ---------------------------------------------------------
    def test_store_without_stores_the_response_without_set_cookie_rfc9111_3_1(self):
        """`store_without` is `strip` by its clearer name: the entry has no Set-Cookie,
        the client that caused the fetch still gets its cookie."""
        path = "/cookie" + self.p
        self.origin.route(path, Reply(200, CC60 + [("Set-Cookie", "sid=1")], b"shared"))
        r1 = self.get(path)
        self.assertStoredMiss(r1, b"shared")
        self.assertEqual(r1.header_all("set-cookie"), ["sid=1"])
        r2 = self.get(path)
        self.assertHit(r2, b"shared")
        self.assertEqual(r2.header_all("set-cookie"), [], "another client got the first client's cookie")
        self.assertOriginCount(path, 1)

    # ---- RFC 9213: targeted cache-control ----------------------------------------------------
    def test_a_targeted_field_not_on_the_target_list_changes_nothing_and_passes_through_rfc9213_2_2(self):
        """§2.2: "Targeted fields that are not on a cache's target list MUST NOT change
        that cache's behavior and MUST be passed through"."""
        self.origin.route(self.p, Reply(200, CC60 + [("Other-Cache-Control", "no-store")], b"o"))
        r = self.get(self.p)
        self.assertStoredMiss(r, b"o")
        self.assertEqual(r.header("other-cache-control"), "no-store")
        h = self.get(self.p)
        self.assertHit(h, b"o")
        self.assertEqual(h.header("other-cache-control"), "no-store")

    def test_cdn_cache_control_is_forwarded_downstream_rfc9213_3(self):
        """§3: CDN caches "will typically forward this header so that downstream CDN
        caches can use it as well" (Cachalot drops only what drop_targeted_cache_control lists)."""
        self.origin.route(self.p, Reply(200, CC60 + [("CDN-Cache-Control", "max-age=60")], b"f"))
        self.assertEqual(self.get(self.p).header("cdn-cache-control"), "max-age=60")
        self.assertEqual(self.get(self.p).header("cdn-cache-control"), "max-age=60")

    def test_a_targeted_max_age_stores_what_cache_control_forbids_rfc9213_2_2(self):
        """§2.2: the cache "MUST ignore the Cache-Control and Expires header fields"
        when a listed targeted field is valid (RFC 9213 §3 example: CDN-only caching)."""
        self.origin.route(self.p, Reply(200, [("Cache-Control", "no-store"), ("CDN-Cache-Control", "max-age=600")],
                                        b"cdn"))
        self.assertStoredThenHit(self.p, b"cdn")

    def test_a_targeted_no_store_wins_over_cache_control_rfc9213_2_2(self):
        self.origin.route(self.p, Reply(200, CC60 + [("CDN-Cache-Control", "no-store")], b"n"))
        self.assertNotStored(self.get(self.p), b"n", detail="no-store")

    def test_the_first_valid_field_of_the_target_list_wins_rfc9213_2_2(self):
        """Target list [Cachalot-Cache-Control, CDN-Cache-Control]: an invalid first
        field (max-age is no sf-integer) is ignored and the next one is used (§2.1)."""
        self.origin.route(self.p, Reply(200, [("Cache-Control", "no-store"),
                                              ("Cachalot-Cache-Control", "max-age=1.5"),
                                              ("CDN-Cache-Control", "max-age=600")], b"second"))
        self.assertStoredThenHit(self.p, b"second")

    def test_a_targeted_field_makes_expires_ignored_rfc9213_2_2(self):
        """No lifetime in the targeted field and Expires ignored: nothing to reuse."""
        self.origin.route(self.p, Reply(200, [("Expires", "Fri, 31 Dec 9999 23:59:59 GMT"),
                                              ("CDN-Cache-Control", "none")], b"e"))
        self.assertNotStored(self.get(self.p), b"e", detail="no-freshness")

    def test_a_field_listed_in_drop_targeted_cache_control_is_not_forwarded_rfc9213_3(self):
        """§3: a cache "MAY remove it ... when configured to do so because it is known
        not to be used downstream"; it stays in the entry (a 304 merge re-reads it)."""
        self.origin.route(self.p, Reply(200, CC60 + [("Cachalot-Cache-Control", "max-age=600")], b"d"))
        r = self.get(self.p)
        self.assertIsNone(r.header("cachalot-cache-control"), r)
        h = self.get(self.p)
        self.assertHit(h, b"d", ttl=(590, 600))
        self.assertIsNone(h.header("cachalot-cache-control"), h)

    def test_a_dropped_field_stays_in_the_entry_for_a_304_merge_rfc9213_3_rfc9111_4_3_4(self):
        """The 304 carries no targeted field: the stored one still decides (§3.2 keeps
        stored fields the 304 lacks), so the refreshed lifetime is the targeted
        max-age=2, not Cache-Control's 600; and it is still not forwarded."""
        self.origin.route(self.p, Reply(200, [("Cache-Control", "max-age=600"), ("ETag", '"t1"'),
                                              ("Cachalot-Cache-Control", "max-age=2")], b"t"))
        r = self.get(self.p)
        self.assertStoredMiss(r, b"t", ttl=(1, 2))
        self.assertIsNone(r.header("cachalot-cache-control"), r)
        self.advance_until_stale(self.p)
        self.origin.route(self.p, Reply(304, [("ETag", '"t1"')]))
        v = self.get(self.p)
        self.assertEqual((v.status, v.body), (200, b"t"), v)
        self.assertCacheStatus(v, fwd="stale", fwd_status=304, ttl=(1, 2))
        self.assertEqual(self.origin.requests(self.p)[-1].header("if-none-match"), '"t1"')
        self.assertIsNone(v.header("cachalot-cache-control"), v)
        self.assertEqual(v.header("cache-control"), "max-age=600")

    def test_a_dropped_field_is_not_forwarded_on_responses_that_are_not_stored_rfc9213_3(self):
        """§3: "known not to be used downstream" holds for every response: a POST's
        (passed through) and an unstorable GET's too; other targeted fields pass."""
        fields = [("Cache-Control", "no-store"), ("Cachalot-Cache-Control", "no-store"),
                  ("CDN-Cache-Control", "no-store")]
        self.origin.route(self.p, Reply(200, fields, b"p"))
        for method in ("POST", "GET"):
            with self.subTest(method=method):
                r = self.get(self.p, method=method, body=b"x" if method == "POST" else None)
                self.assertEqual((r.status, r.body), (200, b"p"), r)
                self.assertIsNone(r.header("cachalot-cache-control"), r)
                self.assertEqual(r.header("cdn-cache-control"), "no-store")

    def test_a_dropped_field_is_not_in_the_head_a_coalesced_follower_gets_rfc9213_3(self):
        """A request that follows another's fill is written the fill's head while the
        body still streams: built from the entry, without the dropped field."""
        head_gate, body_gate = Gate(10), Gate(10)

        def body():
            yield b"first|"
            body_gate.wait()
            yield b"second"
        self.origin.route(self.p, Reply(200, CC60 + [("Cachalot-Cache-Control", "max-age=600"),
                                                     ("CDN-Cache-Control", "max-age=60")], body, gate=head_gate))
        lead, follower = self.proxy.client(10), self.proxy.client(10)
        try:
            lead.request("GET", self.p)
            self.origin.wait_for_requests(1, path=self.p)
            w0 = self.proxy.metrics().get(COALESCED_WAITS)
            follower.request("GET", self.p)
            wait_until(lambda: self.proxy.metrics().get(COALESCED_WAITS) > w0, 5, what="the follower waits")
            head_gate.open()
            rl, rf = lead.read_head(), follower.read_head()
            body_gate.open()
            for r, cl in ((rl, lead), (rf, follower)):
                self.assertEqual(b"".join(cl.iter_body(r)), b"first|second")
                self.assertIsNone(r.header("cachalot-cache-control"), r)
                self.assertEqual(r.header("cdn-cache-control"), "max-age=60")
            self.assertCacheStatus(rf, fwd="uri-miss")
            self.assertIn("collapsed", rf.header("cache-status"))
        finally:
            head_gate.open()
            body_gate.open()
            lead.close()
            follower.close()
        self.assertOriginCount(self.p, 1)

    # ---- RFC 9111 §4.3.5: HEAD updates the stored GET response ----------------------------
    def head_script(self, head_fields):
        """GET: 200 v1, ETag "h1", X-V: 1 (later GETs v2, X-V: 3 so that a refetch shows);
        HEAD: 200 with `head_fields` whatever the conditionals."""
        seen = {"get": 0}

        def handler(req):
            if req.method == "HEAD":
                return Reply(200, head_fields)
            seen["get"] += 1
            if seen["get"] == 1:
                return Reply(200, CC60 + [("ETag", '"h1"'), ("X-V", "1")], b"v1")
            return Reply(200, CC60 + [("ETag", '"h2"'), ("X-V", "3")], b"v2")
        self.origin.route(self.p, handler)
        self.assertStoredMiss(self.get(self.p), b"v1")

    def forwarded_head(self):
        """A HEAD that must reach the origin: the client's no-cache (RFC 9111 §5.2.1.4)."""
        h = self.head(self.p, [("Cache-Control", "no-cache")])
        self.assertEqual(h.status, 200, h)
        self.assertEqual(self.origin.requests(self.p)[-1].method, "HEAD")
        return h

    def test_a_head_200_with_the_same_etag_updates_the_stored_get_response_rfc9111_4_3_5(self):
        self.head_script([("Cache-Control", "max-age=600"), ("ETag", '"h1"'), ("X-V", "2"),
                          ("Content-Length", "2")])
        m0 = self.proxy.metrics().get(STORE_DECISIONS, reason="head-update")
        h = self.forwarded_head()
        self.assertCacheStatus(h, fwd="stale", fwd_status=200, detail="head-update", ttl=(590, 600))
        self.assertEqual(h.header("x-v"), "2")
        g = self.get(self.p)
        self.assertHit(g, b"v1", ttl=(590, 600))
        self.assertEqual(g.header("x-v"), "2", "the HEAD's fields did not update the entry")
        self.assertEqual(self.proxy.metrics().get(STORE_DECISIONS, reason="head-update"), m0 + 1)

    def test_a_head_200_with_another_etag_makes_the_stored_response_stale_rfc9111_4_3_5(self):
        """§4.3.5: "otherwise, the cache SHOULD consider the stored response to be stale"."""
        self.head_script(CC60 + [("ETag", '"h2"'), ("X-V", "2")])
        m0 = self.proxy.metrics().get(STORE_DECISIONS, reason="head-mark-stale")
        h = self.forwarded_head()
        self.assertCacheStatus(h, fwd_status=200, stored=False, detail="head-mark-stale")
        self.assertEqual(h.header("etag"), '"h2"', "the client gets the origin's HEAD response")
        self.assertEqual(self.proxy.metrics().get(STORE_DECISIONS, reason="head-mark-stale"), m0 + 1)
        g = self.get(self.p)
        self.assertEqual((g.status, g.body), (200, b"v2"), "the stale entry was served as a hit")
        req = self.origin.requests(self.p)[-1]
        self.assertEqual((req.method, req.header("if-none-match")), ("GET", '"h1"'))

    def test_a_head_response_other_than_200_leaves_the_stored_response_alone_rfc9111_4_3_5(self):
        """§4.3.5 speaks of a HEAD response to compare with the stored one; a 404 (or
        a 5xx) says nothing about it: the entry stays fresh, as it was."""
        self.head_script([])
        self.origin.route(self.p, Reply(404, [("Cache-Control", "max-age=600")]))
        h = self.head(self.p, [("Cache-Control", "no-cache")])
        self.assertEqual(h.status, 404, h)
        g = self.get(self.p)
        self.assertHit(g, b"v1", ttl=(50, 60))
        self.assertEqual(g.header("x-v"), "1")

    def test_a_matching_head_that_forbids_storing_unshares_the_stored_response_rfc9111_4_3_5(self):
        """Updated "as described in Section 4.3.4", the HEAD's no-store now governs:
        the stored response goes, as with a 304 carrying no-store."""
        self.head_script([("Cache-Control", "no-store"), ("ETag", '"h1"'), ("Content-Length", "2")])
        h = self.forwarded_head()
        self.assertCacheStatus(h, fwd_status=200, stored=False, detail="head-unshared")
        g = self.get(self.p)
        self.assertStoredMiss(g, b"v2")
        self.assertUnconditional(self.origin.requests(self.p)[-1])

    def test_a_head_with_a_content_length_mismatch_never_updates_the_entry_rfc9111_4_3_5(self):
        """Holds before and after the wiring: the entry keeps X-V: 1 (stale or not)."""
        self.head_script(CC60 + [("ETag", '"h1"'), ("X-V", "2"), ("Content-Length", "99")])
        self.forwarded_head()
        g = self.get(self.p)
        self.assertNotEqual(g.header("x-v"), "2", g)


class DisconnectTest(ProxyCase):
    """cache.stale_on_disconnect (default 10s): RFC 9111 §4.2.4 lets a disconnected
    cache serve stale. Entries of max-age=1 without validators; stale after 1 s."""
    CONFIG = {"upstream": {"timeouts": {"first_byte": "500ms"}}}

    def prime(self, path, cc="max-age=1", extra=()):
        self.origin.route(path, Reply(200, [("Cache-Control", cc), *extra], b"v1"))
        self.assertRegex(status_of(self.proxy.get(path)), STORED_MISS)

    def test_inside_the_grace_an_expired_entry_is_kept_and_forwarded_as_stale_rfc9111_4_2_4(self):
        """Reachable today: the grace keeps the entry (as a fallback), so the next
        request is a fwd=stale fetch, not a uri-miss; past the grace it is gone."""
        self.prime("/d/kept")
        self.proxy.advance_clock(5)
        self.origin.route("/d/kept", Reply(200, [("Cache-Control", "max-age=1")], b"v2"))
        r = self.proxy.get("/d/kept")
        self.assertEqual((r.status, r.body), (200, b"v2"))
        self.assertIn("fwd=stale", status_of(r))
        self.proxy.advance_clock(12)
        r = self.proxy.get("/d/kept")
        self.assertIn("fwd=uri-miss", status_of(r), "an entry past the grace was still kept")

    def test_a_reset_without_an_answer_serves_the_stale_entry_inside_the_grace_rfc9111_4_2_4(self):
        self.prime("/d/reset")
        self.proxy.advance_clock(3)
        self.origin.route("/d/reset", Reply(action="reset"))
        m0 = self.proxy.metrics().get(REQUESTS_TOTAL, result="stale-disconnect")
        r = self.proxy.get("/d/reset")
        self.assertEqual((r.status, r.body), (200, b"v1"), r)
        self.assertRegex(status_of(r), r"fwd=stale; .*detail=stale-on-disconnect")
        self.assertRegex(status_of(r), r"^cachalot; fwd=stale; fwd-status=0; ttl=-\d+; detail=stale-on-disconnect-reset$")
        wait_until(lambda: self.proxy.metrics().get(REQUESTS_TOTAL, result="stale-disconnect") == m0 + 1, 3,
                   what="requests_total{result=stale-disconnect} counted it")
        self.proxy.wait_for_log(r"upstream .* GET /d/reset: reset; served stale: stale-on-disconnect-reset")

    def test_a_refused_connection_serves_the_stale_entry_inside_the_grace_rfc9111_4_2_4(self):
        self.prime("/d/refused")
        self.proxy.advance_clock(3)
        self.origin.close()  # nothing listens any more: connect() is refused
        r = self.proxy.get("/d/refused")
        self.assertEqual((r.status, r.body), (200, b"v1"), r)
        self.assertRegex(status_of(r), r"detail=stale-on-disconnect")
        self.assertRegex(status_of(r), r"; detail=stale-on-disconnect-connect$")

    def test_stale_if_error_comes_first_and_names_itself_rfc5861_4_rfc9111_4_2_4(self):
        """Both allow the stale entry; stale-if-error is the origin's own permission."""
        self.prime("/d/sie", "max-age=1, stale-if-error=60")
        self.proxy.advance_clock(3)
        self.origin.route("/d/sie", Reply(action="reset"))
        r = self.proxy.get("/d/sie")
        self.assertEqual((r.status, r.body), (200, b"v1"), r)
        self.assertRegex(status_of(r), r"; detail=stale-if-error-reset$")

    def test_a_client_no_cache_is_never_answered_stale_when_disconnected_rfc9111_5_2_1_4(self):
        self.prime("/d/nc")
        self.origin.route("/d/nc", Reply(action="reset"))
        self.assertEqual(self.proxy.get("/d/nc", [("Cache-Control", "no-cache")]).status, 502)

    def test_past_the_grace_a_reset_is_a_502_rfc9111_4_2_4(self):
        self.prime("/d/late", extra=[("ETag", '"l1"')])  # a validator: kept an hour (cache.keep)
        self.proxy.advance_clock(12)
        self.origin.route("/d/late", Reply(action="reset"))
        self.assertEqual(self.proxy.get("/d/late").status, 502)

    def test_an_http_error_status_is_no_disconnection_rfc9111_4_2_4(self):
        """Only connection failures: a 503 is an answer, passed on (stale-if-error aside)."""
        self.prime("/d/503")
        self.proxy.advance_clock(3)
        self.origin.route("/d/503", Reply.text(503, "down"))
        r = self.proxy.get("/d/503")
        self.assertEqual((r.status, r.body), (503, b"down"))

    def test_a_first_byte_timeout_is_no_disconnection_rfc9111_4_2_4(self):
        """The origin is there, only slow: 504, not the stale entry."""
        self.prime("/d/hang")
        self.proxy.advance_clock(3)
        self.origin.route("/d/hang", Reply(action="hang"))
        self.assertEqual(self.proxy.get("/d/hang").status, 504)

    def test_must_revalidate_and_s_maxage_are_never_served_stale_when_disconnected_rfc9111_4_2_4(self):
        """§4.2.4: a cache "SHOULD NOT generate a stale response if it is prohibited by
        an explicit in-protocol directive"; §5.2.2.2, §5.2.2.10."""
        for path, cc in (("/d/mr", "max-age=1, must-revalidate"), ("/d/pr", "max-age=1, proxy-revalidate"),
                         ("/d/sm", "s-maxage=1")):
            self.prime(path, cc, [("ETag", '"m1"')])
        self.proxy.advance_clock(3)
        for path in ("/d/mr", "/d/pr", "/d/sm"):
            with self.subTest(path=path):
                self.origin.route(path, Reply(action="reset"))
                self.assertEqual(self.proxy.get(path).status, 502)


class DisconnectOffTest(ProxyCase):
    CONFIG = {"cache": {"stale_on_disconnect": "0s"}}

    def test_without_the_grace_an_expired_entry_without_validators_is_dropped_rfc9111_4_2_4(self):
        self.origin.route("/off", Reply(200, [("Cache-Control", "max-age=1")], b"v1"))
        self.assertRegex(status_of(self.proxy.get("/off")), STORED_MISS)
        self.proxy.advance_clock(1)
        self.origin.route("/off", Reply(action="reset"))
        r = self.proxy.get("/off")
        self.assertEqual(r.status, 502)
        self.assertIn("fwd=uri-miss", status_of(r))


class AcceptEncodingReductionTest(ProxyCase):
    """cache.accept_encoding: what is forwarded is what is keyed (README "Forwarding and safety")."""
    CONFIG = {"cache": {"accept_encoding": ["br", "gzip"]}}

    def test_browsers_accept_encoding_is_forwarded_and_keyed_reduced_rfc9110_12_5_3(self):
        def handler(req):
            return Reply(200, [("Cache-Control", "max-age=60"), ("Vary", "Accept-Encoding")],
                         b"ae=" + req.header("accept-encoding", "<none>").encode())
        self.origin.route("/ae", handler)
        r = self.proxy.get("/ae", [("Accept-Encoding", "gzip, deflate, br, zstd")])
        self.assertEqual(r.body, b"ae=br, gzip")
        self.assertEqual([v for n, v in self.origin.requests("/ae")[0].headers if n.lower() == "accept-encoding"],
                         ["br, gzip"], "one reduced Accept-Encoding line is forwarded")
        h = self.proxy.get("/ae", [("Accept-Encoding", "br;q=0.9, gzip")])
        self.assertRegex(status_of(h), r"^cachalot; hit")
        self.assertEqual(self.origin.request_count("/ae"), 1)


class StandardsConfigTest(unittest.TestCase):
    """--check-config for the new keys: every value validated, errors name file:line:col and key."""

    def check(self, body: str):
        with tempfile.TemporaryDirectory(prefix="cachalot-c50-") as d:
            path = os.path.join(d, "c.yaml")
            with open(path, "w") as f:
                f.write("upstream:\n  url: http://127.0.0.1:9\n" + textwrap.dedent(body))
            r = run_binary(["--check-config", path])
            return r.returncode, r.stdout + r.stderr

    def test_the_new_keys_are_accepted_rfc9213_rfc9111_4_2_4(self):
        rc, out = self.check("""
            cache:
              targeted_cache_control: [Cachalot-Cache-Control, CDN-Cache-Control]
              drop_targeted_cache_control: [Cachalot-Cache-Control]
              stale_on_disconnect: 30s
              accept_encoding: [br, gzip]
            routes:
              - name: a
                prefix: /a
                set_cookie: store_without
            """)
        self.assertEqual(rc, 0, out)

    def test_invalid_values_are_errors_with_their_key_rfc9213_2_2(self):
        cases = {
            "cache:\n  targeted_cache_control: [Cache-Control]\n": "cache.targeted_cache_control[0]",
            "cache:\n  targeted_cache_control: [A, a]\n": "cache.targeted_cache_control[1]",
            "cache:\n  drop_targeted_cache_control: [Other-Cache-Control]\n": "cache.drop_targeted_cache_control[0]",
            "cache:\n  accept_encoding: [identity]\n": "cache.accept_encoding[0]",
            "cache:\n  stale_on_disconnect: a while\n": "cache.stale_on_disconnect",
            "routes:\n  - name: a\n    prefix: /a\n    set_cookie: share\n": "routes[0].set_cookie",
        }
        for body, key in cases.items():
            with self.subTest(key=key):
                rc, out = self.check(body)
                self.assertEqual(rc, 1, out)
                self.assertRegex(out, r"c\.yaml:\d+:\d+: " + key.replace("[", r"\[").replace("]", r"\]") + ": ")


if __name__ == "__main__":
    unittest.main()
