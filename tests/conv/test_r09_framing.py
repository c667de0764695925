"""Strict HTTP/1.1 framing in the parser (issue #9).

Empty field values are present-and-empty on both sides; obs-fold, bare LF,
extra whitespace in the request-line, transfer codings other than a single
chunked, Transfer-Encoding in HTTP/1.0 and oversized chunk extensions are
refused. A refused request gets its status, then a clean close: a request
pipelined behind it is never answered and never reaches the origin. A refused
origin response is a 502.

Limits in this file: the defaults (max_chunk_extension_bytes is 4 KiB); the
origin's idle timeout is 2 s so that a proxy waiting for a body that never
comes fails fast instead of hanging the test.
"""

import itertools
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from cachalot import BYPASS_ALL, Cachalot  # noqa: E402
from origin import Origin, Reply  # noqa: E402

NO_STORE = [("Cache-Control", "no-store")]
H = b"Host: cachalot.test\r\n"
CHUNKED = b"Transfer-Encoding: chunked\r\n"


class FramingTest(unittest.TestCase):
    seq = itertools.count(1)

    @classmethod
    def setUpClass(cls):
        cls.origin = Origin()
        cls.origin.default(lambda req: Reply(200, NO_STORE, b"seen " + req.path.encode() + b" " + req.body))
        try:
            cls.proxy = Cachalot({
                "routes": BYPASS_ALL,
                "upstream": {"timeouts": {"idle": "2s", "first_byte": "5s"}},
            }, upstream=cls.origin)
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

    def reject(self, raw: bytes, status: int):
        """Send `raw` and a good request pipelined behind it in one write. Expect `status`,
        then a FIN with nothing else (the pipelined request is not answered); the origin
        saw neither request; a new connection is served."""
        n = next(self.seq)
        with self.proxy.client(timeout=5) as c:
            c.send(raw + b"GET /after-%d HTTP/1.1\r\n" % n + H + b"\r\n")
            r = c.read_response()
            self.assertEqual(r.status, status, f"for {raw[:160]!r}: {r!r}")
            self.assertTrue(r.complete)
            self.assertEqual(c.wait_closed(3), "eof", "the connection must end with a FIN right after the "
                                                      "response, and the pipelined request must not be answered")
        good = self.proxy.get(f"/good-{n}")
        self.assertEqual(good.status, 200)
        # Numbered paths keep a request left over by an earlier, failed test out of this check.
        seen = [q.target for q in self.origin.requests() if not re.fullmatch(rf"/(good|after)-(?!{n}$)\d+", q.target)]
        self.assertEqual(seen, [f"/good-{n}"], "the refused request (or the one pipelined behind it) reached the origin")
        return r

    def origin_reply(self, path: str, raw: bytes) -> "Response":  # noqa: F821
        """The origin answers `path` with these bytes and closes; the client's response."""
        self.origin.route(path, Reply(raw=raw, close=True))
        r = self.proxy.get(path)
        self.assertEqual(len(self.origin.requests(path)), 1)
        return r

    # ---- empty field values, RFC 9110 §5.5 ------------------------------------
    def test_empty_field_values_reach_the_origin_present_and_empty_rfc9110_5_5(self):
        """RFC 9110 §5.5: a field value may be empty; real clients send `Accept-Encoding:`
        and `Cookie:`. Each is forwarded as present with the value ""."""
        with self.proxy.client(timeout=5) as c:
            c.send(b"GET /empty HTTP/1.1\r\n" + H + b"X-Empty:\r\nX-Blank:   \r\nCookie:\r\n"
                   b"Accept-Encoding:\r\nX-After: v\r\n\r\n")
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            self.assertTrue(c.is_open(), "an empty field value must not end the connection")
        req = self.origin.wait_for_requests(1, path="/empty")[0]
        for name in ("X-Empty", "X-Blank", "Cookie", "Accept-Encoding"):
            self.assertEqual(req.headers.get_all(name), [""], f"{name} in {req.raw_head!r}")
        self.assertEqual(req.header("x-after"), "v")

    def test_origin_response_with_an_empty_field_value_is_relayed_rfc9110_5_5(self):
        """RFC 9110 §5.5: an empty value in a response is valid, not a bad response (502)."""
        r = self.origin_reply("/resp-empty", b"HTTP/1.1 200 OK\r\nX-Empty:\r\nX-Blank: \t \r\n"
                                             b"Cache-Control: no-store\r\nContent-Length: 2\r\n\r\nok")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"ok")
        self.assertEqual(r.header_all("x-empty"), [""])
        self.assertEqual(r.header_all("x-blank"), [""])

    # ---- obs-fold, RFC 9112 §5.2 ----------------------------------------------
    def test_obs_fold_after_an_empty_value_gets_400_rfc9112_5_2(self):
        """RFC 9112 §5.2: obs-fold is rejected, also when the folded line follows an empty value."""
        self.reject(b"GET /fold1 HTTP/1.1\r\n" + H + b"X-A:\r\n c\r\n\r\n", 400)

    def test_obs_fold_line_of_only_whitespace_gets_400_rfc9112_5_2(self):
        """RFC 9112 §5.2: a continuation line of only whitespace is obs-fold too."""
        self.reject(b"GET /fold2 HTTP/1.1\r\n" + H + b"X-A:\r\n\t\r\n\r\n", 400)

    def test_obs_fold_in_a_trailer_field_gets_400_rfc9112_5_2(self):
        """RFC 9112 §5.2 and §7.1.2: trailer field lines follow the same syntax."""
        self.reject(b"POST /fold3 HTTP/1.1\r\n" + H + CHUNKED + b"\r\n3\r\nabc\r\n0\r\nX-T:\r\n b\r\n\r\n", 400)

    # ---- Transfer-Encoding, RFC 9112 §6.1 and §6.3 ----------------------------
    def test_http10_request_with_transfer_encoding_gets_400_and_close_rfc9112_6_1(self):
        """RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message means faulty framing;
        close the connection."""
        self.reject(b"POST /te10 HTTP/1.0\r\n" + H + CHUNKED + b"\r\n3\r\nabc\r\n0\r\n\r\n", 400)

    def test_gzip_then_chunked_request_gets_501_rfc9112_6_1(self):
        """RFC 9112 §6.1 / RFC 9110 §15.6.2: a transfer coding we do not implement is 501,
        never silently dropped while the body is forwarded de-chunked."""
        self.reject(b"POST /gz HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
                    501)

    def test_gzip_and_chunked_on_two_field_lines_get_501_rfc9112_6_1(self):
        """RFC 9112 §6.1 with RFC 9110 §5.3: two field lines are one list, `gzip, chunked`."""
        self.reject(b"POST /gz2 HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n" + CHUNKED +
                    b"\r\n3\r\nabc\r\n0\r\n\r\n", 501)

    def test_identity_transfer_encoding_gets_400_rfc9112_6_3(self):
        """RFC 9112 §6.3 rule 4: chunked is not the final coding, so the length is unknown:
        the server MUST answer 400 and close (this rule outranks §6.1's 501 SHOULD)."""
        self.reject(b"POST /ident HTTP/1.1\r\n" + H + b"Transfer-Encoding: identity\r\n\r\nabc", 400)

    def test_unknown_transfer_coding_alone_gets_400_rfc9112_6_3(self):
        """RFC 9112 §6.3 rule 4, as above, for a coding nobody knows."""
        self.reject(b"POST /x HTTP/1.1\r\n" + H + b"Transfer-Encoding: x\r\n\r\nabc", 400)

    def test_chunked_twice_in_one_field_gets_400_rfc9112_6_1(self):
        """RFC 9112 §6.1: 'A sender MUST NOT apply the chunked transfer coding more than once'."""
        self.reject(b"POST /twice HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400)

    def test_empty_transfer_encoding_with_content_length_gets_400_rfc9112_6_3(self):
        """RFC 9112 §6.3 rule 4: a Transfer-Encoding field without chunked last, even an empty
        one, leaves the length undetermined; it must not fall back to Content-Length."""
        self.reject(b"POST /te-empty HTTP/1.1\r\n" + H + b"Transfer-Encoding:\r\nContent-Length: 3\r\n\r\nabc", 400)

    # ---- chunk extensions, RFC 9112 §7.1.1 ------------------------------------
    def test_chunk_extensions_within_the_limit_and_trailers_are_accepted_rfc9112_7_1_1(self):
        """RFC 9112 §7.1.1 and §7.1.2: extensions are ignored, trailers discarded, the body forwarded.
        (llhttp 8.1 rejects an extension that follows one with a value, `;a=b;c`, so none does here.)"""
        with self.proxy.client(timeout=5) as c:
            c.send(b"POST /ext-ok HTTP/1.1\r\n" + H + CHUNKED + b"\r\n3;c;a=b\r\nabc\r\n2;d=\"e f\"\r\nde\r\n"
                   b"0\r\nX-T: t\r\n\r\n")
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.body, b"seen /ext-ok abcde")

    def test_chunk_extensions_over_the_limit_get_400_rfc9112_7_1_1(self):
        """RFC 9112 §7.1.1: a recipient may limit chunk extensions; unbounded they let a client
        stream megabytes that never advance the body. 5000 bytes > 4 KiB."""
        self.reject(b"POST /ext-big HTTP/1.1\r\n" + H + CHUNKED + b"\r\n3;" + b"e" * 5000 + b"\r\nabc\r\n0\r\n\r\n",
                    400)

    # ---- request-line, RFC 9112 §3 --------------------------------------------
    def test_two_spaces_before_the_target_get_400_rfc9112_3(self):
        """RFC 9112 §3: request-line = method SP request-target SP HTTP-version, one SP each."""
        self.reject(b"GET  /sp1 HTTP/1.1\r\n" + H + b"\r\n", 400)

    def test_two_spaces_before_the_version_get_400_rfc9112_3(self):
        """RFC 9112 §3: exactly one SP before HTTP-version."""
        self.reject(b"GET /sp2  HTTP/1.1\r\n" + H + b"\r\n", 400)

    def test_tab_instead_of_a_space_gets_400_rfc9112_3(self):
        """RFC 9112 §3: the separator is SP; HTAB is not whitespace here."""
        self.reject(b"GET\t/tab HTTP/1.1\r\n" + H + b"\r\n", 400)

    def test_whitespace_before_the_method_gets_400_rfc9112_3(self):
        """RFC 9112 §3: the request-line starts with the method."""
        self.reject(b" GET /lead HTTP/1.1\r\n" + H + b"\r\n", 400)

    def test_space_inside_the_target_gets_400_rfc9112_3_2(self):
        """RFC 9112 §3.2: a request-target has no whitespace."""
        self.reject(b"GET /a b HTTP/1.1\r\n" + H + b"\r\n", 400)

    def test_control_byte_in_the_target_gets_400_rfc9112_3_2(self):
        """RFC 9112 §3.2: a request-target has no control characters."""
        self.reject(b"GET /a\x01b HTTP/1.1\r\n" + H + b"\r\n", 400)

    def test_rtsp_version_gets_400_rfc9112_2_3(self):
        """RFC 9112 §2.3: HTTP-version is "HTTP/" DIGIT "." DIGIT; llhttp also speaks RTSP."""
        self.reject(b"DESCRIBE /rtsp RTSP/1.0\r\n" + H + b"\r\n", 400)

    # ---- line endings and field names, RFC 9112 §2.2 and §5.1 -----------------
    def test_bare_lf_after_the_request_line_gets_400_rfc9112_2_2(self):
        """RFC 9112 §2.2 lets a recipient accept a bare LF; the project rejects it everywhere
        (see test_b02_bad_input) because lenient line endings enable smuggling."""
        self.reject(b"GET /lf1 HTTP/1.1\n" + H + b"\r\n", 400)

    def test_bare_lf_as_the_empty_line_gets_400_rfc9112_2_2(self):
        """RFC 9112 §2.2: an agent that ends the head at CRLF CRLF would read the next
        request as part of this head; the two must not disagree."""
        self.reject(b"GET /lf2 HTTP/1.1\r\n" + H + b"\n", 400)

    def test_bare_lf_ending_the_trailer_section_gets_400_rfc9112_2_2(self):
        """RFC 9112 §2.2 and §7.1.2: the same for the end of a chunked body."""
        self.reject(b"POST /lf3 HTTP/1.1\r\n" + H + CHUNKED + b"\r\n3\r\nabc\r\n0\r\n\n", 400)

    def test_tab_between_field_name_and_colon_gets_400_rfc9112_5_1(self):
        """RFC 9112 §5.1: no whitespace is allowed between the field name and the colon."""
        self.reject(b"GET /ws HTTP/1.1\r\n" + H + b"X-A\t: b\r\n\r\n", 400)

    # ---- origin responses: a bad response is a 502 ----------------------------
    def test_origin_gzip_chunked_response_gets_502_rfc9112_6_1(self):
        """RFC 9112 §6.1: we cannot decode gzip, and relaying the de-chunked body re-framed
        without it would hand the client bytes labelled wrongly."""
        r = self.origin_reply("/o-gz", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        self.assertEqual(r.status, 502, r)

    def test_origin_chunked_twice_gets_502_rfc9112_6_1(self):
        """RFC 9112 §6.1: chunked applied twice; de-chunking once would relay chunk framing as the body."""
        r = self.origin_reply("/o-cc", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked"
                                       b"\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        self.assertEqual(r.status, 502, r)

    def test_origin_http10_response_with_transfer_encoding_gets_502_rfc9112_6_1(self):
        """RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message means faulty framing."""
        r = self.origin_reply("/o-10", b"HTTP/1.0 200 OK\r\n" + CHUNKED + b"\r\n3\r\nabc\r\n0\r\n\r\n")
        self.assertEqual(r.status, 502, r)

    def test_origin_obs_fold_after_an_empty_value_gets_502_rfc9112_5_2(self):
        """RFC 9112 §5.2: a proxy receiving obs-fold in a response discards it and answers 502."""
        r = self.origin_reply("/o-fold", b"HTTP/1.1 200 OK\r\nX-A:\r\n folded\r\nContent-Length: 2\r\n\r\nok")
        self.assertEqual(r.status, 502, r)

    def test_origin_chunk_extensions_over_the_limit_get_502_rfc9112_7_1_1(self):
        """RFC 9112 §7.1.1: the chunk-extension bound applies to responses too. The response
        fits in one read, so it is refused before its head is relayed."""
        r = self.origin_reply("/o-ext", b"HTTP/1.1 200 OK\r\n" + CHUNKED + b"\r\n3;" + b"e" * 5000 +
                              b"\r\nabc\r\n0\r\n\r\n")
        self.assertEqual(r.status, 502, r)

    def test_origin_304_with_content_length_ends_at_its_head_rfc9112_6_3(self):
        """RFC 9112 §6.3 rule 1: a 304 ends at its empty line whatever Content-Length says
        (it gives the size of the selected representation). The origin keeps the connection
        open and sends nothing more: the next request goes over that same connection."""
        self.origin.route("/o-304", Reply(raw=b"HTTP/1.1 304 Not Modified\r\nETag: \"e1\"\r\n"
                                              b"Content-Length: 100\r\n\r\n"))
        with self.proxy.client(timeout=5) as c:
            c.send(b"GET /o-304 HTTP/1.1\r\n" + H + b"If-None-Match: \"e1\"\r\n\r\n")
            r = c.read_response()
            self.assertEqual(r.status, 304, r)
            c.send(b"GET /next HTTP/1.1\r\n" + H + b"\r\n")
            r2 = c.read_response()
            self.assertEqual(r2.status, 200, r2)
            self.assertEqual(r2.body, b"seen /next ")
        # The origin connection stayed usable: the proxy did not wait for, or count on, 100 body bytes.
        first, second = self.origin.requests("/o-304")[0], self.origin.requests("/next")[0]
        self.assertEqual(first.conn_id, second.conn_id, "the origin connection was not reused after the 304")


if __name__ == "__main__":
    unittest.main()
