"""The Grafana dashboard (packaging/grafana/cachalot.json) queries only what the
real binary exports: every metric name in every panel's PromQL is a family in
/metrics (histograms through their _bucket/_sum/_count series), every label a
panel groups or filters by is one that family's samples carry, and every
`result` value a panel matches is a result the binary counts."""

import json
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from cachalot import Cachalot  # noqa: E402
from origin import Origin, Reply  # noqa: E402

DASHBOARD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "packaging", "grafana", "cachalot.json")
# The results cachalot_requests_total counts (README, Metrics).
RESULTS = {"hit", "stale", "stale-error", "revalidated", "miss", "coalesced", "pass", "error", "purge"}


def queries(dashboard: dict) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


class GrafanaDashboardTest(unittest.TestCase):
    def test_dashboard_is_valid_json_with_the_panels_operators_need(self):
        with open(DASHBOARD, encoding="utf-8") as f:
            d = json.load(f)
        titles = {p["title"] for p in d["panels"]}
        for needed in ("Hit ratio", "Hit ratio by route", "Miss latency (origin fetches)", "Memory used vs budget",
                       "Evictions", "Purges", "Upstream errors", "Stale served"):
            self.assertIn(needed, titles)
        ids = [p["id"] for p in d["panels"]]
        self.assertEqual(len(ids), len(set(ids)), "panel ids are unique")
        self.assertTrue(all(p["datasource"]["uid"] == "${datasource}" for p in d["panels"]))

    def test_every_queried_metric_and_label_exists_in_metrics(self):
        with open(DASHBOARD, encoding="utf-8") as f:
            exprs = queries(json.load(f))
        self.assertGreater(len(exprs), 10)
        routes = [{"name": "api", "prefix": "/api/"}]
        with Origin() as o, Cachalot({"routes": routes}, upstream=o) as c:
            o.route("/api/a", Reply(200, [("Cache-Control", "max-age=60")], b"a"))
            for _ in range(3):
                self.assertEqual(c.get("/api/a").status, 200)   # a miss, then hits
            self.assertEqual(c.admin_request("POST", "/purge?path=/api/a").status, 200)
            m = c.metrics()
        families = set(m.types)
        label_sets: dict[str, set] = {}
        for (name, labels), _ in m.samples.items():
            label_sets.setdefault(name, set()).update(k for k, _ in labels)

        for expr in exprs:
            for name in set(re.findall(r"\bcachalot_[a-z_]+", expr)):
                family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in families else name
                self.assertIn(family, families, f"{name} in {expr!r} is not in /metrics")
                if family != name:
                    self.assertEqual(m.types[family], "histogram", f"{name}: {family} is not a histogram")
            # Labels grouped by or matched must be carried by the metric's samples.
            for name, selector in re.findall(r"\b(cachalot_[a-z_]+)\{([^}]*)\}", expr):
                for label in re.findall(r"([a-z_]+)\s*(?:=~|!=|=)", selector):
                    if label in ("instance", "le"):
                        continue   # added by Prometheus / histogram buckets
                    self.assertIn(label, label_sets.get(name, set()), f"label {label} of {name} in {expr!r}")
                for values in re.findall(r'result(?:=~|!=|=)"([^"]*)"', selector):
                    for v in values.split("|"):
                        self.assertIn(v, RESULTS, f"result {v!r} in {expr!r}")
            for grouped in re.findall(r"by \(([a-z_, ]+)\)", expr):
                metric = re.search(r"by \(" + re.escape(grouped) + r"\) \(\w*\(?(cachalot_[a-z_]+)", expr)
                for label in (g.strip() for g in grouped.split(",")):
                    if label == "le" or metric is None:
                        continue
                    self.assertIn(label, label_sets.get(metric.group(1), set()),
                                  f"grouped label {label} of {metric.group(1)} in {expr!r}")
        # The traffic above is what the hit-ratio panel divides.
        self.assertEqual(m.get("cachalot_requests_total", result="hit", **{"class": "2xx"}), 2)


if __name__ == "__main__":
    unittest.main()
