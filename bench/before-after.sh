#!/usr/bin/env bash
# The before/after picture (issue 13): the demo origin as a shop API that
# answers after --latency-ms, one fixed request mix run first direct (client ->
# origin) and then through Cachalot (client -> cachalot -> origin), and a PNG
# of latency percentiles, hit rate and origin requests per second over time,
# side by side, plus a markdown table. See bench/README.md ("Before/after").
#
# Processes: the origin (restarted for each phase, so both start from the same
# catalogue), cachalot (second phase) and the load generator
# (bench/before_after_load.py), all on 127.0.0.1 with free ports, stopped on
# exit (lib.sh: bench_cleanup). Readiness is checked by connecting. Each phase
# is bounded by --duration and --requests.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$HERE/lib.sh"

usage() {
  cat <<'USAGE'
usage: bench/before-after.sh [options]
  --duration D      length of each phase (default 60s)
  --requests N      upper bound on requests per phase (default: none; the duration bounds it)
  --connections N   client connections (default 256)
  --rate R          requests per second due, the same in both phases (default 500;
                    0 = closed loop: each connection sends as soon as it has its answer)
  --latency-ms N    the origin's latency per shop API request (default 280)
  --products N      catalogue size (default 10000)
  --seed N          seed of the request sequence (default 13)
  --purge soft|hard the tag purge after each write through Cachalot (default soft:
                    listings are marked stale and served once more while they refresh)
  --out FILE        the PNG (default docs/before-after.png)
  --markdown FILE   also write the table to FILE
  --short           CI setting: 4 s per phase, 1000 products
  --build-dir DIR   build tree with cachalot and demo/cachalot-origin (default build-release)
  --no-build        use the binaries in the build dir as they are
  --cachalot BIN    use this cachalot binary
  --origin BIN      use this cachalot-origin binary
  --keep-tmp        keep the temporary directory (configs, logs, per-request CSVs)
USAGE
}

DURATION=60s
REQUESTS=1000000000
CONNS=256
RATE=500
PURGE=soft
LATENCY_MS=280
PRODUCTS=10000
SEED=13
OUT=$ROOT/docs/before-after.png
MARKDOWN_FILE=""
SHORT=0
BUILD_DIR=$ROOT/build-release
NO_BUILD=0
CACHALOT_BIN=""
ORIGIN_BIN=""
PROXY_CPU=0  # cachalot
LOAD_CPU=1   # the origin and the load generator

while (($#)); do
  case "$1" in
    --duration) DURATION=${2:?}; shift 2 ;;
    --requests) REQUESTS=${2:?}; shift 2 ;;
    --connections) CONNS=${2:?}; shift 2 ;;
    --rate) RATE=${2:?}; shift 2 ;;
    --latency-ms) LATENCY_MS=${2:?}; shift 2 ;;
    --products) PRODUCTS=${2:?}; shift 2 ;;
    --seed) SEED=${2:?}; shift 2 ;;
    --purge) PURGE=${2:?}; shift 2 ;;
    --out) OUT=$(realpath -m "${2:?}"); shift 2 ;;
    --markdown) MARKDOWN_FILE=$(realpath -m "${2:?}"); shift 2 ;;
    --short) SHORT=1; shift ;;
    --build-dir) BUILD_DIR=$(realpath -m "${2:?}"); shift 2 ;;
    --no-build) NO_BUILD=1; shift ;;
    --cachalot) CACHALOT_BIN=$(realpath -m "${2:?}"); shift 2 ;;
    --origin) ORIGIN_BIN=$(realpath -m "${2:?}"); shift 2 ;;
    --keep-tmp) KEEP_TMP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
if ((SHORT)); then
  DURATION=4s
  PRODUCTS=1000
fi
[[ "$DURATION" =~ ^[0-9]+[smh]?$ ]] || die "--duration: expected e.g. 60s"
for v in REQUESTS CONNS LATENCY_MS PRODUCTS SEED; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || die "--${v,,}: expected a number"
done
[[ "$PURGE" == soft || "$PURGE" == hard ]] || die "--purge: soft or hard"
[[ "$RATE" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "--rate: expected requests per second (0 = closed loop)"
((CONNS >= 1)) || die "--connections: at least 1"
((PRODUCTS >= 1)) || die "--products: at least 1"
DURATION_S=$(duration_seconds "$DURATION")
COMMAND_ARGS="--duration $DURATION --connections $CONNS --rate $RATE --latency-ms $LATENCY_MS --products $PRODUCTS --purge $PURGE"
((SHORT)) && COMMAND_ARGS="--short (that is: $COMMAND_ARGS)"

for tool in gnuplot curl taskset awk; do
  command -v "$tool" >/dev/null || die "$tool is required (scripts/setup.sh installs gnuplot-nox)"
done
if (($(nproc) < 2)); then
  PROXY_CPU=0 LOAD_CPU=0
fi

# ---------------------------------------------------------------- binaries

bench_binaries

BENCH_TMP=$(mktemp -d /tmp/cachalot-before-after.XXXXXX)
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

# start_origin NAME: a fresh origin with the shop catalogue; sets ORIGIN_PID ORIGIN_PORT.
start_origin() {
  local logfile=$BENCH_TMP/origin-$1.log
  start_server "$LOAD_CPU" "$logfile" "$ORIGIN_BIN" --listen 127.0.0.1:0 --threads 1 \
    --latency-ms "$LATENCY_MS" --products "$PRODUCTS"
  ORIGIN_PID=$SERVER_PID
  ORIGIN_PORT=""
  for _ in $(seq 200); do
    ORIGIN_PORT=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$logfile")
    [[ -n "$ORIGIN_PORT" ]] && break
    kill -0 "$ORIGIN_PID" 2>/dev/null || break
    sleep 0.05
  done
  [[ -n "$ORIGIN_PORT" ]] || { cat "$logfile" >&2; die "the origin did not start"; }
  USED_PORTS+="$ORIGIN_PORT "
  wait_port "$ORIGIN_PORT" "$ORIGIN_PID" origin "$logfile" || die "the origin is not reachable"
}

# run_load PHASE PORT [ADMIN_PORT]: one phase of the mix against 127.0.0.1:PORT.
run_load() {
  local phase=$1 port=$2 admin=${3:-0}
  log "phase $phase: ${DURATION_S}s, rate ${RATE}/s, $CONNS connections, origin latency ${LATENCY_MS} ms, $PRODUCTS products"
  taskset -c "$LOAD_CPU" "$PYTHON" "$HERE/before_after_load.py" run --port "$port" --origin-port "$ORIGIN_PORT" \
    --admin-port "$admin" --out "$BENCH_TMP/$phase" --duration "$DURATION_S" --requests "$REQUESTS" \
    --connections "$CONNS" --rate "$RATE" --products "$PRODUCTS" --seed "$SEED" --purge "$PURGE" ||
    die "the load generator failed in phase $phase"
}

# ---------------------------------------------------------------- phase 1: direct

start_origin direct
run_load direct "$ORIGIN_PORT"
stop_server "$ORIGIN_PID"

# ---------------------------------------------------------------- phase 2: through cachalot

start_origin cachalot
PORT=$(pick_port)
ADMIN_PORT=$(pick_port)
# The dashboard tokens' HS256 secret (bench/before_after_load.py JWT_SECRET).
PYTHONPATH="$HERE" "$PYTHON" -c 'import sys, before_after_load as b; sys.stdout.buffer.write(b.JWT_SECRET)' >"$BENCH_TMP/jwt.key" ||
  die "cannot write the JWT secret"
sed -e "s/@PORT@/$PORT/" -e "s/@ADMIN_PORT@/$ADMIN_PORT/" -e "s/@ORIGIN_PORT@/$ORIGIN_PORT/" -e "s|@TMP@|$BENCH_TMP|" \
  "$HERE/before-after.yaml.in" >"$BENCH_TMP/cachalot.yaml"
start_server "$PROXY_CPU" "$BENCH_TMP/cachalot.log" "$CACHALOT_BIN" --config "$BENCH_TMP/cachalot.yaml"
CACHALOT_PID=$SERVER_PID
wait_port "$PORT" "$CACHALOT_PID" cachalot "$BENCH_TMP/cachalot.log" || die "cachalot did not start"
wait_port "$ADMIN_PORT" "$CACHALOT_PID" "cachalot admin" "$BENCH_TMP/cachalot.log" || die "cachalot admin did not start"
run_load cachalot "$PORT" "$ADMIN_PORT"
check_alive "$CACHALOT_PID" cachalot || die "cachalot exited during the run"
stop_servers "$CACHALOT_PID" "$ORIGIN_PID"

# ---------------------------------------------------------------- report and picture

TABLE=$BENCH_TMP/table.md
"$PYTHON" "$HERE/before_after_load.py" report --direct "$BENCH_TMP/direct" --cachalot "$BENCH_TMP/cachalot" \
  --dat "$BENCH_TMP/before-after.dat" --markdown "$TABLE" --json "$BENCH_TMP/summary.json" >/dev/null ||
  die "the report failed"
if awk -v r="$RATE" 'BEGIN { exit !(r + 0 == 0) }'; then
  load="closed loop over $CONNS connections"
else
  load="${RATE} req/s due over $CONNS connections"
fi
SUBTITLE="$(date -u '+%Y-%m-%d %H:%MZ'), $(nproc) CPUs; origin latency ${LATENCY_MS} ms; $load; ${DURATION_S} s per phase, cold cache"
SUBTITLE2="mix: 70% product reads (Zipf s=1.0 over $PRODUCTS), 15% listings, 10% per-user dashboard, 5% writes + $PURGE tag purge"
mkdir -p "$(dirname "$OUT")"
gnuplot -e "datafile='$BENCH_TMP/before-after.dat'; outfile='$OUT'; subtitle='$SUBTITLE'; subtitle2='$SUBTITLE2'" "$HERE/before-after.gp" \
  2>"$BENCH_TMP/gnuplot.log" || { cat "$BENCH_TMP/gnuplot.log" >&2; die "gnuplot failed"; }
[[ -s "$OUT" ]] || die "gnuplot wrote no $OUT"

{
  echo "_cachalot before/after: ${SUBTITLE}_  "
  echo "_${SUBTITLE2}_  "
  echo "_command: bench/before-after.sh ${COMMAND_ARGS}_"
  echo
  cat "$TABLE"
} >"$BENCH_TMP/report.md"
[[ -n "$MARKDOWN_FILE" ]] && cp "$BENCH_TMP/report.md" "$MARKDOWN_FILE"
cat "$BENCH_TMP/report.md"
log "wrote $OUT"
