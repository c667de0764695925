"""Signals (issue #2): SIGHUP reloads the config, SIGTERM drains and exits 0.

A reload that fails validation is logged (naming the offending key) and the
running config stays in force. Reloads are asynchronous, so each test polls for
the observable effect with a deadline.
"""

import os
import signal
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from cachalot import BYPASS_ALL, Cachalot, wait_until  # noqa: E402
from origin import Gate, Origin, Reply  # noqa: E402

NO_STORE = [("Cache-Control", "no-store")]


def named_origin(name: str) -> Origin:
    o = Origin()
    o.default(lambda req: Reply(200, NO_STORE, name.encode()))
    return o


def connect_refused(port: int) -> bool:
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=0.5)
    except ConnectionRefusedError:
        return True
    s.close()
    return False


class ReloadTest(unittest.TestCase):
    def setUp(self):
        self.o1 = named_origin("origin1")
        self.addCleanup(self.o1.close)
        self.o2 = named_origin("origin2")
        self.addCleanup(self.o2.close)
        self.proxy = Cachalot({"routes": BYPASS_ALL}, upstream=self.o1)
        self.addCleanup(self.proxy.close)

    def tearDown(self):
        self.assertEqual(self.proxy.stop(), 0, self.proxy.log_tail())

    def test_sighup_with_an_invalid_config_is_logged_and_the_old_config_keeps_serving(self):
        self.assertEqual(self.proxy.get("/x").body, b"origin1")
        since = self.proxy.log_offset()
        self.proxy.reload({"routes": BYPASS_ALL, "upstream": {"url": self.o2.url},
                           "server": {"bogus_reload_key": 1}})
        self.proxy.wait_for_log(r"bogus_reload_key", timeout=5, since=since)
        self.assertTrue(self.proxy.alive(), "an invalid reload must not stop the daemon")
        for _ in range(5):
            r = self.proxy.get("/after-bad-reload")
            self.assertEqual((r.status, r.body), (200, b"origin1"))
        self.assertEqual(self.o2.request_count(), 0, "the rejected config was partly applied")
        self.assertEqual(self.proxy.admin_get("/healthz").status, 200)

    def test_sighup_with_invalid_yaml_keeps_the_old_config(self):
        since = self.proxy.log_offset()
        self.proxy.reload_text("upstream:\n  url: \"http://127.0.0.1:1\n")
        self.proxy.wait_for_log(r"cachalot\.yaml:\d+:\d+:", timeout=5, since=since)
        self.assertTrue(self.proxy.alive())
        self.assertEqual(self.proxy.get("/y").body, b"origin1")

    def test_sighup_with_a_valid_config_applies_new_limits(self):
        long_target = "/u" + "a" * 2000
        self.assertEqual(self.proxy.get(long_target).status, 200)
        self.proxy.reload({"routes": BYPASS_ALL, "server": {"limits": {"max_uri_length": "1KiB"}}})
        wait_until(lambda: self.proxy.get(long_target).status == 414, timeout=5, interval=0.05,
                   what="max_uri_length 1KiB in force after SIGHUP")
        self.assertEqual(self.proxy.get("/short").status, 200)

    def test_sighup_with_a_valid_config_switches_the_upstream(self):
        self.assertEqual(self.proxy.get("/z").body, b"origin1")
        self.proxy.reload({"routes": BYPASS_ALL, "upstream": {"url": self.o2.url}})
        # Workers apply a reload independently, so wait until a whole batch (new
        # connections, spread over the workers) goes to origin2.
        wait_until(lambda: all(self.proxy.get("/z").body == b"origin2" for _ in range(6)), timeout=5,
                   interval=0.05, what="upstream switched to origin2 after SIGHUP")
        self.o1.reset_log()
        for _ in range(5):
            self.assertEqual(self.proxy.get("/z").body, b"origin2")
        self.assertEqual(self.o1.request_count(), 0)

    def test_sighup_applies_to_the_next_request_on_existing_keep_alive_connections(self):
        clients = [self.proxy.client() for _ in range(6)]
        try:
            for c in clients:
                c.request("GET", "/before")
                self.assertEqual(c.read_response().body, b"origin1")
            self.proxy.reload({"routes": BYPASS_ALL, "upstream": {"url": self.o2.url}})
            wait_until(lambda: all(self.proxy.get("/z").body == b"origin2" for _ in range(6)), timeout=5,
                       interval=0.05, what="upstream switched to origin2 after SIGHUP")
            for i, c in enumerate(clients):
                c.request("GET", "/after")
                self.assertEqual(c.read_response().body, b"origin2", f"kept-alive client {i}")
        finally:
            for c in clients:
                c.close()

    def test_sighup_after_a_failed_reload_applies_the_next_valid_config(self):
        since = self.proxy.log_offset()
        self.proxy.reload({"routes": BYPASS_ALL, "cache": {"max_memory": "lots"}})
        self.proxy.wait_for_log(r"max_memory", timeout=5, since=since)
        self.proxy.reload({"routes": BYPASS_ALL, "upstream": {"url": self.o2.url}})
        wait_until(lambda: self.proxy.get("/w").body == b"origin2", timeout=5, interval=0.05,
                   what="valid config applied after a failed one")


class DrainTest(unittest.TestCase):
    def setUp(self):
        self.origin = named_origin("origin")
        self.addCleanup(self.origin.close)
        self.gate = Gate(max_wait=5)
        self.addCleanup(self.gate.open)
        self.origin.route("/slow", Reply(200, NO_STORE, b"slow done", gate=self.gate))

    def test_sigterm_drains_in_flight_requests_refuses_new_ones_and_exits_0(self):
        """In-flight requests complete with 200; the listener closes at once; exit code 0."""
        with Cachalot({"routes": BYPASS_ALL, "server": {"timeouts": {"drain": "10s"}}},
                      upstream=self.origin) as proxy:
            clients = [proxy.client(timeout=10) for _ in range(5)]
            try:
                for c in clients:
                    c.request("GET", "/slow")
                self.origin.wait_for_requests(5, timeout=5, path="/slow")
                proxy.signal(signal.SIGTERM)
                wait_until(lambda: connect_refused(proxy.port), timeout=3, interval=0.02,
                           what="listener closed after SIGTERM")
                self.assertTrue(proxy.alive(), "exited without draining in-flight requests")
                self.gate.open()
                for i, c in enumerate(clients):
                    r = c.read_response()
                    self.assertEqual((r.status, r.body), (200, b"slow done"), f"client {i}")
            finally:
                for c in clients:
                    c.close()
            self.assertEqual(proxy.wait_exit(10), 0, proxy.log_tail())

    def test_sigterm_with_only_idle_keep_alive_connections_exits_promptly(self):
        with Cachalot({"routes": BYPASS_ALL, "server": {"timeouts": {"drain": "10s"}}},
                      upstream=self.origin) as proxy:
            with proxy.client() as idle:
                idle.request("GET", "/a")
                self.assertEqual(idle.read_response().status, 200)
                t0 = time.monotonic()
                proxy.signal(signal.SIGTERM)
                self.assertIn(idle.wait_closed(5), ("eof", "reset"))
                self.assertEqual(proxy.wait_exit(5), 0, proxy.log_tail())
                self.assertLess(time.monotonic() - t0, 3.0, "idle connections held up the drain")

    def test_sigterm_drain_is_bounded_by_the_drain_timeout(self):
        with Cachalot({"routes": BYPASS_ALL, "server": {"timeouts": {"drain": "1s"}}},
                      upstream=self.origin) as proxy:
            with proxy.client(timeout=10) as c:
                c.request("GET", "/slow")  # the gate stays shut
                self.origin.wait_for_requests(1, timeout=5, path="/slow")
                t0 = time.monotonic()
                proxy.signal(signal.SIGTERM)
                rc = proxy.wait_exit(6)
                self.assertIsNotNone(rc, "still running 6 s after SIGTERM with drain: 1s")
                self.assertLess(time.monotonic() - t0, 4.0)


if __name__ == "__main__":
    unittest.main()
