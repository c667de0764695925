#!/usr/bin/env python3
"""Latency of the shared L2 store (cache.l2), request by request, on loopback.

Real binaries: cachalot (three nodes, one worker each), redis-server (no
persistence) and the test harness' Python origin (tests/support). One
keep-alive client connection per phase, sequential requests, N distinct
1 KiB URLs (max-age=300):

    fill on A        local miss, L2 absent (lookup + lock), origin, store
    L2 hit on B      local miss, L2 hit (lookup, admission, local publish)
    local hit on B   the entry B stored from L2
    miss on C        a node without cache.l2: local miss, origin
    cold miss on B   local miss, L2 absent, origin, store (new URLs)

The client is Python, so absolute figures include its overhead (the same in
every phase): compare phases, not absolutes. Bounded: N requests per phase.

    bench/l2_latency.py [--requests N] [--cachalot BIN]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--cachalot", default=os.path.join(ROOT, "build", "cachalot"))
    args = ap.parse_args()
    os.environ["CACHALOT_BIN"] = args.cachalot
    from cachalot import Cachalot, wait_until  # noqa: E402
    from origin import Origin, Reply  # noqa: E402
    from redis_server import RedisServer  # noqa: E402

    body = b"x" * 1024

    def handler(req):
        return Reply(200, [("Cache-Control", "max-age=300"), ("Content-Type", "text/plain")], body)

    def ms(v, p):
        s = sorted(v)
        return s[min(len(s) - 1, int(round(p * (len(s) - 1))))] * 1000

    def run(node, paths):
        out = []
        with node.client() as c:
            for p in paths:
                t0 = time.perf_counter()
                c.request("GET", p)
                r = c.read_response()
                out.append(time.perf_counter() - t0)
                assert r.status == 200, r
        return out, r.header("cache-status")

    quiet = {"log": {"level": "warn", "access_log": "off"}}
    with RedisServer() as redis, Origin() as origin:
        origin.default(handler)
        l2 = {"cache": {"l2": {"redis": f"redis://127.0.0.1:{redis.port}/1"}}, **quiet}
        a = Cachalot(l2, upstream=origin, workers=1)
        b = Cachalot(l2, upstream=origin, workers=1)
        c = Cachalot(quiet, upstream=origin, workers=1)
        try:
            for n in (a, b):
                wait_until(lambda n=n: n.metrics().get("cachalot_l2_connected") >= 1, 10, what="L2 connected")
            n = args.requests
            warm = [f"/w/{i}" for i in range(n)]
            phases = [("fill on A", a, warm), ("L2 hit on B", b, warm), ("local hit on B", b, warm),
                      ("miss on C (no L2)", c, warm), ("cold miss on B", b, [f"/cold/{i}" for i in range(n)])]
            for name, node, paths in phases:
                if name == "L2 hit on B":
                    wait_until(lambda: a.metrics().get("cachalot_l2_stores_total") >= n, 10, what="stores")
                v, cs = run(node, paths)
                print(f"{name:20s} p50 {ms(v, .5):6.3f} ms  p99 {ms(v, .99):6.3f} ms  "
                      f"mean {statistics.mean(v) * 1000:6.3f} ms  last Cache-Status: {cs}")
            print(f"origin requests: {origin.request_count()} (expected {3 * n})")
        finally:
            for node in (a, b, c):
                node.stop()
                node.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
