"""Bodies stream through with bounded memory (issue #2; STYLE: pull-based back-pressure).

50 MB responses and uploads pass through while the proxy's peak resident set
(VmHWM) stays under 40 MB, and a client that stops reading stops the origin
too, instead of the proxy buffering the rest.
"""

import hashlib
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from cachalot import BYPASS_ALL, Cachalot  # noqa: E402
from origin import Origin, Reply  # noqa: E402

NO_STORE = [("Cache-Control", "no-store")]
BLOCK = bytes(range(256)) * 256            # 64 KiB, not compressible into a pattern the proxy could fake
BLOCKS = 800                               # 800 x 64 KiB = 50 MiB
TOTAL = len(BLOCK) * BLOCKS
RSS_LIMIT_KB = 40 * 1024
# Under ASan/TSan, RSS is shadow memory and quarantine: the RSS bound is checked
# in the plain build only (the back-pressure checks run in both).
SANITIZED = bool(os.environ.get("CACHALOT_SANITIZE"))


def expected_sha() -> str:
    h = hashlib.sha256()
    for _ in range(BLOCKS):
        h.update(BLOCK)
    return h.hexdigest()


EXPECTED_SHA = expected_sha()


def blocks():
    for _ in range(BLOCKS):
        yield BLOCK


class StreamingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.origin = Origin()
        cls.origin.route("/big-cl", Reply(200, NO_STORE + [("Content-Length", str(TOTAL))], body=blocks))
        cls.origin.route("/big-chunked", Reply(200, NO_STORE, body=blocks))
        cls.origin.route("/slow-reader", Reply(200, NO_STORE + [("Content-Length", str(TOTAL))], body=blocks,
                                               sndbuf=64 * 1024))
        cls.origin.route("/upload",
                         lambda req: Reply(200, NO_STORE, f"{req.body_len} {req.body_sha256}".encode()),
                         keep_body=False)

    @classmethod
    def tearDownClass(cls):
        cls.origin.close()

    def setUp(self):
        # A fresh proxy per test, so one test's peak memory cannot leak into another's.
        self.origin.reset_log()
        self.proxy = Cachalot({"routes": BYPASS_ALL, "server": {"limits": {"max_body_size": "64MiB"}}},
                              upstream=self.origin)
        self.addCleanup(self.proxy.close)
        self.hwm_reset = self.proxy.reset_peak_rss()
        self.sampler = self.proxy.rss_sampler()
        self.sampler.__enter__()
        self.addCleanup(self.sampler.__exit__, None, None, None)

    def tearDown(self):
        self.assertEqual(self.proxy.stop(), 0, self.proxy.log_tail())

    def assert_memory_bounded(self):
        peak = max(self.sampler.max_kb, self.proxy.rss_kb())
        if self.hwm_reset:
            peak = max(peak, self.proxy.peak_rss_kb())
        if not SANITIZED:
            self.assertLess(peak, RSS_LIMIT_KB, f"proxy peak RSS {peak} KiB while moving a {TOTAL >> 20} MiB body")

    def download(self, path: str):
        with self.proxy.client(timeout=10) as c:
            c.request("GET", path)
            r = c.read_head()
            self.assertEqual(r.status, 200)
            h = hashlib.sha256()
            n = 0
            for piece in c.iter_body(r, max_piece=256 * 1024):
                h.update(piece)
                n += len(piece)
            self.assertTrue(r.complete)
        return r, n, h.hexdigest()

    def test_50_mb_response_with_content_length_streams_with_bounded_memory(self):
        r, n, sha = self.download("/big-cl")
        self.assertEqual(n, TOTAL)
        self.assertEqual(sha, EXPECTED_SHA)
        self.assertEqual(r.header("content-length"), str(TOTAL))
        self.assert_memory_bounded()

    def test_50_mb_chunked_response_streams_with_bounded_memory_rfc9112_7_1(self):
        _, n, sha = self.download("/big-chunked")
        self.assertEqual(n, TOTAL)
        self.assertEqual(sha, EXPECTED_SHA)
        self.assert_memory_bounded()

    def upload(self, chunked: bool):
        with self.proxy.client(timeout=20) as c:
            head = "POST /upload HTTP/1.1\r\nHost: cachalot.test\r\nContent-Type: application/octet-stream\r\n"
            head += "Transfer-Encoding: chunked\r\n\r\n" if chunked else f"Content-Length: {TOTAL}\r\n\r\n"
            c.send(head.encode())
            frame = b"%x\r\n" % len(BLOCK) + BLOCK + b"\r\n" if chunked else BLOCK
            for _ in range(BLOCKS):
                c.send(frame)
            if chunked:
                c.send(b"0\r\n\r\n")
            r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body.decode(), f"{TOTAL} {EXPECTED_SHA}")
        self.assert_memory_bounded()

    def test_50_mb_chunked_upload_streams_with_bounded_memory_rfc9112_7_1(self):
        self.upload(chunked=True)

    def test_50_mb_content_length_upload_streams_with_bounded_memory(self):
        self.upload(chunked=False)

    def test_slow_client_makes_the_proxy_stop_reading_from_the_origin(self):
        """Back-pressure: while the client reads nothing, the origin's writes stall well
        before 50 MB; the proxy does not soak up the body in memory."""
        with self.proxy.client(timeout=10, rcvbuf=64 * 1024) as c:
            c.request("GET", "/slow-reader")
            r = c.read_head()
            self.assertEqual(r.status, 200)
            it = c.iter_body(r, max_piece=64 * 1024)
            got = 0
            h = hashlib.sha256()
            while got < (1 << 20):
                piece = next(it)
                h.update(piece)
                got += len(piece)
            req = self.origin.wait_for_requests(1, path="/slow-reader")[0]

            # Poll the origin's sent-bytes counter until it stops moving (or 15 s pass).
            last, stable_since = req.response_bytes_sent, time.monotonic()
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and time.monotonic() - stable_since < 0.5:
                time.sleep(0.05)
                now = req.response_bytes_sent
                if now != last:
                    last, stable_since = now, time.monotonic()
            self.assertGreaterEqual(time.monotonic() - stable_since, 0.5, "the origin never stalled")
            stalled_at = req.response_bytes_sent
            rss = self.proxy.rss_kb()
            self.assertLess(stalled_at, 25 << 20,
                            f"origin sent {stalled_at >> 20} MiB while the client had read 1 MiB")
            if not SANITIZED:
                self.assertLess(rss, RSS_LIMIT_KB, f"proxy RSS {rss} KiB while holding a slow client")

            for piece in it:
                h.update(piece)
                got += len(piece)
            self.assertTrue(r.complete)
        self.assertEqual(got, TOTAL)
        self.assertEqual(h.hexdigest(), EXPECTED_SHA)
        self.assert_memory_bounded()


if __name__ == "__main__":
    unittest.main()
