"""TLS (issue #4/#5 follow-up): TLS listeners (server.listen maps with tls.cert /
tls.key) and https:// origins (upstream.tls.verify / ca_file / sni).

A throw-away CA and server certificates for 127.0.0.1 / localhost are made with
the `openssl` CLI at test time in a temp dir. The https origin is the harness'
fake origin behind a small in-process TLS terminator (TlsFront), so the origin
still records every request.

    client (TLS, trusts the test CA, ALPN http/1.1) -> cachalot :tls -> origin   : 200
    cachalot -> TlsFront(test cert) -> origin, upstream.tls.ca_file = CA          : 200
    same without ca_file (verify on)                                             : 502, upstream_errors{kind=tls}
"""

import os
import select
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest
import warnings

from _revaltest import UPSTREAM_ERRORS, Cachalot, Origin, RawClient, Reply, admin_request, metric, wait_until
from cachalot import free_port

OPENSSL = shutil.which("openssl")


# ---- certificates ----------------------------------------------------------------

def _openssl(*args, cwd):
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)


def make_ca(d: str) -> str:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=Cachalot Test CA",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-addext", "subjectKeyIdentifier=hash", cwd=d)
    return os.path.join(d, "ca.crt")


def make_cert(d: str, name: str, cn: str, sans: str, serial: int) -> tuple:
    """A server certificate signed by the CA in `d`: (cert path, key path)."""
    with open(os.path.join(d, f"{name}.ext"), "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
                f"subjectAltName={sans}\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-set_serial", str(serial),
             "-days", "2", "-out", f"{name}.crt", "-extfile", f"{name}.ext", cwd=d)
    return os.path.join(d, f"{name}.crt"), os.path.join(d, f"{name}.key")


class Certs:
    """A CA, a good server cert (127.0.0.1 + localhost), a second one (for reloads)
    and one for another name."""

    def __init__(self):
        if OPENSSL is None:
            raise unittest.SkipTest("no openssl CLI")
        self.tmp = tempfile.TemporaryDirectory(prefix="cachalot-tls-")
        d = self.tmp.name
        self.ca = make_ca(d)
        self.cert, self.key = make_cert(d, "server", "localhost", "IP:127.0.0.1,DNS:localhost", 1001)
        self.cert2, self.key2 = make_cert(d, "server2", "localhost", "IP:127.0.0.1,DNS:localhost", 2002)
        self.wrong, self.wrong_key = make_cert(d, "wrong", "wrong.test", "DNS:wrong.test", 3003)

    def close(self):
        self.tmp.cleanup()


# ---- a TLS terminator in front of the fake origin -------------------------------------

class TlsFront:
    """Accepts TLS on 127.0.0.1 and relays the plaintext to the fake origin's port.
    Records the SNI names clients sent and how handshakes went."""

    def __init__(self, target_port: int, cert: str, key: str):
        self.target_port = target_port
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.set_alpn_protocols(["http/1.1"])
        self.ctx.sni_callback = self._on_sni
        self.lock = threading.Lock()
        self.sni = []                 # server_name of each ClientHello (None when absent)
        self.handshakes_ok = 0
        self.handshakes_failed = 0
        self.alpn = []
        self._stop = threading.Event()
        self._threads = []
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self._acceptor.start()

    def _on_sni(self, sslobj, server_name, ctx):
        with self.lock:
            self.sni.append(server_name)

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                raw, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(raw,), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, raw: socket.socket):
        raw.settimeout(5)
        try:
            tls = self.ctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            with self.lock:
                self.handshakes_failed += 1
            raw.close()
            return
        with self.lock:
            self.handshakes_ok += 1
            self.alpn.append(tls.selected_alpn_protocol())
        try:
            up = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
        except OSError:
            tls.close()
            return
        deadline = time.monotonic() + 60
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                ready = [tls] if tls.pending() else select.select([tls, up], [], [], 0.1)[0]
                for s in ready:
                    try:
                        data = s.recv(65536)
                    except ssl.SSLWantReadError:
                        continue
                    if not data:
                        return
                    (up if s is tls else tls).sendall(data)
        except (OSError, ssl.SSLError):
            return
        finally:
            for s in (up, tls):
                try:
                    s.close()
                except OSError:
                    pass

    def close(self):
        self._stop.set()
        self.listener.close()
        self._acceptor.join(5)
        for t in self._threads:
            t.join(5)


# ---- cachalot with a TLS listener, and a TLS client ------------------------------------------

class TlsCachalot(Cachalot):
    """The harness' cachalot plus one TLS listener on self.tls_port."""

    def __init__(self, config, *, cert: str, key: str, **kw):
        self.tls_port = free_port()
        self.tls_cert, self.tls_key = cert, key
        super().__init__(config, **kw)

    def full_config(self, config=None) -> dict:
        cfg = super().full_config(config)
        server = dict(cfg["server"])
        server["listen"] = list(server["listen"]) + [
            {"address": f"127.0.0.1:{self.tls_port}", "tls": {"cert": self.tls_cert, "key": self.tls_key}}]
        cfg["server"] = server
        return cfg


class TlsClient(RawClient):
    """RawClient over TLS (the handshake happens in the constructor)."""

    def __init__(self, port: int, ctx: ssl.SSLContext, server_hostname: str = "localhost", timeout: float = 5.0):
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        try:
            self.sock = ctx.wrap_socket(raw, server_hostname=server_hostname)
        except BaseException:
            raw.close()
            raise
        self.timeout = timeout
        self.buf = bytearray()
        self.eof = False


def client_ctx(ca: str, alpn=("http/1.1",)) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca)
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def only_tls11(ctx: ssl.SSLContext) -> ssl.SSLContext:
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # that is the point
        ctx.minimum_version = ssl.TLSVersion.TLSv1_1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    return ctx


def tls11_client_ctx() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return only_tls11(ctx)


def local_openssl_speaks_tls11(cert: str, key: str) -> bool:
    """Control: can this Python/OpenSSL do a TLS 1.1 handshake at all (with a
    server that allows it)? If not, a refusal by cachalot would prove nothing."""
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(cert, key)
    only_tls11(sctx)
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(1)
    lst.settimeout(5)
    result = {}

    def serve():
        try:
            conn, _ = lst.accept()
            conn.settimeout(5)
            with sctx.wrap_socket(conn, server_side=True) as s:
                result["version"] = s.version()
        except (OSError, ssl.SSLError) as e:
            result["error"] = e
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        with socket.create_connection(lst.getsockname(), timeout=5) as raw:
            with tls11_client_ctx().wrap_socket(raw) as s:
                ok = s.version() == "TLSv1.1"
    except (OSError, ssl.SSLError):
        ok = False
    t.join(5)
    lst.close()
    return ok


# ---- tests ---------------------------------------------------------------------------------

class TlsListenerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.certs = Certs()

    @classmethod
    def tearDownClass(cls):
        cls.certs.close()

    def setUp(self):
        # Each test gets its own copies of the cert files (the reload test replaces them).
        self.dir = tempfile.TemporaryDirectory(prefix="cachalot-tls-listener-")
        self.cert = shutil.copy(self.certs.cert, os.path.join(self.dir.name, "listener.crt"))
        self.key = shutil.copy(self.certs.key, os.path.join(self.dir.name, "listener.key"))
        self.origin = Origin()
        self.origin.route("/tls", Reply(200, [("Cache-Control", "no-store")], b"over tls"))
        try:
            self.proxy = TlsCachalot({}, cert=self.cert, key=self.key, upstream=self.origin)
        except BaseException:
            self.origin.close()
            raise

    def tearDown(self):
        rc = self.proxy.stop()
        tail = self.proxy.log_tail()
        self.proxy.close()
        self.origin.close()
        self.dir.cleanup()
        if rc != 0:
            raise AssertionError(f"cachalot exited with {rc} on SIGTERM\n{tail}")

    def get_over_tls(self, ctx, server_hostname="localhost"):
        with TlsClient(self.proxy.tls_port, ctx, server_hostname) as cl:
            cl.request("GET", "/tls")
            r = cl.read_response()
            return r, cl.sock.selected_alpn_protocol(), cl.sock.version(), cl.sock.getpeercert()

    def test_a_client_trusting_the_test_ca_gets_200_with_alpn_http11(self):
        for name in ("localhost", "127.0.0.1"):
            with self.subTest(server_hostname=name):
                r, alpn, version, peer = self.get_over_tls(client_ctx(self.certs.ca), name)
                self.assertEqual((r.status, r.body), (200, b"over tls"))
                self.assertEqual(alpn, "http/1.1")
                self.assertIn(version, ("TLSv1.2", "TLSv1.3"))
                self.assertEqual(int(peer["serialNumber"], 16), 1001)
        self.assertEqual(self.origin.request_count("/tls"), 2)
        # The plain listener keeps working next to the TLS one.
        self.assertEqual(self.proxy.get("/tls").body, b"over tls")

    def test_tls_1_2_is_accepted_and_keep_alive_works_over_tls(self):
        ctx = client_ctx(self.certs.ca)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        with TlsClient(self.proxy.tls_port, ctx) as cl:
            self.assertEqual(cl.sock.version(), "TLSv1.2")
            for _ in range(3):
                cl.request("GET", "/tls")
                self.assertEqual(cl.read_response().body, b"over tls")

    def test_tls_1_1_is_refused(self):
        """RFC 8996: TLS 1.0 and 1.1 MUST NOT be used."""
        if not local_openssl_speaks_tls11(self.certs.cert, self.certs.key):
            self.skipTest("this OpenSSL cannot make a TLS 1.1 handshake, so a refusal would prove nothing")
        with self.assertRaises((ssl.SSLError, ConnectionError)):
            with TlsClient(self.proxy.tls_port, tls11_client_ctx()) as cl:
                cl.request("GET", "/tls")
                cl.read_response()
        self.assertEqual(self.origin.request_count("/tls"), 0)

    def test_a_client_offering_only_h2_is_refused_with_no_application_protocol(self):
        """RFC 7301 §3.2: a server that supports none of the client's protocols
        SHALL respond with a fatal no_application_protocol alert."""
        with self.assertRaises(ssl.SSLError) as cm:
            with TlsClient(self.proxy.tls_port, client_ctx(self.certs.ca, alpn=("h2",))):
                pass
        self.assertIn("NO APPLICATION PROTOCOL", str(cm.exception).upper().replace("_", " "))
        r, alpn, _, _ = self.get_over_tls(client_ctx(self.certs.ca, alpn=("h2", "http/1.1")))
        self.assertEqual((r.status, alpn), (200, "http/1.1"))

    def test_a_client_not_trusting_the_ca_fails_the_handshake(self):
        with self.assertRaises(ssl.SSLCertVerificationError):
            with TlsClient(self.proxy.tls_port, ssl.create_default_context()):
                pass

    def test_reload_rereads_the_certificate_files(self):
        _, _, _, peer = self.get_over_tls(client_ctx(self.certs.ca))
        self.assertEqual(int(peer["serialNumber"], 16), 1001)
        for src, dst in ((self.certs.cert2, self.cert), (self.certs.key2, self.key)):
            tmp = dst + ".new"
            shutil.copy(src, tmp)
            os.replace(tmp, dst)
        since = self.proxy.log_offset()
        self.proxy.reload()
        self.proxy.wait_for_log(r"configuration reloaded", since=since)

        def new_serial():
            _, _, _, p = self.get_over_tls(client_ctx(self.certs.ca))
            return int(p["serialNumber"], 16) == 2002
        wait_until(new_serial, 5, 0.05, what="the new certificate served after SIGHUP")


    def test_a_reload_with_an_unreadable_certificate_keeps_the_old_one(self):
        with open(self.cert, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
        since = self.proxy.log_offset()
        self.proxy.reload()
        self.proxy.wait_for_log(r"reload failed.*\n?.*certificate", since=since)
        self.assertTrue(self.proxy.alive())
        r, _, _, peer = self.get_over_tls(client_ctx(self.certs.ca))
        self.assertEqual((r.status, int(peer["serialNumber"], 16)), (200, 1001))

    def test_a_silent_client_is_dropped_after_client_header_during_the_handshake(self):
        """A connection that never sends a ClientHello must not be held forever."""
        p = TlsCachalot({"server": {"timeouts": {"client_header": "500ms"}}}, cert=self.cert, key=self.key,
                        upstream=self.origin)
        try:
            with RawClient(p.tls_port, timeout=5) as cl:
                t0 = time.monotonic()
                how = cl.wait_closed(timeout=3)
                self.assertIn(how, ("eof", "reset"))
                self.assertLess(time.monotonic() - t0, 2.5)
        finally:
            p.close()


class TlsListenerReloadTest(unittest.TestCase):
    """README: a reload adds and removes listeners; here a TLS one."""

    def test_a_reload_adds_and_removes_a_tls_listener(self):
        certs = Certs()
        origin = Origin()
        origin.route("/tls", Reply(200, [("Cache-Control", "no-store")], b"over tls"))
        proxy = Cachalot({}, upstream=origin)
        try:
            port = free_port()
            cfg = {"server": {"listen": [f"127.0.0.1:{proxy.port}", {
                "address": f"127.0.0.1:{port}", "tls": {"cert": certs.cert, "key": certs.key}}]}}
            proxy.write_config(cfg)
            r = _admin_post(proxy, "/reload")
            self.assertEqual(r.status, 200, r)

            def tls_get():
                with TlsClient(port, client_ctx(certs.ca)) as cl:
                    cl.request("GET", "/tls")
                    return cl.read_response()
            self.assertEqual(wait_until(tls_get, 5, 0.05, what="the added TLS listener").body, b"over tls")
            proxy.write_config({})
            self.assertEqual(_admin_post(proxy, "/reload").status, 200)

            def refused():
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    return False
                except ConnectionRefusedError:
                    return True
            wait_until(refused, 5, 0.05, what="the removed TLS listener closed")
            self.assertEqual(proxy.get("/tls").body, b"over tls")
        finally:
            rc = proxy.stop()
            tail = proxy.log_tail()
            proxy.close()
            origin.close()
            certs.close()
        self.assertEqual(rc, 0, tail)


def _admin_post(proxy, path):
    return admin_request(proxy, "POST", path)


class HttpsUpstreamTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.certs = Certs()

    @classmethod
    def tearDownClass(cls):
        cls.certs.close()

    def setUp(self):
        self.origin = Origin()
        self.origin.route("/s", Reply(200, [("Cache-Control", "no-store")], b"from https origin"))
        self.fronts = []
        self.proxies = []

    def tearDown(self):
        failures = []
        for p in self.proxies:
            rc = p.stop()
            if rc != 0:
                failures.append(f"cachalot exited with {rc}\n{p.log_tail()}")
            p.close()
        for f in self.fronts:
            f.close()
        self.origin.close()
        if failures:
            raise AssertionError("\n".join(failures))

    def front(self, cert=None, key=None) -> TlsFront:
        f = TlsFront(self.origin.port, cert or self.certs.cert, key or self.certs.key)
        self.fronts.append(f)
        return f

    def proxy(self, front: TlsFront, tls: dict, host: str = "127.0.0.1") -> Cachalot:
        p = Cachalot({"upstream": {"tls": tls}}, upstream=f"https://{host}:{front.port}")
        self.proxies.append(p)
        return p

    def test_https_origin_verified_with_ca_file_answers_200(self):
        f = self.front()
        p = self.proxy(f, {"ca_file": self.certs.ca})
        r = p.get("/s")
        self.assertEqual((r.status, r.body), (200, b"from https origin"), r)
        self.assertEqual(self.origin.request_count("/s"), 1)
        self.assertEqual(f.handshakes_ok, 1)
        self.assertEqual(f.alpn, ["http/1.1"])
        # The TLS connection is pooled and reused (same client connection, so same worker).
        with p.client() as cl:
            for _ in range(2):
                cl.request("GET", "/s")
                self.assertEqual(cl.read_response().status, 200)
        self.assertEqual(f.handshakes_ok, len(self.origin.connection_ids("/s")))
        self.assertLessEqual(f.handshakes_ok, 2, "each request made a new TLS connection")

    def test_without_the_ca_verification_fails_with_502_and_a_tls_upstream_error(self):
        f = self.front()
        p = self.proxy(f, {})
        r = p.get("/s")
        self.assertEqual(r.status, 502, r)
        self.assertEqual(self.origin.request_count(), 0, "nothing may be sent to an unverified origin")
        wait_until(lambda: metric(p, UPSTREAM_ERRORS, kind="tls") >= 1, 3,
                   what='cachalot_upstream_errors_total{kind="tls"} moved')
        # The front's thread records the failed handshake on its own time.
        wait_until(lambda: f.handshakes_failed >= 1, 3, what="the front saw the handshake fail")

    def test_verify_false_accepts_the_untrusted_certificate(self):
        f = self.front()
        p = self.proxy(f, {"verify": False})
        r = p.get("/s")
        self.assertEqual((r.status, r.body), (200, b"from https origin"), r)

    def test_a_certificate_for_another_name_is_refused_even_from_a_trusted_ca(self):
        """RFC 9110 §4.3.4: the client MUST verify that the service's identity is
        an acceptable match for the URI's origin server (RFC 6125)."""
        f = self.front(self.certs.wrong, self.certs.wrong_key)
        p = self.proxy(f, {"ca_file": self.certs.ca})
        r = p.get("/s")
        self.assertEqual(r.status, 502, r)
        self.assertEqual(self.origin.request_count(), 0)
        self.assertGreaterEqual(metric(p, UPSTREAM_ERRORS, kind="tls"), 1)

    def test_upstream_tls_sni_is_sent_and_used_for_verification(self):
        f = self.front(self.certs.wrong, self.certs.wrong_key)
        p = self.proxy(f, {"ca_file": self.certs.ca, "sni": "wrong.test"})
        r = p.get("/s")
        self.assertEqual((r.status, r.body), (200, b"from https origin"), r)
        self.assertEqual(f.sni, ["wrong.test"])

    def test_a_host_name_url_sends_it_as_sni(self):
        f = self.front()
        p = self.proxy(f, {"ca_file": self.certs.ca}, host="localhost")
        r = p.get("/s")
        if r.status == 502 and "connect" in p.log_text():
            self.skipTest("localhost does not resolve to 127.0.0.1 here")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(f.sni, ["localhost"])

    def test_no_sni_is_sent_for_an_ip_literal_origin(self):
        """RFC 6066 §3: "Literal IPv4 and IPv6 addresses are not permitted in HostName"."""
        f = self.front()
        p = self.proxy(f, {"ca_file": self.certs.ca})
        self.assertEqual(p.get("/s").status, 200)
        self.assertEqual(f.sni, [None])


if __name__ == "__main__":
    unittest.main()
