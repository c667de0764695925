"""Admin listener (issue #2): /healthz and Prometheus /metrics that move with traffic.

Metric names checked here:
  cachalot_requests_total{result="pass"|"error"|...}  counter, by how requests were answered
  a counter with a label valued "2xx", "4xx"...       responses by status class (the brief
                                                      named it cachalot_requests_total; the
                                                      binary has cachalot_http_responses_total)
  cachalot_upstream_errors_total{kind="..."}         counter, by kind (timeout, reset, ...)
  a cachalot_*connections* gauge                     active client connections
  cachalot_request_duration_seconds                  histogram (_bucket/_sum/_count)
"""

import math
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from cachalot import BYPASS_ALL, Cachalot, parse_metrics, wait_until  # noqa: E402
from origin import Origin, Reply  # noqa: E402

NO_STORE = [("Cache-Control", "no-store")]
REQUESTS_TOTAL = "cachalot_requests_total"
STATUS_CLASS_COUNTERS = ("cachalot_requests_total", "cachalot_http_responses_total")
UPSTREAM_ERRORS = "cachalot_upstream_errors_total"
DURATION = "cachalot_request_duration_seconds"


class AdminTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.origin = Origin()
        cls.origin.route("/ok", Reply(200, NO_STORE, b"ok"))
        cls.origin.route("/missing", Reply.text(404, "no", NO_STORE))
        cls.origin.route("/reset", Reply(action="reset"))
        cls.origin.route("/hang", Reply(action="hang"))
        cls.origin.route("/malformed", Reply(raw=b"HTTP/1.1 abc\r\n\r\n", close=True))
        cls.origin.route("/slow", Reply(200, NO_STORE, b"slow", delay_head=0.3))
        try:
            cls.proxy = Cachalot({"routes": BYPASS_ALL, "upstream": {"timeouts": {"first_byte": "500ms"}}},
                                 upstream=cls.origin)
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
        self.assertTrue(self.proxy.alive(), "cachalot died:\n" + self.proxy.log_tail())

    def test_healthz_answers_200(self):
        r = self.proxy.admin_get("/healthz")
        self.assertEqual(r.status, 200)

    def test_unknown_admin_path_answers_404(self):
        self.assertEqual(self.proxy.admin_get("/no-such-admin-page").status, 404)

    def test_metrics_is_prometheus_text_with_cachalot_names(self):
        self.proxy.get("/ok")
        r = self.proxy.admin_get("/metrics")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.header("content-type", "").startswith("text/plain"), r.header("content-type"))
        m = parse_metrics(r.text)
        self.assertTrue(m.samples)
        bad = sorted(n for n in m.names() if not n.startswith("cachalot_"))
        self.assertEqual(bad, [], "every metric is named cachalot_*")
        self.assertEqual(m.types.get(REQUESTS_TOTAL), "counter")
        for name in m.types:
            self.assertRegex(name, r"^cachalot_[a-z0-9_]+$")

    def status_class_series(self, m):
        """(counter name, label name) of the counter whose label takes values like 2xx."""
        for name in STATUS_CLASS_COUNTERS:
            for labels in m.series(name):
                for k, v in labels:
                    if re.fullmatch(r"[1-5]xx", v):
                        return name, k
        self.fail(f"no counter among {STATUS_CLASS_COUNTERS} has a label with a value like 2xx")

    def test_responses_are_counted_by_status_class(self):
        """Client responses by class; admin requests (these scrapes) are not counted."""
        before = self.proxy.metrics()
        name, label = self.status_class_series(before)
        for _ in range(3):
            self.assertEqual(self.proxy.get("/ok").status, 200)
        for _ in range(2):
            self.assertEqual(self.proxy.get("/missing").status, 404)
        self.assertEqual(self.proxy.get("/reset").status, 502)
        after = wait_until(lambda: (lambda m: m if m.get(name) >= before.get(name) + 6 else None)(self.proxy.metrics()),
                           timeout=3, what="responses counted")

        def delta(cls):
            return after.get(name, **{label: cls}) - before.get(name, **{label: cls})
        self.assertEqual(delta("2xx"), 3)
        self.assertEqual(delta("4xx"), 2)
        self.assertEqual(delta("5xx"), 1)
        self.assertEqual(after.get(name) - before.get(name), 6)

    def test_requests_total_counts_bypassed_and_failed_requests_by_result(self):
        before = self.proxy.metrics()
        self.assertEqual(before.types.get(REQUESTS_TOTAL), "counter")
        for _ in range(2):
            self.assertEqual(self.proxy.get("/ok").status, 200)
        self.assertEqual(self.proxy.get("/reset").status, 502)
        after = wait_until(lambda: (lambda m: m if m.get(REQUESTS_TOTAL) >= before.get(REQUESTS_TOTAL) + 3
                                    else None)(self.proxy.metrics()),
                           timeout=3, what="requests counted")
        self.assertEqual(after.get(REQUESTS_TOTAL) - before.get(REQUESTS_TOTAL), 3)
        self.assertEqual(after.get(REQUESTS_TOTAL, result="pass") - before.get(REQUESTS_TOTAL, result="pass"), 2)
        self.assertEqual(after.get(REQUESTS_TOTAL, result="error") - before.get(REQUESTS_TOTAL, result="error"), 1)

    def test_upstream_errors_are_counted_by_kind(self):
        before = self.proxy.metrics()
        self.assertEqual(self.proxy.get("/hang", timeout=5).status, 504)
        self.assertEqual(self.proxy.get("/reset").status, 502)
        self.assertEqual(self.proxy.get("/malformed").status, 502)
        after = self.proxy.metrics()
        self.assertEqual(after.types.get(UPSTREAM_ERRORS), "counter", f"{UPSTREAM_ERRORS} missing")
        kinds = after.label_values(UPSTREAM_ERRORS, "kind")
        self.assertTrue(kinds, f"{UPSTREAM_ERRORS} has no kind label")
        moved = {k for k in kinds if after.get(UPSTREAM_ERRORS, kind=k) > before.get(UPSTREAM_ERRORS, kind=k)}
        self.assertGreaterEqual(after.get(UPSTREAM_ERRORS) - before.get(UPSTREAM_ERRORS), 3)
        self.assertGreaterEqual(len(moved), 2, f"a timeout and a reset counted under one kind: {moved}")
        self.assertTrue(any("timeout" in k for k in moved), f"no timeout kind among {moved}")

    def connections_gauge(self, m) -> str:
        names = [n for n, t in m.types.items()
                 if t == "gauge" and "connection" in n and "upstream" not in n and "idle" not in n]
        self.assertTrue(names, f"no client connections gauge among {sorted(m.types)}")
        return sorted(names, key=len)[0]

    def test_active_connections_gauge_follows_open_client_connections(self):
        """Client connections only: the admin connection doing the scrape is not counted.
        Connections from earlier tests may take a moment to be noticed as closed, so the
        gauge is first polled down to 0."""
        gauge = self.connections_gauge(self.proxy.metrics())
        wait_until(lambda: self.proxy.metrics().get(gauge) == 0, timeout=3, what=f"{gauge} at 0 when idle")
        clients = [self.proxy.client() for _ in range(3)]
        try:
            for c in clients:
                c.request("GET", "/ok")
                self.assertEqual(c.read_response().status, 200)
            wait_until(lambda: self.proxy.metrics().get(gauge) == 3, timeout=3, what=f"{gauge} at 3")
        finally:
            for c in clients:
                c.close()
        wait_until(lambda: self.proxy.metrics().get(gauge) == 0, timeout=3, what=f"{gauge} back to 0")

    def histogram(self, m):
        buckets = {}
        for (name, labels), v in m.samples.items():
            if name == DURATION + "_bucket":
                le = dict(labels)["le"]
                key = math.inf if le in ("+Inf", "Inf") else float(le)
                buckets[key] = buckets.get(key, 0) + v
        return buckets, m.get(DURATION + "_count"), m.get(DURATION + "_sum")

    def test_request_duration_histogram_observes_each_request(self):
        before = self.proxy.metrics()
        self.assertEqual(before.types.get(DURATION), "histogram", f"{DURATION} missing")
        for _ in range(3):
            self.assertEqual(self.proxy.get("/ok").status, 200)
        self.assertEqual(self.proxy.get("/slow").status, 200)
        after = wait_until(lambda: (lambda m: m if m.get(DURATION + "_count") >= before.get(DURATION + "_count") + 4
                                    else None)(self.proxy.metrics()),
                           timeout=3, what="durations observed")
        b0, c0, s0 = self.histogram(before)
        b1, c1, s1 = self.histogram(after)
        self.assertEqual(c1 - c0, 4)
        self.assertGreaterEqual(s1 - s0, 0.3)
        self.assertIn(math.inf, b1)
        self.assertEqual(b1[math.inf], c1, "+Inf bucket equals _count")
        les = sorted(b1)
        self.assertEqual([b1[le] for le in les], sorted(b1[le] for le in les), "buckets are cumulative")
        for le in les:
            if le < 0.3:
                self.assertLessEqual(b1[le] - b0.get(le, 0), 3, f"the 300 ms request landed in le={le}")


if __name__ == "__main__":
    unittest.main()
