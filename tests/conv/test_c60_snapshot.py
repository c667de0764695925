"""Warm restarts (cache.snapshot): the store is written on SIGTERM after the
drain and loaded at the next start, before the listeners open.

Each test runs one cachalot with `cache.snapshot.path` in its own directory,
fills it from the fake origin, stops it (SIGTERM), starts it again with the
same config and checks what the new process serves: hits with no new origin
request and an Age that kept growing while it was down (RFC 9111 §4.2.3), no
expired entries, no purged route, and a cold start with a log line for a file
that is damaged or foreign.

Two tests sleep on purpose: the downtime is real time between two processes,
which the test clock (one process' offset) cannot stand in for.
"""

import os
import re
import signal
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _cachetest import HOST, cache_status  # noqa: E402
from cachalot import Cachalot, RawClient, wait_until  # noqa: E402
from origin import Origin, Reply  # noqa: E402

FRESH = [("Cache-Control", "max-age=3600"), ("ETag", '"e"')]


class SnapshotTest(unittest.TestCase):
    def setUp(self):
        self.origin = Origin()
        self.addCleanup(self.origin.close)
        self.dir = tempfile.TemporaryDirectory(prefix="cachalot-snap-")
        self.addCleanup(self.dir.cleanup)
        self.path = os.path.join(self.dir.name, "cache.snap")
        self.proxy = None

    def tearDown(self):
        if self.proxy is not None:
            rc = self.proxy.stop()
            log = self.proxy.log_tail()
            self.proxy.close()
            self.assertEqual(rc, 0, log)

    # ---- helpers ---------------------------------------------------------
    def start(self, extra: dict = None, cache: dict = None) -> Cachalot:
        config = {"cache": {"snapshot": {"path": self.path}, **(cache or {})}, **(extra or {})}
        self.proxy = Cachalot(config, upstream=self.origin, workers=1)
        return self.proxy

    def restart(self, down: float = 0.0) -> float:
        """SIGTERM, wait `down` seconds of real time, start again with the same config.
        Returns the time the old process had exited."""
        since = self.proxy.log_offset()
        self.assertEqual(self.proxy.stop(), 0, self.proxy.log_tail())
        exited = time.time()
        self.assertRegex(self.proxy.log_text()[since:], r"snapshot \S+ \(shutdown\): wrote \d+ entries")
        if down:
            time.sleep(down)
        self.proxy.start()
        return exited

    def serve(self, path: str, body: bytes, headers=FRESH):
        self.origin.route(path, Reply(200, headers, body))

    def fill(self, path: str):
        r = self.proxy.get(path)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(cache_status(r).get("stored"), f"{path} not stored: {r!r}")
        # A hit proves the entry is published (not just answered).
        wait_until(lambda: cache_status(self.proxy.get(path)).get("hit"), 5, what=f"{path} stored")
        return r

    def assert_hit(self, path: str, body: bytes = None):
        n = self.origin.request_count(path)
        r = self.proxy.get(path)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(cache_status(r).get("hit"), f"{path} should be a hit: {r!r}")
        if body is not None:
            self.assertEqual(r.body, body)
        self.assertEqual(self.origin.request_count(path), n, f"{path} went to the origin")
        return r

    def assert_miss(self, path: str):
        n = self.origin.request_count(path)
        r = self.proxy.get(path)
        self.assertEqual(r.status, 200, r)
        self.assertFalse(cache_status(r).get("hit"), f"{path} should not be served from the cache: {r!r}")
        self.assertEqual(self.origin.request_count(path), n + 1, f"{path} did not go to the origin")
        return r

    def load_line(self) -> re.Match:
        return self.proxy.wait_for_log(
            r"snapshot (\S+): loaded (\d+) of (\d+) entries .* down for (\d+) s; skipped: (\d+) expired, "
            r"(\d+) over budget, (\d+) corrupt, (\d+) malformed, (\d+) invalidated")

    def admin_post(self, path: str):
        with RawClient(self.proxy.admin_port) as c:
            c.request("POST", path, None, body=b"", host=f"127.0.0.1:{self.proxy.admin_port}")
            return c.read_response("POST")

    # ---- the restart -----------------------------------------------------
    def test_entries_come_back_as_hits_with_no_origin_request_and_age_grown_by_the_downtime(self):
        n = 40
        self.start()
        for i in range(n):
            self.serve(f"/w/{i}", b"body %d" % i)
        filled = time.time()
        for i in range(n):
            self.fill(f"/w/{i}")
        self.assertEqual(int(self.proxy.get("/w/0").header("age")), 0)
        origin_before = self.origin.request_count()

        self.restart(down=2.0)
        m = self.load_line()
        self.assertEqual(m.group(1), self.path)
        self.assertEqual((int(m.group(2)), int(m.group(3))), (n, n), m.group(0))
        self.assertGreaterEqual(int(m.group(4)), 2, "downtime in the log line")

        for i in range(n):
            r = self.assert_hit(f"/w/{i}", b"body %d" % i)
            age = int(r.header("age"))
            self.assertGreaterEqual(age, 2, f"Age {age} did not grow by the 2 s downtime")
            self.assertLessEqual(age, int(time.time() - filled) + 1, f"Age {age} older than the entry")
            self.assertEqual(r.header("etag"), '"e"')
        self.assertEqual(self.origin.request_count(), origin_before, "a loaded entry went to the origin")

        mx = self.proxy.metrics()
        self.assertEqual(mx.get("cachalot_snapshot_loaded_objects"), n)
        self.assertEqual(mx.get("cachalot_snapshot_load_status", status="loaded"), 1)
        self.assertEqual(mx.get("cachalot_snapshot_load_status", status="rejected"), 0)
        self.assertEqual(mx.get("cachalot_snapshot_skipped_total", phase="load"), 0)
        self.assertGreater(mx.get("cachalot_snapshot_load_duration_seconds"), 0)
        self.assertEqual(mx.get("cachalot_cache_objects"), n)

    def test_time_the_test_clock_moved_before_shutdown_counts_as_age(self):
        self.start()
        self.serve("/clock", b"c", [("Cache-Control", "max-age=3600")])
        self.fill("/clock")
        self.proxy.advance_clock(1000)
        self.assertGreaterEqual(int(self.proxy.get("/clock").header("age")), 1000)
        self.restart()  # the new process' clock starts on real time again
        r = self.assert_hit("/clock")
        age = int(r.header("age"))
        self.assertGreaterEqual(age, 1000)
        self.assertLess(age, 1000 + 30)
        self.assertLessEqual(cache_status(r)["ttl"], 3600 - 1000)
        # The loaded entry then ages on the new process' (test) clock like any other.
        self.proxy.advance_clock(3600 - age)
        self.assert_miss("/clock")

    def test_a_periodic_snapshot_survives_a_crash(self):
        self.start(cache={"snapshot": {"path": self.path, "interval": "1s"}})
        self.serve("/p", b"periodic")
        self.fill("/p")
        since = self.proxy.log_offset()
        self.proxy.wait_for_log(r"snapshot \S+ \(periodic\): wrote 1 entries", timeout=10, since=since)
        self.proxy.proc.kill()  # no SIGTERM, no final snapshot
        self.proxy.proc.wait(5)
        self.proxy.stop()  # collects the exit status, closes the log files
        self.proxy.start()
        self.assert_hit("/p", b"periodic")

    # ---- what is not loaded ----------------------------------------------
    def test_expired_entries_are_not_written_or_not_loaded(self):
        self.start()
        no_validators = [("Cache-Control", "max-age=60")]
        self.serve("/exp/at-write", b"a", no_validators)
        self.fill("/exp/at-write")
        # An entry is kept past its lifetime for cache.stale_on_disconnect (10 s
        # by default, RFC 9111 §4.2.4): "expired" is past that window too.
        self.proxy.advance_clock(71)  # expired now: no stale window, no validator to keep it for
        self.serve("/exp/while-down", b"b", no_validators)
        self.fill("/exp/while-down")
        self.proxy.advance_clock(69)  # 1 s of the disconnect grace left: the downtime uses it up
        self.serve("/exp/kept", b"k")  # max-age=3600 with an ETag
        self.fill("/exp/kept")
        since = self.proxy.log_offset()
        self.restart(down=1.5)
        self.assertRegex(self.proxy.log_text()[since:], r"wrote 2 entries .* left out 1 expired")
        m = self.load_line()
        self.assertEqual((m.group(2), m.group(3), m.group(5)), ("1", "2", "1"), m.group(0))
        self.assert_hit("/exp/kept", b"k")
        self.assert_miss("/exp/at-write")
        self.assert_miss("/exp/while-down")
        self.assertEqual(self.proxy.metrics().get("cachalot_snapshot_skipped_total", phase="load", reason="expired"), 1)

    def test_a_stale_entry_with_a_validator_is_loaded_and_revalidated(self):
        """cache.keep (1 h by default) keeps an expired entry with a validator: it
        is still worth a conditional request after the restart."""
        self.start()
        self.origin.route("/reval", lambda req: Reply(304, [("ETag", '"v"'), ("Cache-Control", "max-age=60")])
                          if req.header("if-none-match") == '"v"'
                          else Reply(200, [("ETag", '"v"'), ("Cache-Control", "max-age=60")], b"validated"))
        self.fill("/reval")
        self.proxy.advance_clock(120)
        self.restart()
        r = self.proxy.get("/reval")
        self.assertEqual((r.status, r.body), (200, b"validated"))
        reqs = self.origin.requests("/reval")
        self.assertEqual(reqs[-1].header("if-none-match"), '"v"', "the loaded entry was not revalidated")
        self.assertEqual(cache_status(r).get("fwd"), "stale", r)

    def test_a_route_purged_before_shutdown_stays_purged(self):
        """A route purge bumps the route's generation; the entries stay in the store
        until a request notices. Generations start at 0 in every process, so the
        writer must leave them out."""
        self.start({"routes": [{"name": "r", "prefix": "/r/"}]})
        self.serve("/r/a", b"ra")
        self.serve("/other", b"o")
        self.fill("/r/a")
        self.fill("/other")
        r = self.admin_post("/purge?route=r")
        self.assertEqual(r.status, 200, r)
        since = self.proxy.log_offset()
        self.restart()
        self.assertRegex(self.proxy.log_text()[since:], r"wrote 1 entries .* left out 0 expired, 1 invalidated")
        self.assert_hit("/other", b"o")
        self.assert_miss("/r/a")

    def test_loaded_entries_are_purged_like_any_other(self):
        """Loaded entries are published through the store (and their host noted):
        a purge by path without host= finds them."""
        self.start()
        self.serve("/pp", b"pp")
        self.fill("/pp")
        self.restart()
        self.assert_hit("/pp")
        r = self.admin_post("/purge?path=/pp")
        self.assertEqual(r.status, 200, r)
        self.assertIn(b'"purged":1', r.body.replace(b" ", b""))
        self.assert_miss("/pp")

    def test_a_smaller_budget_keeps_the_newest_entries(self):
        self.start(cache={"shards": 1})
        n = 12
        for i in range(n):
            self.serve(f"/b/{i}", bytes([65 + i]) * 4000)
        for i in range(n):
            self.fill(f"/b/{i}")
            time.sleep(0.005)  # distinct response times: "newest" is well defined
        self.proxy.user_config = {"cache": {"snapshot": {"path": self.path}, "shards": 1,
                                            "max_memory": "20KiB", "max_object_size": "8KiB"}}
        self.restart()
        m = self.load_line()
        loaded = int(m.group(2))
        self.assertTrue(1 <= loaded < n, m.group(0))
        self.assertEqual(int(m.group(6)), n - loaded, "over budget count")
        for i in range(n - loaded, n):
            self.assert_hit(f"/b/{i}")
        self.assert_miss("/b/0")

    # ---- damaged or foreign files: a cold start, never a crash --------------
    def _cold_start_with(self, damage, want_log: str):
        self.start()
        self.serve("/cold", b"cold")
        self.fill("/cold")
        self.assertEqual(self.proxy.stop(), 0)
        damage()
        since = self.proxy.log_offset()
        self.proxy.start()
        self.proxy.wait_for_log(r"snapshot " + re.escape(self.path) + r" ignored: " + want_log +
                                r"; starting with an empty cache", since=since)
        self.assertTrue(self.proxy.alive())
        self.assert_miss("/cold")
        self.assertEqual(self.proxy.metrics().get("cachalot_snapshot_load_status", status="rejected"), 1)

    def _rewrite(self, f):
        with open(self.path, "rb") as fh:
            data = bytearray(fh.read())
        with open(self.path, "wb") as fh:
            fh.write(f(data))

    def test_a_file_that_is_not_a_snapshot_is_ignored(self):
        self._cold_start_with(lambda: self._rewrite(lambda d: b"this is not a snapshot\n" * 10),
                              r"not a cachalot snapshot \(bad magic\)")

    def test_a_truncated_file_is_ignored(self):
        self._cold_start_with(lambda: self._rewrite(lambda d: d[:len(d) - 3]), r"truncated \(\d+ bytes, the header says \d+\)")

    def test_an_empty_file_is_ignored(self):
        self._cold_start_with(lambda: self._rewrite(lambda d: b""), r"empty file \(not a cachalot snapshot\)")

    def test_a_damaged_header_is_ignored(self):
        def flip(d):
            d[30] ^= 0xFF
            return d
        self._cold_start_with(lambda: self._rewrite(flip), r"corrupt header \(checksum mismatch\)")

    def test_another_format_version_is_ignored(self):
        def v9(d):
            d[8] = 9
            return d
        self._cold_start_with(lambda: self._rewrite(v9), r"unsupported version 9 \(this build reads version 2\)")

    def test_a_snapshot_of_another_origin_is_ignored(self):
        other = Origin()
        self.addCleanup(other.close)
        self.start()
        self.serve("/cold", b"cold")
        self.fill("/cold")
        self.assertEqual(self.proxy.stop(), 0)
        self.proxy.upstream_url = other.url
        other.route("/cold", Reply(200, FRESH, b"other"))
        since = self.proxy.log_offset()
        self.proxy.start()
        self.proxy.wait_for_log(r"ignored: written for origin http://127\.0\.0\.1:\d+, this configuration's is " +
                                re.escape(other.url), since=since)
        r = self.proxy.get("/cold")
        self.assertEqual(r.body, b"other")

    def test_a_flipped_byte_in_one_record_skips_only_that_record(self):
        self.start()
        self.serve("/f/1", b"first-body-" * 10)
        self.serve("/f/2", b"second-body-" * 10)
        self.fill("/f/1")
        self.fill("/f/2")
        self.assertEqual(self.proxy.stop(), 0)

        def flip(d):
            at = bytes(d).index(b"second-body-")
            d[at + 3] ^= 0x20
            return d
        self._rewrite(flip)
        self.proxy.start()
        m = self.load_line()
        self.assertEqual((m.group(2), m.group(7)), ("1", "1"), m.group(0))
        self.assert_hit("/f/1")
        self.assert_miss("/f/2")
        self.assertEqual(self.proxy.metrics().get("cachalot_snapshot_skipped_total", phase="load", reason="corrupt"), 1)

    def test_no_file_yet_is_a_cold_start_and_a_failed_write_keeps_the_daemon_exiting_cleanly(self):
        self.path = os.path.join(self.dir.name, "missing-dir", "cache.snap")
        self.start()
        self.proxy.wait_for_log(r"snapshot \S+: directory \S+ is not writable")
        self.proxy.wait_for_log(r"snapshot \S+: no file yet, starting with an empty cache")
        self.assertEqual(self.proxy.metrics().get("cachalot_snapshot_load_status", status="missing"), 1)
        self.serve("/m", b"m")
        self.fill("/m")
        since = self.proxy.log_offset()
        self.assertEqual(self.proxy.stop(), 0)
        self.assertRegex(self.proxy.log_text()[since:], r"snapshot \S+: creating \S+\.tmp failed: No such file")
        self.proxy.close()
        self.proxy = None


if __name__ == "__main__":
    unittest.main()
