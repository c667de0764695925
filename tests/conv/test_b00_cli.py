"""Command line: --version, --help, --check-config (issue #2).

--check-config FILE exits 0 for a valid file and 1 for an invalid one, printing
each error as `file:line:col: key: message` (line and column 1-based, as
compilers print them) so that an editor can jump to it.
"""

import os
import re
import sys
import tempfile
import textwrap
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from cachalot import run_binary, source_dir  # noqa: E402


def project_version() -> str:
    with open(os.path.join(source_dir(), "CMakeLists.txt")) as f:
        m = re.search(r"project\(\s*cachalot\s+VERSION\s+([0-9.]+)", f.read())
    return m.group(1) if m else ""


class CliTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="cachalot-cli-")
        self.addCleanup(self.tmp.cleanup)

    def write(self, name: str, text: str) -> str:
        path = os.path.join(self.tmp.name, name)
        with open(path, "w") as f:
            f.write(textwrap.dedent(text).lstrip("\n"))
        return path

    def check(self, path: str):
        return run_binary(["--check-config", path])

    def assert_error_at(self, result, path: str, line: int, key: str):
        out = result.stdout + result.stderr
        self.assertEqual(result.returncode, 1, f"--check-config should exit 1; output:\n{out}")
        rx = re.compile(re.escape(path) + rf":{line}:(\d+): [^\n]*{re.escape(key)}[^\n]*:")
        self.assertRegex(out, rx, f"expected `{path}:{line}:<col>: ...{key}...: message`")

    # ---- --version / --help ------------------------------------------------
    def test_version_prints_the_project_version_and_exits_0(self):
        r = run_binary(["--version"])
        self.assertEqual(r.returncode, 0, r.stderr)
        version = project_version()
        self.assertTrue(version, "project(cachalot VERSION x.y.z) not found in CMakeLists.txt")
        self.assertIn(version, r.stdout)
        self.assertIn("cachalot", r.stdout.lower())

    def test_help_lists_every_option_and_exits_0(self):
        r = run_binary(["--help"])
        self.assertEqual(r.returncode, 0, r.stderr)
        for opt in ("--config", "--check-config", "--version", "--help"):
            self.assertIn(opt, r.stdout, f"--help does not mention {opt}")

    def test_unknown_option_exits_nonzero_with_a_message_on_stderr(self):
        r = run_binary(["--no-such-option"])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--no-such-option", r.stderr)

    # ---- --check-config: valid files ----------------------------------------
    def test_check_config_accepts_the_reference_config_with_every_key(self):
        path = os.path.join(source_dir(), "config", "cachalot.yaml")
        r = self.check(path)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_check_config_accepts_a_minimal_config_with_only_upstream_url(self):
        path = self.write("min.yaml", """
            upstream:
              url: "http://127.0.0.1:9000"
            """)
        r = self.check(path)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_check_config_accepts_sizes_and_durations_in_every_documented_unit(self):
        path = self.write("units.yaml", """
            upstream:
              url: "http://127.0.0.1:9000"
              timeouts:
                connect: 500ms
                first_byte: 30s
                idle: 5m
                pool_idle: 1h
            server:
              timeouts:
                drain: 3
            cache:
              max_memory: 1GiB
              max_object_size: 64KiB
              heuristic_max: 1d
            routes:
              - name: a
                prefix: "/a/"
                default_ttl: 10s
              - name: b
                regex: "^/v[0-9]+/items"
            """)
        r = self.check(path)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    # ---- --check-config: invalid files --------------------------------------
    def test_check_config_rejects_an_unknown_key_naming_file_line_and_key(self):
        path = self.write("unknown.yaml", """
            upstream:
              url: "http://127.0.0.1:9000"
            server:
              workers: 2
              bogus_knob: 3
            """)
        self.assert_error_at(self.check(path), path, 5, "bogus_knob")

    def test_check_config_rejects_a_bad_size_naming_file_line_and_key(self):
        path = self.write("size.yaml", """
            upstream:
              url: "http://127.0.0.1:9000"
            cache:
              shards: 64
              max_memory: "12 parsecs"
            """)
        self.assert_error_at(self.check(path), path, 5, "max_memory")

    def test_check_config_rejects_a_bad_duration_naming_file_line_and_key(self):
        path = self.write("duration.yaml", """
            upstream:
              url: "http://127.0.0.1:9000"
              timeouts:
                first_byte: "soon"
            """)
        self.assert_error_at(self.check(path), path, 4, "first_byte")

    def test_check_config_rejects_a_missing_upstream_url(self):
        path = self.write("nourl.yaml", """
            server:
              workers: 1
            """)
        r = self.check(path)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("url", r.stdout + r.stderr)

    def test_check_config_rejects_a_route_with_both_prefix_and_regex(self):
        path = self.write("route.yaml", """
            upstream:
              url: "http://127.0.0.1:9000"
            routes:
              - name: both
                prefix: "/a"
                regex: "^/a"
            """)
        r = self.check(path)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn(path + ":", r.stdout + r.stderr)

    def test_check_config_rejects_invalid_yaml_syntax_with_a_position(self):
        path = self.write("syntax.yaml", """
            upstream:
              url: "http://127.0.0.1:9000
            """)
        r = self.check(path)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertRegex(r.stdout + r.stderr, re.escape(path) + r":\d+:\d+:")

    def test_check_config_on_a_missing_file_exits_1_naming_the_file(self):
        path = os.path.join(self.tmp.name, "does-not-exist.yaml")
        r = self.check(path)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn(path, r.stdout + r.stderr)

    def test_config_with_an_invalid_file_refuses_to_start(self):
        path = self.write("unknown.yaml", """
            upstream:
              url: "http://127.0.0.1:9000"
            bogus_section: {}
            """)
        r = run_binary(["--config", path])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("bogus_section", r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
