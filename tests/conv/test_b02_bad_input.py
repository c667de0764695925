"""Malformed and oversized requests (issue #2).

Each bad request gets its error status, then the proxy closes that connection
cleanly (a FIN after the complete response, nothing else), the bad request
never reaches the origin, and the proxy goes on serving a normal request.

Limits in this file: max_header_bytes 4KiB, max_uri_length 1KiB, max_body_size 1KiB.
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from cachalot import BYPASS_ALL, Cachalot  # noqa: E402
from origin import Origin, Reply  # noqa: E402

NO_STORE = [("Cache-Control", "no-store")]
H = b"Host: cachalot.test\r\n"


class BadInputTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.origin = Origin()
        cls.origin.default(lambda req: Reply(200, NO_STORE, b"seen " + req.path.encode()))
        try:
            cls.proxy = Cachalot({
                "routes": BYPASS_ALL,
                "server": {"limits": {"max_header_bytes": "4KiB", "max_uri_length": "1KiB",
                                      "max_body_size": "1KiB"}},
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

    def reject(self, raw: bytes, status: int, *, origin_untouched: bool = True):
        """Send raw bytes in one write; expect `status`, then a clean close; then a good
        request on a new connection works and is the only one the origin saw."""
        with self.proxy.client(timeout=5) as c:
            c.send(raw)
            r = c.read_response()
            self.assertEqual(r.status, status, f"for {raw[:120]!r}: {r!r}")
            self.assertTrue(r.complete)
            closed = c.wait_closed(3)
            self.assertEqual(closed, "eof", "the connection must end with a FIN after the response, "
                                            "not a reset (RFC 9112 §9.6)")
        good = self.proxy.get("/good")
        self.assertEqual(good.status, 200)
        self.assertEqual(good.body, b"seen /good")
        if origin_untouched:
            self.assertEqual([q.target for q in self.origin.requests()], ["/good"],
                             "the bad request reached the origin")
        return r

    # ---- request line, RFC 9112 §3 ------------------------------------------
    def test_request_line_with_a_bad_version_gets_400_rfc9112_3(self):
        self.reject(b"GET /bad1 HTTX/1.1\r\n" + H + b"\r\n", 400)

    def test_request_line_without_a_target_gets_400_rfc9112_3(self):
        self.reject(b"GET\r\n" + H + b"\r\n", 400)

    def test_request_line_with_trailing_junk_gets_400_rfc9112_3(self):
        self.reject(b"GET /bad2 HTTP/1.1 junk\r\n" + H + b"\r\n", 400)

    def test_method_with_a_non_token_character_gets_400_rfc9110_9_1(self):
        self.reject(b"G@T /bad3 HTTP/1.1\r\n" + H + b"\r\n", 400)

    def test_binary_garbage_instead_of_a_request_gets_400(self):
        self.reject(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 40 + b"\r\n\r\n", 400)

    def test_request_without_host_gets_400_rfc9112_3_2(self):
        self.reject(b"GET /nohost HTTP/1.1\r\n\r\n", 400)

    def test_request_with_two_host_fields_gets_400_rfc9112_3_2(self):
        self.reject(b"GET /twohost HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n", 400)

    # ---- limits ---------------------------------------------------------------
    def test_header_section_over_max_header_bytes_gets_431_rfc6585_5(self):
        self.reject(b"GET /big-head HTTP/1.1\r\n" + H + b"X-Big: " + b"a" * 5000 + b"\r\n\r\n", 431)

    def test_many_small_fields_over_max_header_bytes_get_431_rfc6585_5(self):
        fields = b"".join(b"X-F%d: %s\r\n" % (i, b"v" * 40) for i in range(120))
        self.reject(b"GET /many HTTP/1.1\r\n" + H + fields + b"\r\n", 431)

    def test_uri_over_max_uri_length_gets_414_rfc9110_15_5_15(self):
        self.reject(b"GET /long-" + b"u" * 2000 + b" HTTP/1.1\r\n" + H + b"\r\n", 414)

    def test_content_length_over_max_body_size_gets_413_rfc9110_15_5_14(self):
        body = b"b" * 2000
        self.reject(b"POST /big-body HTTP/1.1\r\n" + H + b"Content-Length: 2000\r\n\r\n" + body, 413)

    def test_content_length_over_max_body_size_gets_413_before_the_body_is_sent(self):
        """The proxy answers from the head alone; it does not wait for 16 MB it will refuse."""
        self.reject(b"POST /big-body2 HTTP/1.1\r\n" + H + b"Content-Length: 16000000\r\n\r\n", 413)

    def test_chunked_body_over_max_body_size_gets_413_rfc9110_15_5_14(self):
        chunk = b"c" * 600
        body = b"258\r\n" + chunk + b"\r\n" + b"258\r\n" + chunk + b"\r\n0\r\n\r\n"
        # A streaming proxy may already have started the upstream request; do not
        # require the origin to be untouched, only that the client sees 413.
        self.reject(b"POST /big-chunked HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n" + body, 413,
                    origin_untouched=False)

    # ---- framing, RFC 9112 §6 -------------------------------------------------
    def test_content_length_with_transfer_encoding_gets_400_and_close_rfc9112_6_1(self):
        self.reject(b"POST /smuggle HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"0\r\n\r\n", 400)

    def test_differing_duplicate_content_length_gets_400_rfc9112_6_3(self):
        self.reject(b"POST /dupcl HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400)

    def test_content_length_list_with_differing_values_gets_400_rfc9112_6_3(self):
        self.reject(b"POST /dupcl2 HTTP/1.1\r\n" + H + b"Content-Length: 5, 6\r\n\r\nhello!", 400)

    def test_non_numeric_content_length_gets_400_rfc9112_6_3(self):
        self.reject(b"POST /badcl HTTP/1.1\r\n" + H + b"Content-Length: +5\r\n\r\nhello", 400)

    def test_transfer_encoding_not_ending_in_chunked_gets_400_rfc9112_6_3(self):
        """A request whose final coding is not chunked has no reliable length (RFC 9112 §6.3 item 4)."""
        self.reject(b"POST /te HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 400)

    def test_invalid_chunk_size_gets_400_rfc9112_7_1(self):
        self.reject(b"POST /badchunk HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
                    400, origin_untouched=False)

    # ---- field syntax, RFC 9112 §5 and §2.2 -----------------------------------
    def test_obs_fold_in_a_request_gets_400_rfc9112_5_2(self):
        self.reject(b"GET /fold HTTP/1.1\r\n" + H + b"X-Folded: a\r\n  b\r\n\r\n", 400)

    def test_bare_lf_line_ending_gets_400_rfc9112_2_2(self):
        """RFC 9112 §2.2 lets a recipient accept a bare LF; the project chooses to reject
        it (as llhttp's strict mode does) because lenient line endings enable smuggling."""
        self.reject(b"GET /lf HTTP/1.1\r\nHost: cachalot.test\nX-A: b\r\n\r\n", 400)

    def test_bare_cr_in_a_field_value_gets_400_rfc9112_2_2(self):
        """RFC 9112 §2.2: a bare CR must be treated as invalid or replaced by SP; the
        project treats it as invalid (llhttp strict mode)."""
        self.reject(b"GET /cr HTTP/1.1\r\n" + H + b"X-A: a\rb\r\n\r\n", 400)

    def test_whitespace_between_field_name_and_colon_gets_400_rfc9112_5_1(self):
        self.reject(b"GET /ws HTTP/1.1\r\n" + H + b"X-A : b\r\n\r\n", 400)

    def test_field_name_with_a_non_token_character_gets_400_rfc9110_5_1(self):
        self.reject(b"GET /name HTTP/1.1\r\n" + H + b"X(A): b\r\n\r\n", 400)

    def test_nul_in_a_field_value_gets_400_rfc9110_5_5(self):
        """RFC 9110 §5.5: reject, or replace NUL with SP; the project rejects."""
        self.reject(b"GET /nul HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n", 400)

    def test_chunked_applied_twice_gets_400_rfc9112_6_1(self):
        """'A sender MUST NOT apply the chunked transfer coding more than once'."""
        self.reject(b"POST /twice HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"0\r\n\r\n", 400)

    def test_overflowing_chunk_size_is_rejected(self):
        with self.proxy.client(timeout=5) as c:
            c.send(b"POST /overflow HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                   b"fffffffffffffffffffff\r\nabc\r\n0\r\n\r\n")
            r = c.read_response()
            self.assertIn(r.status, (400, 413))
            self.assertEqual(c.wait_closed(3), "eof")
        self.assertEqual(self.proxy.get("/good").status, 200)

    def test_good_request_pipelined_before_a_bad_one_is_answered_first(self):
        """Requests before the error are served; the connection closes at the error."""
        with self.proxy.client(timeout=5) as c:
            c.send(b"GET /first HTTP/1.1\r\n" + H + b"\r\nGET /second HTTP/1.1 junk\r\n" + H + b"\r\n")
            first = c.read_response()
            self.assertEqual(first.status, 200)
            self.assertEqual(first.body, b"seen /first")
            second = c.read_response()
            self.assertEqual(second.status, 400)
            self.assertEqual(c.wait_closed(3), "eof")
        self.assertEqual([q.target for q in self.origin.requests()], ["/first"])


if __name__ == "__main__":
    unittest.main()
