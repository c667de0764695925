#!/usr/bin/env bash
# Installs the Debian 12 packages Cachalot needs to build, test and run its demo.
# Idempotent and quiet when everything is present. Usage: scripts/setup.sh [--bench]
set -euo pipefail

# Every command the build, the tests and the demo call comes from a package
# named here (audited against a debootstrap minbase system, which has only
# coreutils, dpkg, apt, bash and friends):
#   cmake/cpack/ctest: cmake; g++/readelf: g++, binutils; pkg-config
#   python3 (conversation tests), openssl (test CAs), curl (demo)
#   redis-server: the cluster conversation tests (test_c40_cluster.py) run a real one
#   cpack -G DEB: dpkg-dev (dpkg-shlibdeps) and file (CPACK_DEBIAN_PACKAGE_SHLIBDEPS)
#   systemd-analyze (unit test): systemd; shellcheck (container build script)
#   gnuplot: gnuplot-nox (bench/before-after.sh draws its PNG; test_c63_before_after.py runs it)
#   dpkg-deb, dpkg-query, ldd, sh: already in minbase (dpkg, libc-bin, dash)
packages=(
  # build
  cmake g++ make binutils pkg-config libasio-dev node-llhttp libyaml-cpp-dev nlohmann-json3-dev libspdlog-dev libfmt-dev
  libssl-dev libxxhash-dev libre2-dev libsystemd-dev libhiredis-dev
  # tests
  catch2 python3 openssl curl dpkg-dev file systemd shellcheck redis-server gnuplot-nox
)
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(wrk nginx-light varnish haproxy trafficserver util-linux valgrind)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "setup: installing ${missing[*]}" >&2
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Debian starts nginx/varnish/haproxy/trafficserver/redis services on install; we only want the binaries.
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
for svc in nginx varnish haproxy trafficserver redis-server; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    $SUDO systemctl stop "$svc" || true
  fi
done
