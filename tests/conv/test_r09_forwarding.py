"""What cachalot forwards is what it keys, and nothing a client (or a stray
origin byte) sends can make the two differ.

- Connection-nominated fields (RFC 9110 §7.6.1) are removed before the key is
  derived, except the fields the proxy must send itself (Host).
- The target and Host are validated (RFC 9112 §3.2, RFC 9110 §4.2.4, §7.2) and
  normalised (RFC 3986 §6.2.2: case, percent-encoding of unreserved characters,
  dot segments, the default port); the origin receives the normalised form, so a
  request and its normalised twin share one entry.
- A pooled origin connection with unread bytes is never reused (RFC 9112 §9.3).
- An unsolicited 101 is an origin error (RFC 9110 §15.2.2).
- Forwarding fields are the proxy's own unless the peer is a trusted proxy
  (`server.trusted_proxies`), and override fields that some frameworks obey
  (`server.drop_request_fields`) never reach the origin (unkeyed-header poisoning).

    client c1 { get /x/../y }
    origin o1 { expect GET /y }
    client c2 { get /y; expect cache-status ~ hit }
"""

import unittest

from _cachetest import CacheTestCase, Gate, Reply
from _revaltest import ProxyCase

NO_STORE = [("Cache-Control", "no-store")]
CACHEABLE = [("Cache-Control", "max-age=300")]
HOST = "cachalot.test"
OVERRIDE_FIELDS = ["X-Original-URL", "X-Rewrite-URL", "X-HTTP-Method-Override", "X-HTTP-Method",
                   "X-Method-Override"]
CLIENT_FORWARDING = [("X-Forwarded-For", "1.2.3.4"), ("X-Forwarded-Host", "evil.example"),
                     ("X-Forwarded-Proto", "https"), ("Forwarded", "for=1.2.3.4;host=evil.example")]


def forwarded_elements(value: str) -> list:
    """Forwarded (RFC 7239 §4) as a list of {param: value} dicts, quotes removed."""
    out = []
    for element in value.split(","):
        d = {}
        for pair in element.split(";"):
            pair = pair.strip()
            if not pair:
                continue
            k, sep, v = pair.partition("=")
            if not sep:
                raise AssertionError(f"bad forwarded-pair {pair!r} in {value!r}")
            v = v.strip()
            if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
                v = v[1:-1]
            d[k.strip().lower()] = v
        out.append(d)
    return out


def assert_our_forwarded_element(tc, element: dict, msg=""):
    """for=127.0.0.1;host=<Host>;proto=http (a by= parameter may be added)."""
    tc.assertEqual({k: v for k, v in element.items() if k != "by"},
                   {"for": "127.0.0.1", "host": HOST, "proto": "http"}, msg)


class ConnectionNominatedFieldsTest(CacheTestCase):
    """RFC 9110 §7.6.1: a proxy removes the fields Connection names, then keys and
    forwards what is left."""

    def test_connection_naming_host_does_not_remove_the_host_sent_to_the_origin_rfc9110_7_6_1(self):
        """Host is not a hop-by-hop field (RFC 9110 §7.2: a proxy MUST send Host);
        naming it in Connection must not make cachalot drop or replace it."""
        self.origin.route(self.p, Reply(200, NO_STORE, b"ok"))
        with self.proxy.client() as cl:
            cl.request("GET", self.p, [("Connection", "close, Host")])
            r = cl.read_response()
            self.assertEqual((r.status, r.body), (200, b"ok"), r)
        req = self.assertOriginCount(self.p, 1)[0]
        self.assertEqual(req.headers.get_all("host"), [HOST], req)

    def test_a_vary_field_named_in_connection_is_neither_forwarded_nor_keyed_rfc9110_7_6_1(self):
        """`Connection: Accept-Language` + `Accept-Language: fr`: the field is hop-by-hop
        for this request, so the origin gets no Accept-Language and the answer is the
        "no Accept-Language" variant, never confused with the stored fr variant."""
        def handler(req):
            lang = req.header("accept-language", "none")
            return Reply(200, CACHEABLE + [("Vary", "Accept-Language")], f"lang={lang}".encode())
        self.origin.route(self.p, handler)
        fr = [("Accept-Language", "fr")]
        # A plain fr request stores the fr variant.
        self.assertStoredMiss(self.get(self.p, fr), b"lang=fr")
        self.wait_stored(self.p)
        # The nominated request: forwarded without Accept-Language.
        r = self.get(self.p, [("Connection", "Accept-Language"), ("Accept-Language", "fr")])
        self.assertEqual((r.status, r.body), (200, b"lang=none"),
                         "the nominated Accept-Language must not select the fr variant nor reach the origin")
        self.assertCacheStatus(r, fwd="vary-miss", fwd_status=200, stored=True)
        reqs = self.assertOriginCount(self.p, 2)
        self.assertIsNone(reqs[1].header("accept-language"), f"a Connection-nominated field was forwarded: {reqs[1]}")
        self.assertNotIn("accept-language", reqs[1].headers.tokens("connection"))
        # The fr variant is untouched...
        self.assertHit(self.get(self.p, fr), b"lang=fr", msg="the fr variant")
        # ...and the nominated request's answer is keyed as "no Accept-Language".
        self.assertHit(self.get(self.p), b"lang=none", msg="the no-Accept-Language variant")
        self.assertOriginCount(self.p, 2)


class TargetAndHostTest(CacheTestCase):
    """RFC 9112 §3.2 / RFC 9110 §4.2 and §7.2: malformed targets and Hosts get a 400
    that closes the connection and reaches no origin; valid ones are normalised
    (RFC 3986 §6.2.2) before they are forwarded and keyed."""

    def rejected(self, raw: bytes):
        n = self.origin.request_count()
        with self.proxy.client() as cl:
            cl.send(raw)
            r = cl.read_response()
            self.assertEqual(r.status, 400, f"{raw!r}: {r!r}")
            self.assertIn(cl.wait_closed(3), ("eof", "reset"), "a 400 must close the connection")
        self.assertEqual(self.origin.request_count(), n,
                         f"{raw!r} reached the origin: {self.origin.requests()[n:]}")

    # ---- invalid targets -------------------------------------------------------------------
    def test_a_fragment_in_the_request_target_is_a_400_rfc9112_3_2(self):
        """origin-form = absolute-path [ "?" query ] (RFC 9112 §3.2.1): no '#'. Forwarding
        '/p#/../x' lets the origin and the cache disagree on the path."""
        self.origin.route("/p", Reply(200, CACHEABLE, b"p"))
        self.rejected(b"GET /p#/../x HTTP/1.1\r\nHost: cachalot.test\r\n\r\n")

    def test_an_absolute_form_target_with_a_non_http_scheme_is_a_400_rfc9112_3_2_2(self):
        """absolute-form is an http(s) URI here (RFC 9110 §4.2): ftp:// is not ours to serve."""
        self.rejected(b"GET ftp://h.example/p HTTP/1.1\r\nHost: h.example\r\n\r\n")

    def test_an_absolute_form_target_with_userinfo_is_a_400_rfc9110_4_2_4(self):
        """'A recipient SHOULD parse for userinfo and treat its presence as an error'."""
        self.rejected(b"GET http://user@h.example/p HTTP/1.1\r\nHost: h.example\r\n\r\n")

    def test_an_invalid_percent_escape_in_the_path_is_a_400_rfc3986_2_1(self):
        """pct-encoded = "%" HEXDIG HEXDIG; '%zz' cannot be normalised, so it cannot be keyed."""
        self.rejected(b"GET /x/%zz HTTP/1.1\r\nHost: cachalot.test\r\n\r\n")

    # ---- invalid Hosts ---------------------------------------------------------------------
    def test_a_host_with_a_slash_is_a_400_rfc9110_7_2(self):
        """Host = uri-host [ ":" port ]; a '/' is not part of a reg-name (RFC 3986 §3.2.2)."""
        self.rejected(b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n")

    def test_a_host_with_userinfo_is_a_400_rfc9110_7_2(self):
        """RFC 9110 §7.2 / §4.2.4: Host is uri-host [ ":" port ]; userinfo has no place in it."""
        self.rejected(b"GET / HTTP/1.1\r\nHost: user@a\r\n\r\n")

    def test_a_percent_encoded_host_is_a_400_rfc9110_7_2(self):
        """'a%2eb' would be 'a.b' to one parser and a different name to another:
        cachalot refuses percent-encoding in Host rather than guess."""
        self.rejected(b"GET / HTTP/1.1\r\nHost: a%2eb\r\n\r\n")

    # ---- normalisation: forwarded == keyed ---------------------------------------------------
    def echo(self, prefix):
        self.origin.route(prefix + "/", lambda req: Reply(200, CACHEABLE, req.target.encode()), prefix=True)

    def assert_forwarded_as_then_hit(self, sent: str, normal: str, headers=None):
        r = self.get(sent, headers)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, normal.encode(), f"{sent!r} was forwarded as {r.body!r}, not {normal!r}")
        reqs = self.origin.requests()
        self.assertEqual(reqs[-1].target, normal)
        self.assertCacheStatus(r, fwd="uri-miss", fwd_status=200, stored=True)
        self.wait_stored(normal)
        n = self.origin.request_count()
        self.assertHit(self.get(normal, headers), normal.encode(), msg=f"{normal!r} after {sent!r}")
        self.assertEqual(self.origin.request_count(), n)

    def test_dot_segments_are_removed_before_forwarding_and_keying_rfc3986_5_2_4(self):
        """RFC 3986 §5.2.4: '/x/../y' is '/y'; the origin must get the path the entry is keyed by."""
        self.echo(self.p)
        self.assert_forwarded_as_then_hit(f"{self.p}/x/../y", f"{self.p}/y")

    def test_percent_encoded_dot_segments_are_removed_before_forwarding_and_keying_rfc3986_6_2_2_2(self):
        """'%2e' is an encoded unreserved '.', so '%2e%2E' is the '..' segment."""
        self.echo(self.p)
        self.assert_forwarded_as_then_hit(f"{self.p}/x/%2e%2E/y", f"{self.p}/y")

    def test_percent_encoded_unreserved_characters_are_decoded_before_forwarding_and_keying_rfc3986_6_2_2_2(self):
        """RFC 3986 §6.2.2.2: '%7e' is the unreserved '~'; '/a%7e' and '/a~' are one resource."""
        self.echo(self.p)
        self.assert_forwarded_as_then_hit(f"{self.p}/a%7e", f"{self.p}/a~")

    def test_host_is_lower_cased_and_the_default_port_dropped_before_forwarding_and_keying_rfc3986_6_2_2_1(self):
        """RFC 3986 §6.2.2.1 (host is case-insensitive) and §6.2.3 (an empty or default
        port is dropped): 'EXAMPLE.com:80' and 'example.com' are one origin."""
        self.origin.route(self.p, lambda req: Reply(200, CACHEABLE, req.header("host", "").encode()))
        r = self.get(self.p, host="EXAMPLE.com:80")
        self.assertEqual(r.status, 200, r)
        req = self.assertOriginCount(self.p, 1)[0]
        self.assertEqual(req.headers.get_all("host"), ["example.com"])
        self.assertCacheStatus(r, fwd="uri-miss", fwd_status=200, stored=True)
        r = self.get(self.p, host="example.com")
        self.assertHit(r, b"example.com")
        self.assertOriginCount(self.p, 1)


class PoolHygieneTest(ProxyCase):
    """RFC 9112 §9.3 / §9.6: a connection is reused only when the previous response
    ended exactly where its framing said and nothing else arrived. Bytes that come
    after (here a complete fake response) must never be read as the answer to the
    next request, nor cached. One worker, so both requests use one pool."""
    WORKERS = 1

    POISON = (b"HTTP/1.1 200 OK\r\nCache-Control: max-age=300\r\nContent-Length: 6\r\n"
              b"Content-Type: text/plain\r\n\r\npoison")

    def second_request_is_fresh(self, first_conn):
        self.origin.route("/pool/second", Reply(200, CACHEABLE, b"the real second answer"))
        r = self.proxy.get("/pool/second")
        self.assertEqual((r.status, r.body), (200, b"the real second answer"),
                         "the stray bytes on the pooled connection were read as this response")
        reqs = self.origin.wait_for_requests(1, path="/pool/second")
        self.assertEqual(len(reqs), 1)
        self.assertNotEqual(reqs[0].conn_id, first_conn,
                            "a pooled connection holding unread bytes was reused")
        self.assertRegex(r.header("cache-status", ""), r"^cachalot; fwd=uri-miss; fwd-status=200; stored")
        # And the poison is not what got cached.
        r = self.proxy.get("/pool/second")
        self.assertEqual((r.status, r.body), (200, b"the real second answer"))
        self.assertRegex(r.header("cache-status", ""), r"^cachalot; hit")
        self.assertEqual(self.origin.request_count("/pool/second"), 1)

    def test_bytes_arriving_after_a_complete_response_make_the_connection_unusable_rfc9112_9_3(self):
        """RFC 9112 §9.3: the origin writes a fake response on the idle connection after a complete one."""
        gate = Gate(10)

        def body():
            yield b"real"
            gate.wait()
            yield self.POISON      # written on the same connection, after the response ended
        self.origin.route("/pool/first", Reply(200, NO_STORE + [("Content-Length", "4")], body, chunked=False))
        try:
            r = self.proxy.get("/pool/first")
            self.assertEqual((r.status, r.body), (200, b"real"))
            first = self.origin.requests("/pool/first")[0]
            self.assertFalse(first.response_done)
            gate.open()
            self.origin.wait_for(lambda: first.response_done, 5, "the stray bytes written")
        finally:
            gate.open()
        self.second_request_is_fresh(first.conn_id)

    def test_bytes_in_the_same_write_as_the_response_make_the_connection_unusable_rfc9112_9_3(self):
        """RFC 9112 §9.3: the fake response arrives in the same write as the real one."""
        self.origin.route("/pool/first", Reply(raw=b"HTTP/1.1 200 OK\r\nCache-Control: no-store\r\n"
                                                   b"Content-Length: 4\r\n\r\nreal" + self.POISON))
        r = self.proxy.get("/pool/first")
        self.assertEqual((r.status, r.body), (200, b"real"))
        self.second_request_is_fresh(self.origin.requests("/pool/first")[0].conn_id)


class UnsolicitedUpgradeTest(ProxyCase):
    """RFC 9110 §15.2.2: 'A server MUST NOT switch to a protocol that was not
    indicated by the client'; a 101 to a plain GET is an invalid response (502),
    and the client connection never becomes a tunnel to the origin."""
    WORKERS = 1

    def test_an_unsolicited_101_is_a_502_and_no_tunnel_rfc9110_15_2_2(self):
        """RFC 9110 §15.2.2: a 101 to a request without Upgrade is a 502; the bytes after it are never relayed."""
        self.origin.route("/up", Reply(raw=b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                           b"Connection: Upgrade\r\n\r\nTUNNEL-BYTES-FROM-ORIGIN"))
        self.origin.route("/after", Reply(200, NO_STORE, b"after"))
        with self.proxy.client() as cl:
            cl.request("GET", "/up")
            r = cl.read_response()
            self.assertEqual(r.status, 502, r)
            self.assertNotIn(b"TUNNEL-BYTES", r.raw_head + r.body)
            self.assertFalse(r.has("upgrade"), r.headers)
            # The connection is either closed or still speaks HTTP/1.1 with cachalot.
            if cl.is_open(0.2):
                cl.request("GET", "/after")
                try:
                    r2 = cl.read_response()
                except (AssertionError, ConnectionResetError):
                    r2 = None       # closed meanwhile: fine, as long as nothing was tunnelled
                if r2 is not None:
                    self.assertEqual((r2.status, r2.body), (200, b"after"), r2)
                    self.assertEqual(len(self.origin.requests("/after")), 1)
            self.assertNotIn(b"TUNNEL-BYTES", bytes(cl.buf))
        self.assertEqual(self.origin.request_count("/up"), 1)


class ForwardingRequests:
    """Mixin: one bypassed request and what the origin received."""

    def forwarded_request(self, path, headers):
        self.origin.route(path, Reply(200, NO_STORE, b"ok"))
        r = self.proxy.get(path, headers)
        self.assertEqual((r.status, r.body), (200, b"ok"), r)
        reqs = self.origin.wait_for_requests(1, path=path)
        self.assertEqual(len(reqs), 1)
        return reqs[0]

    def assert_override_fields_dropped(self, path):
        sent = [(name, "/admin" if "url" in name.lower() else "DELETE") for name in OVERRIDE_FIELDS]
        req = self.forwarded_request(path, sent + [("X-Kept", "yes")])
        for name in OVERRIDE_FIELDS:
            self.assertFalse(req.headers.has(name), f"{name} reached the origin: {req}")
        self.assertEqual(req.header("x-kept"), "yes")
        self.assertEqual(req.method, "GET")
        self.assertEqual(req.target, path)


class ForwardingFieldsTest(ForwardingRequests, ProxyCase):
    """Default config: the peer is not a trusted proxy, so its forwarding fields are
    replaced by cachalot's own (X-Forwarded-*, Forwarded, RFC 7239), and the request
    override fields some frameworks obey are dropped: none is in the cache key, so
    passing them on would let one client poison what others are served."""
    CONFIG = {"routes": [{"name": "all", "prefix": "/", "bypass": True}]}

    def test_client_forwarding_fields_are_replaced_by_cachalots_own(self):
        """Unkeyed-header poisoning: an untrusted peer's X-Forwarded-* and Forwarded (RFC 7239) are replaced."""
        req = self.forwarded_request("/fwd/replaced", CLIENT_FORWARDING)
        self.assertEqual(req.headers.get_all("x-forwarded-for"), ["127.0.0.1"])
        self.assertEqual(req.headers.get_all("x-forwarded-host"), [HOST])
        self.assertEqual(req.headers.get_all("x-forwarded-proto"), ["http"])
        fwd = req.headers.get_all("forwarded")
        self.assertEqual(len(fwd), 1, fwd)
        self.assertNotIn("1.2.3.4", fwd[0])
        self.assertNotIn("evil.example", fwd[0])
        elements = forwarded_elements(fwd[0])
        self.assertEqual(len(elements), 1, f"Forwarded must hold only cachalot's element: {fwd[0]!r}")
        assert_our_forwarded_element(self, elements[0], fwd[0])
        self.assertRegex(fwd[0], r'(^|;)\s*for=("127\.0\.0\.1"|127\.0\.0\.1)\s*(;|$)')

    def test_request_override_fields_are_dropped_by_default(self):
        """Unkeyed-header poisoning: server.drop_request_fields' default list never reaches the origin."""
        self.assert_override_fields_dropped("/fwd/overrides")


class TrustedProxiesTest(ForwardingRequests, ProxyCase):
    """`server.trusted_proxies` (CIDR list): a peer inside it is a proxy whose
    forwarding fields are extended, not replaced (RFC 7239 §4: append an element)."""
    CONFIG = {"server": {"trusted_proxies": ["127.0.0.0/8"]},
              "routes": [{"name": "all", "prefix": "/", "bypass": True}]}

    def test_a_trusted_peers_forwarding_fields_are_extended(self):
        """RFC 7239 §4: a proxy appends its element; X-Forwarded-For gets the peer address appended."""
        req = self.forwarded_request("/fwd/trusted", CLIENT_FORWARDING)
        self.assertEqual(req.header("x-forwarded-for"), "1.2.3.4, 127.0.0.1")
        self.assertEqual(req.headers.get_all("x-forwarded-host"), ["evil.example"])
        self.assertEqual(req.headers.get_all("x-forwarded-proto"), ["https"])
        elements = forwarded_elements(req.header("forwarded", ""))
        self.assertEqual(len(elements), 2, req.header("forwarded"))
        self.assertEqual(elements[0], {"for": "1.2.3.4", "host": "evil.example"})
        assert_our_forwarded_element(self, elements[1], req.header("forwarded"))

    def test_request_override_fields_are_dropped_from_a_trusted_peer_too(self):
        """drop_request_fields does not depend on trust: its default applies."""
        self.assert_override_fields_dropped("/fwd/trusted-overrides")


class DropRequestFieldsTest(ProxyCase):
    """`server.drop_request_fields: []` turns the override-field filter off."""
    CONFIG = {"server": {"drop_request_fields": []},
              "routes": [{"name": "all", "prefix": "/", "bypass": True}]}

    def test_an_empty_drop_list_forwards_x_original_url(self):
        """server.drop_request_fields: [] forwards X-Original-URL as sent."""
        self.origin.route("/fwd/kept", Reply(200, NO_STORE, b"ok"))
        r = self.proxy.get("/fwd/kept", [("X-Original-URL", "/elsewhere")])
        self.assertEqual(r.status, 200)
        req = self.origin.wait_for_requests(1, path="/fwd/kept")[0]
        self.assertEqual(req.header("x-original-url"), "/elsewhere")


if __name__ == "__main__":
    unittest.main()
