#!/usr/bin/env python3
"""Load generator and report for bench/before-after.sh (standard library only).

  before_after_load.py run --port P --origin-port O [--admin-port A] --out DIR/PHASE ...
  before_after_load.py report --direct DIR/direct --cachalot DIR/cachalot --dat F --markdown F

run: a fixed, seeded request mix against 127.0.0.1:PORT over CONNECTIONS
keep-alive connections. The i-th request is due at start + i / RATE (RATE 0:
as fast as the connections go); each connection takes the next due request
when it is free, so latency is measured from when the request was due (a
request that waits for a free connection counts its wait). The phase ends at
DURATION or after REQUESTS requests, whichever comes first. Every request is
recorded (due time, latency, kind, status, Cache-Status) in PHASE.requests.csv;
once a second the origin's own counter (GET /__stats, never counted) and, with
--admin-port, Cachalot's cachalot_requests_total (GET /metrics) are sampled
into PHASE.samples.csv.

The mix (the same sequence in every phase for one seed): 70% product reads
GET /api/products/ID with ID Zipf-distributed (s = 1.0) over the catalogue,
15% listings (GET /api/products?page=N of the page holding a Zipf product id,
or GET /api/categories/cat-K, K uniform), 10% GET /api/dashboard with the
bearer token (an HS256 JWT, "sub": "user-U", see JWT_SECRET) of one of 1,000 users, 5%
writes POST /api/products/ID (Zipf ID, like the reads: popular products change
most). With --admin-port, each successful write is followed by
POST /purge?tag=product-ID&soft=1 on Cachalot's admin API (what the
application's write path would do; --purge hard leaves out soft=1); that call
is not part of the recorded latencies. The POST itself, through Cachalot,
removes the product's own entry (RFC 9111 §4.4); the soft tag purge marks the
listings that show the product stale, and stale-while-revalidate serves them
once more while they refresh.
"""

import argparse
import asyncio
import base64
import bisect
import csv
import hashlib
import hmac
import json
import math
import os
import random
import sys
import time

MIX = (("product", 0.70), ("listing", 0.15), ("dashboard", 0.10), ("write", 0.05))
KINDS = [k for k, _ in MIX]
USERS = 1000
PAGE_SIZE = 20
CATEGORIES = 20
HIT_RESULTS = ("hit", "stale", "stale-error", "stale-disconnect")  # served from the cache, no origin wait


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# HS256 secret of the dashboard tokens (at least 32 bytes, as Cachalot's JWT
# verification requires for HS256): a cache partitioning by the verified "sub"
# can be given this key (see bench/before-after.yaml.in). The demo origin does
# not verify tokens.
JWT_SECRET = b"cachalot-before-after-demo-hs256-secret"
JWT_ISSUER = "https://auth.shop.example"
JWT_AUDIENCE = "shop-api"


def token_for(user: int, now: int) -> str:
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = {"sub": f"user-{user}", "iss": JWT_ISSUER, "aud": JWT_AUDIENCE, "iat": now, "exp": now + 86400}
    body = b64url(json.dumps(claims, separators=(",", ":")).encode())
    sig = hmac.new(JWT_SECRET, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(sig)}"


class Mix:
    """The request sequence: a pure function of (seed, products)."""

    def __init__(self, seed: int, products: int, zipf_s: float):
        self.rng = random.Random(seed)
        self.products = products
        weights = [1.0 / (i**zipf_s) for i in range(1, products + 1)]
        total = sum(weights)
        acc, self.cdf = 0.0, []
        for w in weights:
            acc += w / total
            self.cdf.append(acc)
        self.pages = (products + PAGE_SIZE - 1) // PAGE_SIZE
        now = int(time.time())
        self.tokens = [token_for(u, now) for u in range(1, USERS + 1)]
        self.bounds = []
        acc = 0.0
        for _, share in MIX:
            acc += share
            self.bounds.append(acc)

    def zipf_id(self) -> int:
        return min(bisect.bisect_left(self.cdf, self.rng.random()), self.products - 1) + 1

    def next(self):
        """(kind, method, target, extra header lines, body, purge tag)."""
        x = self.rng.random()
        kind = KINDS[min(bisect.bisect_left(self.bounds, x), len(KINDS) - 1)]
        if kind == "product":
            return kind, "GET", f"/api/products/{self.zipf_id()}", "", b"", None
        if kind == "listing":
            if self.rng.random() < 0.7:
                page = (self.zipf_id() - 1) // PAGE_SIZE + 1
                return kind, "GET", f"/api/products?page={page}", "", b"", None
            return kind, "GET", f"/api/categories/cat-{self.rng.randrange(CATEGORIES)}", "", b"", None
        if kind == "dashboard":
            token = self.tokens[self.rng.randrange(USERS)]
            return kind, "GET", "/api/dashboard", f"Authorization: Bearer {token}\r\n", b"", None
        pid = self.zipf_id()
        body = json.dumps({"stock_delta": -1}).encode()
        return kind, "POST", f"/api/products/{pid}", "Content-Type: application/json\r\n", body, f"product-{pid}"


class Conn:
    """One HTTP/1.1 keep-alive connection (Content-Length framing only, as the demo origin and Cachalot send)."""

    def __init__(self, port: int, host: str = "shop.example"):
        self.port = port
        self.host = host  # the admin API answers IP literals and localhost only (DNS rebinding)
        self.reader = self.writer = None

    async def connect(self):
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def request(self, method: str, target: str, extra: str = "", body: bytes = b"", timeout: float = 30.0):
        await self.connect()
        head = f"{method} {target} HTTP/1.1\r\nHost: {self.host}\r\n{extra}"
        if body or method == "POST":
            head += f"Content-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        try:
            return await asyncio.wait_for(self._response(method), timeout)
        except BaseException:
            self.close()
            raise

    async def _response(self, method: str):
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                fields[name.strip().lower()] = value.strip()
        length = int(fields.get("content-length", "0"))
        if method != "HEAD" and status != 304 and length:
            await self.reader.readexactly(length)
        if fields.get("connection", "").lower() == "close":
            self.close()
        return status, fields

    def close(self):
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def cache_result(cache_status: str) -> str:
    """hit / collapsed / fwd / - from a Cache-Status value ("cachalot; hit; ttl=3")."""
    if not cache_status:
        return "-"
    params = [p.strip() for p in cache_status.split(";")[1:]]
    if "hit" in params:
        return "hit"
    if "collapsed" in params:
        return "collapsed"
    return "fwd"


def parse_metrics(text: str) -> dict:
    """cachalot_requests_total summed by result."""
    out = {}
    for line in text.splitlines():
        if not line.startswith("cachalot_requests_total{"):
            continue
        labels, _, value = line.rpartition(" ")
        result = ""
        for part in labels[labels.index("{") + 1 : labels.rindex("}")].split(","):
            k, _, v = part.partition("=")
            if k == "result":
                result = v.strip('"')
        out[result] = out.get(result, 0) + float(value)
    return out


async def sample(port: int, target: str) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    return data.partition(b"\r\n\r\n")[2].decode()


async def run_phase(args) -> int:
    mix = Mix(args.seed, args.products, args.zipf_s)
    records, purges, errors = [], [], []
    samples = []
    due_index = 0
    soft = "&soft=1" if args.purge == "soft" else ""
    # Connections are opened before the clock starts, as a client with a
    # keep-alive pool would have them.
    conns = [Conn(args.port) for _ in range(args.connections)]
    admins = [Conn(args.admin_port, "127.0.0.1") if args.admin_port else None for _ in range(args.connections)]
    await asyncio.gather(*(c.connect() for c in conns + admins if c is not None))
    start = time.monotonic() + 0.2
    deadline = start + args.duration
    stop = asyncio.Event()

    async def take_sample(t_rel: float):
        row = {"t": round(t_rel, 3)}
        stats = json.loads(await sample(args.origin_port, "/__stats"))
        row["origin_requests"] = stats["requests"]
        if args.admin_port:
            m = parse_metrics(await sample(args.admin_port, "/metrics"))
            row["hits"] = sum(m.get(r, 0) for r in HIT_RESULTS)
            row["coalesced"] = m.get("coalesced", 0)
            row["total"] = sum(v for r, v in m.items() if r != "purge")
        samples.append(row)

    async def sampler():
        k = 1
        while not stop.is_set():
            delay = start + k - time.monotonic()
            if delay > 0:
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                    break
                except asyncio.TimeoutError:
                    pass
            await take_sample(time.monotonic() - start)
            k += 1

    async def worker(conn, admin):
        nonlocal due_index
        while True:
            if due_index >= args.requests:
                return
            i = due_index
            due_index += 1
            due = start + (i / args.rate if args.rate > 0 else 0.0)
            if due >= deadline:
                return
            kind, method, target, extra, body, tag = mix.next()
            now = time.monotonic()
            if due > now:
                await asyncio.sleep(due - now)
            if args.rate <= 0:
                due = time.monotonic()
            try:
                status, fields = await conn.request(method, target, extra, body)
            except Exception as e:  # recorded, and the run goes on with a new connection
                errors.append(f"{kind} {target}: {type(e).__name__}: {e}")
                records.append((due - start, (time.monotonic() - due) * 1000.0, kind, 0, "error"))
                continue
            done = time.monotonic()
            records.append((due - start, (done - due) * 1000.0, kind, status, cache_result(fields.get("cache-status", ""))))
            if tag and admin is not None and 200 <= status < 300:
                t0 = time.monotonic()
                pstatus = 0
                # The admin listener closes idle connections: a purge (idempotent)
                # that finds its connection closed is sent again on a new one.
                for attempt in (1, 2):
                    try:
                        pstatus, _ = await admin.request("POST", f"/purge?tag={tag}{soft}")
                        break
                    except Exception as e:
                        if attempt == 2:
                            errors.append(f"purge {tag}: {type(e).__name__}: {e}")
                purges.append((done - start, (time.monotonic() - t0) * 1000.0, pstatus))

    await take_sample(0.0)
    sampler_task = asyncio.create_task(sampler())
    await asyncio.gather(*(worker(c, a) for c, a in zip(conns, admins)))
    elapsed = time.monotonic() - start
    stop.set()
    await sampler_task
    await take_sample(elapsed)

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    # The mix draws a request when a connection takes it, so the sequence is
    # the same in every phase as long as no phase ends early.
    records.sort()
    with open(args.out + ".requests.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["t_due_s", "latency_ms", "kind", "status", "cache"])
        for r in records:
            w.writerow([f"{r[0]:.4f}", f"{r[1]:.3f}", r[2], r[3], r[4]])
    with open(args.out + ".samples.csv", "w", newline="") as f:
        fields = ["t", "origin_requests", "hits", "coalesced", "total"]
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for row in samples:
            w.writerow({k: row.get(k, "") for k in fields})
    with open(args.out + ".phase.json", "w") as f:
        json.dump({"elapsed_s": elapsed, "requests": len(records), "errors": len(errors), "purges": len(purges),
                   "purge_failures": sum(1 for p in purges if not 200 <= p[2] < 300),
                   "duration_s": args.duration, "connections": args.connections, "rate": args.rate, "products": args.products,
                   "purge": args.purge}, f)
    bad = sum(1 for r in records if not 200 <= r[3] < 300)
    print(f"{os.path.basename(args.out)}: {len(records)} requests in {elapsed:.1f} s "
          f"({len(records) / elapsed:.0f}/s), {bad} not 2xx, {len(errors)} errors, {len(purges)} purges", file=sys.stderr)
    for e in errors[:5]:
        print(f"  error: {e}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------- report

def pct(values, p):
    """Nearest-rank percentile of a sorted list."""
    if not values:
        return math.nan
    return values[min(len(values) - 1, max(0, math.ceil(p / 100.0 * len(values)) - 1))]


def load_phase(prefix):
    recs = []
    with open(prefix + ".requests.csv") as f:
        for row in csv.DictReader(f):
            recs.append((float(row["t_due_s"]), float(row["latency_ms"]), row["kind"], int(row["status"]), row["cache"]))
    with open(prefix + ".samples.csv") as f:
        samples = [{k: (float(v) if v != "" else None) for k, v in row.items()} for row in csv.DictReader(f)]
    with open(prefix + ".phase.json") as f:
        meta = json.load(f)
    return recs, samples, meta


def summarize(recs, samples, meta, since=0.0):
    """The phase's figures; with `since`, only requests due from then on and the
    counters sampled from then to the end."""
    if since > 0:
        recs = [r for r in recs if r[0] >= since]
        samples = [x for x in samples if x["t"] >= since - 0.01]
    span_s = meta["elapsed_s"] - since
    lat = sorted(r[1] for r in recs)
    s = {"requests": len(recs), "rps": len(recs) / span_s, "mean": sum(lat) / len(lat) if lat else math.nan,
         "p50": pct(lat, 50), "p95": pct(lat, 95), "p99": pct(lat, 99),
         "not_2xx": sum(1 for r in recs if not 200 <= r[3] < 300), "purges": meta["purges"],
         "purge_failures": meta["purge_failures"]}
    for kind in KINDS:
        kl = sorted(r[1] for r in recs if r[2] == kind)
        s[kind] = {"n": len(kl), "p50": pct(kl, 50), "p95": pct(kl, 95), "p99": pct(kl, 99)}
    first, last = samples[0], samples[-1]
    span = last["t"] - first["t"]
    s["origin_requests"] = last["origin_requests"] - first["origin_requests"]
    s["origin_rps"] = s["origin_requests"] / span if span > 0 else math.nan
    if first.get("total") is not None and last.get("total") is not None and last["total"] > first["total"]:
        s["hit_rate"] = (last["hits"] - first["hits"]) / (last["total"] - first["total"])
        s["coalesced_rate"] = (last["coalesced"] - first["coalesced"]) / (last["total"] - first["total"])
        cacheable = [r for r in recs if r[2] in ("product", "listing")]
        s["hit_rate_cacheable"] = (sum(1 for r in cacheable if r[4] == "hit") / len(cacheable)) if cacheable else math.nan
    else:
        s["hit_rate"] = s["coalesced_rate"] = s["hit_rate_cacheable"] = None
    return s


def per_second(recs, samples, seconds):
    """{sec: (p50, p95, p99, origin_rps, hit_rate)} by the second a request was due."""
    bins = {}
    for r in recs:
        bins.setdefault(int(r[0]), []).append(r[1])
    out = {}
    for sec in range(seconds):
        lat = sorted(bins.get(sec, []))
        out[sec] = [pct(lat, 50), pct(lat, 95), pct(lat, 99), math.nan, math.nan]
    for a, b in zip(samples, samples[1:]):
        dt = b["t"] - a["t"]
        sec = int(round(a["t"]))
        if dt <= 0.2 or sec not in out:
            continue
        out[sec][3] = (b["origin_requests"] - a["origin_requests"]) / dt
        if a.get("total") is not None and b.get("total") is not None and b["total"] > a["total"]:
            out[sec][4] = 100.0 * (b["hits"] - a["hits"]) / (b["total"] - a["total"])
    return out


def fmt_ms(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if v < 10:
        return f"{v:.2f} ms"
    return f"{v:.0f} ms" if v >= 100 else f"{v:.1f} ms"


def fmt_ratio(a, b):
    """How many times lower b is than a ("4.2x lower"), or "1.00x" when about equal."""
    if a is None or b is None or b <= 0 or a <= 0:
        return "–"
    r = a / b
    if r >= 1.05:
        return f"{r:.1f}x lower" if r < 100 else f"{r:.0f}x lower"
    if r <= 1 / 1.05:
        return f"{1 / r:.2f}x higher"
    return f"{r:.2f}x (same)"


def report(args) -> int:
    d_recs, d_samples, d_meta = load_phase(args.direct)
    c_recs, c_samples, c_meta = load_phase(args.cachalot)
    d, c = summarize(d_recs, d_samples, d_meta), summarize(c_recs, c_samples, c_meta)
    # The last third of the phase: the cache has warmed up (still rising, see the picture).
    tail_from = math.floor(c_meta["duration_s"] * 2 / 3)
    ct = summarize(c_recs, c_samples, c_meta, since=tail_from)
    tail_label = f"through Cachalot, last {c_meta['duration_s'] - tail_from:g} s"
    seconds = int(math.ceil(min(d_meta["duration_s"], c_meta["duration_s"])))
    dps, cps = per_second(d_recs, d_samples, seconds), per_second(c_recs, c_samples, seconds)
    with open(args.dat, "w") as f:
        f.write("# sec d_p50 d_p95 d_p99 c_p50 c_p95 c_p99 d_origin_rps c_origin_rps c_hit_pct (ms, req/s, %)\n")
        for sec in range(seconds):
            row = [sec + 0.5] + dps[sec][:3] + cps[sec][:3] + [dps[sec][3], cps[sec][3], cps[sec][4]]
            f.write(" ".join("NaN" if isinstance(v, float) and math.isnan(v) else f"{v:.3f}" for v in row) + "\n")

    hit = c["hit_rate"]
    lines = []
    def hit_cells(x):
        if x["hit_rate"] is None:
            return "–"
        cell = f"{100 * x['hit_rate']:.1f}%"
        if x["hit_rate_cacheable"] is not None:
            cell += f" ({100 * x['hit_rate_cacheable']:.1f}% of product and listing reads)"
        return cell

    lines.append(f"| | direct (client → origin) | through Cachalot | change | {tail_label} |")
    lines.append("|---|---|---|---|---|")
    lines.append(f"| requests (req/s) | {d['requests']} ({d['rps']:.0f}/s) | {c['requests']} ({c['rps']:.0f}/s) | | "
                 f"{ct['requests']} ({ct['rps']:.0f}/s) |")
    for p in ("p50", "p95", "p99"):
        lines.append(f"| latency {p} | {fmt_ms(d[p])} | {fmt_ms(c[p])} | {fmt_ratio(d[p], c[p])} | {fmt_ms(ct[p])} |")
    lines.append(f"| latency mean | {fmt_ms(d['mean'])} | {fmt_ms(c['mean'])} | {fmt_ratio(d['mean'], c['mean'])} | "
                 f"{fmt_ms(ct['mean'])} |")
    lines.append(f"| hit rate (cachalot_requests_total: hit + stale) | – | {hit_cells(c)} | | {hit_cells(ct)} |")
    lines.append(f"| origin requests/s (origin's own counter) | {d['origin_rps']:.1f} | {c['origin_rps']:.1f} | "
                 f"{fmt_ratio(d['origin_rps'], c['origin_rps'])} | {ct['origin_rps']:.1f} |")
    for kind, label in (("product", "product reads"), ("listing", "listings"), ("dashboard", "dashboard (private, per user)"),
                        ("write", "writes (POST)")):
        dk, ck, tk = d[kind], c[kind], ct[kind]
        lines.append(f"| {label}: n · p50 / p95 | {dk['n']} · {fmt_ms(dk['p50'])} / {fmt_ms(dk['p95'])} | "
                     f"{ck['n']} · {fmt_ms(ck['p50'])} / {fmt_ms(ck['p95'])} | p95 {fmt_ratio(dk['p95'], ck['p95'])} | "
                     f"{tk['n']} · {fmt_ms(tk['p50'])} / {fmt_ms(tk['p95'])} |")
    table = "\n".join(lines)
    notes = []
    if d["not_2xx"] or c["not_2xx"]:
        notes.append(f"non-2xx or failed requests: direct {d['not_2xx']}, through Cachalot {c['not_2xx']}")
    notes.append(f"writes through Cachalot were each followed by a {c_meta.get('purge', 'soft')} tag purge: "
                 f"{c['purges']} purges, {c['purge_failures']} failed")
    seed_p95, seed_hit = 280.0, 0.87
    if hit is not None:
        notes.append(f"seed story: p95 280 ms -> 45 ms (6.2x) at an 87% hit rate; here p95 {fmt_ms(d['p95'])} -> "
                     f"{fmt_ms(c['p95'])} ({fmt_ratio(d['p95'], c['p95'])}) at {100 * hit:.1f}%, "
                     f"p50 {fmt_ms(d['p50'])} -> {fmt_ms(c['p50'])} ({fmt_ratio(d['p50'], c['p50'])})")
    text = table + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    with open(args.json, "w") if args.json else open(os.devnull, "w") as f:
        json.dump({"direct": d, "cachalot": c, "cachalot_tail": ct, "tail_from_s": tail_from, "seed": {"p95_ms": seed_p95, "hit_rate": seed_hit}}, f, indent=1,
                  default=lambda v: None)
    print(text)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--port", type=int, required=True, help="where requests go (the origin, or Cachalot)")
    r.add_argument("--origin-port", type=int, required=True, help="the origin, for its /__stats counter")
    r.add_argument("--admin-port", type=int, default=0, help="Cachalot's admin API (/metrics, tag purges)")
    r.add_argument("--out", required=True, help="output prefix: PREFIX.requests.csv, .samples.csv, .phase.json")
    r.add_argument("--duration", type=float, default=60.0)
    r.add_argument("--requests", type=int, default=10**9, help="upper bound on requests (count-bounded)")
    r.add_argument("--connections", type=int, default=128)
    r.add_argument("--rate", type=float, default=200.0, help="requests per second due; 0 = closed loop")
    r.add_argument("--products", type=int, default=10000)
    r.add_argument("--zipf-s", type=float, default=1.0)
    r.add_argument("--seed", type=int, default=13)
    r.add_argument("--purge", choices=("soft", "hard"), default="soft",
                   help="tag purge after a write: soft (mark stale: served stale once while it refreshes) or hard")
    p = sub.add_parser("report")
    p.add_argument("--direct", required=True)
    p.add_argument("--cachalot", required=True)
    p.add_argument("--dat", required=True, help="per-second data for gnuplot")
    p.add_argument("--markdown", default="")
    p.add_argument("--json", default="")
    args = ap.parse_args()
    if args.cmd == "run":
        return asyncio.run(run_phase(args))
    return report(args)


if __name__ == "__main__":
    sys.exit(main())
