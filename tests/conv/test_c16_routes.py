"""Per-route policy and purging (issue #3): routes by prefix and RE2 regex (first
match wins), bypass, default_ttl / min_ttl / max_ttl, cache-key options
(sort_query, ignore_params, extra key headers); the PURGE method and the admin
`POST /purge?path=`.
"""

import json
import unittest

from _cachetest import CacheTestCase, Reply, cache_status, wait_until

ROUTES = [
    {"name": "bypass", "prefix": "/bypass/", "bypass": True},
    {"name": "rx", "regex": "^/rx/[0-9]+$", "default_ttl": "30s"},
    {"name": "first", "prefix": "/order/", "default_ttl": "10s"},
    {"name": "second", "prefix": "/order/x", "default_ttl": "99s"},
    {"name": "deflt", "prefix": "/def/", "default_ttl": "50s"},
    {"name": "cap", "prefix": "/cap/", "max_ttl": "20s"},
    {"name": "floor", "prefix": "/floor/", "min_ttl": "40s"},
    {"name": "sorted", "prefix": "/sq/", "key": {"sort_query": True}},
    {"name": "ign", "prefix": "/ign/", "key": {"ignore_params": ["utm_source"]}},
    {"name": "tenant", "prefix": "/ten/", "key": {"headers": ["X-Tenant"]}},
]


def no_freshness(body):
    """A 200 that says nothing about freshness and has no validator."""
    return Reply(200, [("Content-Type", "text/plain")], body)


def echo_target(cc="max-age=100"):
    return lambda req: Reply(200, [("Cache-Control", cc)], req.target.encode())


class RoutesTest(CacheTestCase):
    CONFIG = {"routes": ROUTES}

    # ---- matching ---------------------------------------------------------
    def test_bypass_route_never_stores(self):
        path = "/bypass" + self.p
        self.origin.route(path, Reply(200, [("Cache-Control", "public, max-age=100"), ("ETag", '"b"')], b"live"))
        for i in range(2):
            r = self.get(path)
            self.assertEqual((r.status, r.body), (200, b"live"), f"request {i}")
            self.assertCacheStatus(r, fwd="bypass", detail="route", stored=False, msg=f"request {i}")
        self.assertOriginCount(path, 2)
        self.assertEqual(self.inspect(path), [])

    def test_bypass_route_forwards_client_conditionals_untouched(self):
        """Not a cache candidate: the proxy is a plain gateway, so the client's
        conditional reaches the origin and the origin's 304 comes back."""
        path = "/bypass" + self.p
        self.origin.route(path, lambda req: Reply(304, [("ETag", '"b"')]) if req.header("if-none-match") == '"b"'
                          else Reply(200, [("ETag", '"b"')], b"full"))
        r = self.get(path, [("If-None-Match", '"b"')])
        self.assertEqual(r.status, 304)
        self.assertCacheStatus(r, fwd="bypass")
        self.assertEqual(self.assertOriginCount(path, 1)[0].header("if-none-match"), '"b"')

    def test_regex_route_applies_only_to_matching_paths(self):
        self.origin.route("/rx/123", no_freshness(b"numeric"))
        self.origin.route("/rx/abc", no_freshness(b"alpha"))
        self.assertStoredMiss(self.get("/rx/123"), b"numeric", ttl=(29, 30))
        self.assertHit(self.get("/rx/123"), b"numeric")
        self.assertOriginCount("/rx/123", 1)
        for i in range(2):
            r = self.get("/rx/abc")
            self.assertEqual((r.status, r.body), (200, b"alpha"))
            self.assertFalse(cache_status(r).get("hit"), f"/rx/abc request {i} did not match the regex: {r.headers}")
        self.assertOriginCount("/rx/abc", 2)

    def test_first_matching_route_wins(self):
        path = "/order/x" + self.p      # matches "first" (/order/) and "second" (/order/x)
        self.origin.route(path, no_freshness(b"ordered"))
        self.assertStoredMiss(self.get(path), b"ordered", ttl=(9, 10))

    # ---- TTL policy -------------------------------------------------------
    def test_default_ttl_applies_only_when_the_origin_gives_no_freshness(self):
        plain, explicit = "/def" + self.p + "/plain", "/def" + self.p + "/explicit"
        self.origin.route(plain, no_freshness(b"plain"))
        self.origin.route(explicit, Reply(200, [("Cache-Control", "max-age=5")], b"explicit"))
        self.assertStoredMiss(self.get(plain), b"plain", ttl=(49, 50))
        self.assertHit(self.get(plain), b"plain")
        self.assertStoredMiss(self.get(explicit), b"explicit", ttl=(4, 5))
        self.assertOriginCount(plain, 1)

    def test_default_ttl_does_not_override_no_store_or_private(self):
        for i, cc in enumerate(["no-store", "private"]):
            path = f"/def{self.p}/{i}"
            self.origin.route(path, Reply(200, [("Cache-Control", cc)], b"x"))
            self.assertNotStored(self.get(path), b"x", msg=cc)

    def test_default_ttl_does_not_make_a_non_heuristically_cacheable_status_storable_rfc9111_4_2_2(self):
        """A route default stands in for heuristics, and heuristics apply only to
        heuristically cacheable statuses (RFC 9110 §15.1): a bare 500 is not stored."""
        path = "/def" + self.p
        self.origin.route(path, Reply(500, [], b"err"))
        for i in range(2):
            self.assertNotStored(self.get(path), b"err", status=500, msg=f"request {i}")
        self.assertOriginCount(path, 2)

    def test_min_ttl_does_not_lift_no_cache_rfc9111_5_2_2_4(self):
        """no-cache: 'MUST NOT be used to satisfy any other request without forwarding it
        for validation' — a route floor on lifetimes cannot turn that into hits."""
        path = "/floor" + self.p
        self.origin.route(path, lambda req: Reply(304, [("ETag", '"f"'), ("Cache-Control", "no-cache")])
                          if req.header("if-none-match") == '"f"'
                          else Reply(200, [("Cache-Control", "no-cache"), ("ETag", '"f"')], b"validate me"))
        self.get(path)
        for i in range(2):
            r = self.get(path)
            self.assertEqual((r.status, r.body), (200, b"validate me"))
            self.assertCacheStatus(r, fwd="stale", fwd_status=304, msg=f"use {i}")
        self.assertOriginCount(path, 3)

    def test_max_ttl_caps_the_lifetime(self):
        path = "/cap" + self.p
        self.origin.route(path, Reply(200, [("Cache-Control", "max-age=100")], b"capped"))
        self.assertStoredMiss(self.get(path), b"capped", ttl=(19, 20))
        self.assertHit(self.get(path), b"capped", ttl=(18, 20))

    def test_min_ttl_floors_the_lifetime(self):
        path = "/floor" + self.p
        self.origin.route(path, Reply(200, [("Cache-Control", "max-age=5")], b"floored"))
        self.assertStoredMiss(self.get(path), b"floored", ttl=(39, 40))
        self.assertHit(self.get(path), b"floored", ttl=(38, 40))

    # ---- cache key options --------------------------------------------------
    def test_sort_query_makes_parameter_order_irrelevant(self):
        base = "/sq" + self.p
        self.origin.route(base, echo_target())
        self.assertStoredMiss(self.get(base + "?a=1&b=2"), (base + "?a=1&b=2").encode())
        self.assertHit(self.get(base + "?b=2&a=1"), (base + "?a=1&b=2").encode())
        self.assertStoredMiss(self.get(base + "?a=1&b=3"), (base + "?a=1&b=3").encode())
        reqs = self.assertOriginCount(base, 2)
        self.assertEqual(reqs[0].target, base + "?a=1&b=2", "the origin gets the target as keyed")

    def test_query_order_matters_without_sort_query(self):
        base = "/def" + self.p
        self.origin.route(base, echo_target())
        self.assertStoredMiss(self.get(base + "?a=1&b=2"))
        self.assertStoredMiss(self.get(base + "?b=2&a=1"))
        self.assertOriginCount(base, 2)

    def test_ignore_params_drops_them_from_the_key(self):
        base = "/ign" + self.p
        self.origin.route(base, echo_target())
        first = base + "?id=1&utm_source=news"
        keyed = (base + "?id=1").encode()
        self.assertStoredMiss(self.get(first), keyed)
        self.assertHit(self.get(base + "?id=1"), keyed)
        self.assertHit(self.get(base + "?id=1&utm_source=other"), keyed)
        self.assertStoredMiss(self.get(base + "?id=2&utm_source=news"))
        reqs = self.assertOriginCount(base, 2)
        self.assertEqual(reqs[0].target, base + "?id=1", "what is forwarded is what is keyed: no ignored parameters")

    def test_host_is_part_of_the_cache_key_rfc9111_2(self):
        """The key is the target URI, authority included; the host compares
        case-insensitively and a default port is the same origin (RFC 3986 §6.2.3)."""
        path = "/def" + self.p
        self.origin.route(path, lambda req: Reply(200, [("Cache-Control", "max-age=100")],
                                                  b"host=" + req.header("host", "").encode()))
        self.assertStoredMiss(self.get(path, host="a.example.test"), b"host=a.example.test")
        self.assertStoredMiss(self.get(path, host="b.example.test"), b"host=b.example.test")
        self.assertHit(self.get(path, host="a.example.test"), b"host=a.example.test")
        self.assertHit(self.get(path, host="B.EXAMPLE.TEST"), b"host=b.example.test")
        self.assertHit(self.get(path, host="a.example.test:80"), b"host=a.example.test")
        self.assertOriginCount(path, 2)

    def test_extra_key_header_separates_entries(self):
        path = "/ten" + self.p
        self.origin.route(path, lambda req: Reply(200, [("Cache-Control", "max-age=100")],
                                                  b"tenant=" + req.header("x-tenant", "-").encode()))
        self.assertStoredMiss(self.get(path, [("X-Tenant", "a")]), b"tenant=a", fwd=("uri-miss", "vary-miss"))
        self.assertStoredMiss(self.get(path, [("X-Tenant", "b")]), b"tenant=b", fwd=("uri-miss", "vary-miss"))
        self.assertStoredMiss(self.get(path), b"tenant=-", fwd=("uri-miss", "vary-miss"))
        self.assertHit(self.get(path, [("X-Tenant", "a")]), b"tenant=a")
        self.assertHit(self.get(path, [("X-Tenant", "b")]), b"tenant=b")
        self.assertHit(self.get(path), b"tenant=-")
        self.assertOriginCount(path, 3)

    def test_unsafe_method_invalidates_the_entry_under_the_routes_key_normalization_rfc9111_4_4(self):
        base = "/sq" + self.p
        self.origin.route(base, lambda req: Reply(200, [("Cache-Control", "max-age=100")], b"v")
                          if req.method == "GET" else Reply(204, []))
        self.assertStoredMiss(self.get(base + "?a=1&b=2"), b"v")
        r = self.get(base + "?b=2&a=1", method="PUT", body=b"new")
        self.assertEqual(r.status, 204)
        self.assertStoredMiss(self.get(base + "?a=1&b=2"), b"v", msg="PUT ?b=2&a=1 names the same sorted key")
        self.assertOriginCount(base, 3)

    # ---- purging ----------------------------------------------------------
    def test_purge_method_from_loopback_removes_the_entry_and_its_variants(self):
        path = "/def" + self.p
        self.origin.route(path, lambda req: Reply(200, [("Cache-Control", "max-age=100"), ("Vary", "Accept-Language")],
                                                  b"purge me " + req.header("accept-language", "-").encode()))
        self.assertStoredMiss(self.get(path), b"purge me -")
        self.assertStoredMiss(self.get(path, [("Accept-Language", "en")]), b"purge me en", fwd="vary-miss")
        self.assertHit(self.get(path), b"purge me -")
        r = self.get(path, method="PURGE")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.inspect(path), [], "every variant is gone")
        r = self.get(path, method="PURGE")
        self.assertEqual(r.status, 404, "nothing left to purge")
        self.assertStoredMiss(self.get(path), b"purge me -")
        self.assertStoredMiss(self.get(path, [("Accept-Language", "en")]), b"purge me en", fwd="vary-miss")
        self.assertEqual([q.method for q in self.assertOriginCount(path, 4)], ["GET"] * 4,
                         "PURGE must not reach the origin")

    def test_admin_purge_by_path_removes_every_variant(self):
        path = "/def" + self.p
        n = {"n": 0}

        def handler(req):
            n["n"] += 1
            return Reply(200, [("Cache-Control", "max-age=100"), ("Vary", "Accept-Language")],
                         f"{req.header('accept-language')} #{n['n']}".encode())
        self.origin.route(path, handler)
        self.assertStoredMiss(self.get(path, [("Accept-Language", "en")]), b"en #1")
        self.assertStoredMiss(self.get(path, [("Accept-Language", "fr")]), b"fr #2", fwd="vary-miss")
        wait_until(lambda: len(self.inspect(path)) == 2, 5.0, 0.02, what="both variants stored")
        r = self.admin("POST", f"/purge?path={path}")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(json.loads(r.body)["purged"], 2, r.body)
        self.assertEqual(self.inspect(path), [])
        self.assertStoredMiss(self.get(path, [("Accept-Language", "en")]), b"en #3")
        self.assertStoredMiss(self.get(path, [("Accept-Language", "fr")]), b"fr #4", fwd="vary-miss")
        self.assertOriginCount(path, 4)


class PurgeDeniedTest(CacheTestCase):
    """server.purge_allow without loopback: PURGE is refused and removes nothing."""
    CONFIG = {"server": {"purge_allow": ["192.0.2.0/24"]}}

    def test_purge_from_an_address_outside_purge_allow_is_refused(self):
        self.origin.route(self.p, Reply(200, [("Cache-Control", "max-age=100")], b"kept"))
        self.assertStoredMiss(self.get(self.p), b"kept")
        r = self.get(self.p, method="PURGE")
        self.assertEqual(r.status, 403, r)
        self.assertHit(self.get(self.p), b"kept")
        self.assertOriginCount(self.p, 1)


if __name__ == "__main__":
    unittest.main()
