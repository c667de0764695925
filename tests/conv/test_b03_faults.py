"""Origin and client faults (issue #2): 502/504, timeouts, truncation, no fd leaks.

upstream.timeouts first_byte and connect are 500ms here, idle 700ms;
server.timeouts client_header 500ms, client_idle 1500ms, client_body 700ms and
send 1s, so timeouts are observed in about a second.
"""

import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from cachalot import BYPASS_ALL, Cachalot, wait_until  # noqa: E402
from cachalot import IncompleteResponse  # noqa: E402
from origin import Gate, Origin, Reply, closed_port  # noqa: E402

NO_STORE = [("Cache-Control", "no-store")]
CONFIG = {
    "routes": BYPASS_ALL,
    "upstream": {"timeouts": {"first_byte": "500ms", "connect": "500ms", "idle": "700ms"},
                 "pool": {"max_idle_per_worker": 2}},
    "server": {"timeouts": {"client_header": "500ms", "client_idle": "1500ms", "client_body": "700ms",
                            "send": "1s"}},
}


def make_big(n: int) -> bytes:
    return (b"0123456789abcdef" * (n // 16 + 1))[:n]


class FaultTestBase(unittest.TestCase):
    def assert_error_response(self, r, status: int):
        """A generated error: the status, and a short plain-text body."""
        self.assertEqual(r.status, status, repr(r))
        self.assertTrue(r.complete)
        self.assertGreater(len(r.body), 0, "error responses carry a short explanation")
        self.assertLess(len(r.body), 1024, "error bodies are short")
        ctype = r.header("content-type")
        if ctype is not None:
            self.assertTrue(ctype.lower().startswith("text/plain"), f"Content-Type {ctype!r}")


class RefusedOriginTest(FaultTestBase):
    def test_origin_refusing_connections_gives_502_with_a_short_plain_body_rfc9110_15_6_3(self):
        port = closed_port()
        with Cachalot(CONFIG, upstream=f"http://127.0.0.1:{port}") as proxy:
            r = proxy.get("/refused")
            self.assert_error_response(r, 502)
            # The proxy is still healthy and answers again.
            self.assert_error_response(proxy.get("/refused-again"), 502)
            self.assertEqual(proxy.stop(), 0, proxy.log_tail())


class ConnectTimeoutTest(FaultTestBase):
    def test_origin_not_accepting_connections_times_out_after_the_connect_timeout(self):
        """A listener whose accept queue is full drops SYNs, so connect() hangs; the proxy
        gives up after upstream.timeouts.connect (500ms) with a gateway error."""
        lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        fillers = []
        try:
            lst.bind(("127.0.0.1", 0))
            lst.listen(0)
            port = lst.getsockname()[1]
            for _ in range(8):  # fill the accept queue; later connects stay in SYN-SENT
                f = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                f.setblocking(False)
                fillers.append(f)
                f.connect_ex(("127.0.0.1", port))
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            probe.settimeout(0.3)
            try:
                probe.connect(("127.0.0.1", port))
                self.skipTest("the kernel accepted a connection past a full backlog")
            except (socket.timeout, BlockingIOError):
                pass
            finally:
                probe.close()
            with Cachalot(CONFIG, upstream=f"http://127.0.0.1:{port}") as proxy:
                t0 = time.monotonic()
                r = proxy.get("/connect-timeout", timeout=10)
                elapsed = time.monotonic() - t0
                self.assertIn(r.status, (502, 504), repr(r))
                self.assert_error_response(r, r.status)
                self.assertGreaterEqual(elapsed, 0.45)
                self.assertLess(elapsed, 3.0, "connect timeout of 500ms not applied")
                self.assertEqual(proxy.stop(), 0, proxy.log_tail())
        finally:
            for f in fillers:
                f.close()
            lst.close()


def answered_408(c) -> bool:
    """The proxy has sent a 408 on this connection (peek without blocking)."""
    c.sock.setblocking(False)
    try:
        return c.sock.recv(16, socket.MSG_PEEK).startswith(b"HTTP/1.1 408")
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        c.sock.settimeout(c.timeout)


class FaultTest(FaultTestBase):
    @classmethod
    def setUpClass(cls):
        cls.origin = Origin()
        try:
            cls.proxy = Cachalot(CONFIG, upstream=cls.origin)
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

    # ---- 502 ------------------------------------------------------------------
    def test_origin_resetting_before_answering_gives_502_rfc9110_15_6_3(self):
        self.origin.route("/reset", Reply(action="reset"))
        self.assert_error_response(self.proxy.get("/reset"), 502)
        self.assertGreaterEqual(self.origin.request_count("/reset"), 1)

    def test_origin_closing_before_answering_gives_502_rfc9110_15_6_3(self):
        self.origin.route("/close", Reply(action="close"))
        self.assert_error_response(self.proxy.get("/close"), 502)

    def test_malformed_status_line_from_the_origin_gives_502_rfc9110_15_6_3(self):
        self.origin.route("/malformed", Reply(raw=b"HTTP/1.1 2x0 Broken\r\nContent-Length: 0\r\n\r\n", close=True))
        self.assert_error_response(self.proxy.get("/malformed"), 502)

    def test_non_http_bytes_from_the_origin_give_502_rfc9110_15_6_3(self):
        self.origin.route("/garbage", Reply(raw=b"this is not http at all\r\n\r\n", close=True))
        self.assert_error_response(self.proxy.get("/garbage"), 502)

    def test_origin_response_with_conflicting_content_lengths_gives_502_rfc9112_6_3(self):
        self.origin.route("/dupcl", Reply(raw=b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
                                          close=True))
        self.assert_error_response(self.proxy.get("/dupcl"), 502)

    def test_client_connection_stays_usable_after_a_502(self):
        self.origin.route("/reset2", Reply(action="reset"))
        self.origin.route("/fine", Reply(200, NO_STORE, b"fine"))
        with self.proxy.client() as c:
            c.request("GET", "/reset2")
            self.assert_error_response(c.read_response(), 502)
            c.request("GET", "/fine")
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, b"fine"))

    # ---- 504 ------------------------------------------------------------------
    def test_origin_never_answering_gives_504_after_the_first_byte_timeout_rfc9110_15_6_5(self):
        self.origin.route("/hang", Reply(action="hang"))
        t0 = time.monotonic()
        r = self.proxy.get("/hang", timeout=10)
        elapsed = time.monotonic() - t0
        self.assert_error_response(r, 504)
        self.assertGreaterEqual(elapsed, 0.45, "504 before first_byte (500ms) elapsed")
        self.assertLess(elapsed, 3.0, "first_byte timeout of 500ms not applied")

    # ---- truncated bodies, RFC 9112 §8 --------------------------------------
    def assert_not_presented_complete(self, path: str):
        with self.proxy.client(timeout=5) as c:
            c.request("GET", path)
            try:
                r = c.read_response()
            except (IncompleteResponse, ConnectionResetError):
                return  # truncated as it must be
            self.assertFalse(r.status == 200 and r.complete,
                             f"an incomplete origin response was delivered as complete ({len(r.body)} bytes)")
            self.assertEqual(r.status, 502)

    def test_origin_reset_mid_body_with_content_length_is_not_delivered_as_complete_rfc9112_8(self):
        self.origin.route("/trunc-cl", Reply(200, NO_STORE, make_big(200_000), action="reset_mid_body"))
        self.assert_not_presented_complete("/trunc-cl")

    def test_origin_close_mid_body_with_content_length_is_not_delivered_as_complete_rfc9112_8(self):
        self.origin.route("/trunc-cl2", Reply(200, NO_STORE, make_big(200_000), action="close_mid_body"))
        self.assert_not_presented_complete("/trunc-cl2")

    def test_origin_close_mid_chunked_body_is_not_delivered_as_complete_rfc9112_8(self):
        """Without the zero-size last chunk the message is incomplete; the proxy must not
        send the last chunk to the client."""
        self.origin.route("/trunc-ch", Reply(200, NO_STORE, body=lambda: iter([make_big(100_000)] * 2),
                                             action="close_mid_body"))
        self.assert_not_presented_complete("/trunc-ch")

    def test_origin_stalling_mid_body_is_cut_off_after_the_idle_timeout(self):
        """upstream.timeouts.idle (700ms) bounds the gap between body reads; the client's
        response then ends incomplete instead of hanging."""
        gate = Gate(max_wait=5)
        self.addCleanup(gate.open)

        def body():
            yield b"x" * 1000
            gate.wait()
            yield b"y" * 1000
        self.origin.route("/stall", Reply(200, NO_STORE + [("Content-Length", "2000")], body=body))
        with self.proxy.client(timeout=5) as c:
            c.request("GET", "/stall")
            r = c.read_head()
            self.assertEqual(r.status, 200)
            t0 = time.monotonic()
            got = b""
            with self.assertRaises((IncompleteResponse, ConnectionResetError)):
                for piece in c.iter_body(r):
                    got += piece
            elapsed = time.monotonic() - t0
        self.assertEqual(got, b"x" * 1000)
        self.assertLess(elapsed, 3.0, "idle timeout of 700ms not applied")
        self.assertGreaterEqual(elapsed, 0.6)

    # ---- upstream connection reuse failures ---------------------------------
    def test_pooled_connection_closed_by_the_origin_is_retried_not_reported_rfc9112_9_3_1(self):
        """The origin closes each connection right after answering (without saying so);
        the next GET must not fail because it was written to the stale pooled connection."""
        self.origin.route("/closing", Reply(200, NO_STORE, b"ok", close=True))
        for i in range(5):
            closed_before = self.origin.connections_closed
            r = self.proxy.get("/closing")
            self.assertEqual((r.status, r.body), (200, b"ok"), f"request {i}: {r!r}")
            self.origin.wait_for(lambda: self.origin.connections_closed > closed_before, 5,
                                 "origin closed its side")
        self.assertEqual(self.origin.request_count("/closing"), 5)

    # ---- client timeouts ------------------------------------------------------
    def test_client_header_timeout_closes_a_connection_with_a_partial_head(self):
        with self.proxy.client(timeout=5) as c:
            t0 = time.monotonic()
            c.send(b"GET /partial HTTP/1.1\r\nHost: cachalot.test\r\n")
            try:
                r = c.read_response()
                self.assertEqual(r.status, 408, "only a 408 may precede the close (RFC 9110 §15.5.9)")
                c.wait_closed(3)
            except (IncompleteResponse, ConnectionResetError):
                pass
            except TimeoutError:
                self.fail("connection with a partial head still open after 5 s (client_header: 500ms)")
            elapsed = time.monotonic() - t0
        self.assertGreaterEqual(elapsed, 0.4)
        self.assertLess(elapsed, 3.0, "client_header timeout of 500ms not applied")
        self.assertEqual(self.origin.request_count(), 0)

    def test_client_header_timeout_bounds_the_whole_head_not_each_read(self):
        """A client trickling one byte every 100 ms (slowloris) is cut off near client_header."""
        head = b"GET /trickle HTTP/1.1\r\nHost: cachalot.test\r\nX-Slow: " + b"s" * 100
        t0 = time.monotonic()
        closed_at = None
        with self.proxy.client(timeout=5) as c:
            for i in range(len(head)):  # at most ~11 s, but the proxy must cut us off after ~0.5 s
                try:
                    c.send(head[i:i + 1])
                except OSError:
                    closed_at = time.monotonic()
                    break
                # Cut off = closed, or answered (a 408 before the close, RFC 9110 §15.5.9).
                if not c.is_open(wait=0.1) or answered_408(c):
                    closed_at = time.monotonic()
                    break
                if time.monotonic() - t0 > 4:
                    break
        self.assertIsNotNone(closed_at, "trickling client was never disconnected")
        self.assertLess(closed_at - t0, 2.0, "client_header must bound the whole head")

    def test_client_body_timeout_closes_a_connection_whose_body_stalls(self):
        """The client announces 100 bytes, sends 10 and stops; after client_body (700ms)
        the proxy gives up (a 408 may precede the close)."""
        self.origin.route("/stalled-upload", lambda req: Reply(200, NO_STORE, b"len %d" % len(req.body)))
        with self.proxy.client(timeout=5) as c:
            c.send(b"POST /stalled-upload HTTP/1.1\r\nHost: cachalot.test\r\nContent-Length: 100\r\n\r\n" + b"z" * 10)
            t0 = time.monotonic()
            try:
                r = c.read_response()
                self.assertEqual(r.status, 408, "only a 408 may precede the close (RFC 9110 §15.5.9)")
                c.wait_closed(3)
            except (IncompleteResponse, ConnectionResetError):
                pass
            except TimeoutError:
                self.fail("connection with a stalled body still open after 5 s (client_body: 700ms)")
            elapsed = time.monotonic() - t0
        self.assertGreaterEqual(elapsed, 0.6)
        self.assertLess(elapsed, 3.0, "client_body timeout of 700ms not applied")
        for req in self.origin.requests("/stalled-upload"):
            self.assertFalse(req.response_done and req.body_complete,
                             "the origin was handed a complete request")

    def test_send_timeout_drops_a_client_that_stops_reading(self):
        """A client that reads nothing for longer than server.timeouts.send (1s) is dropped,
        and the upstream fetch is abandoned instead of being held open."""
        big = make_big(1 << 20)
        self.origin.route("/firehose", Reply(200, NO_STORE + [("Content-Length", str(64 << 20))],
                                             body=lambda: iter([big] * 64), sndbuf=64 * 1024))
        opened = self.origin.connections_opened
        with self.proxy.client(timeout=5, rcvbuf=64 * 1024) as c:
            c.request("GET", "/firehose")
            req = self.origin.wait_for_requests(1, path="/firehose")[0]
            # The proxy fills its buffers, then the client socket stays full for > 1 s.
            self.origin.wait_for(lambda: self.origin.connections_closed >= opened + 1
                                 or req.response_done, timeout=6,
                                 what="upstream connection of a stalled client closed")
            self.assertFalse(req.response_done, "the proxy read the whole 64 MiB for a client that reads nothing")
            got = 0
            with self.assertRaises((IncompleteResponse, ConnectionResetError)):
                r = c.read_head()
                for piece in c.iter_body(r):
                    got += len(piece)
            self.assertLess(got, 64 << 20)

    def test_idle_keep_alive_connection_is_closed_after_client_idle(self):
        self.origin.route("/idle", Reply(200, NO_STORE, b"ok"))
        with self.proxy.client(timeout=5) as c:
            c.request("GET", "/idle")
            self.assertEqual(c.read_response().status, 200)
            t0 = time.monotonic()
            self.assertIn(c.wait_closed(5), ("eof", "reset"))
            elapsed = time.monotonic() - t0
        self.assertGreaterEqual(elapsed, 1.0, "closed before client_idle (1500ms)")
        self.assertLess(elapsed, 4.0, "client_idle (1500ms) not applied")

    # ---- resources ------------------------------------------------------------
    def test_no_file_descriptor_leaks_after_200_faulty_requests(self):
        self.origin.route("/ok", Reply(200, NO_STORE, b"ok"))
        self.origin.route("/f/reset", Reply(action="reset"))
        self.origin.route("/f/malformed", Reply(raw=b"HTTP/1.1 abc\r\n\r\n", close=True))
        self.origin.route("/f/mid", Reply(200, NO_STORE, make_big(100_000), action="reset_mid_body"))
        self.origin.route("/f/slow", Reply(200, NO_STORE, b"late", delay_head=0.05))
        for _ in range(3):
            self.assertEqual(self.proxy.get("/ok").status, 200)
        baseline = self.proxy.fd_count()

        for i in range(50):
            self.assertEqual(self.proxy.get("/f/reset").status, 502, f"round {i}")
            self.assertEqual(self.proxy.get("/f/malformed").status, 502, f"round {i}")
            with self.proxy.client() as c:
                c.request("GET", "/f/mid")
                try:
                    c.read_response()
                except (IncompleteResponse, ConnectionResetError):
                    pass
            # A client that leaves before its answer arrives.
            n = self.origin.request_count("/f/slow")
            with self.proxy.client() as c:
                c.request("GET", "/f/slow")
                self.origin.wait_for_requests(n + 1, 5, path="/f/slow")
        self.assertTrue(self.proxy.alive(), self.proxy.log_tail())
        self.assertEqual(self.proxy.get("/ok").status, 200)

        def settled():
            return self.proxy.fd_count() <= baseline + 4
        try:
            wait_until(settled, timeout=10, interval=0.05, what="fd count back to baseline")
        except AssertionError:
            fds = sorted(os.readlink(f"/proc/{self.proxy.pid}/fd/{fd}")
                         for fd in os.listdir(f"/proc/{self.proxy.pid}/fd"))
            self.fail(f"fd leak: baseline {baseline}, now {self.proxy.fd_count()}: {fds}")


if __name__ == "__main__":
    unittest.main()
