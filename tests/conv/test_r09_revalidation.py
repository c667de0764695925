"""A 304 goes through the same admission gate as a 200 (safety rule "one
admission gate", STYLE.md "The exchange"): what a shared cache may not store
from a 200 it may not merge into a stored entry from a 304 either.

Every entry here is `Cache-Control: max-age=0` with an ETag: it is stored (it has
a validator) and revalidated on every use (RFC 9111 §4.2.4, §4.3.1), so no clock
is needed.

    origin o1 { expect GET /p; reply 200 cache-control:max-age=0 etag:"e1" "shared body" }
    origin o1 { expect GET /p if-none-match:"e1"; reply 304 set-cookie:sid=A }
    client c1 { get /p; expect set-cookie == sid=A }         # its own response
    client c2 { get /p; expect !set-cookie; body == "shared body" }
"""

import unittest

from _cachetest import CacheTestCase, Reply, cache_status, wait_until

ETAG = '"e1"'
BODY = b"shared body"
ENTRY = [("Cache-Control", "max-age=0"), ("ETag", ETAG)]


class RevalidationAdmissionTest(CacheTestCase):
    CONFIG = {"routes": [{"name": "strip", "prefix": "/strip/", "set_cookie": "strip"}]}

    # ---- helpers ---------------------------------------------------------------------------
    def script(self, path, first_304, later_304=None):
        """The origin: unconditional requests get the 200 entry; the first conditional
        request gets `first_304` (fields), later ones `later_304` (default: a plain 304)."""
        later_304 = later_304 if later_304 is not None else ENTRY
        seen = {"conditional": 0}

        def handler(req):
            if req.header("if-none-match") == ETAG:
                seen["conditional"] += 1
                return Reply(304, first_304 if seen["conditional"] == 1 else later_304)
            return Reply(200, ENTRY, BODY)
        self.origin.route(path, handler)

    def store(self, path):
        r = self.get(path)
        self.assertStoredMiss(r, BODY, msg=path)
        self.wait_stored(path)

    def assert_no_cookie_for_others(self, path, n=3):
        """n further clients get the stored body without the first user's Set-Cookie,
        whether each is revalidated again (with a conditional request) or a hit."""
        for i in range(n):
            before = self.origin.request_count(path)
            r = self.get(path)
            self.assertEqual((r.status, r.body), (200, BODY), f"client {i}: {r!r}")
            self.assertEqual(r.header_all("set-cookie"), [],
                             f"client {i} got another user's Set-Cookie from the shared entry: {r.headers}")
            cs = cache_status(r)
            if cs.get("hit"):
                self.assertEqual(self.origin.request_count(path), before, f"client {i}: a hit reached the origin")
            else:
                self.assertEqual(cs.get("fwd"), "stale", f"client {i}: {cs['_raw']!r}")
                reqs = self.origin.requests(path)[before:]
                self.assertEqual(len(reqs), 1, f"client {i}: {reqs}")
                self.assertEqual(reqs[0].header("if-none-match"), ETAG, f"client {i}: not a revalidation")

    def trigger(self, path):
        """The revalidation whose 304 carries the first user's cookie."""
        n = self.origin.request_count(path)
        r = self.get(path)
        self.assertEqual((r.status, r.body), (200, BODY), r)
        self.assertCacheStatus(r, fwd="stale", fwd_status=304)
        reqs = self.assertOriginCount(path, n + 1)
        self.assertEqual(reqs[-1].header("if-none-match"), ETAG)
        return r

    # ---- Set-Cookie on a 304 -----------------------------------------------------------------
    def test_set_cookie_on_a_304_goes_to_the_client_that_revalidated_and_never_to_the_next_ones(self):
        """RFC 9111 §3.1 / §4.3.4 with the default `set_cookie: no_store`: a 200 with
        Set-Cookie is not stored, so a 304 with Set-Cookie must not put the cookie into the
        shared entry. The client whose request was revalidated still gets its cookie."""
        self.script(self.p, ENTRY + [("Set-Cookie", "sid=A; Path=/")])
        self.store(self.p)
        r = self.trigger(self.p)
        self.assertEqual(r.header_all("set-cookie"), ["sid=A; Path=/"],
                         "the client that caused the revalidation must get the origin's Set-Cookie")
        self.assert_no_cookie_for_others(self.p)

    def test_set_cookie_on_a_freshening_304_never_reaches_the_clients_served_from_the_entry(self):
        """Same, with a 304 that freshens the entry (max-age=60): later clients are
        served from it (hits, or revalidations), never with sid=A."""
        self.script(self.p, [("Cache-Control", "max-age=60"), ("ETag", ETAG), ("Set-Cookie", "sid=A")])
        self.store(self.p)
        r = self.get(self.p)
        self.assertEqual((r.status, r.body), (200, BODY), r)
        self.assertEqual(r.header_all("set-cookie"), ["sid=A"])
        self.assert_no_cookie_for_others(self.p)

    def test_set_cookie_named_by_private_on_a_304_is_not_shared_rfc9111_5_2_2_7(self):
        """`private="Set-Cookie"`: a shared cache MUST NOT store the named field
        (RFC 9111 §5.2.2.7), whether it arrives on a 200 or on a 304."""
        self.script(self.p, [("Cache-Control", 'max-age=0, private="Set-Cookie"'), ("ETag", ETAG),
                             ("Set-Cookie", "sid=A")])
        self.store(self.p)
        r = self.trigger(self.p)
        self.assertEqual(r.header_all("set-cookie"), ["sid=A"])
        self.assert_no_cookie_for_others(self.p)

    def test_set_cookie_named_by_no_cache_on_a_304_is_not_shared_rfc9111_5_2_2_4(self):
        """`no-cache="Set-Cookie"`: the named field MUST NOT be sent in a response to a
        later request without successful revalidation (RFC 9111 §5.2.2.4); the entry
        here is revalidated, but that revalidation's 304 carries no cookie."""
        self.script(self.p, [("Cache-Control", 'max-age=0, no-cache="Set-Cookie"'), ("ETag", ETAG),
                             ("Set-Cookie", "sid=A")])
        self.store(self.p)
        r = self.trigger(self.p)
        self.assertEqual(r.header_all("set-cookie"), ["sid=A"])
        self.assert_no_cookie_for_others(self.p)

    def test_set_cookie_on_a_304_is_stripped_on_a_set_cookie_strip_route(self):
        """`set_cookie: strip` stores without Set-Cookie (README; config.h: "the client
        that caused the fetch still gets them"): the same holds for a 304's fields."""
        path = "/strip" + self.p
        self.script(path, ENTRY + [("Set-Cookie", "sid=A")])
        self.store(path)
        r = self.trigger(path)
        self.assertEqual(r.header_all("set-cookie"), ["sid=A"])
        self.assert_no_cookie_for_others(path)

    # ---- a 304 that takes the response out of the shared cache ------------------------------
    def _unshare(self, cc):
        self.script(self.p, [("Cache-Control", cc), ("ETag", ETAG)])
        self.store(self.p)
        r = self.trigger(self.p)
        self.assertEqual(r.header_all("set-cookie"), [])
        # The entry is gone: the inspector lists no variant...
        wait_until(lambda: self.inspect(self.p) == [], 3, what=f"{self.p} removed after a 304 saying {cc}")
        # ...and the next request is a plain miss, forwarded without the old validator.
        n = self.origin.request_count(self.p)
        r = self.get(self.p)
        self.assertEqual((r.status, r.body), (200, BODY))
        self.assertCacheStatus(r, fwd="uri-miss", fwd_status=200)
        reqs = self.assertOriginCount(self.p, n + 1)
        self.assertUnconditional(reqs[-1], "the entry should have been removed by the private/no-store 304")

    def test_a_304_saying_private_removes_the_shared_entry_rfc9111_5_2_2_7(self):
        """The updated response is private (RFC 9111 §4.3.4 updates the stored fields;
        §5.2.2.7: a shared cache MUST NOT store it): the entry may no longer be shared."""
        self._unshare("private")

    def test_a_304_saying_no_store_removes_the_shared_entry_rfc9111_5_2_2_5(self):
        """RFC 9111 §5.2.2.5: no-store on the updating response; the entry must go."""
        self._unshare("no-store")


if __name__ == "__main__":
    unittest.main()
