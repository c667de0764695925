"""Admin API safety (issue #9): the admin listener is on loopback, but the
operator's browser is too, so any web page can make requests to it.

- CSRF: a cross-site form or fetch() may POST without a CORS preflight
  (Content-Type: text/plain) and purge the cache without reading the answer.
  State changes with a foreign Origin (RFC 6454 §7) or a cross-site
  Sec-Fetch-Site (W3C Fetch Metadata) are refused with 403.
- DNS rebinding: attacker.example re-pointed at 127.0.0.1 is same-origin for
  the browser, which then reads /metrics and /cache; its Host still says
  attacker.example, so only IP literals, localhost and admin.hosts are
  answered (421 Misdirected Request, RFC 9110 §15.5.20, otherwise).
- Credentials in keys: Vary: Cookie / Authorization put those values in the
  variant key; GET /cache shows them only as SHA-256 digests.
- Pipelining (RFC 9112 §9.3.2): several admin requests in one write are all
  answered, in order.
- The test clock (test builds): POST /test/clock moves time, so staleness is
  tested without sleeping.

    admin  { post /purge?all=1 origin:"http://attacker.example"; expect 403 }
    client { get /a; expect cache-status ~ hit }
    admin  { get /metrics host:"attacker.example:9901"; expect 421 }
"""

import hashlib
import json
import os
import unittest

from _revaltest import (FRESH_HIT, PURGES, REVALIDATED_304, ProxyCase, RawClient, Reply, admin_json, cache_status,
                        conditional, metric, wait_until)
from cachalot import build_request, free_port, run_binary, to_yaml

MISS = r"^cachalot; fwd=(uri|vary)-miss; fwd-status=200; stored"
OBJECTS = "cachalot_cache_objects"


def cc_reply(body: bytes, cc: str = "max-age=300", extra=()):
    return Reply(200, [("Cache-Control", cc), ("Content-Type", "text/plain"), *extra], body)


def digest(value: str) -> str:
    """What /cache shows instead of a credential: sha256: plus 16 hex digits."""
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:16]


class AdminSafetyCase(ProxyCase):
    def admin(self, method: str, path: str, headers=None, **kw):
        return self.proxy.admin_request(method, path, headers, **kw)

    def own_origin(self) -> str:
        return f"http://127.0.0.1:{self.proxy.admin_port}"

    def store(self, path: str, headers=None):
        """A stored miss, visible in the store before the test goes on (the
        client may have its last byte before the fill publishes)."""
        objects = metric(self.proxy, OBJECTS)
        r = self.proxy.get(path, headers)
        self.assertEqual(r.status, 200, r)
        self.assertRegex(cache_status(r), MISS, f"{path} was not stored")
        wait_until(lambda: metric(self.proxy, OBJECTS) > objects, 5.0, what=f"{path} published to the store")
        return r

    def assert_hit(self, path: str, headers=None):
        n = self.origin.request_count(path)
        r = self.proxy.get(path, headers)
        self.assertRegex(cache_status(r), FRESH_HIT, f"{path} should still be cached")
        self.assertEqual(self.origin.request_count(path), n)
        return r

    def assert_refused(self, r, status: int, what: str):
        self.assertEqual(r.status, status, f"{what}: {r!r}")
        self.assertIsInstance(admin_json(r).get("error"), str, f"{what}: the refusal is a JSON error")


class OpenListenerTest(AdminSafetyCase):
    """An admin listener off loopback is reachable from the network: it needs admin.token."""

    MESSAGE = "admin.token: required when admin.listen is not a loopback address"

    def test_the_daemon_refuses_to_start_with_an_open_admin_listener_and_no_token(self):
        path = os.path.join(self.proxy.tmp.name, "open.yaml")
        with open(path, "w") as f:
            f.write(to_yaml({"server": {"listen": [f"127.0.0.1:{free_port()}"]},
                             "upstream": {"url": self.proxy.upstream_url},
                             "admin": {"listen": f"0.0.0.0:{free_port()}"}}))
        for args in (["--check-config", path], ["--config", path]):
            with self.subTest(args=args[0]):
                r = run_binary(args, timeout=10)
                self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
                self.assertIn(self.MESSAGE, r.stdout + r.stderr)

    def test_a_reload_to_an_open_admin_listener_without_a_token_is_refused(self):
        cfg = {"admin": {"listen": f"0.0.0.0:{self.proxy.admin_port}"}}
        self.proxy.write_config(cfg)
        r = self.admin("POST", "/reload")
        self.assert_refused(r, 400, "reload to an open admin listener")
        self.assertIn(self.MESSAGE, admin_json(r)["error"])
        cfg["admin"]["token"] = "t"
        self.proxy.write_config(cfg)
        self.assertEqual(self.admin("POST", "/reload").status, 200, "with a token it is accepted")


class CrossSiteRequestTest(AdminSafetyCase):
    """CSRF and Fetch Metadata: state changes from other sites are refused."""

    def test_a_cross_site_text_plain_post_purge_with_a_foreign_origin_purges_nothing(self):
        """CSRF: <form enctype=text/plain method=POST action=http://127.0.0.1:9901/purge?all=1>
        needs no preflight; the browser still labels it with Origin (RFC 6454 §7.3)."""
        self.origin.route("/csrf", cc_reply(b"kept"))
        self.store("/csrf")
        purges = metric(self.proxy, PURGES)
        r = self.admin("POST", "/purge?all=1", [("Origin", "http://attacker.example"),
                                                ("Content-Type", "text/plain")], body=b"x=1")
        self.assert_refused(r, 403, "cross-site POST /purge")
        self.assertEqual(self.assert_hit("/csrf").body, b"kept", "a refused purge must not purge")
        self.assertEqual(metric(self.proxy, PURGES), purges, "no purge was counted")
        # The listener's own origin (a page served from it) and tools without Origin may purge.
        r = self.admin("POST", "/purge?all=1", [("Origin", self.own_origin())])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(admin_json(r).get("purged"), 1)

    def test_foreign_and_opaque_origins_are_refused_for_every_state_change(self):
        """CSRF: any method other than GET/HEAD is a state change; "null" is the
        opaque origin of sandboxed frames and file: pages; another port on
        localhost is another origin (a local dev server's page)."""
        port = self.proxy.admin_port
        for origin in ("http://attacker.example", "null", f"http://localhost:{port + 1}",
                       f"https://127.0.0.1:{port}", "http://192.0.2.1"):
            for method, path in (("POST", "/purge?all=1"), ("POST", "/reload"), ("DELETE", "/purge?all=1"),
                                 ("PUT", "/reload")):
                with self.subTest(origin=origin, method=method, path=path):
                    self.assert_refused(self.admin(method, path, [("Origin", origin)]), 403, f"{method} {path}")

    def test_sec_fetch_site_cross_site_and_same_site_state_changes_are_refused(self):
        """Fetch Metadata: Sec-Fetch-Site is sent by browsers even where Origin
        is not; only same-origin and none (typed by the user) may change state."""
        for site in ("cross-site", "same-site"):
            with self.subTest(site=site):
                self.assert_refused(self.admin("POST", "/reload", [("Sec-Fetch-Site", site)]), 403, site)
                self.assert_refused(self.admin("POST", "/purge?all=1", [("Sec-Fetch-Site", site)]), 403, site)
        for site in ("same-origin", "none"):
            with self.subTest(site=site):
                self.assertEqual(self.admin("POST", "/reload", [("Sec-Fetch-Site", site)]).status, 200)

    def test_reads_are_not_state_changes(self):
        """A cross-site GET cannot read the answer (no CORS headers), so it is left alone."""
        r = self.admin("GET", "/metrics", [("Origin", "http://attacker.example"), ("Sec-Fetch-Site", "cross-site")])
        self.assertEqual(r.status, 200, r)


class HostCheckTest(AdminSafetyCase):
    """DNS rebinding: only Host names that cannot be rebound are answered."""

    def test_a_dns_rebinding_get_metrics_is_misdirected(self):
        """DNS rebinding: the page's origin is http://attacker.example:9901, now
        resolving to 127.0.0.1; the browser sends its own Host."""
        port = self.proxy.admin_port
        for path in ("/metrics", "/cache?path=/", "/healthz"):
            with self.subTest(path=path):
                r = self.admin("GET", path, host=f"attacker.example:{port}")
                self.assert_refused(r, 421, f"GET {path} with a rebound Host")
                self.assertNotIn(b"cachalot_requests_total", r.body)
        self.assert_refused(self.admin("POST", "/purge?all=1", host="attacker.example"), 421, "rebound POST")

    def test_ip_literals_and_localhost_are_answered_on_any_port(self):
        port = self.proxy.admin_port
        for host in (f"127.0.0.1:{port}", "127.0.0.1", f"[::1]:{port}", "10.0.0.1:80", f"localhost:{port}",
                     "localhost", "LOCALHOST:1"):
            with self.subTest(host=host):
                self.assertEqual(self.admin("GET", "/metrics", host=host).status, 200)

    def test_names_that_merely_look_local_are_misdirected(self):
        for host in ("a.localhost", "127.0.0.1.nip.io", "localhost.attacker.example", "2130706433"):
            with self.subTest(host=host):
                self.assert_refused(self.admin("GET", "/metrics", host=host), 421, host)

    def test_an_http11_request_without_host_is_a_bad_request(self):
        """RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without Host."""
        with RawClient(self.proxy.admin_port) as c:
            c.send(b"GET /metrics HTTP/1.1\r\n\r\n")
            r = c.read_response()
        self.assert_refused(r, 400, "no Host")


class AdminHostsTest(AdminSafetyCase):
    CONFIG = {"admin": {"hosts": ["cachalot-admin.test", "ops.test:9901"]}}

    def test_admin_hosts_entries_are_answered_and_nothing_else(self):
        """admin.hosts: an entry without a port matches any port; with one, only that port."""
        port = self.proxy.admin_port
        for host, status in ((f"cachalot-admin.test:{port}", 200), ("CACHALOT-ADMIN.test", 200),
                             ("ops.test:9901", 200), (f"ops.test:{port}", 421), ("other.test", 421)):
            with self.subTest(host=host):
                self.assertEqual(self.admin("GET", "/metrics", host=host).status, status)
        # A page served under an admin.hosts name is the listener's own origin.
        r = self.admin("POST", "/reload", [("Origin", "http://cachalot-admin.test")])
        self.assertEqual(r.status, 200, r)


class TokenTest(AdminSafetyCase):
    CONFIG = {"admin": {"token": "s3cret-token"}}

    def test_the_token_is_compared_whole_and_the_scheme_case_insensitively(self):
        """RFC 9110 §11.1: the auth scheme is case-insensitive; the credentials
        are not. (The comparison is constant-time: tests/unit/admin/guard_test.cpp.)"""
        for auth in ("Bearer s3cret-toke", "Bearer s3cret-token!", "Bearer S3CRET-TOKEN", "s3cret-token",
                     "Basic czNjcmV0LXRva2Vu"):
            with self.subTest(auth=auth):
                self.assert_refused(self.admin("GET", "/metrics", [("Authorization", auth)]), 401, auth)
        for auth in ("Bearer s3cret-token", "bearer s3cret-token", "BEARER s3cret-token"):
            with self.subTest(auth=auth):
                self.assertEqual(self.admin("GET", "/metrics", [("Authorization", auth)]).status, 200)

    def test_a_valid_token_does_not_excuse_a_cross_site_state_change(self):
        r = self.admin("POST", "/purge?all=1", [("Authorization", "Bearer s3cret-token"),
                                                ("Origin", "http://attacker.example")])
        self.assert_refused(r, 403, "cross-site POST with the token")


class CacheRedactionTest(AdminSafetyCase):
    """/cache never prints Cookie, Authorization or Proxy-Authorization values held in keys."""

    CONFIG = {"routes": [{"name": "r", "prefix": "/r/"}]}

    def test_credentials_in_variant_keys_are_shown_as_digests(self):
        self.origin.route("/r/a", cc_reply(b"per user", "public, max-age=300",
                                           [("Vary", "Cookie, Authorization, Proxy-Authorization, Accept-Encoding")]))
        secrets = {"Cookie": "sid=cookie-secret-1", "Authorization": "Bearer auth-secret-2",
                   "Proxy-Authorization": "Basic cHJveHktc2VjcmV0LTM="}
        self.store("/r/a", [*secrets.items(), ("Accept-Encoding", "gzip")])
        r = self.admin("GET", "/cache?path=/r/a")
        self.assertEqual(r.status, 200, r)
        for value in (*secrets.values(), "cookie-secret", "auth-secret", "cHJveHkt"):
            self.assertNotIn(value.encode(), r.body, "a credential value appears in /cache")
        j = admin_json(r)
        self.assertEqual(len(j["variants"]), 1, j)
        variant = j["variants"][0]["variant"]
        self.assertEqual(variant.split("\n"), [
            "accept-encoding:4:gzip",
            f"authorization:{len(secrets['Authorization'])}:{digest(secrets['Authorization'])}",
            f"cookie:{len(secrets['Cookie'])}:{digest(secrets['Cookie'])}",
            f"proxy-authorization:{len(secrets['Proxy-Authorization'])}:{digest(secrets['Proxy-Authorization'])}",
        ])
        self.assertNotIn("secret", j["key"])


class RedactFieldsTest(AdminSafetyCase):
    CONFIG = {"routes": [{"name": "r", "prefix": "/r/"}], "admin": {"redact_fields": ["X-Api-Key"]}}

    def test_admin_redact_fields_are_shown_as_digests_too(self):
        self.origin.route("/r/k", cc_reply(b"per key", "max-age=300", [("Vary", "X-Api-Key, X-Device")]))
        self.store("/r/k", [("X-Api-Key", "key-secret-4"), ("X-Device", "mobile")])
        r = self.admin("GET", "/cache?path=/r/k")
        self.assertEqual(r.status, 200, r)
        self.assertNotIn(b"key-secret-4", r.body)
        variant = admin_json(r)["variants"][0]["variant"]
        self.assertEqual(variant.split("\n"), [f"x-api-key:12:{digest('key-secret-4')}", "x-device:6:mobile"])


class PipeliningTest(AdminSafetyCase):
    """RFC 9112 §9.3.2: a server answers pipelined requests in the order received."""

    def head(self, method: str, path: str, **kw) -> bytes:
        return build_request(method, path, host=f"127.0.0.1:{self.proxy.admin_port}", **kw)

    def test_several_admin_requests_in_one_write_are_all_answered_in_order(self):
        reqs = [self.head("GET", "/healthz"), self.head("GET", "/metrics"), self.head("POST", "/purge", body=b""),
                self.head("HEAD", "/healthz"), self.head("GET", "/no-such-endpoint")]
        with RawClient(self.proxy.admin_port) as c:
            c.send(b"".join(reqs))
            responses = c.read_responses(len(reqs), ["GET", "GET", "POST", "HEAD", "GET"])
            self.assertTrue(c.is_open(), "keep-alive after the pipeline")
        self.assertEqual([r.status for r in responses], [200, 200, 400, 200, 404])
        self.assertEqual(json.loads(responses[0].text), {"status": "ok"})
        self.assertIn("cachalot_requests_total", responses[1].text)
        self.assertEqual(responses[3].body, b"")

    def test_a_pipelined_purge_with_a_body_is_delimited_by_its_length(self):
        self.origin.route("/pp", cc_reply(b"pp"))
        self.store("/pp")
        reqs = [self.head("POST", "/purge?path=/pp", body=b"ignored body"), self.head("GET", "/healthz")]
        with RawClient(self.proxy.admin_port) as c:
            c.send(b"".join(reqs))
            responses = c.read_responses(2, ["POST", "GET"])
        self.assertEqual([r.status for r in responses], [200, 200])
        self.assertEqual(admin_json(responses[0]).get("purged"), 1)

    def test_connection_close_in_the_pipeline_ends_it_after_that_answer(self):
        reqs = [self.head("GET", "/healthz"), self.head("GET", "/healthz", headers=[("Connection", "close")]),
                self.head("GET", "/metrics")]
        with RawClient(self.proxy.admin_port) as c:
            c.send(b"".join(reqs))
            responses = c.read_responses(2)
            self.assertEqual([r.status for r in responses], [200, 200])
            self.assertEqual(c.wait_closed(5), "eof")

    def test_an_oversized_head_after_a_good_request_is_refused_and_ends_the_connection(self):
        """The 16 KiB head limit holds for buffered requests too (RFC 6585 §5: 431)."""
        reqs = [self.head("GET", "/healthz"), self.head("GET", "/metrics", headers=[("X-Big", "a" * 20000)])]
        with RawClient(self.proxy.admin_port) as c:
            c.send(b"".join(reqs))
            self.assertEqual(c.read_response().status, 200)
            r = c.read_response()
            self.assert_refused(r, 431, "oversized head")
            self.assertEqual(r.header("connection"), "close")
            self.assertIn(c.wait_closed(5), ("eof", "reset"))


class TestClockTest(AdminSafetyCase):
    """POST /test/clock (builds with -DCACHALOT_TEST_CLOCK=ON) moves cachalot's clock."""

    def test_an_entry_is_stale_after_advance_clock_past_its_max_age_without_sleeping(self):
        """RFC 9111 §4.2: max-age=60 is fresh for 60 s; at 61 s it is stale and,
        with a validator, revalidated with If-None-Match (§4.3.1)."""
        hdrs = [("Cache-Control", "max-age=60"), ("ETag", '"c1"')]
        self.origin.route("/clock", lambda req: Reply(304, hdrs) if conditional(req) else Reply(200, hdrs, b"clock"))
        self.store("/clock")
        self.assertEqual(self.assert_hit("/clock").body, b"clock")
        self.assertGreaterEqual(self.proxy.advance_clock(61), 61000)
        r = self.proxy.get("/clock")
        self.assertEqual((r.status, r.body), (200, b"clock"))
        self.assertRegex(cache_status(r), REVALIDATED_304)
        reqs = self.origin.requests("/clock")
        self.assertEqual(len(reqs), 2, "one revalidation")
        self.assertEqual(reqs[1].header("if-none-match"), '"c1"')
        self.assertEqual(self.assert_hit("/clock").body, b"clock", "the 304 freshened it for another 60 s")

    def test_the_endpoint_refuses_a_bad_duration_and_reads(self):
        self.assertEqual(self.proxy.advance_clock(0), 0)  # skips when the build says it has no test clock
        self.assert_refused(self.admin("POST", "/test/clock?advance=soon"), 400, "bad duration")
        self.assert_refused(self.admin("GET", "/test/clock?advance=1s"), 405, "GET")
        self.assert_refused(self.admin("POST", "/test/clock?advance=1s", [("Origin", "http://attacker.example")]),
                            403, "cross-site clock change")
        r = self.admin("POST", "/test/clock?advance=1500ms")
        self.assertEqual(admin_json(r), {"offset_ms": 1500})
        self.proxy.wait_for_log(r"test clock compiled in")


if __name__ == "__main__":
    unittest.main()
