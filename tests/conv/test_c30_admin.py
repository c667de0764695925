"""Admin API and invalidation (issue #5): purges by path (every variant), prefix,
tag (Surrogate-Key space-separated, Cache-Tag comma-separated), all and route
generation; soft purges that keep serving stale while one revalidation runs;
/cache inspection; the bearer token; JSON errors; the PURGE method and
server.purge_allow; POST /reload (bad configs refused, the cache kept).

    client c1 { get /p/a; expect cache-status ~ stored }
    admin     { post /purge?prefix=/p/; expect 200 {"purged":1,...} }
    client c1 { get /p/a; expect cache-status ~ fwd=uri-miss }
"""

import time
import unittest
import urllib.parse

from _revaltest import (FRESH_HIT, PURGES, REQUESTS_TOTAL, REVALIDATED_304, SWR_HIT, Gate, ProxyCase,
                        Reply, admin_json, admin_request, cache_status, conditional, metric, wait_until)

MISS = r"^cachalot; fwd=(uri|vary)-miss; fwd-status=200; stored"
OBJECTS = "cachalot_cache_objects"


def cc_reply(body: bytes, cc: str = "max-age=300", extra=()):
    return Reply(200, [("Cache-Control", cc), ("Content-Type", "text/plain"), *extra], body)


class AdminPurgeTest(ProxyCase):
    CONFIG = {"routes": [
        {"name": "api", "prefix": "/api/"},
        {"name": "tenant", "prefix": "/tenant/", "key": {"headers": ["X-Tenant"]}},
        {"name": "sorted", "prefix": "/sorted/", "key": {"sort_query": True, "ignore_params": ["utm_source"]}},
    ]}

    def post(self, path: str, **kw):
        return admin_request(self.proxy, "POST", path, **kw)

    def store(self, path: str, headers=None):
        """A stored miss, and then the entry visible in the store: the client may
        have its last byte before the fill publishes, and a purge sent in between
        would find nothing (the tests below purge right after storing)."""
        objects = metric(self.proxy, OBJECTS)
        r = self.proxy.get(path, headers)
        self.assertEqual(r.status, 200)
        self.assertRegex(cache_status(r), MISS, f"{path} was not stored")
        wait_until(lambda: metric(self.proxy, OBJECTS) > objects, 5.0, what=f"{path} published to the store")
        return r

    def assert_hit(self, path: str, headers=None):
        n = self.origin.request_count(path.split("?")[0])
        r = self.proxy.get(path, headers)
        self.assertRegex(cache_status(r), FRESH_HIT, f"{path} should still be cached")
        self.assertEqual(self.origin.request_count(path.split("?")[0]), n)
        return r

    def assert_miss(self, path: str, headers=None):
        n = self.origin.request_count(path.split("?")[0])
        r = self.proxy.get(path, headers)
        self.assertRegex(cache_status(r), MISS, f"{path} should have been purged")
        self.assertEqual(self.origin.request_count(path.split("?")[0]), n + 1)
        return r

    def purge(self, query: str, kind: str, purged=None):
        before = metric(self.proxy, PURGES, kind=kind)
        r = self.post("/purge?" + query)
        self.assertEqual(r.status, 200, r)
        j = admin_json(r)
        if purged is not None:
            self.assertEqual(j.get("purged"), purged, j)
        self.assertEqual(metric(self.proxy, PURGES, kind=kind), before + 1, f"cachalot_purges_total{{kind={kind}}}")
        return j

    # ---- hard purges ------------------------------------------------------------------
    def test_purge_by_path_removes_every_variant(self):
        def vary(req):
            lang = req.header("accept-language", "none")
            return cc_reply(f"in {lang}".encode(), extra=[("Vary", "Accept-Language")])
        self.origin.route("/v", vary)
        self.origin.route("/other", cc_reply(b"other"))
        en, fr = [("Accept-Language", "en")], [("Accept-Language", "fr")]
        self.store("/v", en)
        self.store("/v", fr)
        self.store("/other")
        self.assertEqual(self.assert_hit("/v", fr).body, b"in fr")
        inspect = admin_json(admin_request(self.proxy, "GET", "/cache?path=/v"))
        self.assertEqual(len(inspect["variants"]), 2, inspect)
        self.purge("path=/v", "url", purged=2)
        self.assertEqual(self.assert_miss("/v", en).body, b"in en")
        self.assertEqual(self.assert_miss("/v", fr).body, b"in fr")
        self.assert_hit("/other")

    def test_purge_by_path_removes_every_variant_of_a_route_with_extra_key_headers(self):
        """README: POST /purge?path=/p "remove every variant of that URL"; a route's
        key.headers only split the URL into more variants."""
        self.origin.route("/tenant/h", lambda req: cc_reply(f"t={req.header('x-tenant')}".encode()))
        a, b = [("X-Tenant", "a")], [("X-Tenant", "b")]
        self.store("/tenant/h", a)
        self.store("/tenant/h", b)
        self.assert_hit("/tenant/h", a)
        self.purge("path=/tenant/h", "url", purged=2)
        self.assertEqual(self.assert_miss("/tenant/h", a).body, b"t=a")
        self.assertEqual(self.assert_miss("/tenant/h", b).body, b"t=b")

    def test_purge_by_path_applies_the_routes_query_normalisation(self):
        self.origin.route("/sorted/s", lambda req: cc_reply(req.target.encode()))
        self.store("/sorted/s?b=2&a=1&utm_source=mail")
        self.assert_hit("/sorted/s?a=1&b=2")
        target = "/sorted/s?b=2&a=1&utm_source=mail"
        self.purge("path=" + urllib.parse.quote(target, safe=""), "url", purged=1)
        self.assert_miss("/sorted/s?a=1&b=2")

    def test_purge_by_path_applies_to_every_host_unless_host_is_given(self):
        self.origin.route("/hh", lambda req: cc_reply(req.header("host").encode()))
        for h in ("a.test", "b.test", "c.test"):
            r = self.proxy.get("/hh", host=h)
            self.assertEqual(r.body, h.encode())
        self.purge("path=/hh&host=a.test", "url", purged=1)
        n = self.origin.request_count("/hh")
        self.assertRegex(cache_status(self.proxy.get("/hh", host="a.test")), MISS)
        self.assertRegex(cache_status(self.proxy.get("/hh", host="b.test")), FRESH_HIT)
        self.purge("path=/hh", "url", purged=3)
        for h in ("a.test", "b.test", "c.test"):
            self.assertRegex(cache_status(self.proxy.get("/hh", host=h)), MISS)
        self.assertEqual(self.origin.request_count("/hh"), n + 4)

    def test_purge_by_prefix_removes_only_urls_under_the_prefix(self):
        for p in ("/p/a", "/p/b", "/p/sub/c", "/q/d", "/pa"):
            self.origin.route(p, cc_reply(p.encode()))
            self.store(p)
        self.purge("prefix=" + urllib.parse.quote("/p/"), "prefix", purged=3)
        for p in ("/p/a", "/p/b", "/p/sub/c"):
            self.assert_miss(p)
        self.assert_hit("/q/d")
        self.assert_hit("/pa")

    def test_purge_by_tag_uses_surrogate_key_spaces_and_cache_tag_commas_and_leaves_untagged_entries(self):
        entries = {
            "/t/1": [("Surrogate-Key", "red blue")],
            "/t/2": [("Cache-Tag", "green,blue")],
            "/t/3": [("Surrogate-Key", "red")],
            "/t/4": [],
            "/t/5": [("Cache-Tag", "bluegreen")],
        }
        for p, extra in entries.items():
            self.origin.route(p, cc_reply(p.encode(), extra=extra))
            self.store(p)
        self.purge("tag=blue", "tag", purged=2)
        self.assert_miss("/t/1")
        self.assert_miss("/t/2")
        for p in ("/t/3", "/t/4", "/t/5"):
            self.assert_hit(p)
        self.purge("tag=red", "tag", purged=2)  # /t/1 again (re-stored above) and /t/3
        self.assert_miss("/t/3")
        self.assert_hit("/t/4")
        self.purge("tag=green", "tag", purged=1)
        self.assert_miss("/t/2")

    def test_purge_all_empties_the_cache(self):
        paths = ["/all/a", "/all/b", "/api/c"]
        for p in paths:
            self.origin.route(p, cc_reply(p.encode()))
            self.store(p)
        self.purge("all=1", "all", purged=3)
        wait_until(lambda: self.proxy.metrics().get("cachalot_cache_objects") == 0, 3, what="no objects left")
        for p in paths:
            self.assert_miss(p)

    def test_purge_by_route_invalidates_everything_under_the_route(self):
        for p in ("/api/x", "/api/y?q=1", "/other"):
            self.origin.route(p.split("?")[0], cc_reply(p.encode()))
            self.store(p)
        j = self.purge("route=api", "route")
        self.assertEqual(j.get("route"), "api", j)
        self.assert_miss("/api/x")
        self.assert_miss("/api/y?q=1")
        self.assert_hit("/other")
        # Stored again after the bump, entries are valid hits.
        self.assert_hit("/api/x")

    def test_purge_of_an_unknown_route_is_a_json_404(self):
        r = self.post("/purge?route=nope")
        self.assertEqual(r.status, 404)
        self.assertIn("error", admin_json(r))

    def test_soft_purge_serves_stale_with_swr_and_exactly_one_background_revalidation(self):
        path = "/soft/swr"
        gate = Gate(10)
        hdrs = [("Cache-Control", "max-age=300, stale-while-revalidate=60"), ("ETag", '"s1"')]
        self.origin.route(path, lambda req: Reply(304, hdrs, gate=gate) if conditional(req)
                          else Reply(200, hdrs, b"soft body"))
        self.store(path)
        try:
            j = self.purge(f"path={path}&soft=1", "url", purged=1)
            self.assertIs(j.get("soft"), True, j)
            for _ in range(10):
                t0 = time.monotonic()
                r = self.proxy.get(path)
                self.assertLess(time.monotonic() - t0, 0.5, "a soft-purged entry with swr must be served at once")
                self.assertEqual((r.status, r.body), (200, b"soft body"))
                self.assertRegex(cache_status(r), SWR_HIT)
            reqs = self.origin.wait_for_requests(2, path=path)
            self.assertEqual(len(reqs), 2, "exactly one background revalidation")
            self.assertEqual(reqs[1].header("if-none-match"), '"s1"')
        finally:
            gate.open()
        r = wait_until(lambda: (lambda x: x if FRESH_HIT.match(cache_status(x)) else None)(self.proxy.get(path)),
                       5, what="fresh again after the 304")
        self.assertEqual(r.body, b"soft body")
        self.assertEqual(self.origin.request_count(path), 2)

    def test_soft_purge_without_swr_revalidates_on_the_next_request(self):
        path = "/soft/plain"
        hdrs = [("Cache-Control", "max-age=300"), ("ETag", '"p1"')]
        self.origin.route(path, lambda req: Reply(304, hdrs) if conditional(req) else Reply(200, hdrs, b"plain"))
        self.store(path)
        self.purge(f"path={path}&soft=1", "url", purged=1)
        r = self.proxy.get(path)
        self.assertEqual((r.status, r.body), (200, b"plain"))
        self.assertRegex(cache_status(r), REVALIDATED_304)
        self.assertEqual(self.origin.requests(path)[1].header("if-none-match"), '"p1"')
        self.assert_hit(path)

    def test_soft_purge_keeps_stale_if_error_usable(self):
        """README: soft=1 marks stale; stale-if-error still applies (RFC 5861 §4)."""
        path = "/soft/sie"
        self.origin.route(path, Reply(200, [("Cache-Control", "max-age=300, stale-if-error=60"), ("ETag", '"f1"')],
                                      b"sie body"))
        self.store(path)
        self.purge(f"path={path}&soft=1", "url", purged=1)
        self.origin.route(path, Reply(action="reset"))
        r = self.proxy.get(path)
        self.assertEqual((r.status, r.body), (200, b"sie body"), r)
        self.assertRegex(cache_status(r), r"^cachalot; fwd=stale; fwd-status=0; ttl=(-\d+|0); detail=stale-if-error")
        self.assertEqual(self.origin.requests(path)[-1].header("if-none-match"), '"f1"')

    def test_soft_purge_by_tag_and_prefix_marks_entries_stale_instead_of_removing_them(self):
        hdrs = {"/soft/t/1": [("Surrogate-Key", "grp")], "/soft/t/2": [("Surrogate-Key", "grp")], "/soft/u": []}
        for p, extra in hdrs.items():
            h = [("Cache-Control", "max-age=300"), ("ETag", '"x"'), *extra]
            self.origin.route(p, lambda req, h=h: Reply(304, h) if conditional(req) else Reply(200, h, b"body"))
            self.store(p)
        self.purge("tag=grp&soft=1", "tag", purged=2)
        self.purge("prefix=/soft/u&soft=1", "prefix", purged=1)
        for p in hdrs:
            r = self.proxy.get(p)
            self.assertEqual((r.status, r.body), (200, b"body"))
            self.assertRegex(cache_status(r), REVALIDATED_304, p)
            self.assertEqual(self.origin.requests(p)[-1].header("if-none-match"), '"x"')

    # ---- inspection ------------------------------------------------------------------------
    def test_cache_inspection_shows_key_variants_age_ttl_tags_and_size(self):
        body = b"x" * 1234
        self.origin.route("/insp", Reply(200, [("Cache-Control", "max-age=100"), ("ETag", '"i1"'),
                                              ("Surrogate-Key", "k1 k2")], body))
        self.store("/insp")
        r = admin_request(self.proxy, "GET", "/cache?path=/insp")
        self.assertEqual(r.status, 200, r)
        j = admin_json(r)
        self.assertIn("/insp", j["key"])
        self.assertEqual(len(j["variants"]), 1, j)
        v = j["variants"][0]
        self.assertEqual(v["size"], 1234)
        self.assertEqual(v["etag"], '"i1"')
        self.assertEqual(sorted(v["tags"]), ["k1", "k2"])
        self.assertEqual(v["status"], 200)
        self.assertGreaterEqual(v["age"], 0)
        self.assertTrue(90 <= v["ttl"] <= 100, v)
        r = admin_request(self.proxy, "GET", "/cache?path=/not-cached")
        self.assertEqual(r.status, 404)
        self.assertEqual(admin_json(r).get("variants", []), [])

    def test_admin_errors_are_json(self):
        for method, path, status in (("GET", "/no-such-endpoint", 404), ("GET", "/purge?all=1", 405),
                                     ("POST", "/purge", 400), ("POST", "/purge?bogus=1", 400),
                                     ("GET", "/cache", 400), ("GET", "/reload", 405)):
            with self.subTest(method=method, path=path):
                r = admin_request(self.proxy, method, path)
                self.assertEqual(r.status, status, r)
                j = admin_json(r)
                self.assertIsInstance(j.get("error"), str, j)
                self.assertTrue(j["error"])

    # ---- the PURGE method ---------------------------------------------------------------------
    def test_purge_method_from_loopback_removes_the_url(self):
        self.origin.route("/m", cc_reply(b"m"))
        self.store("/m")
        m0 = self.proxy.metrics()
        r = self.proxy.request("PURGE", "/m")
        self.assertEqual(r.status, 200, r)
        self.assert_miss("/m")
        self.assertEqual(self.proxy.request("PURGE", "/never-cached").status, 404)
        # A request is counted when its exchange ends, just after its last byte was written.
        wait_until(lambda: self.proxy.metrics().get(REQUESTS_TOTAL, result="purge") - m0.get(REQUESTS_TOTAL, result="purge") >= 2,
                   5.0, what="both PURGE requests counted")
        m = self.proxy.metrics()
        self.assertEqual(m.get(PURGES, kind="method") - m0.get(PURGES, kind="method"), 2)
        self.assertEqual(m.get(REQUESTS_TOTAL, result="purge") - m0.get(REQUESTS_TOTAL, result="purge"), 2)
        self.assertEqual(self.origin.requests("/never-cached"), [], "PURGE is never forwarded")

    def test_purge_method_from_an_address_outside_purge_allow_is_refused(self):
        self.origin.route("/m2", cc_reply(b"m2"))
        self.store("/m2")
        cfg = self.config()
        cfg.setdefault("server", {})["purge_allow"] = ["10.0.0.0/8"]
        self.proxy.write_config(cfg)
        r = self.post("/reload")
        self.assertEqual(r.status, 200, r)
        r = self.proxy.request("PURGE", "/m2")
        self.assertEqual(r.status, 403, r)
        self.assert_hit("/m2")

    # ---- reload ---------------------------------------------------------------------------------
    def test_reload_with_a_bad_config_returns_the_error_and_keeps_the_old_config(self):
        self.origin.route("/api/keep", cc_reply(b"keep"))
        self.store("/api/keep")
        bad = self.config()
        bad["routes"] = [{"name": "renamed", "prefix": "/api/"}]
        bad["cache"] = {"no_such_key": 1}
        self.proxy.write_config(bad)
        r = self.post("/reload")
        self.assertEqual(r.status, 400, r)
        err = admin_json(r).get("error", "")
        self.assertIn("no_such_key", err)
        # The running config is unchanged: the route still exists, the cache still serves.
        self.assertEqual(self.post("/purge?route=api").status, 200)
        self.assert_miss("/api/keep")
        self.assert_hit("/api/keep")
        self.proxy.write_config()
        self.assertEqual(self.post("/reload").status, 200)

    def test_a_reload_keeps_the_cache(self):
        self.origin.route("/k", cc_reply(b"k"))
        self.store("/k")
        cfg = self.config()
        cfg["routes"] = cfg["routes"] + [{"name": "extra", "prefix": "/extra/"}]
        self.proxy.write_config(cfg)
        r = self.post("/reload")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.post("/purge?route=extra").status, 200, "the new config applies at once")
        self.assertEqual(self.assert_hit("/k").body, b"k")
        # The same through SIGHUP.
        since = self.proxy.log_offset()
        self.proxy.reload(self.config())
        self.proxy.wait_for_log(r"configuration reloaded", since=since)
        self.assertEqual(self.assert_hit("/k").body, b"k")
        self.assertEqual(self.origin.request_count("/k"), 1)


class AdminTokenTest(ProxyCase):
    CONFIG = {"admin": {"token": "s3cret-token"}}

    def test_the_admin_token_is_required(self):
        self.origin.route("/tok", cc_reply(b"tok"))
        self.assertRegex(cache_status(self.proxy.get("/tok")), MISS)
        for headers in (None, [("Authorization", "Bearer wrong")], [("Authorization", "Basic czNjcmV0LXRva2Vu")],
                        [("Authorization", "Bearer s3cret-token-and-more")]):
            with self.subTest(headers=headers):
                for method, path in (("GET", "/metrics"), ("POST", "/purge?all=1"), ("GET", "/cache?path=/tok"),
                                     ("POST", "/reload")):
                    r = admin_request(self.proxy, method, path, headers=headers)
                    self.assertEqual(r.status, 401, f"{method} {path}: {r!r}")
                    self.assertIn("error", admin_json(r))
        self.assertRegex(cache_status(self.proxy.get("/tok")), FRESH_HIT, "a refused purge must not purge")
        ok = [("Authorization", "Bearer s3cret-token")]
        r = admin_request(self.proxy, "GET", "/metrics", headers=ok)
        self.assertEqual(r.status, 200)
        self.assertIn("cachalot_requests_total", r.text)
        r = admin_request(self.proxy, "POST", "/purge?all=1", headers=ok)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(admin_json(r).get("purged"), 1)
        self.assertRegex(cache_status(self.proxy.get("/tok")), MISS)


if __name__ == "__main__":
    unittest.main()
