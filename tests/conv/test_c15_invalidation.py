"""Invalidation by unsafe methods (issue #3): RFC 9111 §4.4.

"A cache MUST invalidate the target URI when it receives a non-error status code
in response to an unsafe request method"; it MAY (the project does) invalidate
the URIs in same-origin Location and Content-Location, and MUST NOT invalidate
URIs of another host.
"""

import unittest

from _cachetest import HOST, CacheTestCase, Reply

CC100 = [("Cache-Control", "max-age=100")]


class InvalidationTest(CacheTestCase):
    def setUp(self):
        super().setUp()
        # Everything under self.p: GET answers max-age=100 with a per-path version
        # counter; other methods answer what self.unsafe[(method, path)] says.
        self.versions = {}
        self.unsafe = {}

        def handler(req):
            if req.method == "GET":
                n = self.versions[req.path] = self.versions.get(req.path, 0) + 1
                return Reply(200, CC100, b"cached v%d" % n)
            status, headers = self.unsafe.get((req.method, req.path), (200, []))
            return Reply(status, [("Cache-Control", "no-store")] + headers,
                         b"" if status in (204, 304) else b"done")
        self.origin.route(self.p, handler, prefix=True)

    def _cache(self, path):
        """Store `path` and check it is a hit."""
        self.assertStoredMiss(self.get(path), b"cached v1", msg=path)
        self.assertHit(self.get(path), b"cached v1", msg=path)

    def assertInvalidated(self, path, msg=""):
        r = self.get(path)
        self.assertStoredMiss(r, b"cached v2", msg=f"{path} should have been invalidated {msg}")

    def assertStillCached(self, path, msg=""):
        self.assertHit(self.get(path), b"cached v1", msg=f"{path} should still be cached {msg}")

    def _unsafe(self, method, path, status=200, headers=()):
        self.unsafe[(method, path)] = (status, list(headers))
        r = self.get(path, method=method, body=b"payload" if method != "DELETE" else None)
        self.assertEqual(r.status, status, r)
        self.assertCacheStatus(r, fwd="method", fwd_status=status, stored=False)
        return r

    def test_successful_unsafe_methods_invalidate_the_target_uri_rfc9111_4_4(self):
        cases = [("POST", 200), ("PUT", 201), ("DELETE", 204), ("PATCH", 200), ("POST", 303),
                 ("PROPPATCH", 207), ("MKCOL", 201)]      # extension methods are unsafe too
        for method, status in cases:
            with self.subTest(method=method, status=status):
                path = f"{self.p}/{method}/{status}"
                self._cache(path)
                self._unsafe(method, path, status)
                self.assertInvalidated(path)
                self.assertEqual([r.method for r in self.origin.requests(path)], ["GET", method, "GET"])

    def test_error_response_to_an_unsafe_method_does_not_invalidate_rfc9111_4_4(self):
        for method, status in [("POST", 500), ("PUT", 503), ("DELETE", 404), ("PATCH", 400)]:
            with self.subTest(method=method, status=status):
                path = f"{self.p}/{method}/{status}"
                self._cache(path)
                self._unsafe(method, path, status)
                self.assertStillCached(path)
                self.assertOriginCount(path, 2)

    def test_invalidation_removes_every_variant_of_the_uri_rfc9111_4_4(self):
        n = {"GET": 0}

        def handler(req):
            if req.method == "GET":
                n["GET"] += 1
                return Reply(200, CC100 + [("Vary", "Accept-Language")],
                             f"{req.header('accept-language')} #{n['GET']}".encode())
            return Reply(204, [])
        self.origin.route(self.p, handler)
        for lang in ("en", "fr"):
            self.assertStoredMiss(self.get(self.p, [("Accept-Language", lang)]), fwd=("uri-miss", "vary-miss"), msg=lang)
        self.assertHit(self.get(self.p, [("Accept-Language", "en")]), b"en #1")
        self.assertHit(self.get(self.p, [("Accept-Language", "fr")]), b"fr #2")
        r = self.get(self.p, method="DELETE")
        self.assertEqual(r.status, 204)
        for lang in ("en", "fr"):
            r = self.get(self.p, [("Accept-Language", lang)])
            self.assertEqual(r.status, 200)
            self.assertFalse(r.body.endswith(b"#1") or r.body.endswith(b"#2"), f"{lang}: stale variant {r.body!r}")
            self.assertCacheStatus(r, fwd=("uri-miss", "vary-miss"), stored=True)
        self.assertOriginCount(self.p, 5)

    def test_same_origin_location_is_invalidated_rfc9111_4_4(self):
        target = f"{self.p}/items"
        cases = [("relative", f"{self.p}/items/7", f"{self.p}/items/7"),
                 ("relative-path", "items/8", f"{self.p}/items/8"),
                 ("absolute", f"http://{HOST}{self.p}/items/9", f"{self.p}/items/9")]
        for name, location, created in cases:
            with self.subTest(location=name):
                self._cache(created)
                self._unsafe("POST", target, 201, [("Location", location)])
                self.assertInvalidated(created, msg=f"by Location: {location}")

    def test_same_origin_content_location_is_invalidated_rfc9111_4_4(self):
        target = f"{self.p}/doc"
        other = f"{self.p}/doc.en"
        self._cache(other)
        self._unsafe("PUT", target, 200, [("Content-Location", other)])
        self.assertInvalidated(other, msg="by Content-Location")

    def test_location_of_another_host_is_not_invalidated_rfc9111_4_4(self):
        target = f"{self.p}/items"
        kept = f"{self.p}/items/1"
        self._cache(kept)
        self._unsafe("POST", target, 201, [("Location", f"http://other.test{kept}"),
                                           ("Content-Location", f"http://other.test{kept}")])
        self.assertStillCached(kept, msg="another host's URI must not be invalidated")

    def test_safe_methods_do_not_invalidate_rfc9111_4_4(self):
        self._cache(self.p)
        r = self.get(self.p, method="OPTIONS")
        self.assertEqual(r.status, 200)
        self.assertStillCached(self.p)


if __name__ == "__main__":
    unittest.main()
