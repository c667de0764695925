"""Plain forwarding (issue #2): what the origin receives and what the client receives.

Caching is off for every path (a bypass route), so every request reaches the origin.
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from cachalot import BYPASS_ALL, Cachalot, build_request, pipeline  # noqa: E402
from origin import Gate, Origin, Reply  # noqa: E402

NO_STORE = [("Cache-Control", "no-store")]


class ProxyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.origin = Origin()
        try:
            cls.proxy = Cachalot({"routes": BYPASS_ALL}, upstream=cls.origin)
        except BaseException:
            cls.origin.close()
            raise

    @classmethod
    def tearDownClass(cls):
        rc = cls.proxy.stop()
        cls.proxy.close()
        cls.origin.close()
        if rc != 0:
            raise AssertionError(f"cachalot exited with {rc} on SIGTERM\n{cls.proxy.log_tail()}")

    def setUp(self):
        self.origin.reset_log()
        self.assertTrue(self.proxy.alive(), "cachalot died:\n" + self.proxy.log_tail())

    # ---- basics -------------------------------------------------------------
    def test_get_is_forwarded_and_the_origin_response_returned_unchanged(self):
        self.origin.route("/hello", Reply(200, NO_STORE + [("Content-Type", "text/plain"),
                                                           ("X-Custom", "v1")], b"hello world"))
        r = self.proxy.get("/hello?q=1")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"hello world")
        self.assertEqual(r.header("content-type"), "text/plain")
        self.assertEqual(r.header("x-custom"), "v1")
        reqs = self.origin.wait_for_requests(1, path="/hello")
        self.assertEqual(len(reqs), 1)
        self.assertEqual(reqs[0].method, "GET")
        self.assertEqual(reqs[0].target, "/hello?q=1", "the request-target must be forwarded as received")
        self.assertEqual(reqs[0].version, "HTTP/1.1")

    def test_origin_status_and_reason_are_passed_through_for_404_and_500(self):
        self.origin.route("/nf", Reply.text(404, "nope", NO_STORE))
        self.origin.route("/err", Reply.text(500, "boom", NO_STORE))
        self.assertEqual(self.proxy.get("/nf").status, 404)
        r = self.proxy.get("/err")
        self.assertEqual(r.status, 500)
        self.assertEqual(r.body, b"boom")

    def test_head_request_gets_the_head_without_a_body_rfc9110_9_3_2(self):
        self.origin.route("/h", Reply(200, NO_STORE, b"0123456789"))
        with self.proxy.client() as c:
            c.request("HEAD", "/h")
            r = c.read_response("HEAD")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, b"")
            # The connection must still be in sync: a following GET works.
            c.request("GET", "/h")
            self.assertEqual(c.read_response().body, b"0123456789")
        self.assertEqual([q.method for q in self.origin.requests("/h")], ["HEAD", "GET"])

    def test_host_field_from_the_client_is_forwarded_to_the_origin_rfc9110_7_2(self):
        self.origin.route("/host", Reply(200, NO_STORE, b"ok"))
        r = self.proxy.get("/host", host="www.example.test")
        self.assertEqual(r.status, 200)
        req = self.origin.wait_for_requests(1, path="/host")[0]
        self.assertEqual(req.headers.get_all("host"), ["www.example.test"])

    def test_via_is_added_to_the_request_and_the_response_rfc9110_7_6_3(self):
        self.origin.route("/via", Reply(200, NO_STORE, b"ok"))
        r = self.proxy.get("/via")
        req = self.origin.wait_for_requests(1, path="/via")[0]
        self.assertRegex(req.header("via", ""), r"^1\.1 \S+", "request Via must carry '1.1 <pseudonym>'")
        self.assertRegex(r.header("via", ""), r"^1\.1 \S+", "response Via must carry '1.1 <pseudonym>'")

    def test_via_appends_to_an_existing_via_in_both_directions_rfc9110_7_6_3(self):
        self.origin.route("/via2", Reply(200, NO_STORE + [("Via", "1.1 origin-side")], b"ok"))
        r = self.proxy.get("/via2", [("Via", "1.0 fred, 1.1 p.example.net")])
        req = self.origin.wait_for_requests(1, path="/via2")[0]
        self.assertRegex(req.header("via", ""), r"^1\.0 fred, 1\.1 p\.example\.net, 1\.1 \S+$")
        self.assertRegex(r.header("via", ""), r"^1\.1 origin-side, 1\.1 \S+$")

    def test_x_forwarded_for_is_ours_for_clients_that_are_not_trusted_proxies(self):
        """A client outside server.trusted_proxies cannot choose the X-Forwarded-For
        the origin sees (unkeyed-header poisoning): ours replaces it."""
        self.origin.route("/xff", Reply(200, NO_STORE, b"ok"))
        self.proxy.get("/xff")
        self.proxy.get("/xff", [("X-Forwarded-For", "203.0.113.7")])
        reqs = self.origin.wait_for_requests(2, path="/xff")
        self.assertEqual(reqs[0].header("x-forwarded-for"), "127.0.0.1")
        self.assertEqual(reqs[1].header("x-forwarded-for"), "127.0.0.1")

    def test_end_to_end_fields_pass_unchanged_in_both_directions(self):
        self.origin.route("/e2e", Reply(200, NO_STORE + [("X-Resp", "a, b"), ("Set-Cookie", "s=1"),
                                                         ("Set-Cookie", "t=2")], b"ok"))
        r = self.proxy.get("/e2e", [("X-Req", "1"), ("Accept", "text/html"), ("Cookie", "c=3"),
                                    ("Authorization", "Bearer abc")])
        req = self.origin.wait_for_requests(1, path="/e2e")[0]
        self.assertEqual(req.header("x-req"), "1")
        self.assertEqual(req.header("accept"), "text/html")
        self.assertEqual(req.header("cookie"), "c=3")
        self.assertEqual(req.header("authorization"), "Bearer abc")
        self.assertEqual(r.header("x-resp"), "a, b")
        self.assertEqual(r.header_all("set-cookie"), ["s=1", "t=2"], "Set-Cookie lines must stay separate")

    def test_target_is_forwarded_in_the_normalised_form_it_is_keyed_by(self):
        """What is forwarded is what is keyed. As a gateway (RFC 9110 §3.7: it acts as
        the origin server for its clients) cachalot forwards the syntax-based normal
        form of the target (RFC 3986 §6.2.2), the one its key holds: dot segments
        removed, %2F kept (it is data), the query's bytes kept."""
        self.origin.route("/enc%2Fpath/x", Reply(200, NO_STORE, b"ok"))
        target = "/enc%2Fpath/./x?b=2&a=1&sp=%20&plus=+&empty=&utm_source=z"
        self.assertEqual(self.proxy.get(target).status, 200)
        self.assertEqual(self.origin.wait_for_requests(1)[0].target,
                         "/enc%2Fpath/x?b=2&a=1&sp=%20&plus=+&empty=&utm_source=z")

    def test_repeated_request_fields_keep_their_order_rfc9110_5_3(self):
        self.origin.route("/multi", Reply(200, NO_STORE, b"ok"))
        self.proxy.get("/multi", [("X-Multi", "first"), ("Accept", "a/b"), ("X-Multi", "second, third")])
        req = self.origin.wait_for_requests(1, path="/multi")[0]
        self.assertEqual(req.header("x-multi"), "first, second, third")

    # ---- hop-by-hop fields, RFC 9110 §7.6.1 ---------------------------------
    def test_hop_by_hop_fields_named_in_connection_are_removed_from_the_request_rfc9110_7_6_1(self):
        self.origin.route("/hop", Reply(200, NO_STORE, b"ok"))
        r = self.proxy.get("/hop", [("Connection", "keep-alive, X-Hop-A"), ("Connection", "x-hop-b"),
                                    ("X-Hop-A", "secret-a"), ("X-Hop-B", "secret-b"), ("X-Kept", "yes")])
        self.assertEqual(r.status, 200)
        req = self.origin.wait_for_requests(1, path="/hop")[0]
        self.assertFalse(req.headers.has("x-hop-a"), req.headers)
        self.assertFalse(req.headers.has("x-hop-b"), req.headers)
        self.assertNotIn("x-hop-a", req.headers.tokens("connection"))
        self.assertNotIn("x-hop-b", req.headers.tokens("connection"))
        self.assertEqual(req.header("x-kept"), "yes")

    def test_known_hop_by_hop_fields_are_removed_from_the_request_rfc9110_7_6_1(self):
        """Keep-Alive, TE, Trailer, Upgrade and Proxy-Connection are not forwarded even
        when Connection does not name them (RFC 9110 §7.6.1 'SHOULD remove'; Trailer
        is on the project's list too, as in RFC 2616 §13.5.1)."""
        self.origin.route("/hop2", Reply(200, NO_STORE, b"ok"))
        r = self.proxy.get("/hop2", [("Keep-Alive", "timeout=77, max=7"), ("TE", "trailers, deflate;q=0.5"),
                                     ("Trailer", "X-Client-Trailer"), ("Upgrade", "example-proto/1"),
                                     ("Proxy-Connection", "keep-alive"), ("X-Kept", "yes")])
        self.assertEqual(r.status, 200)
        req = self.origin.wait_for_requests(1, path="/hop2")[0]
        raw = req.raw_head.decode("latin-1").lower()
        self.assertNotIn("timeout=77", raw, "client Keep-Alive forwarded")
        self.assertNotIn("deflate", raw, "client TE forwarded")
        self.assertNotIn("x-client-trailer", raw, "client Trailer forwarded")
        self.assertNotIn("example-proto", raw, "client Upgrade forwarded")
        self.assertFalse(req.headers.has("proxy-connection"), "Proxy-Connection forwarded")
        self.assertFalse(req.headers.has("transfer-encoding"), "a GET without content got Transfer-Encoding")
        self.assertEqual(req.header("x-kept"), "yes")

    def test_hop_by_hop_fields_named_in_connection_are_removed_from_the_response_rfc9110_7_6_1(self):
        self.origin.route("/rhop", Reply(200, NO_STORE + [("Connection", "X-Origin-Hop, keep-alive"),
                                                          ("X-Origin-Hop", "secret"), ("X-Kept", "yes")], b"ok"))
        r = self.proxy.get("/rhop")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"ok")
        self.assertFalse(r.has("x-origin-hop"), r.headers)
        self.assertNotIn("x-origin-hop", r.tokens("connection"))
        self.assertEqual(r.header("x-kept"), "yes")

    def test_known_hop_by_hop_fields_are_removed_from_the_response_rfc9110_7_6_1(self):
        """The origin's Keep-Alive, TE, Trailer, Upgrade, Proxy-Connection and its chunked
        Transfer-Encoding are its own; whatever framing the client sees is the proxy's
        and must decode to the same body."""
        body_chunks = [b"alpha-", b"beta-", b"gamma"]
        self.origin.route("/rhop2", Reply(200, NO_STORE + [("Keep-Alive", "timeout=99"), ("TE", "trailers"),
                                                           ("Trailer", "X-Checksum"),
                                                           ("Upgrade", "example-proto/1"),
                                                           ("Proxy-Connection", "keep-alive"),
                                                           ("X-Kept", "yes")],
                                          body=lambda: iter(body_chunks), trailers=[("X-Checksum", "abc")]))
        r = self.proxy.get("/rhop2")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"alpha-beta-gamma")
        raw = r.raw_head.decode("latin-1").lower()
        self.assertNotIn("timeout=99", raw, "origin Keep-Alive forwarded")
        self.assertFalse(r.has("te"), "origin TE forwarded")
        self.assertFalse(r.has("trailer"), "origin Trailer forwarded")
        self.assertFalse(r.has("upgrade"), "origin Upgrade forwarded on a 200")
        self.assertFalse(r.has("proxy-connection"), "origin Proxy-Connection forwarded")
        self.assertEqual(r.header("x-kept"), "yes")
        te = r.tokens("transfer-encoding")
        self.assertIn(te, ([], ["chunked"]), "only the proxy's own chunked framing may appear")
        self.assertFalse(te and r.has("content-length"), "both Transfer-Encoding and Content-Length sent")

    def test_absolute_form_target_is_sent_to_the_origin_in_origin_form_rfc9112_3_2_2(self):
        """A server must accept absolute-form; forwarding it, the proxy sends origin-form and a
        Host generated from the target's authority, not the received Host."""
        self.origin.route("/abs", Reply(200, NO_STORE, b"ok"))
        with self.proxy.client() as c:
            c.send(b"GET http://abs.example.test/abs?x=1 HTTP/1.1\r\nHost: other.example.test\r\n\r\n")
            r = c.read_response()
        self.assertEqual(r.status, 200)
        req = self.origin.wait_for_requests(1, path="/abs")[0]
        self.assertEqual(req.target, "/abs?x=1")
        self.assertEqual(req.headers.get_all("host"), ["abs.example.test"])

    def test_via_names_the_protocol_version_the_client_used_rfc9110_7_6_3(self):
        self.origin.route("/via10", Reply(200, NO_STORE, b"ok"))
        with self.proxy.client() as c:
            c.send(b"GET /via10 HTTP/1.0\r\nHost: cachalot.test\r\n\r\n")
            self.assertEqual(c.read_response().status, 200)
        req = self.origin.wait_for_requests(1, path="/via10")[0]
        self.assertRegex(req.header("via", ""), r"^1\.0 \S+$")

    # ---- request bodies -----------------------------------------------------
    def test_post_with_content_length_is_forwarded_with_its_length_and_body_rfc9112_6_2(self):
        """The length is known, so the proxy keeps Content-Length rather than switching to
        chunked (RFC 9112 §6.1: a client must not send chunked unless it knows the
        server handles HTTP/1.1)."""
        self.origin.route("/post", lambda req: Reply(201, NO_STORE, b"got %d" % len(req.body)))
        body = b"name=cachalot&kind=whale"
        r = self.proxy.request("POST", "/post", [("Content-Type", "application/x-www-form-urlencoded")], body)
        self.assertEqual(r.status, 201)
        self.assertEqual(r.body, b"got %d" % len(body))
        req = self.origin.wait_for_requests(1, path="/post")[0]
        self.assertEqual(req.method, "POST")
        self.assertEqual(req.body, body)
        self.assertEqual(req.header("content-length"), str(len(body)))
        self.assertFalse(req.headers.has("transfer-encoding"))
        self.assertEqual(req.header("content-type"), "application/x-www-form-urlencoded")

    def test_post_with_a_chunked_body_is_forwarded_intact_rfc9112_7_1(self):
        self.origin.route("/chunked-in", lambda req: Reply(200, NO_STORE, b"got %d" % len(req.body)))
        chunks = [b"first chunk;", b"x" * 5000, b";last"]
        with self.proxy.client() as c:
            c.request("POST", "/chunked-in", [("Content-Type", "application/octet-stream")], chunks=chunks)
            r = c.read_response()
            self.assertEqual(r.status, 200)
            # The connection is still usable afterwards: the chunked framing was consumed exactly.
            c.request("GET", "/chunked-in")
            self.assertEqual(c.read_response().status, 200)
        req = self.origin.wait_for_requests(2, path="/chunked-in")[0]
        self.assertEqual(req.body, b"".join(chunks))
        framing = (req.chunked, req.headers.has("content-length"))
        self.assertIn(framing, ((True, False), (False, True)), "origin saw no valid framing")

    def test_put_and_delete_are_forwarded_with_their_methods(self):
        self.origin.route("/m", lambda req: Reply(200, NO_STORE, req.method.encode()))
        self.assertEqual(self.proxy.request("PUT", "/m", body=b"x").body, b"PUT")
        self.assertEqual(self.proxy.request("DELETE", "/m").body, b"DELETE")
        self.assertEqual([q.method for q in self.origin.requests("/m")], ["PUT", "DELETE"])

    def test_expect_100_continue_gets_an_interim_100_so_the_client_sends_its_body_rfc9110_10_1_1(self):
        """The client waits for 100 (Continue) before sending content; the proxy sends one
        itself or relays the origin's, and the final response follows the body."""
        self.origin.route("/expect", lambda req: Reply(200, NO_STORE, b"got " + req.body))
        with self.proxy.client(timeout=3) as c:
            c.send(b"POST /expect HTTP/1.1\r\nHost: cachalot.test\r\nContent-Length: 5\r\n"
                   b"Expect: 100-continue\r\n\r\n")
            try:
                interim = c._read_until(b"\r\n\r\n")
            except TimeoutError:
                self.fail("no 100 (Continue) within 3 s: the client is left waiting")
            self.assertRegex(interim.decode("latin-1"), r"^HTTP/1\.1 100 ")
            c.send(b"hello")
            r = c.read_response()
        self.assertEqual((r.status, r.body), (200, b"got hello"))

    def test_post_with_empty_body_is_forwarded_with_content_length_0(self):
        """RFC 9110 §8.6: a POST normally carries Content-Length even when it is 0, and an
        origin may refuse a POST without one (411, RFC 9110 §15.5.12); the client sent
        Content-Length: 0, so the proxy should keep it."""
        self.origin.route("/empty", lambda req: Reply(200, NO_STORE, b"len %d" % len(req.body)))
        r = self.proxy.request("POST", "/empty", body=b"")
        self.assertEqual((r.status, r.body), (200, b"len 0"))
        req = self.origin.wait_for_requests(1, path="/empty")[0]
        self.assertEqual(req.header("content-length"), "0")

    def test_close_delimited_origin_response_is_relayed_completely_rfc9112_6_3(self):
        """An origin body without Content-Length or chunked ends at close (RFC 9112 §6.3
        item 8); the client still gets all of it, properly delimited."""
        self.origin.route("/eof", Reply(raw=b"HTTP/1.1 200 OK\r\nCache-Control: no-store\r\n\r\nuntil the end",
                                        close=True))
        self.origin.route("/after", Reply(200, NO_STORE, b"after"))
        with self.proxy.client() as c:
            c.request("GET", "/eof")
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, b"until the end"))
            if not r.until_close:
                c.request("GET", "/after")
                self.assertEqual(c.read_response().body, b"after")

    def test_origin_response_with_content_length_and_chunked_is_refused_or_relayed_without_the_length_rfc9112_6_3(self):
        """Transfer-Encoding overrides Content-Length; such a response 'ought to be handled
        as an error', and an intermediary that forwards it anyway must drop the received
        Content-Length first (RFC 9112 §6.3 item 3)."""
        self.origin.route("/clte", Reply(raw=b"HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Length: 100\r\n"
                                             b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                                         close=True))
        r = self.proxy.get("/clte")
        if r.status == 502:
            return
        self.assertEqual((r.status, r.body), (200, b"hello"))
        self.assertNotEqual(r.header("content-length"), "100")

    def test_interim_103_from_the_origin_is_forwarded_before_the_final_response_rfc9110_15_2(self):
        """'A proxy MUST forward 1xx responses unless the proxy itself requested [them]'."""
        self.origin.route("/103", Reply(raw=b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
                                            b"HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Length: 2\r\n\r\nok"))
        self.origin.route("/after103", Reply(200, NO_STORE, b"after"))
        with self.proxy.client() as c:
            c.request("GET", "/103")
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, b"ok"))
            self.assertEqual([i.status for i in r.interim], [103])
            self.assertEqual(r.interim[0].header("link"), "</s.css>; rel=preload")
            c.request("GET", "/after103")
            self.assertEqual(c.read_response().body, b"after")

    def test_http_1_0_origin_response_is_relayed(self):
        self.origin.route("/o10", Reply(200, NO_STORE, b"from 1.0", version="HTTP/1.0", close=True))
        r = self.proxy.get("/o10")
        self.assertEqual((r.status, r.body), (200, b"from 1.0"))

    def test_no_content_and_not_modified_responses_keep_the_connection_in_sync_rfc9112_6_3(self):
        self.origin.route("/204", Reply(204, NO_STORE))
        self.origin.route("/304", Reply(304, NO_STORE + [("ETag", '"x"')]))
        self.origin.route("/next", Reply(200, NO_STORE, b"next"))
        with self.proxy.client() as c:
            c.request("GET", "/204")
            self.assertEqual(c.read_response().status, 204)
            c.request("GET", "/304", [("If-None-Match", '"x"')])
            self.assertEqual(c.read_response().status, 304)
            c.request("GET", "/next")
            self.assertEqual(c.read_response().body, b"next")

    def test_origin_connection_close_does_not_close_the_client_connection(self):
        self.origin.route("/oc", Reply(200, NO_STORE + [("Connection", "close")], b"oc"))
        with self.proxy.client() as c:
            for i in range(3):
                c.request("GET", "/oc")
                r = c.read_response()
                self.assertEqual((r.status, r.body), (200, b"oc"), f"request {i}")
                self.assertNotIn("close", r.tokens("connection"))

    # ---- response streaming -------------------------------------------------
    def test_chunked_response_is_streamed_to_the_client_before_the_origin_finishes(self):
        """The first chunk reaches the client while the origin still holds back the rest."""
        gate = Gate(max_wait=10)

        def body():
            yield b"first-part;"
            gate.wait()
            yield b"second-part"
        self.origin.route("/stream", Reply(200, NO_STORE, body=body))
        try:
            with self.proxy.client(timeout=5) as c:
                c.request("GET", "/stream")
                r = c.read_head()
                self.assertEqual(r.status, 200)
                it = c.iter_body(r)
                got = b""
                while len(got) < len(b"first-part;"):
                    got += next(it)
                self.assertEqual(got, b"first-part;")
                self.assertFalse(gate.is_open())
                gate.open()
                got += b"".join(it)
                self.assertEqual(got, b"first-part;second-part")
                self.assertTrue(r.complete)
        finally:
            gate.open()

    # ---- connections --------------------------------------------------------
    def test_upstream_connections_are_reused_across_requests_rfc9112_9_3(self):
        self.origin.route("/ka", Reply(200, NO_STORE, b"ok"))
        opened_before = self.origin.connections_opened
        for _ in range(10):
            self.assertEqual(self.proxy.get("/ka").status, 200)
        with self.proxy.client() as c:
            for _ in range(10):
                c.request("GET", "/ka")
                self.assertEqual(c.read_response().status, 200)
        self.assertEqual(self.origin.request_count("/ka"), 20)
        opened = self.origin.connections_opened - opened_before
        self.assertLessEqual(opened, 4, f"20 sequential requests opened {opened} upstream connections")

    def test_client_connection_is_kept_alive_across_requests_rfc9112_9_3(self):
        self.origin.route("/ka2", Reply(200, NO_STORE, b"ok"))
        with self.proxy.client() as c:
            for i in range(5):
                c.request("GET", "/ka2")
                r = c.read_response()
                self.assertEqual(r.status, 200, f"request {i}")
                self.assertNotIn("close", r.tokens("connection"))

    def test_one_keep_alive_connection_serves_thousands_of_requests(self):
        """A connection's buffers and field maps are reused from request to request; 3000
        requests in a row must all be answered on the same connection (a reuse bug once
        dropped connections after about 800)."""
        self.origin.route("/ka3", Reply(200, NO_STORE, b"ok"))
        with self.proxy.client() as c:
            for i in range(3000):
                c.request("GET", "/ka3", [("X-Drop-Me", "1"), ("Connection", "X-Drop-Me")])
                r = c.read_response()
                self.assertEqual((r.status, r.body), (200, b"ok"), f"request {i}")
        self.assertEqual(len(self.origin.requests("/ka3")), 3000)

    def test_connection_close_from_the_client_closes_after_the_response_rfc9112_9_6(self):
        self.origin.route("/cl", Reply(200, NO_STORE, b"ok"))
        with self.proxy.client() as c:
            c.request("GET", "/cl", [("Connection", "close")])
            r = c.read_response()
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, b"ok")
            self.assertEqual(c.wait_closed(3), "eof")

    def test_request_pipelined_after_connection_close_is_not_processed_rfc9112_9_6(self):
        """After a request with 'close' the server closes and SHOULD NOT process further
        requests on that connection; they must not reach the origin."""
        self.origin.route("/cl1", Reply(200, NO_STORE, b"one"))
        self.origin.route("/cl2", Reply(200, NO_STORE, b"two"))
        with self.proxy.client() as c:
            c.send(build_request("GET", "/cl1", [("Connection", "close")]) + build_request("GET", "/cl2"))
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, b"one"))
            self.assertIn(c.wait_closed(3), ("eof", "reset"))
        self.assertEqual(self.origin.request_count("/cl2"), 0)

    def test_http_1_0_client_without_keep_alive_gets_its_response_and_a_close_rfc9112_9_3(self):
        self.origin.route("/old", Reply(200, NO_STORE, b"old"))
        with self.proxy.client() as c:
            c.send(b"GET /old HTTP/1.0\r\nHost: cachalot.test\r\n\r\n")
            r = c.read_response()
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, b"old")
            self.assertFalse(r.chunked, "chunked sent to an HTTP/1.0 client (RFC 9112 §7.1)")
            self.assertEqual(c.wait_closed(3), "eof")

    def test_ten_pipelined_requests_in_one_write_are_answered_in_order_rfc9112_9_3_2(self):
        def handler(req):
            return Reply(200, NO_STORE, req.path.encode())
        self.origin.route("/p/", handler, prefix=True)
        # The first one is slow, so answering out of order would show.
        self.origin.route("/p/0", lambda req: Reply(200, NO_STORE, b"/p/0", delay_head=0.3))
        reqs = [build_request("GET", f"/p/{i}") for i in range(10)]
        responses = pipeline(self.proxy.port, reqs, timeout=10)
        self.assertEqual([r.status for r in responses], [200] * 10)
        self.assertEqual([r.body for r in responses], [f"/p/{i}".encode() for i in range(10)])
        self.assertEqual(sorted(r.path for r in self.origin.requests()), sorted(f"/p/{i}" for i in range(10)))

    def test_hundred_pipelined_requests_in_one_write_are_all_answered_in_order(self):
        """Requests are answered one at a time; pipelined ones wait in the read buffer and
        the kernel (back-pressure), and none is dropped (RFC 9112 §9.3.2)."""
        self.origin.route("/q/", lambda req: Reply(200, NO_STORE, req.path.encode()), prefix=True)
        reqs = [build_request("GET", f"/q/{i}") for i in range(100)]
        responses = pipeline(self.proxy.port, reqs, timeout=10)
        self.assertEqual([r.body for r in responses], [f"/q/{i}".encode() for i in range(100)])

    def test_pipelined_requests_with_bodies_are_delimited_correctly(self):
        self.origin.route("/pb", lambda req: Reply(200, NO_STORE, req.body[::-1]))
        reqs = [build_request("POST", "/pb", body=b"abc"),
                build_request("POST", "/pb", chunks=[b"de", b"f"]),
                build_request("GET", "/pb")]
        responses = pipeline(self.proxy.port, reqs, timeout=10)
        self.assertEqual([r.body for r in responses], [b"cba", b"fed", b""])


if __name__ == "__main__":
    unittest.main()
