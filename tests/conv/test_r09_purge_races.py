"""Purges always win over a fill in flight (safety rule, STYLE.md "The exchange":
a fill publishes "unless an invalidation with a higher sequence matches", so an
invalidation voids every response whose origin request was sent before it), and
a coalesced fill is finished exactly once ("A fill is finished exactly once, by
the permit's owner or its destructor").

Each purge kind (admin path / prefix / tag / all / route, the PURGE method, and an
unsafe method, RFC 9111 §4.4) is issued while a GET's fill is in flight:

  (a) the origin has the request but has not answered (its reply waits on a Gate);
  (b) mid-body (the origin sent the head and a chunk, the rest waits on a Gate);
  (c) with coalesced followers waiting on the fill.

The clients in flight get their (old) response, whole; afterwards the next GET
is forwarded (`fwd=uri-miss`), never a hit on the old body. A request that
arrives after the purge is never answered from the old fill.

    client c1 { get /races/p }                      # the fill starts
    origin o1 { expect GET /races/p; hold }
    admin     { post /purge?path=/races/p }
    origin o1 { release "old" }
    client c1 { expect "old" }
    client c2 { get /races/p; expect cache-status ~ fwd=uri-miss; expect "new" }

One worker: a fill publishes right after its last byte is written, in the same
handler run, so a request sent after the last client read its response is
ordered after the publication (see _cachetest.py).
"""

import unittest
import urllib.parse

from _revaltest import (COALESCED_WAITS, Gate, IncompleteResponse, ProxyCase, Reply, admin_json, admin_request,
                        cache_status, metric, wait_until)

OLD, NEW = b"old body: the fill in flight when the purge came", b"new body: fetched after the purge"
PART1 = OLD[:10]
TAG = "racetag"
ROUTE = "races"
MISS = r"^cachalot; fwd=uri-miss; fwd-status=200; stored"


def entry_fields(etag: str):
    return [("Cache-Control", "max-age=300"), ("ETag", etag), ("Surrogate-Key", TAG),
            ("Content-Type", "text/plain")]


class PurgeRaceTest(ProxyCase):
    CONFIG = {"routes": [{"name": ROUTE, "prefix": "/races/"}]}
    WORKERS = 1

    # ---- the origin ----------------------------------------------------------------------
    def script(self, path, mid_body: bool):
        """The first GET for `path` is held: before its head (mid_body=False) or after
        its head and PART1. Later GETs get NEW at once; a POST gets a 200; a
        conditional GET with the old ETag gets a 304. Returns (gate, first_request)."""
        gate = Gate(10)

        def old_body():
            yield PART1
            gate.wait()
            yield OLD[len(PART1):]

        def handler(req):
            gets = [r for r in self.origin.requests(path) if r.method == "GET"]
            if req.method == "POST":
                return Reply(200, [("Content-Type", "text/plain")], b"posted")
            if req.header("if-none-match") == '"old"':
                return Reply(304, entry_fields('"old"'))
            if gets and gets[0] is req:
                if mid_body:
                    return Reply(200, entry_fields('"old"'), old_body)
                return Reply(200, entry_fields('"old"'), OLD, gate=gate)
            return Reply(200, entry_fields('"new"'), NEW)
        self.origin.route(path, handler)
        return gate

    def gets(self, path):
        return [r for r in self.origin.requests(path) if r.method == "GET"]

    # ---- the purges ----------------------------------------------------------------------
    def purge(self, kind: str, path: str, soft: bool = False):
        q = {"path": f"path={urllib.parse.quote(path)}",
             "prefix": f"prefix={urllib.parse.quote(path.rsplit('/', 1)[0] + '/')}",
             "tag": f"tag={TAG}",
             "all": "all=1",
             "route": f"route={ROUTE}"}
        if kind in q:
            r = admin_request(self.proxy, "POST", "/purge?" + q[kind] + ("&soft=1" if soft else ""))
            self.assertEqual(r.status, 200, r)
            admin_json(r)
        elif kind == "method":
            r = self.proxy.request("PURGE", path)
            self.assertIn(r.status, (200, 404), r)
        elif kind == "unsafe":
            r = self.proxy.request("POST", path, body=b"change it")
            self.assertEqual((r.status, r.body), (200, b"posted"), r)
            self.assertEqual([q.method for q in self.origin.requests(path)].count("POST"), 1)
        else:
            raise ValueError(kind)

    # ---- after the fill ------------------------------------------------------------------
    def assert_next_get_is_forwarded(self, path):
        n = len(self.gets(path))
        r = self.proxy.get(path)
        self.assertNotEqual(r.body, OLD, f"the fill that was in flight during the purge was stored: {r!r}")
        self.assertEqual((r.status, r.body), (200, NEW), r)
        self.assertRegex(cache_status(r), MISS)
        reqs = self.gets(path)
        self.assertEqual(len(reqs), n + 1, "the GET after the purge did not reach the origin")
        self.assertIsNone(reqs[-1].header("if-none-match"), "the purged fill left an entry to revalidate")

    def read_whole(self, cl):
        r = cl.read_response()
        self.assertTrue(r.complete)
        self.assertEqual((r.status, r.body), (200, OLD), "a client in flight must get its response, whole")
        return r

    def read_part1(self, cl):
        head = cl.read_head()
        self.assertEqual(head.status, 200)
        it = cl.iter_body(head)
        got = b""
        for _ in range(100):
            if len(got) >= len(PART1):
                break
            got += next(it)
        self.assertEqual(got, PART1)
        return head, it, got

    # ---- the three scenarios ---------------------------------------------------------------
    def before_the_answer(self, kind):
        path = f"/races/{kind}/before-answer"
        gate = self.script(path, mid_body=False)
        try:
            with self.proxy.client(10) as a:
                a.request("GET", path)
                self.origin.wait_for_requests(1, path=path)
                self.purge(kind, path)
                gate.open()
                self.read_whole(a)
        finally:
            gate.open()
        self.assert_next_get_is_forwarded(path)

    def mid_body(self, kind):
        path = f"/races/{kind}/mid-body"
        gate = self.script(path, mid_body=True)
        try:
            with self.proxy.client(10) as a:
                a.request("GET", path)
                head, it, got = self.read_part1(a)
                self.purge(kind, path)
                gate.open()
                got += b"".join(it)
                self.assertTrue(head.complete)
                self.assertEqual(got, OLD)
        finally:
            gate.open()
        self.assert_next_get_is_forwarded(path)

    def with_followers(self, kind):
        path = f"/races/{kind}/followers"
        gate = self.script(path, mid_body=False)
        clients = []
        try:
            a = self.proxy.client(10)
            clients.append(a)
            a.request("GET", path)
            self.origin.wait_for_requests(1, path=path)
            w0 = metric(self.proxy, COALESCED_WAITS)
            for _ in range(2):
                cl = self.proxy.client(10)
                clients.append(cl)
                cl.request("GET", path)
            wait_until(lambda: metric(self.proxy, COALESCED_WAITS) - w0 >= 2, 5, what="2 followers waiting")
            self.purge(kind, path)
            gate.open()
            for cl in clients:
                self.read_whole(cl)
        finally:
            gate.open()
            for cl in clients:
                cl.close()
        self.assertEqual(len(self.gets(path)), 1, "the followers were coalesced onto the first fill")
        self.assert_next_get_is_forwarded(path)

    def arriving_after_the_purge(self, kind):
        path = f"/races/{kind}/late"
        gate = self.script(path, mid_body=False)
        try:
            with self.proxy.client(10) as a:
                a.request("GET", path)
                self.origin.wait_for_requests(1, path=path)
                self.purge(kind, path)
                # A request sent after the purge, while the old fill is still held: it
                # either reaches the origin or (wrongly) waits on the old fill.
                w0 = metric(self.proxy, COALESCED_WAITS)
                with self.proxy.client(10) as b:
                    b.request("GET", path)
                    wait_until(lambda: len(self.gets(path)) >= 2 or metric(self.proxy, COALESCED_WAITS) > w0, 5,
                               what="the GET sent after the purge reached the origin or joined a fill")
                    self.assertEqual(len(self.gets(path)), 2,
                                     "the GET sent after the purge joined the old fill instead of reaching the origin")
                    r = b.read_response()
                    self.assertEqual((r.status, r.body), (200, NEW),
                                     "a request sent after the purge was answered from the old fill")
                    self.assertFalse(gate.is_open())
                gate.open()
                self.read_whole(a)
        finally:
            gate.open()
        # The old fill, finishing last, did not replace the newer entry.
        r = self.proxy.get(path)
        self.assertEqual((r.status, r.body), (200, NEW), r)

    # ---- soft purges -----------------------------------------------------------------------
    def soft_mid_fill(self, kind, mid_body):
        """README: soft=1 marks stale instead of removing; issued mid-fill, the fill's
        entry must be stale when it lands, so the next GET revalidates (RFC 9111 §4.3.1)."""
        path = f"/races/soft-{kind}/{'mid-body' if mid_body else 'before-answer'}"
        gate = self.script(path, mid_body=mid_body)
        try:
            with self.proxy.client(10) as a:
                a.request("GET", path)
                if mid_body:
                    head, it, got = self.read_part1(a)
                else:
                    self.origin.wait_for_requests(1, path=path)
                self.purge(kind, path, soft=True)
                gate.open()
                if mid_body:
                    self.assertEqual(got + b"".join(it), OLD)
                else:
                    self.read_whole(a)
        finally:
            gate.open()
        n = len(self.gets(path))
        r = self.proxy.get(path)
        self.assertEqual((r.status, r.body), (200, OLD), r)
        self.assertRegex(cache_status(r), r"^cachalot; fwd=stale; fwd-status=304",
                         "a soft purge issued mid-fill must leave the filled entry stale")
        reqs = self.gets(path)
        self.assertEqual(len(reqs), n + 1, "the GET after the soft purge did not revalidate")
        self.assertEqual(reqs[-1].header("if-none-match"), '"old"')

    def test_soft_purge_by_path_before_the_answer_leaves_the_filled_entry_stale(self):
        """Safety rule: an invalidation voids every fill sent before it; soft=1 voids its freshness."""
        self.soft_mid_fill("path", mid_body=False)

    def test_soft_purge_by_path_mid_body_leaves_the_filled_entry_stale(self):
        """Safety rule: an invalidation voids every fill sent before it; soft=1 voids its freshness."""
        self.soft_mid_fill("path", mid_body=True)

    def test_soft_purge_by_prefix_mid_body_leaves_the_filled_entry_stale(self):
        """Safety rule: an invalidation voids every fill sent before it; soft=1 voids its freshness."""
        self.soft_mid_fill("prefix", mid_body=True)

    def test_soft_purge_by_tag_mid_body_leaves_the_filled_entry_stale(self):
        """Safety rule: an invalidation voids every fill sent before it; soft=1 voids its freshness."""
        self.soft_mid_fill("tag", mid_body=True)


KINDS = {
    "path": "admin POST /purge?path=",
    "prefix": "admin POST /purge?prefix=",
    "tag": "admin POST /purge?tag= (the response carries Surrogate-Key)",
    "all": "admin POST /purge?all=1",
    "route": "admin POST /purge?route= (route generation bump)",
    "method": "the PURGE method on the main listener",
    "unsafe": "an unsafe method answered 200 (RFC 9111 §4.4)",
}
SCENARIOS = {
    "before_the_answer": ("issued after the origin received the GET, before it answered", "before_the_answer"),
    "mid_body": ("issued after the head and a first chunk, before the rest of the body", "mid_body"),
    "with_followers": ("issued while coalesced followers wait on the fill", "with_followers"),
    "arriving_after_the_purge": ("a GET sent after it, while the old fill is held, is not answered from "
                                 "that fill", "arriving_after_the_purge"),
}


def _make(kind, runner, doc):
    def test(self):
        getattr(self, runner)(kind)
    test.__doc__ = doc
    return test


for _kind, _what in KINDS.items():
    for _name, (_desc, _runner) in SCENARIOS.items():
        _test = _make(_kind, _runner, f"Safety rule: an invalidation voids every fill sent before it. "
                                      f"{_what}, {_desc}.")
        _test.__name__ = f"test_{_kind}_purge_{_name}"
        setattr(PurgeRaceTest, _test.__name__, _test)


class OversizedCoalescedFillTest(ProxyCase):
    """A coalesced fill is finished exactly once (STYLE.md: "A fill is finished
    exactly once"): when the body outgrows cache.max_object_size the fill is
    abandoned; a follower, which has no other source for the rest, must see its
    response end with the connection closed (RFC 9112 §6.3: an incomplete
    message), never a clean end or a kept-alive connection after a truncated body."""
    CONFIG = {"cache": {"max_object_size": "64KiB"}}
    WORKERS = 1

    PIECE = bytes(range(256)) * 64     # 16 KiB
    PIECES = 64                        # 1 MiB in all

    def oversized_fill(self, follower_reads_late: bool):
        path = "/big/late" if follower_reads_late else "/big/stream"
        total = len(self.PIECE) * self.PIECES
        gate = Gate(10)

        def body():
            yield self.PIECE
            gate.wait()
            for _ in range(self.PIECES - 1):
                yield self.PIECE
        self.origin.route(path, Reply(200, [("Cache-Control", "max-age=300")], body, delay_chunk=0.005))
        self.origin.route("/big/after", Reply(200, [("Cache-Control", "no-store")], b"after"))
        a = self.proxy.client(15)
        b = self.proxy.client(15, rcvbuf=4096 if follower_reads_late else None)
        try:
            a.request("GET", path)
            ra = a.read_head()
            self.assertEqual(ra.status, 200)
            ia = a.iter_body(ra)
            got_a = next(ia)
            w0 = metric(self.proxy, COALESCED_WAITS)
            b.request("GET", path)
            wait_until(lambda: metric(self.proxy, COALESCED_WAITS) > w0, 5, what="the follower joined the fill")
            rb = b.read_head()
            self.assertEqual(rb.status, 200)
            self.assertRegex(cache_status(rb), r"^cachalot; fwd=uri-miss; collapsed")
            gate.open()
            if not follower_reads_late:
                got_b, complete_b = self.read_follower(b, rb)
            # The leader's client gets the whole body (it is streamed, just not stored).
            got_a += b"".join(ia)
            self.assertTrue(ra.complete)
            self.assertEqual(len(got_a), total)
            if follower_reads_late:
                # The leader is done (its fill finished, whatever it said before): only
                # now does the follower read what it was sent.
                self.origin.wait_for(lambda: self.origin.requests(path)[0].response_done, 5, "origin body sent")
                got_b, complete_b = self.read_follower(b, rb)
            self.assertFalse(complete_b, f"the follower's truncated body ({len(got_b)} of {total} bytes) "
                                         f"ended as if complete")
            self.assertLess(len(got_b), total)
            self.assertEqual(got_b, got_a[:len(got_b)], "the follower's bytes are not a prefix of the body")
            # Nothing more is answered on that connection.
            answered = b""
            try:
                b.send(b"GET /big/after HTTP/1.1\r\nHost: cachalot.test\r\n\r\n")
                b.sock.settimeout(2)
                answered = bytes(b.buf) + b.sock.recv(65536)
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                pass
            self.assertEqual(answered, b"", "the follower's connection was kept alive after a truncated body")
        finally:
            gate.open()
            a.close()
            b.close()
        self.assertEqual(self.origin.request_count("/big/after"), 0)
        self.assertEqual(self.origin.request_count(path), 1, "the follower went to the origin after its head")
        # Not stored: the next GET goes to the origin.
        r = self.proxy.get(path, timeout=15)
        self.assertEqual(len(r.body), total)
        self.assertFalse(cache_status(r).startswith("cachalot; hit"), cache_status(r))
        self.assertEqual(self.origin.request_count(path), 2)

    def read_follower(self, b, rb):
        got = b""
        try:
            for chunk in b.iter_body(rb):
                got += chunk
        except (IncompleteResponse, ConnectionResetError):
            pass
        return got, rb.complete

    def test_a_follower_of_a_fill_that_outgrows_max_object_size_gets_a_closed_connection(self):
        """Safety rule: a fill is finished exactly once; RFC 9112 §6.3: a cut body ends with a close."""
        self.oversized_fill(follower_reads_late=False)

    def test_a_follower_reading_after_the_oversized_fill_ended_still_gets_a_closed_connection(self):
        """The follower's client reads nothing until the leader's fetch is over, so the
        follower sees the fill only in its final state: still a truncated body and a close."""
        self.oversized_fill(follower_reads_late=True)

if __name__ == "__main__":
    unittest.main()
