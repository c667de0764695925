"""Per-route metrics (issue #5): cachalot_route_requests_total{route, result}."""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from cachalot import Cachalot  # noqa: E402
from origin import Origin, Reply  # noqa: E402

ROUTES = [{"name": "api", "prefix": "/api/"}, {"name": "raw", "prefix": "/raw/", "bypass": True}]


class RouteMetricsTest(unittest.TestCase):
    def test_requests_are_counted_by_route_and_result(self):
        with Origin() as o, Cachalot({"routes": ROUTES}, upstream=o) as c:
            o.route("/api/a", Reply(200, [("Cache-Control", "max-age=60")], b"a"))
            o.route("/raw/b", Reply(200, [("Cache-Control", "max-age=60")], b"b"))
            o.route("/other", Reply(200, [("Cache-Control", "max-age=60")], b"o"))
            for _ in range(3):
                self.assertEqual(c.get("/api/a").status, 200)
            for _ in range(2):
                self.assertEqual(c.get("/raw/b").status, 200)
            self.assertEqual(c.get("/other").status, 200)
            m = c.metrics()
            name = "cachalot_route_requests_total"
            self.assertEqual(m.get(name, route="api", result="miss"), 1)
            self.assertEqual(m.get(name, route="api", result="hit"), 2)
            self.assertEqual(m.get(name, route="raw", result="pass"), 2)
            # A request that matched no route is not in the per-route series.
            self.assertIsNone(m.get(name, route="other", result="miss", default=None))


if __name__ == "__main__":
    unittest.main()
