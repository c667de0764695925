"""JSON output through nlohmann::json (issue 13): the JSON access log and the
admin API stay valid JSON, and valid UTF-8, when a client or an origin sends
bytes that are not UTF-8. Such bytes come out as U+FFFD; the answer or log
line is never lost or broken.

Bytes that are not ASCII reach the admin API in request header values kept in
a variant key (obs-text, RFC 9110 §5.5), in an origin's Surrogate-Key tags and
in %-decoded admin query values. The parser refuses them in a request target
(400), so the access log gets them only from its unit test (proxy/access_log).

    client    { get /v, X-Lang: d\\xe9; expect 200 }
    admin     { get /cache?path=/v; expect 200 json; variant "x-lang:2:d\\ufffd" }
    admin     { post /purge?route=%FF; expect 404 {"error":"no route named \\ufffd"} }
"""

import json
import os
import tempfile
import unittest

from _revaltest import ProxyCase, Reply, admin_json, admin_request, wait_until

FFFD = "\ufffd"
FIELDS = ["client", "method", "target", "status", "bytes", "duration_ms", "cache_status"]


def utf8_json(r):
    """An admin answer's JSON, after checking that its body is UTF-8."""
    r.body.decode("utf-8")  # raises on bytes that are not UTF-8
    return admin_json(r)


class JsonOutputTest(ProxyCase):
    def setUp(self):
        self.logdir = tempfile.TemporaryDirectory(prefix="cachalot-json-")
        self.access_path = os.path.join(self.logdir.name, "access.log")
        self.CONFIG = {"log": {"access_log": self.access_path, "access_log_format": "json"}}
        super().setUp()

    def tearDown(self):
        try:
            super().tearDown()
        finally:
            self.logdir.cleanup()

    def access_lines(self) -> list:
        """The access log's lines as (name, value) pairs, each checked to be UTF-8 and one JSON object."""
        try:
            with open(self.access_path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return []
        return [json.loads(line.decode("utf-8"), object_pairs_hook=list) for line in raw.splitlines()]

    def wait_line(self, status: int) -> dict:
        """The first log line with this status; the fields must be in the documented order."""
        found = []

        def seen():
            found[:] = [p for p in self.access_lines() if dict(p)["status"] == status]
            return bool(found)
        wait_until(seen, 5.0, what=f"an access-log line with status {status}")
        self.assertEqual([k for k, _ in found[0]], FIELDS)
        return dict(found[0])

    def test_access_log_line_fields_in_order(self):
        self.origin.route("/plain", Reply(200, [("Cache-Control", "max-age=60")], b"hello"))
        self.assertEqual(self.proxy.get("/plain?a=\"b\"\\%E9").status, 200)
        line = self.wait_line(200)
        self.assertEqual((line["client"], line["method"], line["target"], line["status"]),
                         ("127.0.0.1", "GET", "/plain?a=\"b\"\\%E9", 200))
        self.assertIsInstance(line["bytes"], int)
        self.assertGreater(line["bytes"], 5)  # head and body as sent
        self.assertIsInstance(line["duration_ms"], float)
        self.assertRegex(line["cache_status"], r"^fwd=uri-miss")

    def test_a_target_that_is_not_ascii_is_refused_and_still_logged_as_json(self):
        r = self.proxy.get("/caf\xe9")  # the harness sends Latin-1: one byte 0xE9
        self.assertEqual(r.status, 400, r)
        line = self.wait_line(400)
        self.assertEqual(line["cache_status"], "fwd=bypass; detail=malformed")

    def test_header_value_and_tag_that_are_not_utf8_in_cache_inspection(self):
        self.origin.route("/v", Reply(200, [("Cache-Control", "max-age=60"), ("Vary", "X-Lang"),
                                            ("Surrogate-Key", "t\xff ok")], b"v"))
        self.assertEqual(self.proxy.get("/v", [("X-Lang", "d\xe9")]).status, 200)
        wait_until(lambda: self.proxy.admin_get("/cache?path=/v").status == 200, 5.0, what="/v stored")
        j = utf8_json(self.proxy.admin_get("/cache?path=/v"))
        self.assertEqual(len(j["variants"]), 1, j)
        self.assertEqual(j["variants"][0]["variant"], f"x-lang:2:d{FFFD}")
        self.assertEqual(sorted(j["variants"][0]["tags"]), sorted([f"t{FFFD}", "ok"]))

    def test_decoded_query_value_that_is_not_utf8_in_an_admin_error(self):
        r = admin_request(self.proxy, "POST", "/purge?route=%FF")
        self.assertEqual(r.status, 404, r)
        self.assertEqual(utf8_json(r), {"error": f"no route named {FFFD}"})


if __name__ == "__main__":
    unittest.main()
