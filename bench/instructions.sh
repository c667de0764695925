#!/usr/bin/env bash
# Instructions per request under callgrind: a figure that does not move when
# the machine is busy (req/s does). Counts every instruction the cachalot
# process executes while N requests are served (all threads: the worker, the
# ticker, the admin thread's idle loop), divided by the requests served.
#
#   bench/instructions.sh [--cachalot BIN] [--origin BIN] [--case hit|pass|miss]
#                         [--size 1k] [--requests N] [--connections C]
#
#   hit   fresh hits on one URL (the entry is stored first)
#   pass  a bypass route: every request goes to the origin
#   miss  every request a new URL that is stored (the cost of filling)
#
# Prints "cachalot <case> <size>: <instructions per request> instructions/request (<N> requests)".
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
CACHALOT=$ROOT/build-release/cachalot
ORIGIN=$ROOT/build-release/demo/cachalot-origin
CASE=hit
SIZE=1k
REQUESTS=20000
CONNS=10
while (($#)); do
  case "$1" in
    --cachalot) CACHALOT=$(realpath -m "$2"); shift 2 ;;
    --origin) ORIGIN=$(realpath -m "$2"); shift 2 ;;
    --case) CASE=$2; shift 2 ;;
    --size) SIZE=$2; shift 2 ;;
    --requests) REQUESTS=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
for t in valgrind callgrind_control python3; do command -v "$t" >/dev/null || { echo "$t is required" >&2; exit 1; }; done
[[ -x "$CACHALOT" && -x "$ORIGIN" ]] || { echo "no binaries: build build-release first (or pass --cachalot/--origin)" >&2; exit 1; }

TMP=$(mktemp -d /tmp/cachalot-instr.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ -n "${KEEP:-}" ]]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

OPORT=$(free_port)
"$ORIGIN" --listen "127.0.0.1:$OPORT" --threads 1 >"$TMP/origin.log" 2>&1 &
pids+=($!)
PPORT=$(free_port)
APORT=$(free_port)
{
  echo "server: { listen: [\"127.0.0.1:$PPORT\"], workers: 1 }"
  echo "upstream: { url: \"http://127.0.0.1:$OPORT\" }"
  echo "cache: { max_memory: \"256MiB\" }"
  echo "admin: { listen: \"127.0.0.1:$APORT\" }"
  echo "log: { level: warn, access_log: off }"
  [[ $CASE == pass ]] && echo "routes: [ { name: all, prefix: \"/\", bypass: true } ]"
  true
} >"$TMP/cachalot.yaml"
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$TMP/callgrind.out" \
  "$CACHALOT" --config "$TMP/cachalot.yaml" >"$TMP/cachalot.log" 2>&1 &
CPID=$!
pids+=("$CPID")
for _ in $(seq 600); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PPORT") 2>/dev/null && break
  sleep 0.1
done

# The load: keep-alive connections, each sending its share of requests one at
# a time (like wrk, but a fixed count).
python3 - "$PPORT" "$CASE" "$SIZE" "$REQUESTS" "$CONNS" "$CPID" <<'PY' >"$TMP/result"
import socket, subprocess, sys, threading
port, case, size, n, conns, pid = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]

def read_response(s, buf):
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d: raise EOFError
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length": length = int(v)
    while len(rest) < length:
        d = s.recv(65536)
        if not d: raise EOFError
        rest += d
    return rest[length:]

def path(i):
    return f"/bench/{size}?n={i}" if case == "miss" else f"/bench/{size}"

def run(start, count):
    s = socket.create_connection(("127.0.0.1", port)); buf = b""
    for i in range(start, start + count):
        s.sendall(f"GET {path(i)} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        buf = read_response(s, buf)
    s.close()

run(10**9, 3)  # warm: the hit case's entry is stored, connections pooled
subprocess.run(["callgrind_control", "-i", "on", pid], check=True, capture_output=True)
per = n // conns
ts = [threading.Thread(target=run, args=(k * per, per)) for k in range(conns)]
for t in ts: t.start()
for t in ts: t.join()
subprocess.run(["callgrind_control", "-i", "off", pid], check=True, capture_output=True)
subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True)
print(per * conns)
PY
served=$(cat "$TMP/result")
kill "$CPID" 2>/dev/null || true
wait "$CPID" 2>/dev/null || true
total=0
for f in "$TMP"/callgrind.out*; do
  n=$(awk '/^totals:/ {n = $2} END {print n + 0}' "$f")
  total=$((total + ${n:-0}))
done
echo "cachalot $CASE $SIZE: $((total / served)) instructions/request ($served requests)"
