"""stale-if-error (RFC 5861 §4, issue #4): when revalidating a stale entry
fails (origin 500/502/503/504, a reset, a timeout) the stale entry stands in,
inside its window; outside it, or when a directive forbids serving stale
(must-revalidate, proxy-revalidate, s-maxage: RFC 9111 §4.2.4, §5.2.2.2), the
client gets the error (the origin's 5xx, or 502 / 504 when there is none).

    origin o1 { expect GET /a; reply 200 cache-control:"max-age=1, stale-if-error=60" etag:"e1" }
    clock advance 1s
    origin o1 { expect GET /a if-none-match:"e1"; reply 503 }
    client c1 { get /a; expect 200 "v1"; cache-status ~ fwd=stale; fwd-status=503; ttl=-N; detail=stale-if-error }

Entries live 1 s (max-age=1): each test moves cachalot's clock forward by the
lifetime (advance_clock, test builds) instead of sleeping until they are
stale. Timeouts keep real time (a monotonic clock): upstream.timeouts.first_byte
is 500 ms so that they are short.
"""

import re
import unittest

from _revaltest import (REQUESTS_TOTAL, STORED_MISS, UPSTREAM_ERRORS, ProxyCase, Reply, cache_status, conditional,
                        timed_get, wait_until)

FIRST_BYTE = 0.5


def sie_status(fwd_status: str) -> re.Pattern:
    return re.compile(rf"^cachalot; fwd=stale; fwd-status={fwd_status}; ttl=(-\d+|0); detail=stale-if-error")


def origin_reply(kind: str) -> Reply:
    return {
        "500": Reply.text(500, "origin says 500"),
        "502": Reply.text(502, "origin says 502"),
        "503": Reply.text(503, "origin says 503"),
        "504": Reply.text(504, "origin says 504"),
        "reset": Reply(action="reset"),
        "timeout": Reply(action="hang"),
    }[kind]


class StaleIfErrorTest(ProxyCase):
    # stale-if-error alone: cache.stale_on_disconnect (RFC 9111 §4.2.4, test_c50_standards)
    # would also serve stale on a reset within 10 s of expiry.
    CONFIG = {"upstream": {"timeouts": {"first_byte": f"{int(FIRST_BYTE * 1000)}ms"}},
              "cache": {"stale_on_disconnect": "0s"}}

    def prime(self, paths: dict) -> None:
        """Store {path: Cache-Control} (each with ETag "e1", body v1) and move the clock until stale (max-age=1)."""
        for path, cc in paths.items():
            self.origin.route(path, Reply(200, [("Cache-Control", cc), ("ETag", '"e1"')], b"v1"))
            r = self.proxy.get(path)
            self.assertEqual((r.status, r.body), (200, b"v1"))
            self.assertRegex(cache_status(r), STORED_MISS)
        self.proxy.advance_clock(1)

    def fail_with(self, path: str, kind: str) -> None:
        self.origin.route(path, origin_reply(kind))

    def assert_revalidation_reached_origin(self, path: str, n: int) -> None:
        reqs = self.origin.wait_for_requests(n, path=path)
        self.assertTrue(conditional(reqs[n - 1]), f"expected a conditional request: {reqs[n - 1]!r}")
        self.assertEqual(reqs[n - 1].header("if-none-match"), '"e1"')

    # ---- inside the window: the stale entry stands in ---------------------------
    def _stale_served_on(self, kind: str, fwd_status: str):
        path = f"/sie/{kind}"
        self.prime({path: "max-age=1, stale-if-error=60"})
        m0 = self.proxy.metrics()
        self.fail_with(path, kind)
        r, took = timed_get(self.proxy, path)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"v1")
        self.assertRegex(cache_status(r), sie_status(fwd_status))
        self.assert_revalidation_reached_origin(path, 2)
        wait_until(lambda: self.proxy.metrics().get(REQUESTS_TOTAL, result="stale-error")
                   > m0.get(REQUESTS_TOTAL, result="stale-error"), 3, what="requests_total{result=stale-error} moved")
        return r, took

    def test_origin_500_inside_stale_if_error_serves_the_stale_entry(self):
        self._stale_served_on("500", "500")

    def test_origin_503_inside_stale_if_error_serves_the_stale_entry(self):
        self._stale_served_on("503", "503")

    def test_origin_502_and_504_inside_stale_if_error_serve_the_stale_entry(self):
        """RFC 5861 §4: "an error is any situation that would result in a 500,
        502, 503, or 504 HTTP response status code being returned"."""
        self._stale_served_on("502", "502")
        self._stale_served_on("504", "504")

    def test_origin_connection_reset_inside_stale_if_error_serves_the_stale_entry(self):
        m0 = self.proxy.metrics()
        self._stale_served_on("reset", "0")
        self.assertGreater(self.proxy.metrics().get(UPSTREAM_ERRORS, kind="reset"),
                           m0.get(UPSTREAM_ERRORS, kind="reset"))

    def test_origin_timeout_inside_stale_if_error_serves_the_stale_entry_after_first_byte_timeout(self):
        m0 = self.proxy.metrics()
        r, took = self._stale_served_on("timeout", "0")
        self.assertGreaterEqual(took, FIRST_BYTE * 0.9, "served before the timeout could have fired")
        self.assertLess(took, FIRST_BYTE + 1.5, "upstream.timeouts.first_byte not applied")
        self.assertGreater(self.proxy.metrics().get(UPSTREAM_ERRORS, kind="timeout"),
                           m0.get(UPSTREAM_ERRORS, kind="timeout"))

    def test_a_stale_entry_is_not_served_on_a_non_error_status(self):
        """Only 500/502/503/504 are errors (RFC 5861 §4): a 404 to the revalidation is passed on."""
        path = "/sie/404"
        self.prime({path: "max-age=1, stale-if-error=60"})
        self.origin.route(path, Reply.text(404, "gone now", [("Cache-Control", "no-store")]))
        r = self.proxy.get(path)
        self.assertEqual((r.status, r.body), (404, b"gone now"))
        self.assertNotIn("stale-if-error", cache_status(r))

    # ---- outside the window, or forbidden: the error ---------------------------------
    def assert_error(self, path: str, kind: str):
        """The origin fails with `kind`: the client gets the error, never v1."""
        n = self.origin.request_count(path)
        self.fail_with(path, kind)
        r = self.proxy.get(path, timeout=FIRST_BYTE + 5)
        expected = {"reset": 502, "timeout": 504}.get(kind, int(kind) if kind.isdigit() else None)
        self.assertEqual(r.status, expected, f"{path} with origin {kind}: {r!r}")
        self.assertNotEqual(r.body, b"v1", "the stale entry was served")
        self.assertNotIn("stale-if-error", cache_status(r))
        if kind.isdigit():
            self.assertEqual(r.body, f"origin says {kind}".encode(), "the origin's error is passed on")
        self.assert_revalidation_reached_origin(path, n + 1)

    def test_outside_the_stale_if_error_window_the_client_gets_502_504_or_the_origins_error(self):
        path = "/sie/expired-window"
        self.prime({path: "max-age=1, stale-if-error=1"})
        self.proxy.advance_clock(1)  # stale by 1 s: past stale-if-error=1
        self.assert_error(path, "reset")
        self.assert_error(path, "timeout")
        self.assert_error(path, "503")

    def test_must_revalidate_proxy_revalidate_and_s_maxage_entries_are_not_served_stale_on_error(self):
        """RFC 9111 §5.2.2.2: with must-revalidate "the cache MUST generate an error
        response rather than reuse the stale response" (504 unless another status is
        more applicable); proxy-revalidate is the same for a shared cache (§5.2.2.8),
        and s-maxage implies it (§5.2.2.10). §4.2.4: a cache MUST NOT generate a stale
        response if a directive prohibits it; stale-if-error does not lift that."""
        paths = {
            "/sie/must-revalidate": "max-age=1, must-revalidate, stale-if-error=60",
            "/sie/proxy-revalidate": "max-age=1, proxy-revalidate, stale-if-error=60",
            "/sie/s-maxage": "s-maxage=1, stale-if-error=60",
        }
        self.prime(paths)
        for path in paths:
            with self.subTest(path=path):
                self.assert_error(path, "reset")
                self.assert_error(path, "500")
        self.assert_error("/sie/must-revalidate", "timeout")

    def test_without_the_directive_or_grace_an_origin_error_is_passed_on(self):
        path = "/sie/none"
        self.prime({path: "max-age=1"})
        self.assert_error(path, "503")
        self.assert_error(path, "reset")

    def test_a_request_stale_if_error_directive_allows_stale_on_error(self):
        """RFC 5861 §4: stale-if-error may also be sent as a request directive."""
        path = "/sie/request"
        self.prime({path: "max-age=1"})
        self.fail_with(path, "503")
        r = self.proxy.get(path, [("Cache-Control", "stale-if-error=60")])
        self.assertEqual((r.status, r.body), (200, b"v1"), r)
        self.assertRegex(cache_status(r), sie_status("503"))
        r = self.proxy.get(path)
        self.assertEqual(r.status, 503, "without the request directive the error is passed on")

    def test_a_fresh_entry_never_asks_the_origin(self):
        path = "/sie/fresh"
        self.origin.route(path, Reply(200, [("Cache-Control", "max-age=60, stale-if-error=60")], b"v1"))
        self.proxy.get(path)
        self.origin.route(path, Reply(action="reset"))
        r = self.proxy.get(path)
        self.assertEqual((r.status, r.body), (200, b"v1"))
        self.assertRegex(cache_status(r), r"^cachalot; hit; ttl=\d+$")
        self.assertEqual(self.origin.request_count(path), 1)


class StaleIfErrorGraceTest(ProxyCase):
    """cache.stale_if_error: a grace window that applies without the directive."""
    CONFIG = {"cache": {"stale_if_error": "30s"},
              "upstream": {"timeouts": {"first_byte": f"{int(FIRST_BYTE * 1000)}ms"}}}

    def test_grace_serves_stale_on_origin_error_without_the_directive(self):
        paths = ["/grace/etag", "/grace/no-validator"]
        self.origin.route(paths[0], Reply(200, [("Cache-Control", "max-age=1"), ("ETag", '"g1"')], b"v1"))
        self.origin.route(paths[1], Reply(200, [("Cache-Control", "max-age=1")], b"v1"))
        for p in paths:
            self.assertRegex(cache_status(self.proxy.get(p)), STORED_MISS)
        self.proxy.advance_clock(1)  # max-age=1: stale now
        for p, kind, fwd in ((paths[0], "503", "503"), (paths[1], "reset", "0")):
            with self.subTest(path=p):
                self.origin.route(p, origin_reply(kind))
                r = self.proxy.get(p)
                self.assertEqual((r.status, r.body), (200, b"v1"), r)
                self.assertRegex(cache_status(r), sie_status(fwd))
        self.assertEqual(self.origin.requests(paths[0])[-1].header("if-none-match"), '"g1"')

    def test_grace_does_not_override_must_revalidate(self):
        """RFC 9111 §5.2.2.2 and §4.2.4: configuration may not lift must-revalidate either."""
        path = "/grace/must-revalidate"
        self.origin.route(path, Reply(200, [("Cache-Control", "max-age=1, must-revalidate"), ("ETag", '"g2"')], b"v1"))
        self.assertRegex(cache_status(self.proxy.get(path)), STORED_MISS)
        self.proxy.advance_clock(1)  # max-age=1: stale now
        self.origin.route(path, Reply(action="reset"))
        r = self.proxy.get(path)
        self.assertEqual(r.status, 502, r)
        self.assertNotEqual(r.body, b"v1")


if __name__ == "__main__":
    unittest.main()
