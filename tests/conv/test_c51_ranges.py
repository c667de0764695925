"""Byte ranges served from the cache (RFC 9110 §14): 206 with one range or
multipart/byteranges, 416, If-Range (§13.1.5), HEAD, other range units, and
the Range miss: the whole response is fetched without Range, stored, and the
range answered from the entry; a response that cannot be stored that way
(too large for cache.range_fill_max_size, unknown length, not storable) is
dropped unread and the request re-sent to the origin with its Range.

    origin o1 { expect GET /r (no Range); reply 200 cache-control:"max-age=60" body[10000] }
    client c1 { get /r range:"bytes=0-499"; expect 206 content-range:"bytes 0-499/10000" }
    client c1 { get /r; expect 200 cache-status ~ hit }

Wiring: Exchange::run (which requests are range candidates), OriginFetch::relay
(plan.range: fill, or decline and Exchange::range_pass), Responder::entry and
Responder::partial (206/416 from a stored 200), cache::if_range_allows.

Time moves with advance_clock (test builds); nothing sleeps.
"""

import re
import unittest

from _cachetest import CacheTestCase, Reply, http_date

CC60 = [("Cache-Control", "max-age=60")]
STORE_DECISIONS = "cachalot_store_decisions_total"


def body_of(n: int) -> bytes:
    """n bytes in which every offset is recognisable (a wrong slice shows)."""
    return b"".join(b"%07d|" % i for i in range(n // 8 + 1))[:n]


BODY = body_of(10000)


def ranged(body: bytes, fields, *, chunked_200: bool = False, seen: list = None):
    """An origin that answers a single `bytes=a-b` / `bytes=a-` Range itself (206),
    everything else with the whole 200 (chunked when `chunked_200`)."""
    def handler(req):
        if seen is not None:
            seen.append(req.header("range"))
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", req.header("range") or "")
        if m:
            a = int(m.group(1))
            b = min(int(m.group(2)) if m.group(2) else len(body) - 1, len(body) - 1)
            return Reply(206, list(fields) + [("Content-Range", f"bytes {a}-{b}/{len(body)}"),
                                              ("X-Origin-Partial", "1")], body[a:b + 1])
        return Reply(200, fields, [body] if chunked_200 else body)
    return handler


def parse_byteranges(resp) -> list:
    """The parts of a multipart/byteranges body (RFC 9110 §14.6, RFC 2046 §5.1.1):
    [(fields dict with lower-case names, bytes)]; AssertionError on bad framing."""
    ctype = resp.header("content-type", "")
    m = re.fullmatch(r"multipart/byteranges;\s*boundary=(\S+)", ctype)
    if not m:
        raise AssertionError(f"not multipart/byteranges: {ctype!r}")
    boundary = m.group(1).strip('"').encode()
    body = resp.body
    first, close = b"--" + boundary + b"\r\n", b"\r\n--" + boundary + b"--\r\n"
    if not body.startswith(first) or not body.endswith(close):
        raise AssertionError(f"bad multipart framing: {body[:80]!r} ... {body[-80:]!r}")
    parts = []
    for raw in body[len(first):-len(close)].split(b"\r\n--" + boundary + b"\r\n"):
        head, sep, data = raw.partition(b"\r\n\r\n")
        if not sep:
            raise AssertionError(f"a part without a blank line: {raw[:80]!r}")
        fields = {}
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        parts.append((fields, data))
    return parts


class RangeTestBase(CacheTestCase):
    def store(self, path, body=BODY, fields=None):
        """Route `path` to a 200 (max-age=60, ETag "r1", text/plain unless `fields`) and store it."""
        fields = fields if fields is not None else CC60 + [("ETag", '"r1"'), ("Content-Type", "text/plain")]
        self.origin.route(path, Reply(200, fields, body))
        self.assertStoredMiss(self.get(path), body)
        return fields

    def range_get(self, path, value, more=None):
        return self.get(path, [("Range", value)] + list(more or []))

    def assertPartial(self, r, body, first, last, msg=""):
        """A single-part 206 (§15.3.7): the bytes, Content-Range, Content-Length, Accept-Ranges."""
        self.assertEqual(r.status, 206, f"{msg} {r!r}")
        self.assertEqual(r.body, body[first:last + 1], msg)
        self.assertEqual(r.header_all("content-range"), [f"bytes {first}-{last}/{len(body)}"], msg)
        self.assertEqual(r.header_all("content-length"), [str(last - first + 1)], msg)
        self.assertEqual(r.header_all("accept-ranges"), ["bytes"], msg)

    def assertFull(self, r, body, msg=""):
        """The whole 200: the Range was ignored (§14.2)."""
        self.assertEqual(r.status, 200, f"{msg} {r!r}")
        self.assertEqual(r.body, body, msg)
        self.assertIsNone(r.header("content-range"), msg)
        self.assertEqual(r.header_all("content-length"), [str(len(body))], msg)

    def assertNoRangeFields(self, req, msg=""):
        """A fill's request: RFC 9111 §3.2 (no Range), and no client precondition."""
        self.assertIsNone(req.header("range"), f"the fill carried Range: {req!r} {msg}")
        self.assertUnconditional(req, msg)

    def assertRangeResent(self, path, seen, r, msg=""):
        """Two origin requests: the fill without Range, then the client's with it; the
        client got the origin's 206."""
        reqs = self.assertOriginCount(path, 2, msg)
        self.assertNoRangeFields(reqs[0], msg)
        self.assertEqual(reqs[1].header("range"), "bytes=10-19", msg)
        self.assertEqual(seen, [None, "bytes=10-19"], msg)
        self.assertEqual(r.status, 206, f"{msg} {r!r}")
        self.assertEqual(r.body, BODY[10:20], msg)
        self.assertEqual(r.header("content-range"), "bytes 10-19/10000", msg)
        self.assertEqual(r.header("x-origin-partial"), "1", f"{msg}: not the origin's 206")
        self.assertIn("range-not-stored", r.header("cache-status"), msg)
        self.assertCacheStatus(r, stored=False, msg=msg)


class RangeTest(RangeTestBase):
    """Defaults: cache.range_fill_max_size 8MiB, max_object_size 8MiB."""

    # ---- §14.1.2, §15.3.7: 206 from a stored 200 ----------------------------------------
    def test_a_hit_with_one_range_is_answered_206_from_the_cache_rfc9110_14_1_2_15_3_7(self):
        """§14.1.2 "bytes=0-499" and "bytes=500-999"; §15.3.7: Content-Range, and the
        fields a 200 would carry (ETag, Cache-Control, Content-Type)."""
        self.store(self.p)
        for first, last in ((0, 499), (500, 999), (9999, 9999)):
            with self.subTest(range=(first, last)):
                r = self.range_get(self.p, f"bytes={first}-{last}")
                self.assertPartial(r, BODY, first, last)
                self.assertHit(r, status=206)
                self.assertEqual(r.header("etag"), '"r1"')
                self.assertEqual(r.header("cache-control"), "max-age=60")
                self.assertEqual(r.header("content-type"), "text/plain")
        self.assertOriginCount(self.p, 1)

    def test_a_200_hit_advertises_accept_ranges_bytes_rfc9110_14_3(self):
        """§14.3: Accept-Ranges tells the client byte ranges are supported; once,
        whatever the origin said (its own Accept-Ranges is not stored)."""
        self.store(self.p, fields=CC60 + [("Accept-Ranges", "none")])
        r = self.get(self.p)
        self.assertHit(r, BODY)
        self.assertEqual(r.header_all("accept-ranges"), ["bytes"])

    def test_suffix_and_open_ranges_select_the_end_rfc9110_14_1_2_14_1_3(self):
        """§14.1.2 "bytes=-500" and "bytes=9500-" are the final 500 bytes; §14.1.3 a
        suffix longer than the representation selects all of it."""
        self.store(self.p)
        for value in ("bytes=-500", "bytes=9500-"):
            with self.subTest(value=value):
                r = self.range_get(self.p, value)
                self.assertPartial(r, BODY, 9500, 9999)
                self.assertHit(r, status=206)
        r = self.range_get(self.p, "bytes=-20000")
        self.assertPartial(r, BODY, 0, 9999)
        r = self.range_get(self.p, "bytes=9000-20000")
        self.assertPartial(r, BODY, 9000, 9999, "last-pos past the end is clipped (§14.1.1)")
        self.assertOriginCount(self.p, 1)

    def test_several_ranges_are_answered_multipart_byteranges_rfc9110_14_6(self):
        """§14.6: each part has Content-Type and Content-Range; the whole response has
        no Content-Range (§15.3.7.2) and its Content-Length frames the multipart body."""
        self.store(self.p)
        r = self.range_get(self.p, "bytes=0-99, 9000-9049")
        self.assertEqual(r.status, 206, r)
        self.assertHit(r, status=206)
        self.assertIsNone(r.header("content-range"), r)
        self.assertEqual(r.header_all("content-length"), [str(len(r.body))])
        self.assertEqual(r.header_all("accept-ranges"), ["bytes"])
        self.assertEqual(r.header("etag"), '"r1"')
        parts = parse_byteranges(r)
        self.assertEqual([p[0] for p in parts],
                         [{"content-type": "text/plain", "content-range": "bytes 0-99/10000"},
                          {"content-type": "text/plain", "content-range": "bytes 9000-9049/10000"}])
        self.assertEqual([p[1] for p in parts], [BODY[0:100], BODY[9000:9050]])
        self.assertOriginCount(self.p, 1)

    def test_the_first_and_last_bytes_example_keeps_the_request_order_rfc9110_14_1_2(self):
        """§14.1.2 "bytes=0-0,-1"; a range past the end is left out of the parts (§14.1.1)."""
        self.store(self.p)
        parts = parse_byteranges(self.range_get(self.p, "bytes=-1,20000-,0-0"))
        self.assertEqual([(f["content-range"], d) for f, d in parts],
                         [("bytes 9999-9999/10000", BODY[-1:]), ("bytes 0-0/10000", BODY[:1])])

    def test_a_multipart_boundary_never_occurs_in_the_body_rfc9110_14_6_rfc2046_5_1_1(self):
        """RFC 2046 §5.1.1: the boundary must not appear in the encapsulated parts."""
        body = b"CACHALOT_BYTERANGES_0 CACHALOT_BYTERANGES_1 --" + BODY[:200]
        self.store(self.p, body)
        r = self.range_get(self.p, "bytes=0-49,100-149")
        boundary = re.search(r"boundary=(\S+)", r.header("content-type")).group(1).encode()
        self.assertNotIn(boundary, body)
        self.assertEqual([d for _, d in parse_byteranges(r)], [body[0:50], body[100:150]])

    def test_an_unsatisfiable_range_is_answered_416_with_the_length_rfc9110_15_5_17(self):
        """§15.5.17: "a 416 response ... SHOULD send a Content-Range ... bytes */length"."""
        self.store(self.p)
        for value in ("bytes=10000-", "bytes=20000-20010,-0"):
            with self.subTest(value=value):
                r = self.range_get(self.p, value)
                self.assertEqual(r.status, 416, r)
                self.assertEqual(r.header_all("content-range"), ["bytes */10000"])
                self.assertEqual(r.body, b"")
                self.assertCacheStatus(r, hit=True)
        self.assertOriginCount(self.p, 1)

    def test_an_invalid_or_overlapping_range_gets_the_whole_200_rfc9110_14_2(self):
        """§14.2: a server MAY ignore the Range; syntax errors, last < first and
        overlapping ranges get the full stored 200 (still a hit)."""
        self.store(self.p)
        for value in ("bytes=500-499", "bytes=garbage", "bytes=0-499,400-999", "bytes=0-0,0-0"):
            with self.subTest(value=value):
                r = self.range_get(self.p, value)
                self.assertFull(r, BODY)
                self.assertHit(r, BODY)
                self.assertEqual(r.header_all("accept-ranges"), ["bytes"])
        self.assertOriginCount(self.p, 1)

    def test_ranges_of_a_stored_non_200_are_ignored_rfc9110_14_2(self):
        """§14.2: Range applies to a 200's representation; a stored 404 is sent whole."""
        self.origin.route(self.p, Reply(404, CC60, b"not here, not in part either"))
        self.assertStoredMiss(self.get(self.p), status=404)
        r = self.range_get(self.p, "bytes=0-3")
        self.assertHit(r, b"not here, not in part either", status=404)
        self.assertIsNone(r.header("content-range"))
        self.assertOriginCount(self.p, 1)

    def test_206_responses_keep_a_persistent_connection_in_step_rfc9112_9_3(self):
        """Content-Length frames each 206 (single and multipart) and the 416: three
        ranged responses and a plain one on one connection, in order."""
        self.store(self.p)
        with self.proxy.client() as c:
            for value in ("bytes=0-9", "bytes=0-9,20-29", "bytes=99999-"):
                c.request("GET", self.p, [("Range", value)])
            c.request("GET", self.p)
            single, multi, unsat, full = (c.read_response() for _ in range(4))
        self.assertPartial(single, BODY, 0, 9)
        self.assertEqual([d for _, d in parse_byteranges(multi)], [BODY[0:10], BODY[20:30]])
        self.assertEqual(unsat.status, 416)
        self.assertHit(full, BODY)

    # ---- §13.1.5 If-Range -----------------------------------------------------------------
    def test_if_range_with_the_stored_strong_etag_gets_206_rfc9110_13_1_5(self):
        self.store(self.p)
        r = self.range_get(self.p, "bytes=0-9", [("If-Range", '"r1"')])
        self.assertPartial(r, BODY, 0, 9)
        self.assertHit(r, status=206)
        self.assertOriginCount(self.p, 1)

    def test_if_range_with_another_etag_gets_the_whole_200_rfc9110_13_1_5(self):
        """§13.1.5: "if the validator does not match ... respond with a 200 (OK)
        response containing the entire selected representation"."""
        self.store(self.p)
        r = self.range_get(self.p, "bytes=0-9", [("If-Range", '"r0"')])
        self.assertFull(r, BODY)
        self.assertHit(r, BODY)
        self.assertOriginCount(self.p, 1)

    def test_if_range_with_a_weak_etag_gets_the_whole_200_rfc9110_13_1_5(self):
        """§13.1.5: If-Range uses the strong comparison; a weak tag never matches,
        neither against a strong stored tag nor against the same weak one."""
        for stored_tag, sent in (('"w1"', 'W/"w1"'), ('W/"w1"', 'W/"w1"'), ('W/"w1"', '"w1"')):
            with self.subTest(stored=stored_tag, sent=sent):
                path = f"{self.p}/{len(self.origin.requests())}"
                self.store(path, fields=CC60 + [("ETag", stored_tag)])
                r = self.range_get(path, "bytes=0-9", [("If-Range", sent)])
                self.assertFull(r, BODY)
                self.assertHit(r, BODY)

    def test_if_range_with_a_strong_last_modified_date_gets_206_rfc9110_13_1_5(self):
        """§13.1.5: a date matches when it equals Last-Modified exactly and that
        Last-Modified is strong (§8.8.2.2: Date at least one second later)."""
        now = int(self.proxy.now())
        lm = http_date(now - 100)
        self.store(self.p, fields=CC60 + [("Date", http_date(now)), ("Last-Modified", lm)])
        r = self.range_get(self.p, "bytes=10-19", [("If-Range", lm)])
        self.assertPartial(r, BODY, 10, 19)
        self.assertHit(r, status=206)
        for other in (http_date(now - 101), http_date(now - 99), "yesterday"):
            with self.subTest(if_range=other):
                self.assertFull(self.range_get(self.p, "bytes=10-19", [("If-Range", other)]), BODY)
        self.assertOriginCount(self.p, 1)

    def test_if_range_with_a_weak_last_modified_gets_the_whole_200_rfc9110_8_8_2_2(self):
        """§8.8.2.2: a Last-Modified equal to the Date is weak; §13.1.5: a weak
        validator never lets the Range through."""
        now = int(self.proxy.now())
        stamp = http_date(now)
        self.store(self.p, fields=CC60 + [("Date", stamp), ("Last-Modified", stamp)])
        self.assertFull(self.range_get(self.p, "bytes=10-19", [("If-Range", stamp)]), BODY)

    def test_two_if_range_fields_get_the_whole_200_rfc9110_13_1_5(self):
        """If-Range is a single value: two field lines are not a valid one."""
        self.store(self.p)
        r = self.range_get(self.p, "bytes=0-9", [("If-Range", '"r1"'), ("If-Range", '"r1"')])
        self.assertFull(r, BODY)

    def test_a_matching_if_none_match_wins_over_range_rfc9110_13_2_2(self):
        """§13.2.2: If-None-Match is evaluated before Range (step 5 after 3): 304."""
        self.store(self.p)
        r = self.range_get(self.p, "bytes=0-9", [("If-None-Match", '"r1"')])
        self.assertEqual(r.status, 304, r)
        self.assertEqual(r.body, b"")
        self.assertIsNone(r.header("content-range"))
        self.assertCacheStatus(r, hit=True)
        n = self.range_get(self.p, "bytes=0-9", [("If-None-Match", '"r0"')])
        self.assertPartial(n, BODY, 0, 9, "a non-matching If-None-Match leaves the Range")
        self.assertOriginCount(self.p, 1)

    # ---- §9.3.2 HEAD, §14.1 other units ----------------------------------------------------
    def test_head_with_range_is_answered_200_from_the_cache_without_a_body_rfc9110_14_2(self):
        """§14.2: "A server MUST ignore a Range header field received with a request
        method that is unrecognized or for which range handling is not defined";
        §9.3.2: HEAD gets the GET's header section."""
        self.store(self.p)
        h = self.proxy.request("HEAD", self.p, [("Range", "bytes=0-9")])
        self.assertEqual(h.status, 200, h)
        self.assertEqual(h.body, b"")
        self.assertIsNone(h.header("content-range"))
        self.assertEqual(h.header("content-length"), "10000")
        self.assertEqual(h.header_all("accept-ranges"), ["bytes"])
        self.assertCacheStatus(h, hit=True)
        self.assertOriginCount(self.p, 1)

    def test_another_range_unit_goes_to_the_origin_as_sent_rfc9110_14_1(self):
        """§14.1: a unit the cache does not know is not answered from the cache, even
        with the representation stored: the origin gets the Range verbatim."""
        self.store(self.p)
        self.origin.route(self.p, Reply(200, CC60, b"items, by the origin"))
        r = self.range_get(self.p, "items=0-5")
        self.assertEqual((r.status, r.body), (200, b"items, by the origin"), r)
        self.assertCacheStatus(r, fwd="bypass", stored=False, detail="range-unit")
        reqs = self.assertOriginCount(self.p, 2)
        self.assertEqual(reqs[-1].header("range"), "items=0-5")
        self.assertHit(self.get(self.p), BODY, msg="the pass replaced the stored entry")

    def test_two_range_field_lines_go_to_the_origin_as_sent_rfc9110_14_2(self):
        """Range is a single value, not a list (§14.2): two field lines are not
        ours to merge or choose from, so the request goes to the origin as sent."""
        self.store(self.p)
        self.origin.route(self.p, Reply(200, CC60, b"the origin decides"))
        r = self.get(self.p, [("Range", "bytes=0-1"), ("Range", "bytes=5-6")])
        self.assertEqual((r.status, r.body), (200, b"the origin decides"), r)
        self.assertCacheStatus(r, fwd="bypass", stored=False, detail="range-unit")
        reqs = self.assertOriginCount(self.p, 2)
        self.assertEqual(reqs[-1].headers.get_all("range"), ["bytes=0-1", "bytes=5-6"])

    # ---- Range misses: fill without Range, answer from the entry ----------------------------
    def test_a_range_miss_fetches_the_whole_response_without_range_and_stores_it_rfc9111_3_2(self):
        """RFC 9111 §3.2 / §3.3: a cache may fetch the whole representation; the
        client's Range and If-Range are answered by the cache, not forwarded."""
        self.origin.route(self.p, Reply(200, CC60 + [("ETag", '"r1"')], BODY))
        r = self.range_get(self.p, "bytes=100-199", [("If-Range", '"r1"')])
        self.assertPartial(r, BODY, 100, 199)
        self.assertCacheStatus(r, fwd="uri-miss", fwd_status=200, stored=True)
        req = self.assertOriginCount(self.p, 1)[0]
        self.assertNoRangeFields(req)
        self.assertHit(self.get(self.p), BODY)
        self.assertPartial(self.range_get(self.p, "bytes=-10"), BODY, 9990, 9999)
        self.assertOriginCount(self.p, 1)

    def test_a_range_miss_with_a_stale_if_range_gets_the_new_whole_200_rfc9110_13_1_5(self):
        """The client's If-Range is checked against what the fill brought back."""
        self.origin.route(self.p, Reply(200, CC60 + [("ETag", '"new"')], BODY))
        r = self.range_get(self.p, "bytes=0-9", [("If-Range", '"old"')])
        self.assertFull(r, BODY)
        self.assertCacheStatus(r, fwd="uri-miss", fwd_status=200, stored=True)
        self.assertNoRangeFields(self.assertOriginCount(self.p, 1)[0])

    def test_a_range_miss_with_several_ranges_is_answered_multipart_rfc9110_14_6(self):
        self.origin.route(self.p, Reply(200, CC60 + [("Content-Type", "application/octet-stream")], BODY))
        r = self.range_get(self.p, "bytes=0-0,-1")
        self.assertEqual(r.status, 206, r)
        parts = parse_byteranges(r)
        self.assertEqual([(f["content-range"], f["content-type"], d) for f, d in parts],
                         [("bytes 0-0/10000", "application/octet-stream", BODY[:1]),
                          ("bytes 9999-9999/10000", "application/octet-stream", BODY[-1:])])
        self.assertNoRangeFields(self.assertOriginCount(self.p, 1)[0])

    def test_an_unsatisfiable_range_miss_is_answered_416_from_the_stored_entry_rfc9110_15_5_17(self):
        self.origin.route(self.p, Reply(200, CC60, b"0123456789"))
        r = self.range_get(self.p, "bytes=50-")
        self.assertEqual(r.status, 416, r)
        self.assertEqual(r.header_all("content-range"), ["bytes */10"])
        self.assertNoRangeFields(self.assertOriginCount(self.p, 1)[0])
        self.assertHit(self.get(self.p), b"0123456789")

    def test_a_storable_non_200_on_a_range_miss_is_stored_and_sent_whole_rfc9110_14_2(self):
        self.origin.route(self.p, Reply(404, CC60, b"no such thing"))
        r = self.range_get(self.p, "bytes=0-3")
        self.assertStoredMiss(r, b"no such thing", status=404)
        self.assertIsNone(r.header("content-range"))
        self.assertNoRangeFields(self.assertOriginCount(self.p, 1)[0])
        self.assertHit(self.range_get(self.p, "bytes=0-3"), b"no such thing", status=404)
        self.assertOriginCount(self.p, 1)

    def test_a_range_on_a_stale_entry_revalidates_without_range_and_answers_206_rfc9111_4_3_1(self):
        """The revalidation carries the stored validator (RFC 9111 §4.3.1) but not the
        client's Range; the 304-refreshed entry answers the range."""
        self.store(self.p)
        self.advance_until_stale(self.p)
        self.origin.route(self.p, Reply(304, CC60 + [("ETag", '"r1"')]))
        r = self.range_get(self.p, "bytes=20-29")
        self.assertPartial(r, BODY, 20, 29)
        self.assertCacheStatus(r, fwd="stale", fwd_status=304)
        req = self.assertOriginCount(self.p, 2)[-1]
        self.assertEqual(req.header("if-none-match"), '"r1"')
        self.assertIsNone(req.header("range"), req)

    # ---- Range misses that cannot be stored: the Range goes to the origin -----------------
    def test_a_private_response_to_a_range_miss_is_re_requested_with_the_range_rfc9111_3_5(self):
        """RFC 9111 §5.2.2.7: private is not stored by a shared cache, so the cache
        cannot answer the range itself: the origin gets the Range (RFC 9110 §14.2)."""
        for cc in ("private, max-age=60", "no-store"):
            with self.subTest(cache_control=cc):
                path = f"{self.p}/{cc.split(',')[0]}"
                seen = []
                self.origin.route(path, ranged(BODY, [("Cache-Control", cc)], seen=seen))
                r = self.range_get(path, "bytes=10-19")
                self.assertRangeResent(path, seen, r)
                self.assertEqual(self.inspect(path), [], "an unstorable response was stored")

    def test_the_resent_range_carries_the_clients_if_range_rfc9110_13_1_5(self):
        """Once the cache cannot answer, If-Range is the origin's to evaluate: the
        re-sent request carries it (and the fill before it did not)."""
        seen = []
        self.origin.route(self.p, ranged(BODY, [("Cache-Control", "private"), ("ETag", '"p1"')], seen=seen))
        r = self.range_get(self.p, "bytes=10-19", [("If-Range", '"p1"')])
        self.assertRangeResent(self.p, seen, r)
        self.assertEqual(self.origin.requests(self.p)[1].header("if-range"), '"p1"')

    def test_a_request_no_store_range_keeps_its_range_rfc9111_5_2_1_5(self):
        """RFC 9111 §5.2.1.5: the client's no-store forbids storing, so nothing can
        be filled; the Range must still be honoured (here by the origin)."""
        seen = []
        self.origin.route(self.p, ranged(BODY, CC60, seen=seen))
        r = self.range_get(self.p, "bytes=10-19", [("Cache-Control", "no-store")])
        self.assertEqual(r.status, 206, r)
        self.assertEqual(r.body, BODY[10:20])
        self.assertEqual(r.header("content-range"), "bytes 10-19/10000")
        req = self.assertOriginCount(self.p, 1, "no fill is attempted for a no-store request")[0]
        self.assertEqual(req.header("range"), "bytes=10-19")
        self.assertEqual(seen, ["bytes=10-19"])
        self.assertCacheStatus(r, stored=False)
        self.assertEqual(self.inspect(self.p), [])


class RangeFillLimitTest(RangeTestBase):
    """cache.range_fill_max_size 1KiB: a Range miss on a larger (or unknown-length)
    200 is not filled; the request goes to the origin with its Range."""

    CONFIG = {"cache": {"range_fill_max_size": "1KiB"}}

    def test_a_range_miss_on_a_response_larger_than_range_fill_max_size_resends_the_range_rfc9110_14_2(self):
        m0 = self.proxy.metrics().get(STORE_DECISIONS, reason="too-large")
        seen = []
        self.origin.route(self.p, ranged(BODY, CC60, seen=seen))
        r = self.range_get(self.p, "bytes=10-19")
        self.assertRangeResent(self.p, seen, r)
        self.assertEqual(self.inspect(self.p), [], "the too-large response was stored")
        self.assertEqual(self.proxy.metrics().get(STORE_DECISIONS, reason="too-large"), m0 + 1)
        # A plain GET is not a Range fill: max_object_size (8MiB) applies, it is stored.
        self.assertStoredMiss(self.get(self.p), BODY)
        self.assertPartial(self.range_get(self.p, "bytes=10-19"), BODY, 10, 19)
        self.assertOriginCount(self.p, 3)

    def test_a_chunked_response_to_a_range_miss_resends_the_range_rfc9112_7_1(self):
        """Chunked, the length is unknown until the end: the fill is not attempted."""
        seen = []
        small = BODY[:100]
        self.origin.route(self.p, ranged(BODY, CC60, chunked_200=True, seen=seen))
        r = self.range_get(self.p, "bytes=10-19")
        self.assertRangeResent(self.p, seen, r)
        self.assertEqual(self.inspect(self.p), [])
        # Even a small chunked body: its length was not known when the head came.
        path = self.p + "/small"
        self.origin.route(path, Reply(200, CC60, [small]))
        s = self.range_get(path, "bytes=0-9")
        self.assertIn("range-not-stored", s.header("cache-status"))
        self.assertEqual(self.origin.requests(path)[-1].header("range"), "bytes=0-9")
        self.assertEqual(s.body, small, "the origin's whole 200 (it ignores Range) reaches the client")

    def test_a_stale_entry_revalidated_to_a_too_large_200_resends_the_range_rfc9111_4_3_3(self):
        """The revalidation (RFC 9111 §4.3.1) brings a new, too large 200 (§4.3.3): it
        is dropped unread and the Range re-sent; the stale entry is not served."""
        small = body_of(500)
        self.store(self.p, small, CC60 + [("ETag", '"v1"')])
        self.advance_until_stale(self.p)
        seen = []
        self.origin.route(self.p, ranged(BODY, CC60 + [("ETag", '"v2"')], seen=seen))
        r = self.range_get(self.p, "bytes=10-19")
        reqs = self.assertOriginCount(self.p, 3)
        self.assertEqual(reqs[1].header("if-none-match"), '"v1"')
        self.assertIsNone(reqs[1].header("range"), reqs[1])
        self.assertEqual(seen, [None, "bytes=10-19"])
        self.assertEqual((r.status, r.body, r.header("content-range")), (206, BODY[10:20], "bytes 10-19/10000"))
        self.assertIn("range-not-stored", r.header("cache-status"))
        self.assertCacheStatus(r, fwd="stale", stored=False)

    def test_a_range_miss_at_exactly_range_fill_max_size_is_filled_rfc9111_3_3(self):
        """The limit is inclusive: 1024 bytes are filled and the range answered from
        the entry; 1025 are not (the origin gets the Range)."""
        body = body_of(1024)
        self.origin.route(self.p, Reply(200, CC60, body))
        r = self.range_get(self.p, "bytes=1000-")
        self.assertPartial(r, body, 1000, 1023)
        self.assertCacheStatus(r, fwd="uri-miss", fwd_status=200, stored=True)
        self.assertNoRangeFields(self.assertOriginCount(self.p, 1)[0])
        over = self.p + "/over"
        seen = []
        self.origin.route(over, ranged(body_of(1025), CC60, seen=seen))
        o = self.range_get(over, "bytes=1000-")
        self.assertEqual((o.status, o.body), (206, body_of(1025)[1000:]), o)
        self.assertEqual(seen, [None, "bytes=1000-"])



class RangeSmallObjectTest(RangeTestBase):
    """cache.max_object_size 1KiB bounds the fill too (range_fill_max_size stays 8MiB)."""

    CONFIG = {"cache": {"max_object_size": "1KiB"}}

    def test_a_range_miss_on_a_response_larger_than_max_object_size_resends_the_range_rfc9110_14_2(self):
        seen = []
        self.origin.route(self.p, ranged(BODY, CC60, seen=seen))
        r = self.range_get(self.p, "bytes=10-19")
        self.assertRangeResent(self.p, seen, r)

    def test_a_chunked_non_200_larger_than_max_object_size_on_a_range_miss_reaches_the_client_rfc9110_14_2(self):
        """A storable 404 is sent whole (§14.2); chunked, it turns out too large
        only while it is read: the client still gets a 404, never a 502."""
        big = body_of(4000)
        self.origin.route(self.p, Reply(404, CC60, [big[:2000], big[2000:]]))
        r = self.range_get(self.p, "bytes=0-9")
        self.assertEqual(r.status, 404, r)
        self.assertEqual(r.body, big)
        self.assertCacheStatus(r, fwd="uri-miss", fwd_status=404)
        self.assertIsNone(r.header("content-range"))
        self.assertEqual(self.inspect(self.p), [])
        self.assertNoRangeFields(self.assertOriginCount(self.p, 1)[0])



if __name__ == "__main__":
    unittest.main()
