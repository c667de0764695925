"""Refresh-ahead (issue #4): on a route with refresh_ahead: true, a hot entry is
refreshed in the background shortly before it expires, so clients keep
getting fresh hits and never wait for (or see) an expired entry.

    origin o1 { expect GET /hot/a; reply 200 cache-control:max-age=2 etag:"r1" }
    client c1 { get /hot/a every 20 ms for 3 s; expect cache-status ~ hit; ttl=N (N >= 1) every time }
    origin o1 { expect GET /hot/a if-none-match:"r1" before the entry expires; reply 304 }

Real time is the subject (max-age=2), so the test runs for about 3 s.
"""

import time
import unittest

from _revaltest import BG_REFRESHES, FRESH_HIT, STORED_MISS, ProxyCase, Reply, cache_status, conditional, metric

HOT = {"Cache-Control": "max-age=2", "ETag": '"r1"'}


class RefreshAheadTest(ProxyCase):
    CONFIG = {"routes": [{"name": "hot", "prefix": "/hot/", "refresh_ahead": True}]}

    def hammer(self, path: str, seconds: float) -> list:
        """GET `path` back to back (20 ms apart) for `seconds`; [(t, Cache-Status, status, body)]."""
        seen = []
        t0 = time.monotonic()
        for _ in range(int(seconds / 0.02) + 1):
            now = time.monotonic() - t0
            if now >= seconds:
                break
            r = self.proxy.get(path)
            seen.append((round(now, 3), cache_status(r), r.status, r.body))
            time.sleep(0.02)
        return seen

    def test_a_hot_entry_is_refreshed_before_it_expires_and_never_served_stale(self):
        path = "/hot/item"
        self.origin.route(path, lambda req: Reply(304, HOT) if conditional(req) else Reply(200, HOT, b"hot body"))
        r = self.proxy.get(path)
        stored_at = time.monotonic()
        self.assertRegex(cache_status(r), STORED_MISS)
        bg0 = metric(self.proxy, BG_REFRESHES)

        seen = self.hammer(path, 3.0)
        self.assertGreater(len(seen), 50)
        not_fresh = [s for s in seen if not FRESH_HIT.match(s[1])]
        self.assertEqual(not_fresh, [], "every response must be a fresh hit: no ttl=-, no stale detail, no fwd=")
        self.assertTrue(all(s[2] == 200 and s[3] == b"hot body" for s in seen))

        reqs = self.origin.requests(path)
        refreshes = [q for q in reqs[1:] if conditional(q)]
        self.assertGreaterEqual(len(refreshes), 1, "the origin saw no refresh")
        self.assertEqual(refreshes[0].header("if-none-match"), '"r1"')
        self.assertLess(refreshes[0].received_at - stored_at, 2.0, "the first refresh came after the entry expired")
        self.assertGreater(metric(self.proxy, BG_REFRESHES), bg0, "cachalot_background_refreshes_total did not move")
        self.assertLessEqual(len(reqs), 4, "refresh-ahead must not hit the origin on every request")

    def test_without_refresh_ahead_the_same_traffic_waits_for_a_revalidation(self):
        """The control: outside the route the entry expires and a client request
        revalidates it synchronously (fwd=stale), which refresh-ahead avoids."""
        path = "/cold/item"
        self.origin.route(path, lambda req: Reply(304, HOT) if conditional(req) else Reply(200, HOT, b"cold body"))
        self.assertRegex(cache_status(self.proxy.get(path)), STORED_MISS)
        seen = self.hammer(path, 2.5)
        self.assertTrue(any(s[1].startswith("cachalot; fwd=stale; fwd-status=304") for s in seen),
                        [s[1] for s in seen][-5:])


if __name__ == "__main__":
    unittest.main()
