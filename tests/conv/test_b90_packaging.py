"""Packaging: the systemd unit, the Debian package and the container image.

Run from tests/conv with CACHALOT_BIN (the built binary) and
CACHALOT_SOURCE_DIR (the repository root), as CTest does. The build directory
is the nearest directory above CACHALOT_BIN that holds CPackConfig.cmake.

Tools: systemd-analyze (package systemd), cpack (cmake), dpkg-deb and
dpkg-shlibdeps (dpkg-dev), readelf (binutils), bash. A test whose tool is
missing is skipped and says which package provides it.
"""

import http.server
import json
import os
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
import unittest
from pathlib import Path

SOURCE_DIR = Path(os.environ.get("CACHALOT_SOURCE_DIR") or Path(__file__).resolve().parents[2])
BIN = os.environ.get("CACHALOT_BIN")
UNIT = SOURCE_DIR / "systemd" / "cachalot.service"
DOCKERFILE = SOURCE_DIR / "Dockerfile"
BUILD_SCRIPT = SOURCE_DIR / "scripts" / "container-build.sh"
CONTAINER_CONFIG = SOURCE_DIR / "packaging" / "container.yaml"
DEFAULT_CONFIG = SOURCE_DIR / "config" / "cachalot.yaml"

INSTALLED_BIN = "/usr/bin/cachalot"
SNAPSHOT_PATH = "/var/lib/cachalot/cache.snap"  # cache.snapshot.path by convention (README)
INSTALLED_CONFIG = "/etc/cachalot/cachalot.yaml"

# Libraries every bookworm-slim image already has.
BASE_IMAGE_PACKAGES = {"libc6", "libstdc++6", "libgcc-s1"}
# Linked in only by sanitizer builds.
SANITIZER_LIBS = re.compile(r"^lib(asan|ubsan|tsan|lsan)\.so")


def need_tool(test, tool, package):
    path = shutil.which(tool)
    if path is None:
        test.skipTest(f"{tool} not found: install the Debian package '{package}'")
    return path


def need_bin(test):
    if not BIN or not os.access(BIN, os.X_OK):
        test.skipTest("CACHALOT_BIN is not set to the built cachalot binary")
    return BIN


def run(argv, timeout=120, **kwargs):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_duration(text):
    """'30s', '1min', '500ms', '10' (seconds) -> seconds."""
    m = re.fullmatch(r"\s*([0-9.]+)\s*(ms|s|sec|m|min|h)?\s*", text)
    if not m:
        raise ValueError(f"unparsed duration {text!r}")
    scale = {"ms": 0.001, None: 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}[m.group(2)]
    return float(m.group(1)) * scale


def parse_unit(path):
    """Unit file -> {section: {key: [values in order]}}; continuation lines joined."""
    sections, section, pending = {}, None, ""
    for raw in Path(path).read_text().splitlines():
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        section.setdefault(key.strip(), []).append(value.strip())
    return sections


def needed_libraries(binary):
    out = run(["readelf", "-d", binary]).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def library_packages(binary):
    """Debian packages owning the binary's directly NEEDED libraries."""
    paths = {}
    for line in run(["ldd", binary]).stdout.splitlines():
        m = re.match(r"\s*(\S+) => (/\S+)", line)
        if m:
            paths[m.group(1)] = m.group(2)
    packages = {}
    for lib in needed_libraries(binary):
        if SANITIZER_LIBS.match(lib):
            continue
        path = paths.get(lib)
        if path is None:
            raise AssertionError(f"ldd cannot resolve {lib}")
        candidates = [path, os.path.realpath(path)]
        # Merged /usr: dpkg records /lib/... for some files and /usr/lib/... for others.
        for p in list(candidates):
            candidates.append(p[4:] if p.startswith("/usr/") else "/usr" + p)
        for p in candidates:
            res = run(["dpkg", "-S", p])
            if res.returncode == 0:
                packages[lib] = res.stdout.split(":")[0].strip()
                break
        else:
            raise AssertionError(f"no Debian package owns {lib} ({path})")
    return packages


def find_build_dir():
    if not BIN:
        return None
    d = Path(BIN).resolve().parent
    while d != d.parent:
        if (d / "CPackConfig.cmake").is_file():
            return d
        d = d.parent
    return None


def project_version():
    text = (SOURCE_DIR / "CMakeLists.txt").read_text()
    m = re.search(r"project\(\s*cachalot\s+VERSION\s+([0-9.]+)", text)
    return m.group(1)


def drain_timeout(config_path):
    m = re.search(r"^\s*drain:\s*([0-9.]+\w*)", Path(config_path).read_text(), re.M)
    return parse_duration(m.group(1)) if m else 10.0


# --- Dockerfile ------------------------------------------------------------

def parse_dockerfile(path):
    """-> list of stages; a stage is {'from', 'name', 'instructions': [(KW, args)]}."""
    stages, logical = [], ""
    lines = Path(path).read_text().splitlines()
    joined = []
    for raw in lines:
        stripped = raw.strip()
        if not logical and (not stripped or stripped.startswith("#")):
            continue
        if logical and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction
        if stripped.endswith("\\"):
            logical += stripped[:-1] + " "
            continue
        joined.append(logical + stripped)
        logical = ""
    for line in joined:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        args = args.strip()
        if keyword == "FROM":
            parts = args.split()
            parts = [p for p in parts if not p.startswith("--")]
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append({"from": parts[0], "name": name, "instructions": []})
        elif stages:
            stages[-1]["instructions"].append((keyword, args))
        elif keyword != "ARG":
            raise AssertionError(f"instruction before FROM: {line}")
    return stages


def copy_sources(args):
    """COPY/ADD arguments -> (flags, sources, dest); JSON or shell form."""
    words = args.split()
    flags = [w for w in words if w.startswith("--")]
    rest = args
    for f in flags:
        rest = rest.replace(f, "", 1)
    rest = rest.strip()
    items = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
    return flags, items[:-1], items[-1]


def dockerignore_patterns():
    path = SOURCE_DIR / ".dockerignore"
    if not path.is_file():
        return []
    patterns = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip().strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        patterns.append((negate, re.compile(regex + "$")))
    return patterns


def dockerignored(relpath, patterns):
    """Docker's rule: the last matching pattern wins; a match on a parent
    directory excludes everything below it."""
    parts = Path(relpath).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for negate, regex in patterns:
        if any(regex.match(p) for p in prefixes):
            ignored = not negate
    return ignored


def healthcheck_argv(stages):
    final = stages[-1]["instructions"]
    checks = [args for kw, args in final if kw == "HEALTHCHECK"]
    if len(checks) != 1:
        raise AssertionError(f"final stage needs exactly one HEALTHCHECK, has {len(checks)}")
    m = re.search(r"\bCMD\s+(\[.*\])\s*$", checks[0])
    if not m:
        raise AssertionError("HEALTHCHECK should use the exec form CMD [...]")
    return json.loads(m.group(1))


class HealthServer:
    """A loopback HTTP server answering GET /healthz with a chosen status."""

    def __init__(self, status):
        paths = self.paths = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                paths.append(self.path)
                code = status if self.path == "/healthz" else 404
                body = b"ok\n" if code == 200 else b"no\n"
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def run_healthcheck(argv, port):
    """Run the Dockerfile's HEALTHCHECK command with the admin port replaced."""
    argv = [a.replace("/127.0.0.1/9901", f"/127.0.0.1/{port}") for a in argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=10).returncode


# --- systemd unit ----------------------------------------------------------

class SystemdUnitTest(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.unit = parse_unit(UNIT)
        self.service = self.unit["Service"]

    def value(self, key):
        values = self.service.get(key)
        self.assertTrue(values, f"{key}= missing from [Service]")
        return values[-1]

    def test_unit_runs_the_installed_binary_as_a_notify_service(self):
        self.assertEqual(self.value("Type"), "notify")
        self.assertEqual(self.value("ExecStart"), f"{INSTALLED_BIN} --config {INSTALLED_CONFIG}")
        pre = self.value("ExecStartPre")
        self.assertIn("--check-config", pre.split())
        self.assertIn(INSTALLED_CONFIG, pre.split())
        self.assertIn("/bin/kill -HUP $MAINPID", self.service["ExecReload"])
        self.assertEqual(self.value("Restart"), "on-failure")
        self.assertEqual(self.value("User"), "cachalot")
        self.assertEqual(self.value("Group"), "cachalot")
        self.assertEqual(self.value("LogsDirectory"), "cachalot")
        self.assertEqual(self.value("LimitNOFILE"), "1048576")
        self.assertEqual(self.unit["Install"]["WantedBy"], ["multi-user.target"])

    def test_unit_is_hardened(self):
        expected = {
            "NoNewPrivileges": "yes",
            "ProtectSystem": "strict",
            "ProtectHome": "yes",
            "PrivateTmp": "yes",
            "PrivateDevices": "yes",
            "ProtectKernelTunables": "yes",
            "ProtectKernelModules": "yes",
            "ProtectKernelLogs": "yes",
            "ProtectControlGroups": "yes",
            "ProtectClock": "yes",
            "ProtectHostname": "yes",
            "RestrictNamespaces": "yes",
            "LockPersonality": "yes",
            "MemoryDenyWriteExecute": "yes",
            "RestrictRealtime": "yes",
            "RestrictSUIDSGID": "yes",
            "SystemCallArchitectures": "native",
            "CapabilityBoundingSet": "CAP_NET_BIND_SERVICE",
            "AmbientCapabilities": "CAP_NET_BIND_SERVICE",
        }
        actual = {key: self.service.get(key, ["<missing>"])[-1] for key in expected}
        self.assertEqual(actual, expected)
        self.assertEqual(set(self.value("RestrictAddressFamilies").split()),
                         {"AF_INET", "AF_INET6", "AF_UNIX"})
        self.assertIn("@system-service", self.service.get("SystemCallFilter", []))
        # No setting may loosen what the list above tightens.
        self.assertNotIn("PrivateUsers", self.service,
                         "capabilities in a private user namespace cannot bind :80 on the host")

    def test_state_directory_holds_the_conventional_snapshot_path(self):
        # README: cache.snapshot.path /var/lib/cachalot/cache.snap, writable under ProtectSystem=strict.
        self.assertEqual(self.value("StateDirectory"), "cachalot")
        self.assertEqual(self.value("StateDirectoryMode"), "0750")
        self.assertEqual(os.path.dirname(SNAPSHOT_PATH), "/var/lib/" + self.value("StateDirectory"))
        self.assertIn(SNAPSHOT_PATH, DEFAULT_CONFIG.read_text(), "config/cachalot.yaml names the path")

    def test_stop_timeout_exceeds_the_drain_timeout(self):
        stop = parse_duration(self.value("TimeoutStopSec"))
        for config in (DEFAULT_CONFIG, CONTAINER_CONFIG):
            self.assertGreater(stop, drain_timeout(config) + 5,
                               f"TimeoutStopSec must leave room for server.timeouts.drain in {config.name}")

    def test_systemd_analyze_verify_is_clean(self):
        # verify checks that every Exec*= program exists, so it cannot be clean
        # for /usr/bin/cachalot on a machine where the package is not installed.
        # Verify a copy whose command paths point at the built binary instead;
        # everything else is byte for byte the shipped unit. verify exits 0
        # even on warnings ("Unknown key", "Failed to parse"), so clean means
        # no output at all.
        analyze = need_tool(self, "systemd-analyze", "systemd")
        binary = os.path.abspath(BIN) if BIN and os.access(BIN, os.X_OK) else "/bin/true"
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / "cachalot.service"
            copy.write_text(UNIT.read_text().replace(INSTALLED_BIN, binary))
            res = run([analyze, "verify", str(copy)], cwd=tmp)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual((res.stdout + res.stderr).strip(), "")

    def test_systemd_analyze_verify_of_the_shipped_unit_only_misses_the_binary(self):
        analyze = need_tool(self, "systemd-analyze", "systemd")
        res = run([analyze, "verify", str(UNIT)])
        lines = [l for l in (res.stdout + res.stderr).splitlines() if l.strip()]
        if os.access(INSTALLED_BIN, os.X_OK):
            self.assertEqual(lines, [])
        else:
            unexpected = [l for l in lines
                          if f"Command {INSTALLED_BIN} is not executable" not in l]
            self.assertEqual(unexpected, [])

    def test_security_exposure_stays_low(self):
        # systemd's own score of the sandbox: 0 (locked down) .. 100 (none).
        # The unit scores 15 ("1.5 OK"); 25 leaves room without letting a
        # dropped directive pass unnoticed.
        analyze = need_tool(self, "systemd-analyze", "systemd")
        res = run([analyze, "security", "--offline=true", "--threshold=25", str(UNIT)])
        self.assertEqual(res.returncode, 0, res.stdout[-2000:] + res.stderr)

    def test_check_config_command_accepts_the_shipped_configs(self):
        # The ExecStartPre line, run against the default and the container config.
        binary = need_bin(self)
        argv = shlex.split(self.value("ExecStartPre").lstrip("-@+!:"))
        self.assertEqual(argv[0], INSTALLED_BIN)
        for config in (DEFAULT_CONFIG, CONTAINER_CONFIG):
            cmd = [binary] + [str(config) if a == INSTALLED_CONFIG else a for a in argv[1:]]
            res = run(cmd, timeout=30)
            self.assertEqual(res.returncode, 0, f"{cmd}: {res.stdout}{res.stderr}")

    def test_daemon_speaks_sd_notify_and_answers_the_healthcheck(self):
        # Type=notify waits for READY=1; without it `systemctl start` hangs
        # until TimeoutStartSec. Also runs the Dockerfile's HEALTHCHECK command
        # against the real admin listener.
        binary = need_bin(self)
        need_tool(self, "readelf", "binutils")
        if not any(l.startswith("libsystemd.so") for l in needed_libraries(binary)):
            self.skipTest("binary built without libsystemd (libsystemd-dev missing)")
        health = healthcheck_argv(parse_dockerfile(DOCKERFILE))
        with tempfile.TemporaryDirectory() as tmp:
            sock_path = os.path.join(tmp, "notify")
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.bind(sock_path)
            self.addCleanup(sock.close)
            listen, admin, origin = free_port(), free_port(), free_port()
            config = Path(tmp) / "cachalot.yaml"
            config.write_text(
                f'server:\n  listen: ["127.0.0.1:{listen}"]\n  workers: 1\n'
                f'upstream:\n  url: "http://127.0.0.1:{origin}"\n'
                f'admin:\n  listen: "127.0.0.1:{admin}"\n'
                f'log:\n  level: warn\n  access_log: "off"\n')
            log = open(Path(tmp) / "stderr", "w+")
            self.addCleanup(log.close)
            proc = subprocess.Popen([binary, "--config", str(config)],
                                    env={**os.environ, "NOTIFY_SOCKET": sock_path},
                                    stdout=subprocess.DEVNULL, stderr=log)

            def stop():
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            self.addCleanup(stop)

            def expect(state, timeout=20):
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    if proc.poll() is not None and state != "STOPPING=1":
                        break
                    sock.settimeout(max(0.05, min(0.5, deadline - time.monotonic())))
                    try:
                        message = sock.recv(4096).decode()
                    except socket.timeout:
                        continue
                    if state in message.splitlines():
                        return
                log.seek(0)
                self.fail(f"no {state} from the daemon (exit {proc.poll()}); stderr:\n{log.read()[-3000:]}")

            expect("READY=1")
            self.assertEqual(run_healthcheck(health, admin), 0, "HEALTHCHECK failed against the daemon")
            proc.send_signal(signal.SIGHUP)
            expect("RELOADING=1")
            expect("READY=1")
            proc.send_signal(signal.SIGTERM)
            expect("STOPPING=1")
            stop_timeout = parse_duration(self.value("TimeoutStopSec"))
            self.assertEqual(proc.wait(timeout=stop_timeout), 0)


# --- Debian package --------------------------------------------------------

class DebianPackageTest(unittest.TestCase):
    deb = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.build_dir = find_build_dir()
        cls.cpack = shutil.which("cpack")
        cls.dpkg_deb = shutil.which("dpkg-deb")
        if not (cls.build_dir and cls.cpack and cls.dpkg_deb):
            return
        out = Path(cls.tmp.name) / "out"
        res = run([cls.cpack, "-G", "DEB", "-B", str(out),
                   "--config", str(cls.build_dir / "CPackConfig.cmake")],
                  cwd=cls.build_dir, timeout=600)
        cls.cpack_output = res.stdout + res.stderr
        debs = sorted(out.glob("*.deb"))
        if res.returncode == 0 and len(debs) == 1:
            cls.deb = debs[0]
            cls.control = Path(cls.tmp.name) / "control"
            cls.root = Path(cls.tmp.name) / "root"
            subprocess.run([cls.dpkg_deb, "-e", str(cls.deb), str(cls.control)], check=True)
            subprocess.run([cls.dpkg_deb, "-x", str(cls.deb), str(cls.root)], check=True)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def setUp(self):
        if not self.build_dir:
            self.skipTest("no CPackConfig.cmake above CACHALOT_BIN: set CACHALOT_BIN to the built binary")
        if not self.cpack:
            self.skipTest("cpack not found: install the Debian package 'cmake'")
        if not self.dpkg_deb:
            self.skipTest("dpkg-deb not found: install the Debian package 'dpkg'")
        self.assertIsNotNone(self.deb, f"cpack -G DEB did not make one .deb:\n{self.cpack_output[-4000:]}")

    def field(self, name):
        return run([self.dpkg_deb, "-f", str(self.deb), name]).stdout.strip()

    def test_package_holds_binary_unit_config_and_nothing_else(self):
        listing = run([self.dpkg_deb, "-c", str(self.deb)]).stdout
        entries = {}
        for line in listing.splitlines():
            fields = line.split(None, 5)
            entries[fields[5].split(" -> ")[0]] = fields[0]
        for path in ("./usr/bin/cachalot", "./lib/systemd/system/cachalot.service",
                     "./etc/cachalot/cachalot.yaml"):
            self.assertIn(path, entries)
            self.assertTrue(entries[path].startswith("-"), f"{path} should be a regular file")
        self.assertEqual(entries["./usr/bin/cachalot"], "-rwxr-xr-x")
        self.assertEqual(entries["./etc/cachalot/cachalot.yaml"], "-rw-r--r--")
        allowed = ("./usr/bin/cachalot", "./lib/systemd/system/", "./etc/cachalot/",
                   "./usr/share/doc/cachalot/")
        stray = [p for p, mode in entries.items()
                 if not mode.startswith("d") and not p.startswith(allowed)]
        self.assertEqual(stray, [], "install() rules put unexpected files in the package")
        if (SOURCE_DIR / "README.md").is_file():
            self.assertIn("./usr/share/doc/cachalot/README.md", entries)
        self.assertIn("./usr/share/doc/cachalot/grafana/cachalot.json", entries)

    def test_control_fields(self):
        self.assertEqual(self.field("Package"), "cachalot")
        self.assertTrue(self.field("Version").startswith(project_version()), self.field("Version"))
        self.assertEqual(self.field("Section"), "net")
        self.assertTrue(self.field("Maintainer"))
        self.assertTrue(self.field("Description"))
        depends = {d.split()[0] for d in self.field("Depends").split(",") if d.strip()}
        self.assertIn("adduser", depends)

    def test_depends_covers_every_linked_library(self):
        need_tool(self, "readelf", "binutils")
        depends = {alt.split()[0] for d in self.field("Depends").split(",")
                   for alt in d.split("|") if alt.strip()}
        missing = {}
        for lib, pkg in library_packages(BIN).items():
            # shlibs may name a virtual package the library package provides
            # (libspdlog1.10 provides libspdlog1.10-fmt9).
            provides = run(["dpkg-query", "-W", "-f=${Provides}", pkg]).stdout
            names = {pkg.split(":")[0]} | {p.split()[0] for p in provides.split(",") if p.strip()}
            if not names & depends:
                missing[lib] = pkg
        self.assertEqual(missing, {}, "Depends lacks the packages of these libraries")

    def test_config_is_a_conffile(self):
        conffiles = (self.control / "conffiles").read_text().split()
        self.assertEqual(conffiles, [INSTALLED_CONFIG])

    def test_maintainer_scripts(self):
        for name in ("postinst", "prerm", "postrm"):
            script = self.control / name
            self.assertTrue(script.is_file(), f"{name} missing")
            self.assertTrue(script.stat().st_mode & stat.S_IXUSR, f"{name} not executable")
            self.assertEqual(run(["sh", "-n", str(script)]).returncode, 0, f"{name}: sh -n failed")
        postinst = (self.control / "postinst").read_text()
        self.assertRegex(postinst, r"adduser --system\b.*")
        self.assertIn("/var/log/cachalot", postinst)
        self.assertIn("/var/lib/cachalot", postinst)
        self.assertIn("getent passwd cachalot", postinst, "user creation must be idempotent")
        self.assertIn("stop", (self.control / "prerm").read_text())

    def test_shipped_files_match_the_source_tree(self):
        self.assertEqual((self.root / "lib/systemd/system/cachalot.service").read_bytes(),
                         UNIT.read_bytes())
        self.assertEqual((self.root / "etc/cachalot/cachalot.yaml").read_bytes(),
                         DEFAULT_CONFIG.read_bytes())

    def test_packaged_binary_accepts_the_packaged_config(self):
        argv = shlex.split(parse_unit(UNIT)["Service"]["ExecStartPre"][-1].lstrip("-@+!:"))
        root = str(self.root)
        cmd = [root + a if a in (INSTALLED_BIN, INSTALLED_CONFIG) else a for a in argv]
        res = run(cmd, timeout=30)
        self.assertEqual(res.returncode, 0, f"{cmd}: {res.stdout}{res.stderr}")


# --- container image -------------------------------------------------------

class ContainerTest(unittest.TestCase):
    def setUp(self):
        self.stages = parse_dockerfile(DOCKERFILE)

    def final(self, keyword):
        return [args for kw, args in self.stages[-1]["instructions"] if kw == keyword]

    def test_build_script_is_valid_bash(self):
        bash = need_tool(self, "bash", "bash")
        res = run([bash, "-n", str(BUILD_SCRIPT)])
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("set -euo pipefail", BUILD_SCRIPT.read_text())
        self.assertTrue(os.access(BUILD_SCRIPT, os.X_OK), "scripts/container-build.sh not executable")
        if shutil.which("shellcheck"):
            res = run(["shellcheck", str(BUILD_SCRIPT)])
            self.assertEqual(res.returncode, 0, res.stdout)

    def test_build_script_rejects_bad_arguments_without_building(self):
        self.assertEqual(run(["bash", str(BUILD_SCRIPT)]).returncode, 2)
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "keep").write_text("not ours")
            res = run(["bash", str(BUILD_SCRIPT), str(SOURCE_DIR), tmp])
            self.assertEqual(res.returncode, 2, res.stderr)
            self.assertTrue((Path(tmp) / "keep").exists(), "wiped a directory it did not make")

    def test_dockerfile_is_multi_stage_on_bookworm_slim(self):
        self.assertGreaterEqual(len(self.stages), 2)
        for stage in self.stages:
            self.assertEqual(stage["from"], "debian:bookworm-slim")
        build_runs = " ".join(a for kw, a in self.stages[0]["instructions"] if kw == "RUN")
        self.assertIn("scripts/container-build.sh", build_runs)

    def test_runtime_stage_runs_unprivileged(self):
        users = self.final("USER")
        self.assertTrue(users, "final stage has no USER")
        user = users[-1].split(":")[0]
        self.assertNotIn(user, ("root", "0"))
        self.assertEqual(self.final("EXPOSE"), ["8080"])
        self.assertEqual(self.final("STOPSIGNAL"), ["SIGTERM"])
        self.assertEqual(json.loads(self.final("ENTRYPOINT")[-1]), ["/usr/bin/cachalot"])
        self.assertEqual(json.loads(self.final("CMD")[-1]), ["--config", INSTALLED_CONFIG])

    def test_every_copy_source_is_in_the_build_context(self):
        patterns = dockerignore_patterns()
        names = [s["name"] for s in self.stages]
        for index, stage in enumerate(self.stages):
            for kw, args in stage["instructions"]:
                if kw not in ("COPY", "ADD"):
                    continue
                flags, sources, _ = copy_sources(args)
                from_flag = [f for f in flags if f.startswith("--from=")]
                if from_flag:
                    self.assertIn(from_flag[0].split("=", 1)[1], names[:index],
                                  f"{kw} {args}: --from must name an earlier stage")
                    for src in sources:
                        self.assertTrue(src.startswith("/out/"),
                                        f"{src}: the build stage installs into /out")
                    continue
                for src in sources:
                    self.assertTrue((SOURCE_DIR / src).exists(), f"{kw} source {src} not in the repo")
                    if src not in (".", "./"):
                        self.assertFalse(dockerignored(src, patterns), f"{src} is in .dockerignore")
        # `COPY . /src` must still carry what the build needs.
        for needed in ("CMakeLists.txt", "src", "tests", "demo", "config/cachalot.yaml",
                       "systemd/cachalot.service", "packaging/cpack.cmake",
                       "scripts/container-build.sh"):
            self.assertFalse(dockerignored(needed, patterns), f"{needed} is in .dockerignore")

    def test_container_config_listens_on_all_interfaces_and_admin_on_loopback(self):
        text = CONTAINER_CONFIG.read_text()
        self.assertRegex(text, r'(?m)^\s*listen:\s*\["0\.0\.0\.0:8080"\]')
        self.assertRegex(text, r'(?m)^\s*listen:\s*"127\.0\.0\.1:9901"')
        copies = [copy_sources(a) for a in self.final("COPY")]
        self.assertIn((["packaging/container.yaml"], INSTALLED_CONFIG),
                      [(s, d) for _, s, d in copies])

    def test_snapshot_path_is_on_a_volume_owned_by_the_runtime_user(self):
        volumes = [v for args in self.final("VOLUME") for v in json.loads(args)]
        self.assertIn(os.path.dirname(SNAPSHOT_PATH), volumes)
        self.assertRegex(CONTAINER_CONFIG.read_text(), r"(?m)^\s*path:\s*" + re.escape(SNAPSHOT_PATH) + r"\s*$")
        uid = self.final("USER")[-1].split(":")[0]
        runs = " ".join(self.final("RUN"))
        self.assertRegex(runs, r"install -d -m 0750 -o " + uid + r" -g \d+ " + re.escape(os.path.dirname(SNAPSHOT_PATH)))

    def test_runtime_stage_installs_every_linked_library(self):
        binary = need_bin(self)
        need_tool(self, "readelf", "binutils")
        need_tool(self, "dpkg", "dpkg")
        runs = " ".join(self.final("RUN"))
        installed = set(re.findall(r"[a-z0-9][a-z0-9+.-]+", runs)) | BASE_IMAGE_PACKAGES
        missing = {lib: pkg for lib, pkg in library_packages(binary).items()
                   if pkg.split(":")[0] not in installed}
        self.assertEqual(missing, {}, "the runtime stage lacks these libraries' packages")

    def test_healthcheck_uses_bash_dev_tcp_against_the_admin_listener(self):
        argv = healthcheck_argv(self.stages)
        # /bin/sh is dash in Debian, which has no /dev/tcp.
        self.assertEqual(argv[:2], ["/bin/bash", "-c"])
        self.assertIn("/dev/tcp/127.0.0.1/9901", argv[2])
        self.assertIn("GET /healthz", argv[2])

    def test_healthcheck_passes_on_200(self):
        argv = healthcheck_argv(self.stages)
        with HealthServer(200) as server:
            self.assertEqual(run_healthcheck(argv, server.port), 0)
        self.assertEqual(server.paths, ["/healthz"])

    def test_healthcheck_fails_on_503(self):
        argv = healthcheck_argv(self.stages)
        with HealthServer(503) as server:
            self.assertNotEqual(run_healthcheck(argv, server.port), 0)

    def test_healthcheck_fails_when_nothing_listens(self):
        argv = healthcheck_argv(self.stages)
        self.assertNotEqual(run_healthcheck(argv, free_port()), 0)


if __name__ == "__main__":
    unittest.main()
