"""Refresh-ahead (issue #4): on a route with refresh_ahead: true, a hot entry is
refreshed in the background shortly before it expires, so clients keep
getting fresh hits and never wait for (or see) an expired entry.

    origin o1 { expect GET /hot/a; reply 200 cache-control:max-age=100 etag:"r1" }
    clock advance 89s
    client c1 { get /hot/a x10; expect cache-status ~ hit; ttl=11 }       (not yet: no refresh)
    clock advance 6s                                                      (the last 10 %: ttl=5)
    client c1 { get /hot/a x50; expect cache-status ~ hit; ttl=N (N >= 1) every time }
    origin o1 { expect GET /hot/a if-none-match:"r1" before the entry expires; reply 304 }

A hit in the last 10 % of the lifetime starts a refresh with a probability that
rises from 0 to 1 at expiry (half-way through that window, 1 in 2), so 50 hits
there start one all but surely (a miss is 2**-50). The clock is moved
(advance_clock, test builds) rather than waited for: the requests are a bounded
burst, and the 5 s left of the lifetime are ample real time for the burst and
the refresh.
"""

import time
import unittest

from _revaltest import (BG_REFRESHES, FRESH_HIT, STORED_MISS, ProxyCase, Reply, cache_status, conditional, metric,
                        wait_until)

LIFETIME = 100                  # max-age
WINDOW = LIFETIME // 10         # refresh-ahead's window: the last 10 % of the lifetime
BEFORE_WINDOW = LIFETIME - WINDOW - 1   # age 89: ttl 11, no refresh yet
IN_WINDOW = LIFETIME - WINDOW // 2      # age 95: ttl 5, half-way through the window
BURST = 50
HOT = {"Cache-Control": f"max-age={LIFETIME}", "ETag": '"r1"'}


class RefreshAheadTest(ProxyCase):
    CONFIG = {"routes": [{"name": "hot", "prefix": "/hot/", "refresh_ahead": True}]}

    def burst(self, path: str, n: int) -> list:
        """n GETs of `path` back to back; [(Cache-Status, status, body)]."""
        seen = []
        for _ in range(n):
            r = self.proxy.get(path)
            seen.append((cache_status(r), r.status, r.body))
        return seen

    def store(self, path: str, body: bytes) -> float:
        """Store `path` (revalidations get a 304); time.monotonic() once it is stored."""
        self.origin.route(path, lambda req: Reply(304, HOT) if conditional(req) else Reply(200, HOT, body))
        r = self.proxy.get(path)
        stored_at = time.monotonic()
        self.assertRegex(cache_status(r), STORED_MISS)
        return stored_at

    def assert_fresh_hits(self, seen: list, body: bytes) -> None:
        not_fresh = [s for s in seen if not FRESH_HIT.match(s[0])]
        self.assertEqual(not_fresh, [], "every response must be a fresh hit: no ttl=-, no stale detail, no fwd=")
        self.assertTrue(all(s[1] == 200 and s[2] == body for s in seen))

    def test_a_hot_entry_is_refreshed_before_it_expires_and_never_served_stale(self):
        path = "/hot/item"
        stored_at = self.store(path, b"hot body")
        bg0 = metric(self.proxy, BG_REFRESHES)

        # Before the window no hit refreshes.
        self.proxy.advance_clock(BEFORE_WINDOW)
        seen = self.burst(path, 10)
        self.assert_fresh_hits(seen, b"hot body")
        self.assertEqual(self.origin.request_count(path), 1, "a refresh before the last 10 % of the lifetime")

        # In the window the burst starts a refresh; every answer is still a fresh hit.
        self.proxy.advance_clock(IN_WINDOW - BEFORE_WINDOW)
        seen += self.burst(path, BURST)
        self.assert_fresh_hits(seen, b"hot body")

        reqs = self.origin.requests(path)
        refreshes = [q for q in reqs[1:] if conditional(q)]
        self.assertGreaterEqual(len(refreshes), 1, "the origin saw no refresh")
        self.assertEqual(refreshes[0].header("if-none-match"), '"r1"')
        # On cachalot's clock the entry was IN_WINDOW s old at the advance, plus the real time since it was stored.
        age_at_refresh = IN_WINDOW + (refreshes[0].received_at - stored_at)
        self.assertLess(age_at_refresh, LIFETIME, "the first refresh came after the entry expired")
        self.assertGreater(metric(self.proxy, BG_REFRESHES), bg0, "cachalot_background_refreshes_total did not move")
        self.assertLessEqual(len(reqs), 4, "refresh-ahead must not hit the origin on every request")
        # The 304 freshened the entry: hits are out of the window again.
        self.origin.wait_for(lambda: refreshes[0].response_done, 5, "the refresh's 304 sent")

        def refreshed_hit():
            r = self.proxy.get(path)
            cs = cache_status(r)
            return r if FRESH_HIT.match(cs) and int(cs.rsplit("ttl=", 1)[1]) > WINDOW else None
        r = wait_until(refreshed_hit, 5, what="a hit on the refreshed entry (ttl > the window)")
        self.assertEqual((r.status, r.body), (200, b"hot body"))

    def test_without_refresh_ahead_the_same_traffic_waits_for_a_revalidation(self):
        """The control: outside the route the entry expires and a client request
        revalidates it synchronously (fwd=stale), which refresh-ahead avoids."""
        path = "/cold/item"
        self.store(path, b"cold body")
        self.proxy.advance_clock(IN_WINDOW)
        seen = self.burst(path, BURST)
        self.assert_fresh_hits(seen, b"cold body")
        self.assertEqual(self.origin.request_count(path), 1, "refreshed ahead outside a refresh_ahead route")
        self.proxy.advance_clock(LIFETIME - IN_WINDOW)  # age 100: expired
        r = self.proxy.get(path)
        self.assertEqual((r.status, r.body), (200, b"cold body"))
        self.assertTrue(cache_status(r).startswith("cachalot; fwd=stale; fwd-status=304"), cache_status(r))
        self.assertEqual(self.origin.requests(path)[1].header("if-none-match"), '"r1"')


if __name__ == "__main__":
    unittest.main()
