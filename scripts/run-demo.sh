#!/usr/bin/env bash
# Builds Cachalot and starts it with config/cachalot.yaml in front of the demo origin.
# Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DCACHALOT_TESTS=OFF >/dev/null
cmake --build build-release -j"$(nproc)" --target cachalot cachalot-origin

./build-release/demo/cachalot-origin --listen 127.0.0.1:9000 --threads 1 >/dev/null &
origin=$!
trap 'kill $origin 2>/dev/null || true' EXIT
cat <<'MSG'

Cachalot is starting on http://127.0.0.1:8080 in front of the demo origin (127.0.0.1:9000).
Try, from another terminal:
  curl -si http://127.0.0.1:8080/api/items/1      # first: Cache-Status: cachalot; fwd=uri-miss; stored
  curl -si http://127.0.0.1:8080/api/items/1      # again: Cache-Status: cachalot; hit; ttl=...
  curl -si http://127.0.0.1:8080/api/time         # no-store: always forwarded
  curl -s  http://127.0.0.1:9901/metrics | grep cachalot_requests_total
  curl -s -X POST 'http://127.0.0.1:9901/purge?path=/api/items/1'
Ctrl-C stops both.

MSG
./build-release/cachalot --config config/cachalot.yaml
