"""Request coalescing (issue #4): concurrent misses for one key share one origin
request, streamed to every waiter; answers that may not be shared release the
waiters at once and are remembered (hit-for-miss); a leader that leaves or
fails never corrupts what the waiters get; expired entries with validators are
kept (cache.keep) and revalidated instead of fetched again.

    origin o1 { expect GET /a (once); reply 200 cache-control:max-age=60 after 300 ms }
    client c1..c100 { get /a; expect 200; cache-status ~ stored | collapsed }
"""

import concurrent.futures as cf
import hashlib
import socket
import struct
import time
import unittest

from _revaltest import (COALESCED_WAITS, COLLAPSED, FRESH_HIT, REQUESTS_TOTAL, REVALIDATED_304, STORED_MISS, Gate,
                        IncompleteResponse, ProxyCase, Reply, cache_status, conditional, run_concurrently,
                        wait_until)

ROUNDS = 30  # rounds of the leader-retry race (it loses in about 1 round in 4)
BODY = hashlib.sha256(b"cachalot").hexdigest().encode() * 320  # 20 KiB, recognisable


def rst(cl) -> None:
    cl.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    cl.close()


def outcome(proxy, target, headers=None, timeout=10.0):
    """('ok', Response) for a complete response, ('incomplete', bytes) when the
    connection ended before the response did (a clean way to signal an error
    mid-body, RFC 9112 §6.3 / §8)."""
    with proxy.client(timeout) as cl:
        cl.request("GET", target, headers)
        try:
            return "ok", cl.read_response()
        except (IncompleteResponse, ConnectionResetError) as e:
            return "incomplete", str(e)


class CoalescingTest(ProxyCase):
    CONFIG = {}

    def waits(self) -> float:
        return self.proxy.metrics().get(COALESCED_WAITS)

    def wait_waiters(self, n: float, base: float = 0.0) -> None:
        wait_until(lambda: self.waits() - base >= n, 5, what=f"{n} coalesced waiter(s)")

    # ---- one origin request for many clients -------------------------------------
    def test_100_concurrent_cold_requests_make_exactly_one_origin_request(self):
        path = "/co/cold"
        self.origin.route(path, Reply(200, [("Cache-Control", "max-age=60"), ("Content-Type", "text/plain")], BODY,
                                      delay_head=0.3))
        results = run_concurrently(100, lambda i: self.proxy.get(path, timeout=10), timeout=30)
        statuses = []
        for r in results:
            self.assertNotIsInstance(r, BaseException, r)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, BODY)
            statuses.append(cache_status(r))
        self.assertEqual(self.origin.request_count(path), 1, "exactly one origin request for 100 cold requests")
        stored = [s for s in statuses if STORED_MISS.match(s)]
        self.assertEqual(len(stored), 1, statuses)
        odd = [s for s in statuses if not (STORED_MISS.match(s) or COLLAPSED.match(s) or FRESH_HIT.match(s))]
        self.assertEqual(odd, [], "every other response is collapsed (or a hit, if it came late)")
        collapsed = sum(1 for s in statuses if COLLAPSED.match(s))
        self.assertGreater(collapsed, 0)
        self.assertGreaterEqual(self.waits(), collapsed)
        wait_until(lambda: self.proxy.metrics().get(REQUESTS_TOTAL, result="coalesced") == collapsed, 5,
                   what="requests_total{result=coalesced} == collapsed responses")

    def test_concurrent_requests_for_a_stale_entry_share_one_conditional_request(self):
        path = "/co/stale"
        self.origin.route(path, Reply(200, [("Cache-Control", "max-age=1"), ("ETag", '"s1"')], b"v1"))
        self.assertRegex(cache_status(self.proxy.get(path)), STORED_MISS)
        self.proxy.advance_clock(1)  # max-age=1: stale now
        self.origin.route(path, Reply(304, [("Cache-Control", "max-age=60"), ("ETag", '"s1"')], delay_head=0.3))
        results = run_concurrently(30, lambda i: self.proxy.get(path, timeout=10))
        for r in results:
            self.assertNotIsInstance(r, BaseException, r)
            self.assertEqual((r.status, r.body), (200, b"v1"))
        reqs = self.origin.requests(path)
        self.assertEqual(len(reqs), 2, "one conditional request for 30 clients")
        self.assertEqual(reqs[1].header("if-none-match"), '"s1"')
        self.assertEqual(sum(1 for r in results if REVALIDATED_304.match(cache_status(r))), 1,
                         [cache_status(r) for r in results])

    # ---- streaming to waiters -------------------------------------------------------
    def read_exactly(self, it, want: bytes) -> bytes:
        got = b""
        for _ in range(1000):
            if len(got) >= len(want):
                break
            got += next(it)
        return got

    def test_waiters_are_streamed_the_body_as_it_arrives(self):
        """Followers that joined before the head (B) and during the body (C) both
        receive the first chunk while the origin is still holding the rest."""
        path = "/co/stream"
        head_gate, body_gate = Gate(10), Gate(10)
        first, second = b"first-chunk|", b"second-chunk"

        def body():
            yield first
            body_gate.wait()
            yield second
        self.origin.route(path, Reply(200, [("Cache-Control", "max-age=60")], body, gate=head_gate))
        a, b, c = self.proxy.client(10), self.proxy.client(10), self.proxy.client(10)
        try:
            a.request("GET", path)
            req = self.origin.wait_for_requests(1, path=path)[0]
            w0 = self.waits()
            b.request("GET", path)
            self.wait_waiters(1, w0)
            head_gate.open()
            self.origin.wait_for(lambda: req.response_bytes_sent > 0, 5, "head and first chunk sent")
            ra, rb = a.read_head(), b.read_head()
            ia, ib = a.iter_body(ra), b.iter_body(rb)
            self.assertEqual(self.read_exactly(ia, first), first)
            self.assertEqual(self.read_exactly(ib, first), first, "a waiter did not get the first chunk before the end")
            c.request("GET", path)
            self.wait_waiters(2, w0)
            rc = c.read_head()
            ic = c.iter_body(rc)
            self.assertEqual(self.read_exactly(ic, first), first, "a late waiter did not get the first chunk")
            self.assertFalse(body_gate.is_open())
            body_gate.open()
            for r, it, pre in ((ra, ia, first), (rb, ib, first), (rc, ic, first)):
                rest = b"".join(it)
                self.assertTrue(r.complete)
                self.assertEqual(r.status, 200)
                self.assertEqual(pre + rest, first + second)
            self.assertRegex(cache_status(rb), COLLAPSED)
            self.assertRegex(cache_status(rc), COLLAPSED)
        finally:
            head_gate.open()
            body_gate.open()
            for cl in (a, b, c):
                cl.close()
        self.assertEqual(self.origin.request_count(path), 1)
        r = self.proxy.get(path)
        self.assertEqual(r.body, first + second)
        self.assertRegex(cache_status(r), FRESH_HIT)

    def test_a_waiter_with_a_matching_if_none_match_gets_a_304(self):
        """RFC 9110 §13.1.2 / RFC 9111 §4.3.2: a cache answers a client's conditional
        from the response it selected, here the one it is sharing."""
        path = "/co/inm"
        gate = Gate(10)
        self.origin.route(path, Reply(200, [("Cache-Control", "max-age=60"), ("ETag", '"c1"')], b"payload",
                                      gate=gate))
        with self.proxy.client(10) as lead, self.proxy.client(10) as cond:
            lead.request("GET", path)
            self.origin.wait_for_requests(1, path=path)
            w0 = self.waits()
            cond.request("GET", path, [("If-None-Match", '"c1"')])
            self.wait_waiters(1, w0)
            gate.open()
            self.assertEqual(lead.read_response().body, b"payload")
            r = cond.read_response()
            self.assertEqual((r.status, r.body), (304, b""))
            self.assertEqual(r.header("etag"), '"c1"')
        self.assertEqual(self.origin.request_count(path), 1)
        self.assertIsNone(self.origin.requests(path)[0].header("if-none-match"))

    def test_an_http_1_0_waiter_of_a_chunked_fill_gets_a_close_delimited_body(self):
        """RFC 9112 §7.1: chunked must not be sent to an HTTP/1.0 recipient; the
        body then ends when the connection closes (§6.3)."""
        path = "/co/http10"
        head_gate, body_gate = Gate(10), Gate(10)

        def body():
            yield b"part one|"
            body_gate.wait()
            yield b"part two"
        self.origin.route(path, Reply(200, [("Cache-Control", "max-age=60")], body, gate=head_gate))
        with self.proxy.client(10) as lead, self.proxy.client(10) as old:
            lead.request("GET", path)
            self.origin.wait_for_requests(1, path=path)
            w0 = self.waits()
            old.request("GET", path, version="HTTP/1.0")
            self.wait_waiters(1, w0)
            head_gate.open()
            body_gate.open()
            self.assertEqual(lead.read_response().body, b"part one|part two")
            r = old.read_response()
            self.assertNotIn("chunked", r.tokens("transfer-encoding"))
            self.assertEqual(r.body, b"part one|part two")
            self.assertTrue(r.until_close or r.has("content-length"))
        self.assertEqual(self.origin.request_count(path), 1)

    # ---- answers that may not be shared -------------------------------------------
    def _timed_batch(self, path: str, n: int):
        t0 = time.monotonic()
        results = run_concurrently(n, lambda i: self.proxy.get(path, timeout=10))
        took = time.monotonic() - t0
        for r in results:
            self.assertNotIsInstance(r, BaseException, r)
            self.assertEqual((r.status, r.body), (200, b"fresh each time"))
        return results, took

    def test_no_store_releases_waiters_at_once_and_later_requests_skip_the_queue(self):
        path = "/co/no-store"
        self.origin.route(path, Reply(200, [("Cache-Control", "no-store")], b"fresh each time", delay_head=0.3))
        results, took = self._timed_batch(path, 20)
        self.assertEqual(self.origin.request_count(path), 20, "a no-store answer is never shared")
        self.assertGreaterEqual(took, 0.3)
        self.assertLess(took, 0.9, f"20 no-store requests took {took:.2f}s: waiters were not released at once")
        # hit-for-miss: the key is remembered, new requests go straight to the origin.
        w0 = self.waits()
        results, took = self._timed_batch(path, 20)
        self.assertEqual(self.origin.request_count(path), 40)
        self.assertLess(took, 0.6, f"20 requests after hit-for-miss took {took:.2f}s: they queued")
        self.assertEqual([s for s in map(cache_status, results) if COLLAPSED.match(s)], [])
        self.assertEqual(self.waits(), w0, "no request waited on another after hit-for-miss")

    def _each_user_gets_its_own(self, path: str, headers_for):
        def handler(req):
            user = req.header("x-user", "?")
            return Reply(200, headers_for(user), f"for {user}".encode(), delay_head=0.3)
        self.origin.route(path, handler)
        n = 10
        results = run_concurrently(n, lambda i: self.proxy.get(path, [("X-User", f"u{i}")], timeout=10))
        for i, r in enumerate(results):
            self.assertNotIsInstance(r, BaseException, r)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, f"for u{i}".encode(), "another user's response was fanned out")
            self.assertNotRegex(cache_status(r), COLLAPSED)
        self.assertEqual(self.origin.request_count(path), n)
        return results

    def test_private_responses_are_never_fanned_out_to_other_users(self):
        """RFC 9111 §5.2.2.7: a shared cache MUST NOT store a private response (nor share it)."""
        self._each_user_gets_its_own("/co/private", lambda u: [("Cache-Control", "private, max-age=60")])
        r = self.proxy.get("/co/private", [("X-User", "late")])
        self.assertEqual(r.body, b"for late")

    def test_set_cookie_responses_are_never_fanned_out_to_other_users(self):
        results = self._each_user_gets_its_own(
            "/co/cookie", lambda u: [("Cache-Control", "max-age=60"), ("Set-Cookie", f"sid={u}; Path=/")])
        for i, r in enumerate(results):
            self.assertEqual(r.header_all("set-cookie"), [f"sid=u{i}; Path=/"])
        r = self.proxy.get("/co/cookie", [("X-User", "late")])
        self.assertEqual((r.body, r.header("set-cookie")), (b"for late", "sid=late; Path=/"))

    def test_authorized_requests_are_never_fanned_out_to_other_users(self):
        """RFC 9111 §3.5: a response to a request with Authorization is not shared
        unless it says so (public, s-maxage, must-revalidate)."""
        def handler(req):
            return Reply(200, [("Cache-Control", "max-age=60")], req.header("authorization", "").encode(),
                         delay_head=0.3)
        self.origin.route("/co/auth", handler)
        results = run_concurrently(8, lambda i: self.proxy.get("/co/auth", [("Authorization", f"Bearer t{i}")],
                                                               timeout=10))
        for i, r in enumerate(results):
            self.assertNotIsInstance(r, BaseException, r)
            self.assertEqual((r.status, r.body), (200, f"Bearer t{i}".encode()))
        self.assertEqual(self.origin.request_count("/co/auth"), 8)

    def test_waiters_only_get_the_leaders_response_for_their_own_vary_variant(self):
        """RFC 9111 §4.1: a stored response is used only for requests whose
        Vary-nominated fields match; the same holds for sharing a fetch."""
        def handler(req):
            lang = req.header("accept-language", "none")
            return Reply(200, [("Cache-Control", "max-age=60"), ("Vary", "Accept-Language")],
                         f"lang={lang}".encode(), delay_head=0.3)
        self.origin.route("/co/vary", handler)
        langs = ["en", "fr"] * 10
        results = run_concurrently(len(langs), lambda i: self.proxy.get(
            "/co/vary", [("Accept-Language", langs[i])], timeout=10))
        for lang, r in zip(langs, results):
            self.assertNotIsInstance(r, BaseException, r)
            self.assertEqual((r.status, r.body), (200, f"lang={lang}".encode()))
        self.assertLessEqual(self.origin.request_count("/co/vary"), 20)
        self.assertGreaterEqual(self.origin.request_count("/co/vary"), 2)

    # ---- leaders that leave or fail ------------------------------------------------
    def test_a_leader_whose_client_disconnects_mid_body_still_completes_the_entry_for_waiters(self):
        path = "/co/leader-leaves"
        head_gate, body_gate = Gate(10), Gate(10)
        half = len(BODY) // 2

        def body():
            yield BODY[:half]
            body_gate.wait()
            yield BODY[half:]
        self.origin.route(path, Reply(200, [("Cache-Control", "max-age=60"), ("Content-Length", str(len(BODY)))],
                                      body, gate=head_gate))
        a, b = self.proxy.client(10), self.proxy.client(10)
        try:
            a.request("GET", path)
            req = self.origin.wait_for_requests(1, path=path)[0]
            w0 = self.waits()
            b.request("GET", path)
            self.wait_waiters(1, w0)
            head_gate.open()
            ra = a.read_head()
            self.assertEqual(ra.status, 200)
            got = b""
            it = a.iter_body(ra)
            for _ in range(1000):
                if len(got) >= half:
                    break
                got += next(it)
            self.assertEqual(got, BODY[:half])
            rst(a)  # the leader's client leaves mid-body
            self.assertLess(req.response_bytes_sent, len(BODY))
            body_gate.open()
            rb = b.read_response()
            self.assertEqual(rb.status, 200)
            self.assertTrue(rb.complete)
            self.assertEqual(rb.body, BODY, "the waiter's body is corrupted or short")
        finally:
            head_gate.open()
            body_gate.open()
            a.close()
            b.close()
        r = self.proxy.get(path)
        self.assertEqual(r.body, BODY)
        self.assertRegex(cache_status(r), FRESH_HIT)
        self.assertEqual(self.origin.request_count(path), 1)

    def _failing_leader(self, path: str, first_reply: Reply, n: int = 10):
        """The first origin request (gated until n clients wait on it) fails; later ones succeed."""
        good = Reply(200, [("Cache-Control", "max-age=60")], BODY)

        def handler(req):
            return first_reply if req.index == self.origin.requests(path)[0].index else good
        self.origin.route(path, handler)
        with self.proxy.client(10) as lead:
            lead.request("GET", path)
            self.origin.wait_for_requests(1, path=path)
            w0 = self.waits()
            followers = []
            try:
                with cf.ThreadPoolExecutor(n - 1) as pool:
                    futs = [pool.submit(outcome, self.proxy, path) for _ in range(n - 1)]
                    self.wait_waiters(n - 1, w0)
                    first_reply.gate.open()
                    try:
                        lead_outcome = ("ok", lead.read_response())
                    except (IncompleteResponse, ConnectionResetError) as e:
                        lead_outcome = ("incomplete", str(e))
                    followers = [f.result(timeout=15) for f in futs]
            finally:
                first_reply.gate.open()
        for kind, r in [lead_outcome] + followers:
            if kind == "ok":
                self.assertTrue(r.complete)
                if r.status == 200:
                    self.assertEqual(r.body, BODY, "a complete 200 with a corrupted body")
                else:
                    self.assertIn(r.status, (502, 503, 504), r)
        return lead_outcome, followers

    def test_a_leader_failing_before_the_head_lets_waiters_retry_or_fail_cleanly(self):
        path = "/co/leader-reset"
        lead, followers = self._failing_leader(path, Reply(action="reset", gate=Gate(10)))
        self.assertEqual(lead[0], "ok")
        self.assertEqual(lead[1].status, 502, "the leader's own client gets a clean 502")
        for kind, r in followers:
            self.assertEqual(kind, "ok", r)
        # Waiters are retried, so they all get the good response.
        ok = sum(1 for _, r in followers if r.status == 200)
        self.assertEqual(ok, len(followers), [r.status for _, r in followers])

    def test_a_leader_failing_mid_body_never_gives_waiters_a_corrupted_body_nor_stores_it(self):
        path = "/co/leader-mid-body"
        lead, followers = self._failing_leader(
            path, Reply(200, [("Cache-Control", "max-age=60")], BODY, action="reset_mid_body", gate=Gate(10)))
        self.assertEqual(lead[0], "incomplete", "the leader's client must see the body cut short")
        for kind, r in followers:
            if kind == "ok":
                self.assertEqual((r.status, r.body), (200, BODY))
        # Whatever is stored now (a retried waiter may have stored the good body) is whole.
        n = self.origin.request_count(path)
        r = self.proxy.get(path)
        self.assertEqual((r.status, r.body), (200, BODY), "a truncated body was stored")
        if n == 1:
            self.assertRegex(cache_status(r), STORED_MISS, "nothing retried, so nothing may be stored")

    # ---- keep: expired entries with validators are revalidated ---------------------------
    def test_an_expired_entry_with_an_etag_is_revalidated_with_if_none_match(self):
        """cache.keep (default 1h): RFC 9111 §4.3.1, a stale entry's validators make a
        conditional request; the 304 freshens it (§4.3.4)."""
        path = "/co/keep"
        self.origin.route(path, Reply(200, [("Cache-Control", "max-age=1"), ("ETag", '"k1"')], b"kept body"))
        self.assertRegex(cache_status(self.proxy.get(path)), STORED_MISS)
        self.proxy.advance_clock(1)  # max-age=1: stale now
        self.origin.route(path, Reply(304, [("Cache-Control", "max-age=60"), ("ETag", '"k1"')]))
        r = self.proxy.get(path)
        self.assertEqual((r.status, r.body), (200, b"kept body"))
        self.assertRegex(cache_status(r), REVALIDATED_304)
        reqs = self.origin.requests(path)
        self.assertEqual(len(reqs), 2)
        self.assertEqual(reqs[1].header("if-none-match"), '"k1"')
        wait_until(lambda: self.proxy.metrics().get(REQUESTS_TOTAL, result="revalidated", **{"class": "2xx"}) == 1, 3,
                   what='requests_total{result="revalidated",class="2xx"} == 1')
        self.assertRegex(cache_status(self.proxy.get(path)), FRESH_HIT)


class LeaderRetryTest(ProxyCase):
    CONFIG = {"upstream": {"pool": {"max_idle_per_worker": 0}}}
    waits = CoalescingTest.waits
    wait_waiters = CoalescingTest.wait_waiters
    _failing_leader = CoalescingTest._failing_leader

    def test_after_a_leader_fails_one_waiter_leads_the_retry_and_the_others_share_it(self):
        """README: "one request per key per refresh, however many clients ask";
        coalescer.h: "A leader that fails marks the Fill Failed and the followers
        retry (one of them leads next)". The outcome of the race varies, so the
        scenario is repeated: each round must take exactly 2 origin requests.
        No idle upstream connections are kept, so the leader's failure is never
        hidden by cachalot's retry of a reset pooled connection."""
        counts = []
        for round_ in range(ROUNDS):
            path = f"/co/leader-reset-retry-{round_}"
            self._failing_leader(path, Reply(action="reset", gate=Gate(10)))
            counts.append(self.origin.request_count(path))
        self.assertEqual(counts, [2] * ROUNDS, "origin requests per round (1 failed + 1 shared retry)")


class StripCookieTest(ProxyCase):
    CONFIG = {"routes": [{"name": "strip", "prefix": "/strip/", "set_cookie": "strip"}]}

    def test_waiters_never_get_the_leaders_set_cookie_when_the_route_strips_it(self):
        """set_cookie: strip stores and shares the response without Set-Cookie; the
        leader's own client may get its cookie, nobody else may (RFC 6265 §3 /
        RFC 9111 §3.1: Set-Cookie is specific to the one client)."""
        path = "/strip/a"
        gate = Gate(10)
        self.origin.route(path, Reply(200, [("Cache-Control", "max-age=60"), ("Set-Cookie", "sid=leader")],
                                      b"shared", gate=gate))
        with self.proxy.client(10) as lead:
            lead.request("GET", path)
            self.origin.wait_for_requests(1, path=path)
            w0 = self.proxy.metrics().get(COALESCED_WAITS)
            with cf.ThreadPoolExecutor(5) as pool:
                futs = [pool.submit(self.proxy.get, path, None, timeout=10) for _ in range(5)]
                try:
                    wait_until(lambda: self.proxy.metrics().get(COALESCED_WAITS) - w0 >= 5, 5, what="5 waiters")
                finally:
                    gate.open()
                followers = [f.result(timeout=15) for f in futs]
            lead.read_response()
        for r in followers:
            self.assertEqual((r.status, r.body), (200, b"shared"))
            self.assertEqual(r.header_all("set-cookie"), [], "the leader's cookie was fanned out")
            self.assertRegex(cache_status(r), COLLAPSED)
        r = self.proxy.get(path)
        self.assertEqual(r.header_all("set-cookie"), [])
        self.assertRegex(cache_status(r), FRESH_HIT)
        self.assertEqual(self.origin.request_count(path), 1)


class KeepZeroTest(ProxyCase):
    # cache.stale_on_disconnect (default 10s) keeps an expired entry too, and a kept
    # entry with validators is revalidated (test_c50_standards); turn both off.
    CONFIG = {"cache": {"keep": "0s", "stale_on_disconnect": "0s"}}

    def test_with_keep_0_an_expired_entry_is_dropped_and_fetched_in_full(self):
        path = "/keep0"
        self.origin.route(path, Reply(200, [("Cache-Control", "max-age=1"), ("ETag", '"k1"')], b"v1"))
        self.assertRegex(cache_status(self.proxy.get(path)), STORED_MISS)
        self.proxy.advance_clock(1)  # max-age=1: stale now
        r = self.proxy.get(path)
        self.assertEqual(r.status, 200)
        req = self.origin.requests(path)[1]
        self.assertFalse(conditional(req), req)


class CoalesceLimitsTest(ProxyCase):
    CONFIG = {"cache": {"coalesce": {"max_waiters": 2, "timeout": "300ms"}}}

    def test_max_waiters_bounds_the_queue_and_the_rest_go_to_the_origin(self):
        path = "/limits/max-waiters"
        gate = Gate(10)
        self.origin.route(path, Reply(200, [("Cache-Control", "max-age=60")], b"v", gate=gate))
        with cf.ThreadPoolExecutor(10) as pool:
            futs = [pool.submit(self.proxy.get, path, None, timeout=10) for _ in range(10)]
            try:
                # 1 leader + 2 waiters; the 7 others fetch alone.
                self.origin.wait_for(lambda: self.origin.request_count(path) >= 8, 5, "8 origin requests")
                wait_until(lambda: self.proxy.metrics().get(COALESCED_WAITS) >= 2, 5, what="2 waiters")
            finally:
                gate.open()
            results = [f.result(timeout=15) for f in futs]
        self.assertEqual([(r.status, r.body) for r in results], [(200, b"v")] * 10)
        self.assertEqual(self.origin.request_count(path), 8)
        self.assertEqual(self.proxy.metrics().get(COALESCED_WAITS), 2)

    def test_a_waiter_gives_up_after_coalesce_timeout_and_fetches_itself(self):
        path = "/limits/timeout"
        gate = Gate(10)
        self.origin.route(path, lambda req: Reply(200, [("Cache-Control", "max-age=60")], b"slow", gate=gate)
                          if req.index == self.origin.requests(path)[0].index
                          else Reply(200, [("Cache-Control", "max-age=60")], b"own"))
        try:
            with self.proxy.client(10) as lead:
                lead.request("GET", path)
                self.origin.wait_for_requests(1, path=path)
                t0 = time.monotonic()
                r = self.proxy.get(path, timeout=10)
                took = time.monotonic() - t0
                self.assertEqual((r.status, r.body), (200, b"own"))
                self.assertGreaterEqual(took, 0.25, "the waiter did not wait for the leader at all")
                self.assertLess(took, 2.0, "cache.coalesce.timeout (300 ms) not applied")
                gate.open()
                self.assertEqual(lead.read_response().body, b"slow")
        finally:
            gate.open()
        self.assertEqual(self.origin.request_count(path), 2)


class CoalesceDisabledTest(ProxyCase):
    CONFIG = {"cache": {"coalesce": {"enabled": False}}}

    def test_with_coalescing_disabled_every_cold_request_reaches_the_origin(self):
        path = "/off"
        gate = Gate(10)
        self.origin.route(path, Reply(200, [("Cache-Control", "max-age=60")], b"v", gate=gate))
        with cf.ThreadPoolExecutor(5) as pool:
            futs = [pool.submit(self.proxy.get, path, None, timeout=10) for _ in range(5)]
            try:
                self.origin.wait_for(lambda: self.origin.request_count(path) >= 5, 5, "5 origin requests")
            finally:
                gate.open()
            self.assertEqual([f.result(timeout=15).status for f in futs], [200] * 5)
        self.assertEqual(self.proxy.metrics().get(COALESCED_WAITS), 0)


if __name__ == "__main__":
    unittest.main()
