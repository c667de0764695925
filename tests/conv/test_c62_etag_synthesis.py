"""ETag synthesis (issue 13 item 1): a stored 200 without ETag and without
Last-Modified gets a strong ETag made from its body (XXH3-128, base64url,
quoted), so clients' If-None-Match is answered 304 from the cache; the origin
never hears of it (revalidation stays an unconditional GET).

    origin /a: 200 "v1", max-age=60, no validators
    client { get /a; expect stored; detail=etag-synthesized }
    client { get /a; expect hit; ETag: "<22 base64url>" }
    client { get /a; If-None-Match: <that>; expect 304 from cache }     # RFC 9110 §13.1.2
    clock +60
    client { get /a }  -> origin gets no If-None-Match; body changed -> new tag

RFC 9110 §8.8.3: a strong validator changes whenever the representation data
does; one made from the stored bytes does, and the same bytes give the same
tag on every instance.
"""

import re
import unittest

from _cachetest import CacheTestCase, Reply, cache_status
from cachalot import Cachalot
from origin import Origin

TAG = re.compile(r'^"[A-Za-z0-9_-]{22}"$')


def plain(body: bytes, cc: str = "max-age=60", extra=()):
    return Reply(200, [("Cache-Control", cc), ("Content-Type", "application/json"), *extra], body)


class EtagSynthesisTest(CacheTestCase):
    CONFIG = {"routes": [{"name": "raw", "prefix": "/raw/", "synthesize_etag": False}]}

    def stored_tag(self, path: str) -> str:
        self.wait_stored(path)
        r = self.get(path)
        self.assertHit(r)
        tag = r.header("etag")
        self.assertIsNotNone(tag, f"a hit on {path} has no ETag: {r!r}")
        return tag

    def test_stored_200_without_validators_gets_a_strong_body_etag(self):
        self.origin.route(self.p, plain(b'{"v":1}'))
        first = self.get(self.p)
        cs = self.assertStoredMiss(first, body=b'{"v":1}')
        self.assertEqual(cs.get("detail"), "etag-synthesized")
        tag = self.stored_tag(self.p)
        self.assertRegex(tag, TAG)                      # strong: no W/ prefix
        self.assertEqual(self.stored_tag(self.p), tag)  # stable
        # §13.1.2: If-None-Match matching the stored tag -> 304 from the cache.
        r = self.get(self.p, {"If-None-Match": tag})
        self.assertEqual(r.status, 304, r)
        self.assertEqual(r.header("etag"), tag)
        self.assertCacheStatus(r, hit=True)
        # Weak comparison for If-None-Match: W/"x" matches "x".
        self.assertEqual(self.get(self.p, {"If-None-Match": "W/" + tag}).status, 304)
        self.assertEqual(self.get(self.p, {"If-None-Match": '"other", ' + tag}).status, 304)
        r = self.get(self.p, {"If-None-Match": '"something-else"'})
        self.assertEqual((r.status, r.body), (200, b'{"v":1}'))
        self.assertOriginCount(self.p, 1)

    def test_revalidation_stays_unconditional_and_the_tag_follows_the_body(self):
        body = {"b": b'{"v":1}'}
        self.origin.route(self.p, lambda req: plain(body["b"]))
        self.assertStoredMiss(self.get(self.p))
        tag1 = self.stored_tag(self.p)
        # Same bytes after expiry: the origin is asked without a validator, the tag is the same.
        self.advance_until_stale(self.p)
        self.assertEqual(self.get(self.p).status, 200)
        reqs = self.assertOriginCount(self.p, 2)
        self.assertUnconditional(reqs[1], "the synthesized ETag never goes to the origin")
        self.assertEqual(self.stored_tag(self.p), tag1)
        # New bytes: a new tag; the old one no longer matches.
        body["b"] = b'{"v":2}'
        self.advance_until_stale(self.p)
        self.assertEqual(self.get(self.p).body, b'{"v":2}')
        reqs = self.assertOriginCount(self.p, 3)
        self.assertUnconditional(reqs[2])
        tag2 = self.stored_tag(self.p)
        self.assertNotEqual(tag2, tag1)
        r = self.get(self.p, {"If-None-Match": tag1})
        self.assertEqual((r.status, r.body), (200, b'{"v":2}'))

    def test_origin_validators_are_kept_and_none_is_added(self):
        self.origin.route(self.p + "/etag", plain(b"e", extra=[("ETag", '"origin-1"')]))
        self.origin.route(self.p + "/lm", plain(b"l", extra=[("Last-Modified", "Tue, 14 Nov 2023 22:13:20 GMT")]))
        self.assertNotEqual(cache_status(self.get(self.p + "/etag")).get("detail"), "etag-synthesized")
        self.assertEqual(self.stored_tag(self.p + "/etag"), '"origin-1"')
        self.get(self.p + "/lm")
        self.wait_stored(self.p + "/lm")
        r = self.get(self.p + "/lm")
        self.assertHit(r)
        self.assertIsNone(r.header("etag"), "Last-Modified is the origin's validator; no ETag beside it")

    def test_only_200s_get_one(self):
        # §15.3.1: a 200 carries a whole representation; a cacheable 404 is not one clients validate.
        self.origin.route(self.p, Reply(404, [("Cache-Control", "max-age=60")], b"nope"))
        self.assertEqual(self.get(self.p).status, 404)
        self.wait_stored(self.p)
        r = self.get(self.p)
        self.assertHit(r, status=404)
        self.assertIsNone(r.header("etag"))

    def test_a_route_can_turn_it_off(self):
        path = "/raw" + self.p
        self.origin.route(path, plain(b"raw"))
        cs = self.assertStoredMiss(self.get(path))
        self.assertNotEqual(cs.get("detail"), "etag-synthesized")
        self.wait_stored(path)
        r = self.get(path)
        self.assertHit(r)
        self.assertIsNone(r.header("etag"))


class SameBytesSameTagTest(unittest.TestCase):
    """Two instances (a fleet) give the same bytes the same tag."""

    def test_two_instances_agree(self):
        with Origin() as o:
            o.route("/x", plain(b"shared bytes"))
            o.route("/y", plain(b"other bytes"))
            tags = []
            for _ in range(2):
                with Cachalot({}, upstream=o) as c:
                    c.get("/x")
                    c.get("/y")
                    tx = ty = None
                    for _ in range(50):
                        tx, ty = c.get("/x").header("etag"), c.get("/y").header("etag")
                        if tx and ty:
                            break
                    tags.append((tx, ty))
            self.assertRegex(tags[0][0] or "", TAG)
            self.assertEqual(tags[0], tags[1])
            self.assertNotEqual(tags[0][0], tags[0][1])


if __name__ == "__main__":
    unittest.main()
