#!/usr/bin/env bash
# bench/snapshot.sh: how long the warm-restart snapshot (cache.snapshot) takes
# to write on SIGTERM and to load at start, for N small objects.
#
#   bench/snapshot.sh                          # 1,000,000 objects of 64 bytes
#   bench/snapshot.sh --objects 200000 --size 1k --build-dir build-release
#
# Loopback only: starts the demo origin and cachalot on free 127.0.0.1 ports,
# fills N distinct keys (/bench/SIZE?k=0..N-1) with wrk (bench/snapshot-fill.lua,
# each key requested once, then it stops), SIGTERMs cachalot, starts it again
# with the same config and reads the figures from its log lines and /metrics.
# Everything it starts is stopped on exit; files live in a mktemp -d directory.
set -uo pipefail  # no -e: lib.sh's cleanup expects failing probes

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"
die() { log "snapshot.sh: error: $*"; exit 1; }
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

OBJECTS=1000000
SIZE=64
BUILD_DIR="$ROOT/build"
WORKERS=2
CONNECTIONS=32

usage() {
  sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  echo "Options: --objects N  --size BYTES|1k  --build-dir DIR  --workers N  --connections N  --keep-tmp"
}

while (($#)); do
  case "$1" in
    --objects) OBJECTS=$2; shift 2 ;;
    --size) SIZE=$2; shift 2 ;;
    --build-dir) BUILD_DIR=$(cd "$2" && pwd); shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --connections) CONNECTIONS=$2; shift 2 ;;
    --keep-tmp) KEEP_TMP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done

CACHALOT="$BUILD_DIR/cachalot"
ORIGIN="$BUILD_DIR/demo/cachalot-origin"
for b in "$CACHALOT" "$ORIGIN"; do
  [[ -x "$b" ]] || die "$b not built (cmake --build $BUILD_DIR --target cachalot cachalot-origin)"
done
command -v wrk >/dev/null || die "wrk not found"
command -v curl >/dev/null || die "curl not found"

BENCH_TMP=$(mktemp -d)
SNAP="$BENCH_TMP/cache.snap"
ORIGIN_PORT=$(pick_port)
PROXY_PORT=$(pick_port)
ADMIN_PORT=$(pick_port)

start_server 1 "$BENCH_TMP/origin.log" "$ORIGIN" --listen "127.0.0.1:$ORIGIN_PORT" --threads 1
ORIGIN_PID=$SERVER_PID
wait_port "$ORIGIN_PORT" "$ORIGIN_PID" origin "$BENCH_TMP/origin.log" || exit 1

cat >"$BENCH_TMP/cachalot.yaml" <<EOF
server:
  listen: ["127.0.0.1:$PROXY_PORT"]
  workers: $WORKERS
upstream:
  url: "http://127.0.0.1:$ORIGIN_PORT"
cache:
  max_memory: "8GiB"
  snapshot:
    path: "$SNAP"
admin:
  listen: "127.0.0.1:$ADMIN_PORT"
log:
  level: info
  access_log: "off"
EOF

metric() {  # metric NAME: its (unlabelled) sample's value
  curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" | awk -v n="$1" '$1 == n && !done { print $2; done = 1 }'
}

start_cachalot() {  # sets PROXY_PID and READY_MS (spawn -> admin /healthz answers)
  local t0 t1
  t0=$(date +%s%N)
  taskset -c 0,1 "$CACHALOT" --config "$BENCH_TMP/cachalot.yaml" >>"$BENCH_TMP/cachalot.log" 2>&1 &
  PROXY_PID=$!
  STARTED_PIDS+=("$PROXY_PID")
  SERVER_LOGS[$PROXY_PID]="$BENCH_TMP/cachalot.log"
  wait_port "$ADMIN_PORT" "$PROXY_PID" cachalot "$BENCH_TMP/cachalot.log" 600 || exit 1
  t1=$(date +%s%N)
  READY_MS=$(((t1 - t0) / 1000000))
}

stop_cachalot() {  # sets STOP_MS (SIGTERM -> exit)
  local t0 t1
  t0=$(date +%s%N)
  kill -TERM "$PROXY_PID"
  wait "$PROXY_PID" || die "cachalot exited with $? on SIGTERM"
  t1=$(date +%s%N)
  STOP_MS=$(((t1 - t0) / 1000000))
}

log "snapshot bench: $OBJECTS objects of $SIZE bytes, $WORKERS workers, files in $BENCH_TMP"
start_cachalot
t0=$(date +%s)
# wrk sleeps for its whole -d even when every thread has stopped: SIGINT ends it
# once the store holds every key.
wrk -t2 -c"$CONNECTIONS" -d3600s -s "$HERE/snapshot-fill.lua" "http://127.0.0.1:$PROXY_PORT" \
  -- "$OBJECTS" "$SIZE" 2 >"$BENCH_TMP/wrk.txt" 2>&1 &
WRK_PID=$!
STARTED_PIDS+=("$WRK_PID")
last=0
stalled=0
while kill -0 "$WRK_PID" 2>/dev/null; do
  n=$(metric cachalot_cache_objects)
  n=${n%.*}
  ((n >= OBJECTS)) && break
  check_alive "$ORIGIN_PID" origin || die "the origin died during the fill"
  check_alive "$PROXY_PID" cachalot || die "cachalot died during the fill"
  if ((n == last)); then
    stalled=$((stalled + 1))
    ((stalled < 40)) || die "the fill stalled at $n objects (see $BENCH_TMP/cachalot.log)"
  else
    stalled=0
  fi
  last=$n
  sleep 0.5
done
kill -INT "$WRK_PID" 2>/dev/null || true
wait "$WRK_PID" || true
FILL_S=$(($(date +%s) - t0))
OBJ=$(metric cachalot_cache_objects)
BYTES=$(metric cachalot_cache_bytes)
RSS1=$(rss_kib "$PROXY_PID")
log "  filled $OBJ objects ($BYTES bytes charged, RSS $((RSS1 / 1024)) MiB) in ${FILL_S}s"
[[ "${OBJ%.*}" -ge "$OBJECTS" ]] || die "only $OBJ objects stored (want $OBJECTS); see $BENCH_TMP"

stop_cachalot
WRITE_MS=$STOP_MS
WRITE_LINE=$(grep -E 'snapshot .* \(shutdown\): wrote' "$BENCH_TMP/cachalot.log" | tail -1)
FILE_BYTES=$(stat -c %s "$SNAP")
log "  SIGTERM -> exit ${WRITE_MS} ms; ${WRITE_LINE#* info }"

start_cachalot
LOAD_LINE=$(grep -E 'snapshot .*: loaded' "$BENCH_TMP/cachalot.log" | tail -1)
OBJ2=$(metric cachalot_snapshot_loaded_objects)
LOAD_S=$(metric cachalot_snapshot_load_duration_seconds)
RSS2=$(rss_kib "$PROXY_PID")
log "  start -> ready ${READY_MS} ms; ${LOAD_LINE#* info }"
hits=0
for k in 0 1 $((OBJECTS / 2)) $((OBJECTS - 1)); do
  if curl -s -D - -o /dev/null "http://127.0.0.1:$PROXY_PORT/bench/$SIZE?k=$k" | grep -qi '^cache-status:.*hit'; then
    hits=$((hits + 1))
  fi
done
stop_cachalot
WRITE2_LINE=$(grep -E 'snapshot .* \(shutdown\): wrote' "$BENCH_TMP/cachalot.log" | tail -1)

cat <<EOF

objects                  $OBJECTS x $SIZE B body ($BYTES B charged before the restart)
snapshot file            $FILE_BYTES B ($((FILE_BYTES / OBJECTS)) B per object)
write (SIGTERM -> exit)  ${WRITE_MS} ms total; $(sed -E 's/.*wrote ([0-9]+) entries \(([^)]*)\) in ([0-9]+) ms.*/\1 entries, \2, \3 ms in the writer/' <<<"$WRITE_LINE")
load (spawn -> ready)    ${READY_MS} ms total; $OBJ2 entries loaded, ${LOAD_S}s in the loader
RSS                      $((RSS1 / 1024)) MiB filled, $((RSS2 / 1024)) MiB after the load
sample hits              $hits of 4 keys after the restart
second write             $(sed -E 's/.*wrote ([0-9]+) entries \(([^)]*)\) in ([0-9]+) ms.*/\1 entries, \2, \3 ms/' <<<"$WRITE2_LINE")
EOF
