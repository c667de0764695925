#!/usr/bin/env bash
# Hit throughput of one node while the invalidation bus carries URL purges of
# other keys (100/s by default), against the same node with an idle bus and
# without a cluster: section. Real binaries: cachalot, the demo origin,
# redis-server (no persistence), wrk; loopback only; every run is bounded.
#
# Placement (2 cores): the node under test (A, one worker) has CPU 0 to
# itself. wrk, the origin, redis-server, the publishing node P and the purge
# driver share CPU 1. The purges are sent to P's admin API, so A applies
# them as remote events, which is what a serving node pays in a fleet.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$HERE/lib.sh"

usage() {
  cat <<'EOF'
usage: bench/cluster.sh [options]
  --duration D      wrk duration per measured run (default 10s)
  --connections N   wrk connections (default 50)
  --rate R          URL purges per second through the bus (default 100)
  --build-dir DIR   build tree with cachalot and demo/cachalot-origin (default build-release)
  --no-build        use the binaries in the build dir as they are
  --cachalot BIN    use this cachalot binary
  --origin BIN      use this cachalot-origin binary
  --warmup D        unmeasured wrk run before each measured one (default 1s; 0 = none)
  --wait-idle S     before each measured run, wait up to S seconds for the machine to be idle
  --keep-tmp        keep the temporary directory
EOF
}

DURATION=10s
CONNS=50
RATE=100
BUILD_DIR=$ROOT/build-release
NO_BUILD=0
CACHALOT_BIN=""
ORIGIN_BIN=""
WARMUP=1s
WAIT_IDLE=0
NODE_CPU=0
LOAD_CPU=1

while (($#)); do
  case "$1" in
    --duration) DURATION=${2:?}; shift 2 ;;
    --connections) CONNS=${2:?}; shift 2 ;;
    --rate) RATE=${2:?}; shift 2 ;;
    --build-dir) BUILD_DIR=$(realpath -m "${2:?}"); shift 2 ;;
    --no-build) NO_BUILD=1; shift ;;
    --cachalot) CACHALOT_BIN=$(realpath -m "${2:?}"); shift 2 ;;
    --origin) ORIGIN_BIN=$(realpath -m "${2:?}"); shift 2 ;;
    --warmup) WARMUP=${2:?}; shift 2 ;;
    --wait-idle) WAIT_IDLE=${2:?}; shift 2 ;;
    --keep-tmp) KEEP_TMP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
[[ "$DURATION" =~ ^[0-9]+[smh]?$ ]] || die "--duration: expected e.g. 10s"
[[ "$WARMUP" =~ ^[0-9]+[smh]?$ ]] || die "--warmup: expected e.g. 1s or 0"
[[ "$CONNS" =~ ^[0-9]+$ ]] || die "--connections: expected a number"
[[ "$RATE" =~ ^[0-9]+$ && "$RATE" -ge 1 ]] || die "--rate: expected purges per second, at least 1"
[[ "$WAIT_IDLE" =~ ^[0-9]+$ ]] || die "--wait-idle: expected seconds"
DURATION_S=$(duration_seconds "$DURATION")
WARMUP_S=$(duration_seconds "$WARMUP")

for tool in wrk taskset curl python3 awk redis-server; do
  command -v "$tool" >/dev/null || die "$tool is required (scripts/setup.sh --bench; redis-server: scripts/setup.sh)"
done
if (($(nproc) < 2)); then
  log "warning: fewer than 2 CPUs; everything runs on CPU 0 and the figures mean little"
  NODE_CPU=0 LOAD_CPU=0
fi

# ---------------------------------------------------------------- binaries

bench_binaries

BENCH_TMP=$(mktemp -d /tmp/cachalot-bench-cluster.XXXXXX)
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- origin and redis

start_server "$LOAD_CPU" "$BENCH_TMP/origin.log" "$ORIGIN_BIN" --listen 127.0.0.1:0 --threads 1
ORIGIN_PID=$SERVER_PID
ORIGIN_PORT=""
for _ in $(seq 200); do
  ORIGIN_PORT=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$BENCH_TMP/origin.log")
  [[ -n "$ORIGIN_PORT" ]] && break
  kill -0 "$ORIGIN_PID" 2>/dev/null || break
  sleep 0.05
done
[[ -n "$ORIGIN_PORT" ]] || { cat "$BENCH_TMP/origin.log" >&2; die "the origin did not start"; }
USED_PORTS+="$ORIGIN_PORT "
wait_port "$ORIGIN_PORT" "$ORIGIN_PID" origin "$BENCH_TMP/origin.log" || die "the origin is not reachable"

REDIS_PORT=$(pick_port)
start_server "$LOAD_CPU" "$BENCH_TMP/redis.log" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 \
  --save '' --appendonly no --dir "$BENCH_TMP"
REDIS_PID=$SERVER_PID
wait_port "$REDIS_PORT" "$REDIS_PID" redis-server "$BENCH_TMP/redis.log" || die "redis-server did not start"

# ---------------------------------------------------------------- nodes

# start_node NAME CPU CLUSTER(0|1): sets NODE_PID NODE_PORT NODE_ADMIN.
start_node() {
  local name=$1 cpu=$2 cluster=$3 dir=$BENCH_TMP/$1
  mkdir -p "$dir"
  NODE_PORT=$(pick_port)
  NODE_ADMIN=$(pick_port)
  {
    echo "server: { listen: [\"127.0.0.1:$NODE_PORT\"], workers: 1 }"
    echo "upstream: { url: \"http://127.0.0.1:$ORIGIN_PORT\" }"
    echo "cache: { max_memory: \"256MiB\" }"
    echo "admin: { listen: \"127.0.0.1:$NODE_ADMIN\" }"
    echo "log: { level: warn, access_log: \"off\" }"
    ((cluster)) && echo "cluster: { redis: \"redis://127.0.0.1:$REDIS_PORT/0\", stream: \"bench\", node: \"$name\" }"
  } >"$dir/cachalot.yaml"
  start_server "$cpu" "$dir/cachalot.log" "$CACHALOT_BIN" --config "$dir/cachalot.yaml"
  NODE_PID=$SERVER_PID
  wait_port "$NODE_PORT" "$NODE_PID" "$name" "$dir/cachalot.log" || return 1
  wait_port "$NODE_ADMIN" "$NODE_PID" "$name admin" "$dir/cachalot.log"
}

metric() { # ADMIN_PORT NAME -> value (0 if absent)
  curl -s --max-time 5 "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n { v = $2 } END { print v + 0 }'
}

# CPU time of every thread of PID, in ns (/proc/PID/task/*/schedstat: finer
# than the 10 ms ticks of /proc/PID/stat).
cpu_ns() {
  cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.0f", s }'
}

# The purge driver: RATE POST /purge?path=/other/N per second to P's admin API
# (one keep-alive connection, on a schedule), for SECONDS seconds.
drive_purges() { # ADMIN_PORT SECONDS [RATE]
  taskset -c "$LOAD_CPU" python3 - "$1" "${3:-$RATE}" "$2" <<'EOF' &
import socket, sys, time
port, rate, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port), timeout=5)


def length(buf):
    head = buf.partition(b"\r\n\r\n")[0].lower()
    for line in head.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


start = time.monotonic()
n = 0
while time.monotonic() - start < seconds:
    s.sendall(f"POST /purge?path=/other/{n} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf or len(buf.partition(b"\r\n\r\n")[2]) < length(buf):
        data = s.recv(4096)
        if not data:
            sys.exit("the admin API closed the connection")
        buf += data
    n += 1
    delay = start + n / rate - time.monotonic()
    if delay > 0:
        time.sleep(delay)
EOF
  DRIVER_PID=$!
  STARTED_PIDS+=("$DRIVER_PID")
}

declare -A RPS P99 CPUREQ
measure_node() { # KEY PID URL
  local key=$1 pid=$2 url=$3 out=$BENCH_TMP/wrk-$1.txt c0 c1
  if [[ "$WARMUP" != 0 ]]; then run_wrk "$LOAD_CPU" "$url" "$CONNS" "$WARMUP" "$out.warmup" || return 1; fi
  wait_idle "$WAIT_IDLE"
  c0=$(cpu_ticks "$pid")
  run_wrk "$LOAD_CPU" "$url" "$CONNS" "$DURATION" "$out" || return 1
  c1=$(cpu_ticks "$pid")
  RPS[$key]=$W_RPS
  P99[$key]=$W_P99_US
  CPUREQ[$key]=$(awk -v t=$((c1 - c0)) -v hz="$CLK_TCK" -v n="$W_REQS" 'BEGIN { printf "%.2f", t * 1e6 / hz / n }')
  log "  $key: $W_RPS req/s, p99 $(fmt_us "$W_P99_US"), ${CPUREQ[$key]} us CPU/req, errors $W_ERRS"
}

echo "# cachalot bench (cluster): $(date -u '+%Y-%m-%d %H:%M:%SZ'), $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "# node A on CPU $NODE_CPU (1 worker); wrk -t1 -c$CONNS, origin, redis, node P and the purge driver on CPU $LOAD_CPU"
echo "# $DURATION per run (warm-up $WARMUP); $RATE URL purges/s of other keys sent to P, applied by A from the stream"

log "== solo: A without a cluster: section"
start_node A "$NODE_CPU" 0 || die "node A did not start"
URL="http://127.0.0.1:$NODE_PORT/bench/1k"
warm "$URL"
measure_node solo "$NODE_PID" "$URL"
stop_server "$NODE_PID"

log "== bus: A and P on one stream"
start_node P "$LOAD_CPU" 1 || die "node P did not start"
P_ADMIN=$NODE_ADMIN
start_node A "$NODE_CPU" 1 || die "node A did not start"
A_PID=$NODE_PID A_ADMIN=$NODE_ADMIN
URL="http://127.0.0.1:$NODE_PORT/bench/1k"
warm "$URL"
for _ in $(seq 100); do
  (($(metric "$A_ADMIN" cachalot_cluster_connected) == 1)) && break
  sleep 0.05
done
measure_node idle "$A_PID" "$URL"

a0=$(metric "$A_ADMIN" cachalot_cluster_events_applied_total)
drive_purges "$P_ADMIN" "$(awk -v d="$DURATION_S" -v w="$WARMUP_S" 'BEGIN { print d + w + 1 }')"
measure_node purging "$A_PID" "$URL"
wait "$DRIVER_PID" 2>/dev/null
a1=$(metric "$A_ADMIN" cachalot_cluster_events_applied_total)
lag=$(curl -s --max-time 5 "http://127.0.0.1:$A_ADMIN/metrics" | awk '
  $1 == "cachalot_cluster_lag_seconds_sum" { s = $2 } $1 == "cachalot_cluster_lag_seconds_count" { n = $2 }
  END { if (n > 0) printf "%.2f", s / n * 1000; else print "-" }')

# What applying remote purges costs A, without wrk: its CPU time over COST_S
# seconds with the bus idle, then with COST_RATE purges/s (more than --rate, so
# the difference stands out of the noise), per applied purge.
COST_S=5 COST_RATE=1000
n0=$(cpu_ns "$A_PID")
sleep "$COST_S"
n1=$(cpu_ns "$A_PID")
c0=$(metric "$A_ADMIN" cachalot_cluster_events_applied_total)
drive_purges "$P_ADMIN" "$COST_S" "$COST_RATE"
n2=$(cpu_ns "$A_PID")
wait "$DRIVER_PID" 2>/dev/null
n3=$(cpu_ns "$A_PID")
c1=$(metric "$A_ADMIN" cachalot_cluster_events_applied_total)
COST_US=$(awk -v idle=$((n1 - n0)) -v busy=$((n3 - n2)) -v n=$((c1 - c0)) 'BEGIN {
  if (n > 0) printf "%.1f", (busy - idle) / n / 1000; else print "-" }')

echo
printf '%-28s %10s %9s %9s %10s\n' run 'req/s' p99 'cpu/req' 'vs solo'
printf '%-28s %10s %9s %9s %10s\n' "A, no cluster:" "${RPS[solo]:--}" "$(fmt_us "${P99[solo]:-}")" "${CPUREQ[solo]:--}us" ""
printf '%-28s %10s %9s %9s %10s\n' "A, bus idle" "${RPS[idle]:--}" "$(fmt_us "${P99[idle]:-}")" "${CPUREQ[idle]:--}us" \
  "$(ratio "${RPS[idle]:-}" "${RPS[solo]:-}")"
printf '%-28s %10s %9s %9s %10s\n' "A, $RATE purges/s on the bus" "${RPS[purging]:--}" "$(fmt_us "${P99[purging]:-}")" \
  "${CPUREQ[purging]:--}us" "$(ratio "${RPS[purging]:-}" "${RPS[solo]:-}")"
echo "  A applied $((a1 - a0)) remote purges during the purging runs (warm-up included); mean lag ${lag} ms"
echo "  purging vs idle bus: $(ratio "${RPS[purging]:-}" "${RPS[idle]:-}")"
echo "  cost on A without load: $COST_US us CPU per applied remote purge ($((c1 - c0)) at $COST_RATE/s over ${COST_S}s);"
echo "  at $RATE purges/s that is $(awk -v u="$COST_US" -v r="$RATE" 'BEGIN { if (u == "-") print "-"; else printf "%.2f%%", u * r / 1e4 }') of one core"
