"""Per-user caching that cannot leak (issue 13 item 2): route partitions keyed
by the verified claim of the request's bearer JWT.

The origin answers every path with the user named in the token it received
(decoded, not verified: the origin believes whatever reaches it) and the path,
`Cache-Control: private, max-age=300`. So every body says whose it is, and the
tests check what crossed the wire: each response's body, and how many requests
reached the origin.

Routes: /dashboard/ (HS256, issuer and audience checked), /rs/ (RS256),
/es/ (ES256), /budget/ (HS256, partition_max_bytes: 16KiB). Tokens are made
here: HS256 with hmac, RS256 / ES256 with the `cryptography` module when it is
installed, else with the openssl CLI.
"""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from _cachetest import CacheTestCase, Reply, cache_status

SECRET = b"c70-partition-secret-0123456789abcdef"  # >= 32 bytes (RFC 7518 sec. 3.2)
ISSUER = "https://auth.c70.test"
AUDIENCE = "api"
BUDGET_BODY = 5000  # bytes per /budget/ body: three entries fit in 16 KiB, four do not


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class Keys:
    """An RSA and a P-256 key pair in a temp dir, and the HMAC secret file."""

    def __init__(self):
        self.dir = tempfile.TemporaryDirectory(prefix="cachalot-c70-")
        d = self.dir.name
        self.secret_file = os.path.join(d, "hs256.secret")
        with open(self.secret_file, "wb") as f:
            f.write(SECRET + b"\n")
        self.rsa_key, self.rsa_pub = os.path.join(d, "rsa.key"), os.path.join(d, "rsa.pub")
        self.ec_key, self.ec_pub = os.path.join(d, "ec.key"), os.path.join(d, "ec.pub")
        openssl = shutil.which("openssl")
        if openssl is None:
            raise unittest.SkipTest("openssl CLI needed to make the RS256/ES256 keys")
        subprocess.run([openssl, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                        "-out", self.rsa_key], check=True, capture_output=True)
        subprocess.run([openssl, "pkey", "-in", self.rsa_key, "-pubout", "-out", self.rsa_pub],
                       check=True, capture_output=True)
        subprocess.run([openssl, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-out", self.ec_key], check=True, capture_output=True)
        subprocess.run([openssl, "pkey", "-in", self.ec_key, "-pubout", "-out", self.ec_pub],
                       check=True, capture_output=True)
        with open(self.rsa_pub, "rb") as f:
            self.rsa_pub_pem = f.read()

    def sign(self, alg: str, signing_input: bytes) -> bytes:
        if alg == "HS256":
            return hmac.new(SECRET, signing_input, hashlib.sha256).digest()
        key = self.rsa_key if alg == "RS256" else self.ec_key
        der = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=signing_input,
                             check=True, capture_output=True).stdout
        if alg == "RS256":
            return der
        return der_to_raw(der)  # RFC 7518 sec. 3.4: ES256 is r || s, 32 bytes each

    def close(self):
        self.dir.cleanup()


def der_to_raw(der: bytes) -> bytes:
    """An ECDSA-Sig-Value (SEQUENCE { r INTEGER, s INTEGER }) as the raw 64-byte r || s."""
    assert der[0] == 0x30
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    out = b""
    for _ in range(2):
        assert der[i] == 0x02
        n = der[i + 1]
        v = der[i + 2:i + 2 + n].lstrip(b"\x00")
        out += v.rjust(32, b"\x00")
        i += 2 + n
    return out


def origin_reply(req):
    """The body names the user of the token the origin received (unverified) and the path."""
    user = "anonymous"
    auth = req.header("authorization") or ""
    if auth.startswith("Bearer "):
        try:
            payload = auth[7:].split(".")[1]
            user = str(json.loads(b64url_decode(payload)).get("sub", "none"))
        except Exception:  # noqa: BLE001 - a garbage token is still a request
            user = "garbage"
    headers = [("Cache-Control", "private, max-age=300")]
    if "vary-auth" in req.path:
        headers.append(("Vary", "Authorization"))
    if "no-store" in req.path:
        headers = [("Cache-Control", "private, no-store")]
    body = f"user={user} path={req.path}".encode()
    if req.path.startswith("/budget/"):
        body = body.ljust(BUDGET_BODY, b".")
    return Reply(200, headers + [("Content-Type", "text/plain")], body)


class PartitionTest(CacheTestCase):
    WORKERS = 2

    @classmethod
    def setUpClass(cls):
        cls.keys = Keys()

        def jwt_route(name, prefix, alg, key_file, **extra):
            route = {"name": name, "prefix": prefix,
                     "partition": {"jwt": {"algorithms": [alg], "key_file": key_file,
                                           "issuer": ISSUER, "audience": AUDIENCE, "claim": "sub",
                                           "leeway": "5s"}}}
            route.update(extra)
            return route

        cls.CONFIG = {
            "cache": {"coalesce": {"enabled": True}},
            "routes": [
                jwt_route("dashboard", "/dashboard/", "HS256", cls.keys.secret_file),
                jwt_route("rs", "/rs/", "RS256", cls.keys.rsa_pub),
                jwt_route("es", "/es/", "ES256", cls.keys.ec_pub),
                jwt_route("budget", "/budget/", "HS256", cls.keys.secret_file, partition_max_bytes="16KiB"),
            ],
        }
        try:
            super().setUpClass()
        except BaseException:
            cls.keys.close()
            raise
        cls.origin.default(origin_reply)

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.keys.close()

    # ---- tokens ------------------------------------------------------------
    def token(self, sub, alg="HS256", *, exp_in=600, nbf_in=None, iss=ISSUER, aud=AUDIENCE, header=None,
              claims=None, jti="1"):
        now = int(self.proxy.now())  # cachalot's clock decides exp / nbf
        payload = {"sub": sub, "iss": iss, "aud": aud, "exp": now + exp_in, "iat": now, "jti": jti}
        if nbf_in is not None:
            payload["nbf"] = now + nbf_in
        if iss is None:
            del payload["iss"]
        if claims:
            payload.update(claims)
        h = header or {"alg": alg, "typ": "JWT"}
        signing_input = (b64url(json.dumps(h).encode()) + "." + b64url(json.dumps(payload).encode())).encode()
        return signing_input.decode() + "." + b64url(self.keys.sign(alg, signing_input))

    def as_user(self, path, token):
        return self.get(path, [("Authorization", f"Bearer {token}")])

    def body_of(self, user, path):
        return f"user={user} path={path}".encode()

    def assertPartitionMiss(self, r, user, path):
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, self.body_of(user, path))
        self.assertCacheStatus(r, fwd="uri-miss", stored=True, detail="partition")

    def assertPartitionHit(self, r, user, path):
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, self.body_of(user, path), "another user's body")
        self.assertCacheStatus(r, hit=True, detail="partition")

    def assertRejected(self, r, detail, msg=""):
        self.assertEqual(r.status, 200, r)
        cs = self.assertCacheStatus(r, fwd="bypass", detail=detail, msg=msg)
        self.assertNotIn("hit", cs, msg)
        self.assertNotIn("stored", cs, msg)

    # ---- tests -------------------------------------------------------------
    def test_25_users_concurrently_never_see_each_other(self):
        users = [f"user{i:02d}" for i in range(25)]
        paths = [f"{'/dashboard'}/{self._testMethodName}/{n}" for n in ("a", "b", "c")]
        tokens = {u: self.token(u) for u in users}
        jobs = [(u, p) for _ in range(3) for u in users for p in paths]  # 225 requests, bounded

        def fetch(job):
            u, p = job
            r = self.as_user(p, tokens[u])
            return u, p, r.status, r.body, cache_status(r)

        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(fetch, jobs))
        for u, p, status, body, cs in results:
            self.assertEqual(status, 200)
            self.assertEqual(body, self.body_of(u, p), f"{u} got {body!r} ({cs['_raw']})")
        # The same user's concurrent first requests may each miss (authorized
        # requests are not coalesced); never more than one origin request per request.
        for p in paths:
            self.assertGreaterEqual(self.origin.request_count(p), 25)
            self.assertLessEqual(self.origin.request_count(p), 75)
        before = {p: self.origin.request_count(p) for p in paths}
        # Every user's entries are stored now: each later request is a hit on its own body.
        for u in users:
            for p in paths:
                self.assertPartitionHit(self.as_user(p, tokens[u]), u, p)
        for p in paths:
            self.assertOriginCount(p, before[p])
        m = self.proxy.metrics()
        self.assertGreaterEqual(m.get("cachalot_partition_hits_total", route="dashboard"), 75)

    def test_authorization_is_forwarded_unchanged_and_hits_follow(self):
        p = f"/dashboard/{self._testMethodName}"
        t = self.token("alice")
        self.assertPartitionMiss(self.as_user(p, t), "alice", p)
        (req,) = self.assertOriginCount(p, 1)
        self.assertEqual(req.header("authorization"), f"Bearer {t}")
        for _ in range(3):
            self.assertPartitionHit(self.as_user(p, t), "alice", p)
        self.assertOriginCount(p, 1)
        # Another user's first request for the same URL goes to the origin.
        self.assertPartitionMiss(self.as_user(p, self.token("bob")), "bob", p)
        self.assertOriginCount(p, 2)

    def test_token_refresh_keeps_the_entry(self):
        for suffix in ("plain", "vary-auth"):
            p = f"/dashboard/{self._testMethodName}/{suffix}"
            self.assertPartitionMiss(self.as_user(p, self.token("carol", jti="old")), "carol", p)
            fresh = self.token("carol", jti="new", exp_in=900)
            self.assertPartitionHit(self.as_user(p, fresh), "carol", p)
            self.assertOriginCount(p, 1, suffix)

    def test_bad_tokens_never_reach_a_partition(self):
        p = f"/dashboard/{self._testMethodName}"
        good = self.token("dave")
        self.assertPartitionMiss(self.as_user(p, good), "dave", p)
        head, payload, sig = good.split(".")
        forged_sig = sig[:-4] + ("AAAA" if not sig.endswith("AAAA") else "BBBB")
        other_payload = b64url(json.dumps({"sub": "dave", "iss": ISSUER, "aud": AUDIENCE,
                                           "exp": int(self.proxy.now()) + 600, "admin": True}).encode())
        none_header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        bad = {
            "forged signature": f"{head}.{payload}.{forged_sig}",
            "payload swapped under the signature": f"{head}.{other_payload}.{sig}",
            "expired": self.token("dave", exp_in=-60),
            "not yet valid": self.token("dave", nbf_in=120),
            "wrong audience": self.token("dave", aud="other-api"),
            "wrong issuer": self.token("dave", iss="https://evil.test"),
            "no issuer": self.token("dave", iss=None),
            "alg none, empty signature": f"{none_header}.{payload}.",
            "alg none, some signature": f"{none_header}.{payload}.{sig}",
            "RS256 header on an HS256 route": self.token("dave", header={"alg": "RS256"}),
            "claim not a string": self.token("dave", claims={"sub": 42}),
            "garbage": "not-a-jwt",
        }
        n = 1
        for name, token in bad.items():
            for _ in range(2):
                r = self.as_user(p, token)
                self.assertRejected(r, "partition-invalid-token", name)
                n += 1
                self.assertOriginCount(p, n, name)
        # The real dave's entry is still his, and still a hit.
        self.assertPartitionHit(self.as_user(p, good), "dave", p)
        self.assertOriginCount(p, n)
        m = self.proxy.metrics()
        self.assertGreaterEqual(m.get("cachalot_partition_rejected_total", route="dashboard",
                                      reason="invalid-token"), 2 * len(bad))

    def test_a_request_without_a_token_never_gets_a_partitioned_body(self):
        p = f"/dashboard/{self._testMethodName}"
        self.assertPartitionMiss(self.as_user(p, self.token("erin")), "erin", p)
        for headers in ([], [("Authorization", "Basic ZXJpbjpwdw==")]):
            for _ in range(2):
                r = self.get(p, headers)
                if headers:
                    self.assertRejected(r, "partition-invalid-token")
                    self.assertEqual(r.body, self.body_of("anonymous", p))
                else:
                    self.assertRejected(r, "partition-no-token")
                    self.assertEqual(r.body, self.body_of("anonymous", p))
        self.assertOriginCount(p, 5)
        self.assertGreaterEqual(self.proxy.metrics().get("cachalot_partition_rejected_total", route="dashboard",
                                                         reason="no-token"), 2)

    def test_no_store_is_never_stored_in_a_partition(self):
        p = f"/dashboard/{self._testMethodName}/no-store"
        t = self.token("frank")
        for i in range(3):
            r = self.as_user(p, t)
            self.assertEqual(r.body, self.body_of("frank", p))
            self.assertNotStored(r, detail="no-store")
        self.assertOriginCount(p, 3)

    def test_rs256_and_es256_routes(self):
        for prefix, alg in (("/rs", "RS256"), ("/es", "ES256")):
            p = f"{prefix}/{self._testMethodName}"
            t = self.token("grace", alg)
            self.assertPartitionMiss(self.as_user(p, t), "grace", p)
            self.assertPartitionHit(self.as_user(p, t), "grace", p)
            self.assertOriginCount(p, 1, alg)
        # Algorithm confusion: HS256 keyed with the RSA public key, on the RS256 route.
        p = f"/rs/{self._testMethodName}"
        h = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = b64url(json.dumps({"sub": "grace", "iss": ISSUER, "aud": AUDIENCE,
                                  "exp": int(self.proxy.now()) + 600}).encode())
        mac = hmac.new(self.keys.rsa_pub_pem, f"{h}.{body}".encode(), hashlib.sha256).digest()
        for _ in range(2):
            self.assertRejected(self.as_user(p, f"{h}.{body}.{b64url(mac)}"), "partition-invalid-token")
        # An RS256 token on the ES256 route.
        self.assertRejected(self.as_user(f"/es/{self._testMethodName}", self.token("grace", "RS256")),
                            "partition-invalid-token")
        self.assertOriginCount(p, 3)

    def test_purge_by_partition_removes_only_that_users_entries(self):
        paths = [f"/dashboard/{self._testMethodName}/{n}" for n in ("a", "b")]
        heidi, ivan = self.token("heidi"), self.token("ivan")
        for p in paths:
            self.assertPartitionMiss(self.as_user(p, heidi), "heidi", p)
            self.assertPartitionMiss(self.as_user(p, ivan), "ivan", p)
        r = self.admin("POST", "/purge?partition=heidi")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(json.loads(r.body)["purged"], 2)
        for p in paths:
            self.assertPartitionHit(self.as_user(p, ivan), "ivan", p)
            self.assertPartitionMiss(self.as_user(p, heidi), "heidi", p)
            self.assertOriginCount(p, 3)
        self.assertEqual(self.admin("POST", "/purge?partition=").status, 400)
        self.assertEqual(self.proxy.metrics().get("cachalot_purges_total", kind="partition"), 1)

    def test_a_url_purge_reaches_every_partition(self):
        p = f"/dashboard/{self._testMethodName}"
        judy, ken = self.token("judy"), self.token("ken")
        self.assertPartitionMiss(self.as_user(p, judy), "judy", p)
        self.assertPartitionMiss(self.as_user(p, ken), "ken", p)
        r = self.admin("POST", f"/purge?path={p}")
        self.assertEqual(json.loads(r.body)["purged"], 2)
        self.assertPartitionMiss(self.as_user(p, judy), "judy", p)
        self.assertPartitionMiss(self.as_user(p, ken), "ken", p)
        self.assertOriginCount(p, 4)

    def test_partition_budget_keeps_one_user_from_evicting_another(self):
        base = f"/budget/{self._testMethodName}"
        leo, mia = self.token("leo"), self.token("mia")

        def body(user, path):
            return self.body_of(user, path).ljust(BUDGET_BODY, b".")

        leo_path = f"{base}/leo"
        r = self.as_user(leo_path, leo)
        self.assertEqual(r.body, body("leo", leo_path))
        self.assertCacheStatus(r, stored=True)
        mia_paths = [f"{base}/mia{i}" for i in range(8)]  # 8 x 5 KB into a 16 KiB partition
        for p in mia_paths:
            r = self.as_user(p, mia)
            self.assertEqual(r.body, body("mia", p))
            self.assertCacheStatus(r, fwd="uri-miss", stored=True)
        # Leo's entry survived Mia's eight.
        r = self.as_user(leo_path, leo)
        self.assertEqual(r.body, body("leo", leo_path))
        self.assertCacheStatus(r, hit=True)
        self.assertOriginCount(leo_path, 1)
        # Mia keeps her newest entries; her oldest ones went.
        r = self.as_user(mia_paths[-1], mia)
        self.assertEqual(r.body, body("mia", mia_paths[-1]))
        self.assertCacheStatus(r, hit=True)
        r = self.as_user(mia_paths[0], mia)
        self.assertEqual(r.body, body("mia", mia_paths[0]))
        self.assertCacheStatus(r, fwd="uri-miss")
        self.assertOriginCount(mia_paths[0], 2)
        self.assertGreaterEqual(self.proxy.metrics().get("cachalot_cache_evictions_total",
                                                         reason="partition-budget"), 5)

    def test_an_expired_token_stops_hitting(self):
        p = f"/dashboard/{self._testMethodName}"
        t = self.token("nina", exp_in=20)
        self.assertPartitionMiss(self.as_user(p, t), "nina", p)
        self.assertPartitionHit(self.as_user(p, t), "nina", p)
        self.proxy.advance_clock(30)  # past exp + the 5 s leeway; the entry itself is still fresh
        self.assertRejected(self.as_user(p, t), "partition-invalid-token")
        self.assertOriginCount(p, 2)
        self.assertPartitionHit(self.as_user(p, self.token("nina")), "nina", p)
        self.assertOriginCount(p, 2)


if __name__ == "__main__":
    unittest.main()
