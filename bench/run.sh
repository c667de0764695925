#!/usr/bin/env bash
# Cachalot benchmark harness: cachalot against direct origin access, nginx
# (proxy_pass, proxy_cache, `return 200`), Varnish, HAProxy's cache and Apache
# Traffic Server on one 2-core machine, loopback only. See bench/README.md for
# what each case measures and how to read the ratios.
#
# CPU placement (2 cores): the proxy under test gets CPU 0 to itself; wrk and
# the origin share CPU 1. In hit runs the origin is idle, so wrk has CPU 1 to
# itself; in proxy and miss runs every peer pays the same origin cost on CPU 1.
#
# Rounds: the throughput cases start every peer at once, then measure them in
# rotation, ROUNDS times (round r starts with the r-th peer); a peer waiting
# for its turn is stopped with SIGSTOP so it uses no CPU. Each table shows the
# median of the rounds per peer and the spread (max - min) / median of req/s
# and cpu/req. The memory cases run one peer at a time.
#
# Every process started here is pinned (taskset, then checked thread by
# thread), stopped on exit (lib.sh: bench_cleanup) and runs as the current user
# with its files in one mktemp -d directory (caches on tmpfs under /dev/shm).
# Every wrk run is bounded by -d; walks over distinct URLs stop early when done.
set -uo pipefail
# The whole script is one brace group, read in full before it runs: editing
# this file while a run is in progress does not change what that run does.
# (shellcheck takes the functions before the group's final exit, called as
# "case_$c", for unreachable code.)
# shellcheck disable=SC2317
{

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$HERE/lib.sh"

ALL_CASES="proxy hit miss stale memory million instructions"
ALL_PEERS="cachalot haproxy ats varnish nginx"

usage() {
  cat <<'EOF'
usage: bench/run.sh [options]
  --case C[,C]        all | proxy hit miss stale memory million instructions (default all)
  --duration D        wrk duration per measured run (default 5s)
  --rounds N          interleaved rounds per throughput case (default 3; median reported)
  --connections N[,N] connections (default 50) for proxy, miss, stale, memory and
                      million (the first value); with --sizes, also the hit runs
  --hit S@N[,S@N]     hit runs, body size @ connections (default 1k@50,64k@500)
  --sizes S[,S]       hit runs: every size with every --connections (default
                      connections 50,500); ignored with --hit
  --peers P[,P]       peers to run besides the origin: cachalot haproxy ats varnish nginx
                      (default all that are installed)
  --memory-objects N  objects for "memory" (default 300000, 1-byte bodies)
  --million-objects N objects for "million" (default 1000000, 100-byte bodies, 512MiB budget)
  --flood-size S      body size of the "million" flood objects (default 4k)
  --fill-time D       upper bound of each cache's fill in "memory" and of the whole
                      "million" case (fill, second pass, flood; default 600s)
  --markdown FILE     also write the summary table (printed at the end) to FILE
  --build-dir DIR     build tree with cachalot and demo/cachalot-origin
                      (default build-release; configured Release if absent)
  --no-build          use the binaries in the build dir as they are
  --cachalot BIN      use this cachalot binary
  --origin BIN        use this cachalot-origin binary
  --warmup D          unmeasured wrk run before each measured one (default 1s; 0 = none)
  --origin-cpu N      CPU for the origin (default 1, shared with wrk)
  --wait-idle S       before each measured run, wait up to S seconds for the
                      machine to be idle (other sessions compiling); default 0
  --keep-tmp          keep the temporary directory (configs, logs, wrk output)
EOF
}

DURATION=5s
ROUNDS=3
CONNS_ARG=""
CASES=all
PEERS_ARG=""
BUILD_DIR=$ROOT/build-release
NO_BUILD=0
CACHALOT_BIN=""
ORIGIN_BIN=""
SIZES=""
HIT_ARG=""
WARMUP=1s
WAIT_IDLE=0
MEMORY_OBJECTS=300000
MILLION_OBJECTS=1000000
FLOOD_SIZE=4k
FILL_TIME=600s
MARKDOWN_FILE=""
PROXY_CPU=0    # the proxy under test
LOAD_CPU=1     # wrk
ORIGIN_CPU=1   # the origin (see the note at the top)

while (($#)); do
  case "$1" in
    --duration) DURATION=${2:?}; shift 2 ;;
    --rounds) ROUNDS=${2:?}; shift 2 ;;
    --connections) CONNS_ARG=${2:?}; shift 2 ;;
    --case) CASES=${2:?}; shift 2 ;;
    --peers) PEERS_ARG=${2:?}; shift 2 ;;
    --memory-objects) MEMORY_OBJECTS=${2:?}; shift 2 ;;
    --million-objects) MILLION_OBJECTS=${2:?}; shift 2 ;;
    --flood-size) FLOOD_SIZE=${2:?}; shift 2 ;;
    --fill-time) FILL_TIME=${2:?}; shift 2 ;;
    --markdown) MARKDOWN_FILE=$(realpath -m "${2:?}"); shift 2 ;;
    --build-dir) BUILD_DIR=$(realpath -m "${2:?}"); shift 2 ;;
    --no-build) NO_BUILD=1; shift ;;
    --cachalot) CACHALOT_BIN=$(realpath -m "${2:?}"); shift 2 ;;
    --origin) ORIGIN_BIN=$(realpath -m "${2:?}"); shift 2 ;;
    --sizes) SIZES=${2:?}; shift 2 ;;
    --hit) HIT_ARG=${2:?}; shift 2 ;;
    --warmup) WARMUP=${2:?}; shift 2 ;;
    --origin-cpu) ORIGIN_CPU=${2:?}; shift 2 ;;
    --wait-idle) WAIT_IDLE=${2:?}; shift 2 ;;
    --keep-tmp) KEEP_TMP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
[[ "$CASES" == all ]] && CASES=${ALL_CASES// /,}
IFS=, read -r -a CASE_LIST <<<"$CASES"
for c in "${CASE_LIST[@]}"; do
  [[ " $ALL_CASES " == *" $c "* ]] || die "--case: unknown case '$c' (expected all or some of: $ALL_CASES)"
done
IFS=, read -r -a PEER_LIST <<<"${PEERS_ARG:-${ALL_PEERS// /,}}"
for p in "${PEER_LIST[@]}"; do
  [[ " $ALL_PEERS " == *" $p "* ]] || die "--peers: unknown peer '$p' (expected some of: $ALL_PEERS)"
done
[[ "$DURATION" =~ ^[0-9]+[smh]?$ ]] || die "--duration: expected e.g. 10s"
[[ "$FILL_TIME" =~ ^[0-9]+[smh]?$ ]] || die "--fill-time: expected e.g. 300s"
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "--rounds: expected a positive number"
[[ "$WAIT_IDLE" =~ ^[0-9]+$ ]] || die "--wait-idle: expected seconds"
[[ "$ORIGIN_CPU" =~ ^[0-9]+$ ]] || die "--origin-cpu: expected a CPU number"
[[ "$WARMUP" =~ ^[0-9]+[smh]?$ ]] || die "--warmup: expected e.g. 1s or 0"
[[ "$MEMORY_OBJECTS" =~ ^[1-9][0-9]*$ ]] || die "--memory-objects: expected a positive number"
[[ "$MILLION_OBJECTS" =~ ^[1-9][0-9]*$ ]] || die "--million-objects: expected a positive number"
[[ "$FLOOD_SIZE" =~ ^[0-9]+[kK]?$ ]] || die "--flood-size: expected e.g. 4k"
[[ -z "$CONNS_ARG" || "$CONNS_ARG" =~ ^[0-9]+(,[0-9]+)*$ ]] || die "--connections: expected N or N,N"
[[ -z "$SIZES" || "$SIZES" =~ ^[0-9]+[kKmM]?(,[0-9]+[kKmM]?)*$ ]] || die "--sizes: expected e.g. 1k,64k"

# Hit runs, SIZE@CONNECTIONS: --hit as given; else every --sizes with every
# --connections if either is given; else the two the issue asks for.
if [[ -z "$HIT_ARG" ]]; then
  if [[ -n "$SIZES" || -n "$CONNS_ARG" ]]; then
    IFS=, read -r -a hit_conns <<<"${CONNS_ARG:-50,500}"
    IFS=, read -r -a hit_sizes <<<"${SIZES:-1k,64k}"
    for s in "${hit_sizes[@]}"; do for c in "${hit_conns[@]}"; do HIT_ARG+="${HIT_ARG:+,}$s@$c"; done; done
  else
    HIT_ARG=1k@50,64k@500
  fi
fi
[[ "$HIT_ARG" =~ ^[0-9]+[kKmM]?@[0-9]+(,[0-9]+[kKmM]?@[0-9]+)*$ ]] || die "--hit: expected e.g. 1k@50,64k@500"
IFS=, read -r -a HIT_RUNS <<<"$HIT_ARG"
FIRST_CONNS=${CONNS_ARG%%,*}
FIRST_CONNS=${FIRST_CONNS:-50}
DURATION_S=$(duration_seconds "$DURATION")
FILL_S=$(duration_seconds "$FILL_TIME")
case "$FLOOD_SIZE" in
  *[kK]) FLOOD_BYTES=$((${FLOOD_SIZE%[kK]} * 1024)) ;;
  *) FLOOD_BYTES=$FLOOD_SIZE ;;
esac
MAX_CONNS=$FIRST_CONNS
for r in "${HIT_RUNS[@]}"; do ((${r#*@} > MAX_CONNS)) && MAX_CONNS=${r#*@}; done

want_case() { [[ " ${CASE_LIST[*]} " == *" $1 "* ]]; }
want_peer() { [[ " ${PEER_LIST[*]} " == *" $1 "* ]]; }

# ---------------------------------------------------------------- tools

for tool in wrk taskset curl python3 awk ps; do
  command -v "$tool" >/dev/null || die "$tool is required"
done
find_tool() { command -v "$1" 2>/dev/null || { [[ -x /usr/sbin/$1 ]] && echo "/usr/sbin/$1"; } || true; }
NGINX=$(find_tool nginx)
VARNISHD=$(find_tool varnishd)
VARNISHSTAT=$(find_tool varnishstat)
HAPROXY=$(find_tool haproxy)
TRAFFIC_SERVER=$(find_tool traffic_server)
HAVE_NGINX=0 HAVE_VARNISH=0 HAVE_HAPROXY=0 HAVE_ATS=0
if want_peer nginx; then
  if [[ -n "$NGINX" ]]; then HAVE_NGINX=1; else log "nginx not found: nginx rows are skipped"; fi
fi
if want_peer varnish; then
  if [[ -n "$VARNISHD" ]]; then HAVE_VARNISH=1; else log "varnishd not found: Varnish rows are skipped"; fi
fi
if want_peer haproxy; then
  if [[ -n "$HAPROXY" ]]; then HAVE_HAPROXY=1; else log "haproxy not found: HAProxy rows are skipped"; fi
fi
if want_peer ats; then
  if [[ -n "$TRAFFIC_SERVER" ]]; then HAVE_ATS=1; else log "traffic_server not found: ATS rows are skipped"; fi
fi
if (($(nproc) < 2)); then
  log "warning: fewer than 2 CPUs; everything runs on CPU 0 and the figures mean little"
  PROXY_CPU=0 LOAD_CPU=0 ORIGIN_CPU=0
fi

# ---------------------------------------------------------------- build

build() {
  ((NO_BUILD)) && return 0
  local extra=()
  [[ -f "$BUILD_DIR/CMakeCache.txt" ]] || extra=(-DCMAKE_BUILD_TYPE=Release -DCACHALOT_TESTS=OFF)
  mkdir -p "$BUILD_DIR"
  log "building in $BUILD_DIR ..."
  if ! cmake -S "$ROOT" -B "$BUILD_DIR" "${extra[@]}" >"$BUILD_DIR/bench-configure.log" 2>&1; then
    log "  configure failed (see $BUILD_DIR/bench-configure.log); using existing binaries if any"
    return 0
  fi
  if [[ -z "$ORIGIN_BIN" ]] &&
    ! cmake --build "$BUILD_DIR" --target cachalot-origin -j2 >"$BUILD_DIR/bench-build-origin.log" 2>&1; then
    log "  building cachalot-origin failed (see $BUILD_DIR/bench-build-origin.log)"
  fi
  if [[ -z "$CACHALOT_BIN" ]] && want_peer cachalot &&
    ! cmake --build "$BUILD_DIR" --target cachalot -j2 >"$BUILD_DIR/bench-build-cachalot.log" 2>&1; then
    log "  building cachalot failed (see $BUILD_DIR/bench-build-cachalot.log); cachalot rows are skipped"
    CACHALOT_BUILD_FAILED=1
  fi
}

CACHALOT_BUILD_FAILED=0
build
if [[ -z "$ORIGIN_BIN" ]]; then
  ORIGIN_BIN=$BUILD_DIR/demo/cachalot-origin
  if [[ ! -x "$ORIGIN_BIN" ]]; then
    # The origin is standalone: if the tree does not configure yet, build it directly.
    log "  cachalot-origin not built by CMake; compiling demo/origin.cpp directly"
    mkdir -p "$BUILD_DIR/demo"
    c++ -std=c++20 -O2 -DNDEBUG -DASIO_STANDALONE -DASIO_NO_DEPRECATED "$ROOT/demo/origin.cpp" \
      -o "$ORIGIN_BIN" -pthread || die "cannot build cachalot-origin"
  fi
fi
[[ -x "$ORIGIN_BIN" ]] || die "no origin binary at $ORIGIN_BIN"
HAVE_CACHALOT=1
want_peer cachalot || HAVE_CACHALOT=0
if [[ -z "$CACHALOT_BIN" ]]; then
  CACHALOT_BIN=$BUILD_DIR/cachalot
  ((CACHALOT_BUILD_FAILED)) && HAVE_CACHALOT=0
fi
if ((HAVE_CACHALOT)) && [[ ! -x "$CACHALOT_BIN" ]]; then
  log "no cachalot binary at $CACHALOT_BIN: cachalot rows are skipped"
  HAVE_CACHALOT=0
fi

# ---------------------------------------------------------------- environment

BENCH_TMP=$(mktemp -d /tmp/cachalot-bench.XXXXXX)
trap bench_cleanup EXIT
trap 'exit 130' INT TERM
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FD_LIMIT=$(ulimit -n)
((FD_LIMIT >= 4096)) || log "warning: ulimit -n is $FD_LIMIT; 500-connection runs may fail"
# tmpfs for the caches that keep bodies in files (nginx, ATS), so hits are memory reads.
BENCH_SHM=$(mktemp -d /dev/shm/cachalot-bench.XXXXXX 2>/dev/null) || BENCH_SHM=""
[[ -n "$BENCH_SHM" ]] || log "  note: /dev/shm not writable; file caches go to $BENCH_TMP"
SHM_DIR=${BENCH_SHM:-$BENCH_TMP}

# start_origin CPU LOG: a one-thread origin on an ephemeral port; sets
# SERVER_PID and STARTED_PORT ("" if it did not start).
start_origin() {
  local cpu=$1 logfile=$2
  STARTED_PORT=""
  start_server "$cpu" "$logfile" "$ORIGIN_BIN" --listen 127.0.0.1:0 --threads 1
  for _ in $(seq 200); do
    STARTED_PORT=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$logfile")
    [[ -n "$STARTED_PORT" ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.05
  done
  [[ -n "$STARTED_PORT" ]] || return 1
  USED_PORTS+="$STARTED_PORT "
  wait_port "$STARTED_PORT" "$SERVER_PID" origin "$logfile"
}

start_origin "$ORIGIN_CPU" "$BENCH_TMP/origin.log" || { cat "$BENCH_TMP/origin.log" >&2; die "the origin did not start"; }
ORIGIN_PID=$SERVER_PID
ORIGIN_PORT=$STARTED_PORT

version_of() {
  case "$1" in
    nginx) "$NGINX" -v 2>&1 | sed 's/.*: //' ;;
    varnish) "$VARNISHD" -V 2>&1 | head -1 | sed 's/ revision.*//;s/(//' ;;
    haproxy) "$HAPROXY" -v 2>&1 | head -1 | awk '{print "haproxy/" $3}' ;;
    ats) "$TRAFFIC_SERVER" -V 2>&1 | awk '/Traffic Server [0-9]/ {print "ats/" $3; exit}' ;;
  esac
}
VERSIONS=""
((HAVE_NGINX)) && VERSIONS+="$(version_of nginx) "
((HAVE_VARNISH)) && VERSIONS+="$(version_of varnish) "
((HAVE_HAPROXY)) && VERSIONS+="$(version_of haproxy) "
((HAVE_ATS)) && VERSIONS+="$(version_of ats) "
HEADER_LINES=(
  "# cachalot bench: $(date -u '+%Y-%m-%d %H:%M:%SZ'), $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?'); cases: ${CASE_LIST[*]}"
  "# $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) CPUs; proxy on CPU $PROXY_CPU, wrk and origin on CPU $LOAD_CPU/$ORIGIN_CPU"
  "# wrk -t1 --latency, ${DURATION} per run (warm-up ${WARMUP}), ${ROUNDS} interleaved rounds, median shown; one worker/thread per proxy where configurable"
  "# machine busy before start: $(machine_busy_pct 1)% (other sessions); the noise column is the same per run"
  "# ${VERSIONS:-no peers}"
)
printf '%s\n' "${HEADER_LINES[@]}"

# ---------------------------------------------------------------- peers
# Each start_* sets PEER_PID and PEER_PORT (and PEER_ADMIN, PEER_DIR where it
# applies), or returns 1 after saying why. launch NAME records them under NAME
# in PID_OF, PORT_OF, ADMIN_OF, DIR_OF and pins the whole process tree.

declare -A PID_OF PORT_OF ADMIN_OF DIR_OF CACHE_DIR_OF
CACHE_MB=256          # every cache's size for the throughput cases; the memory cases raise it
ATS_STATS=0           # 1: load ATS's stats_over_http plugin (memory case)
NGINX_KEYS_ZONE=64m   # nginx keys_zone for the throughput cases
PEER_SEQ=0

peer_dir() { # NAME -> a fresh directory for this start of NAME
  PEER_SEQ=$((PEER_SEQ + 1))
  local d=$BENCH_TMP/$PEER_SEQ-$1
  mkdir -p "$d"
  echo "$d"
}

start_cachalot() {  # MODE: bypass | cache
  local mode=$1
  ((HAVE_CACHALOT)) || { log "  cachalot: skipped (no binary)"; return 1; }
  local dir
  dir=$(peer_dir "cachalot-$mode")
  PEER_DIR=$dir
  PEER_PORT=$(pick_port)
  PEER_ADMIN=$(pick_port)
  {
    echo "server:"
    echo "  listen: [\"127.0.0.1:$PEER_PORT\"]"
    echo "  workers: 1"
    echo "upstream:"
    echo "  url: \"http://127.0.0.1:$ORIGIN_PORT\""
    echo "cache:"
    echo "  max_memory: \"${CACHE_MB}MiB\""
    echo "admin:"
    echo "  listen: \"127.0.0.1:$PEER_ADMIN\""
    echo "log:"
    echo "  level: warn"
    echo "  access_log: off"
    if [[ "$mode" == bypass ]]; then
      echo "routes:"
      echo "  - { name: all, prefix: \"/\", bypass: true }"
    fi
  } >"$dir/cachalot.yaml"
  start_server "$PROXY_CPU" "$dir/cachalot.log" "$CACHALOT_BIN" --config "$dir/cachalot.yaml"
  PEER_PID=$SERVER_PID
  wait_port "$PEER_PORT" "$PEER_PID" cachalot "$dir/cachalot.log" || { stop_server "$PEER_PID"; return 1; }
}

start_nginx() {  # TEMPLATE NAME
  local template=$1 name=$2
  ((HAVE_NGINX)) || { log "  $name: skipped (nginx not installed)"; return 1; }
  local dir cache_dir user_directive=""
  dir=$(peer_dir "$name")
  PEER_DIR=$dir
  cache_dir=$SHM_DIR/nginx-cache-${dir##*/}
  mkdir -p "$cache_dir"
  PEER_CACHE_DIR=$cache_dir
  # As root the workers would switch to "nobody" and lose access to the temp dirs.
  ((EUID == 0)) && user_directive="user root;"
  PEER_PORT=$(pick_port)
  sed -e "s|@PREFIX@|$dir|g" -e "s|@CACHE_DIR@|$cache_dir|g" -e "s|@PORT@|$PEER_PORT|g" \
    -e "s|@ORIGIN_PORT@|$ORIGIN_PORT|g" -e "s|@USER_DIRECTIVE@|$user_directive|g" \
    -e "s|@KEYS_ZONE@|$NGINX_KEYS_ZONE|g" -e "s|@MAX_SIZE@|${CACHE_MB}m|g" \
    -e "s|@BODY@|${RETURN_BODY:-}|g" -e "s|@ETAG@|${RETURN_ETAG:-}|g" \
    -e "s|@LAST_MODIFIED@|${RETURN_LAST_MODIFIED:-}|g" \
    "$HERE/$template" >"$dir/nginx.conf"
  start_server "$PROXY_CPU" "$dir/stderr.log" "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
  PEER_PID=$SERVER_PID
  wait_port "$PEER_PORT" "$PEER_PID" "$name" "$dir/error.log" || { stop_server "$PEER_PID"; return 1; }
}

# nginx `return 200` with the origin's own /bench/1k body and validators.
start_nginx_return() {
  local head
  head=$(curl -s --max-time 10 -o "$BENCH_TMP/body-1k" -D - "http://127.0.0.1:$ORIGIN_PORT/bench/1k" | tr -d '\r')
  RETURN_ETAG=$(awk 'tolower($1) == "etag:" {print $2}' <<<"$head")
  RETURN_LAST_MODIFIED=$(sed -n 's/^[Ll]ast-[Mm]odified: //p' <<<"$head")
  # The body has no single quote, backslash, '|' or '&'; its final newline is written as \n.
  RETURN_BODY=$("$PYTHON" -c 'import sys; b = open(sys.argv[1]).read(); assert not set("\x27\\|&") & set(b); print(b.replace("\n", "\\\\n"), end="")' "$BENCH_TMP/body-1k") ||
    { log "  nginx-return: cannot build the body"; return 1; }
  start_nginx nginx-return.conf.in nginx-return
}

start_varnish() {
  ((HAVE_VARNISH)) || { log "  varnish: skipped (varnishd not installed)"; return 1; }
  local dir
  dir=$(peer_dir varnish)
  PEER_DIR=$dir
  PEER_PORT=$(pick_port)
  sed -e "s|@ORIGIN_PORT@|$ORIGIN_PORT|g" "$HERE/varnish.vcl.in" >"$dir/bench.vcl"
  # Varnish needs a thread per active connection and cannot run on one thread,
  # so it is confined to the proxy CPU instead; threads are pre-spawned so the
  # runs do not measure thread creation (varnish-cache.org/docs/7.1/reference/
  # varnishd.html: thread_pools, thread_pool_min/max). -s malloc: objects in
  # memory. -j none: run as the current user.
  start_server "$PROXY_CPU" "$dir/varnishd.log" "$VARNISHD" -F -j none -n "$dir/work" -T none \
    -a "127.0.0.1:$PEER_PORT" -f "$dir/bench.vcl" -s "malloc,${CACHE_MB}m" \
    -p thread_pools=1 -p thread_pool_min=$((MAX_CONNS + 50)) -p thread_pool_max=$((MAX_CONNS * 2 + 100))
  PEER_PID=$SERVER_PID
  wait_port "$PEER_PORT" "$PEER_PID" varnish "$dir/varnishd.log" 30 || { stop_server "$PEER_PID"; return 1; }
}

start_haproxy() {
  ((HAVE_HAPROXY)) || { log "  haproxy: skipped (not installed)"; return 1; }
  local dir maxconn
  dir=$(peer_dir haproxy)
  PEER_DIR=$dir
  PEER_PORT=$(pick_port)
  # Each proxied connection takes two descriptors; stay inside our limit.
  maxconn=$(((FD_LIMIT - 100) / 2))
  ((maxconn > 20000)) && maxconn=20000
  sed -e "s|@PORT@|$PEER_PORT|g" -e "s|@ORIGIN_PORT@|$ORIGIN_PORT|g" -e "s|@CACHE_MB@|$CACHE_MB|g" \
    -e "s|@MAXCONN@|$maxconn|g" -e "s|@SOCKET@|$dir/haproxy.sock|g" \
    "$HERE/haproxy.cfg.in" >"$dir/haproxy.cfg"
  "$HAPROXY" -c -q -f "$dir/haproxy.cfg" >"$dir/check.log" 2>&1 ||
    { log "  haproxy: configuration rejected:"; sed 's/^/    | /' "$dir/check.log" >&2; return 1; }
  # -db: foreground, no daemon, no master process.
  start_server "$PROXY_CPU" "$dir/haproxy.log" "$HAPROXY" -db -f "$dir/haproxy.cfg"
  PEER_PID=$SERVER_PID
  wait_port "$PEER_PORT" "$PEER_PID" haproxy "$dir/haproxy.log" 60 || { stop_server "$PEER_PID"; return 1; }
}

start_ats() {
  ((HAVE_ATS)) || { log "  ats: skipped (traffic_server not installed)"; return 1; }
  local dir shm
  dir=$(peer_dir ats)
  PEER_DIR=$dir
  shm=$SHM_DIR/ats-cache-${dir##*/}
  mkdir -p "$dir/etc" "$dir/log" "$dir/run" "$dir/var" "$dir/share" "$shm"
  PEER_PORT=$(pick_port)
  # The runroot: every directory traffic_server reads or writes is ours
  # (docs.trafficserver.apache.org/en/9.2.x/appendices/command-line/traffic_layout.en.html, runroot).
  cat >"$dir/runroot.yaml" <<EOF
prefix: $dir
exec_prefix: $dir
bindir: $(dirname "$TRAFFIC_SERVER")
sbindir: $(dirname "$TRAFFIC_SERVER")
sysconfdir: $dir/etc
datadir: $dir/share
includedir: $dir/share
libdir: /usr/lib/trafficserver
libexecdir: /usr/lib/trafficserver/modules
localstatedir: $dir/var
runtimedir: $dir/run
logdir: $dir/log
cachedir: $shm
EOF
  sed -e "s|@PORT@|$PEER_PORT|g" -e "s|@RAM_CACHE@|$((CACHE_MB * 1024 * 1024))|g" -e "s|@DIR@|$dir|g" \
    -e "s|@MIN_AVG_OBJECT@|$( ((ATS_STATS)) && echo 512 || echo 8000)|g" \
    "$HERE/ats-records.config.in" >"$dir/etc/records.config"
  echo "map / http://127.0.0.1:$ORIGIN_PORT/" >"$dir/etc/remap.config"
  # storage.config: one cache file (ATS creates it at this size); on tmpfs.
  echo "$shm $((CACHE_MB > 256 ? CACHE_MB : 256))M" >"$dir/etc/storage.config"
  printf 'ip_allow:\n  - apply: in\n    ip_addrs: 127.0.0.1\n    action: allow\n    methods: ALL\n' >"$dir/etc/ip_allow.yaml"
  local f
  for f in plugin.config hosting.config volume.config cache.config parent.config socks.config \
    splitdns.config ssl_multicert.config; do : >"$dir/etc/$f"; done
  for f in logging.yaml sni.yaml strategies.yaml; do : >"$dir/etc/$f"; done
  # The memory case reads the cache's directory entries from stats_over_http
  # (GET /_stats); the throughput cases run without the plugin.
  ((ATS_STATS)) && echo "stats_over_http.so" >"$dir/etc/plugin.config"
  PEER_CACHE_DIR=$shm
  [[ -d /etc/trafficserver/body_factory ]] && cp -r /etc/trafficserver/body_factory "$dir/etc/"
  start_server "$PROXY_CPU" "$dir/traffic_server.log" "$TRAFFIC_SERVER" --run-root="$dir/runroot.yaml"
  PEER_PID=$SERVER_PID
  wait_port "$PEER_PORT" "$PEER_PID" ats "$dir/log/diags.log" 30 || { stop_server "$PEER_PID"; return 1; }
  # The cache is enabled a moment after the port opens ("cache enabled" in diags.log).
  for _ in $(seq 100); do
    grep -q 'cache enabled' "$dir/log/diags.log" 2>/dev/null && break
    sleep 0.1
  done
  grep -q 'cache enabled' "$dir/log/diags.log" 2>/dev/null || log "  ats: the cache did not report enabled; see $dir/log/diags.log"
}

# A second origin on the proxy's CPU (the direct@cpuN row).
start_origin_on_proxy_cpu() {
  local dir
  dir=$(peer_dir origin)
  PEER_DIR=$dir
  start_origin "$PROXY_CPU" "$dir/origin.log" || { stop_server "$SERVER_PID"; return 1; }
  PEER_PID=$SERVER_PID
  PEER_PORT=$STARTED_PORT
}

# launch NAME: start one peer. Names: cachalot, cachalot-pass, nginx-cache,
# nginx-pass, nginx-return, varnish, haproxy, ats, direct-cpu0.
launch() {
  local name=$1
  PEER_PID="" PEER_PORT="" PEER_ADMIN="" PEER_DIR="" PEER_CACHE_DIR=""
  local ok=0
  case "$name" in
    cachalot) start_cachalot cache && ok=1 ;;
    cachalot-pass) start_cachalot bypass && ok=1 ;;
    nginx-cache) start_nginx nginx-proxy-cache.conf.in nginx-cache && ok=1 ;;
    nginx-pass) start_nginx nginx-proxy-pass.conf.in nginx-pass && ok=1 ;;
    nginx-return) start_nginx_return && ok=1 ;;
    varnish) start_varnish && ok=1 ;;
    haproxy) start_haproxy && ok=1 ;;
    ats) start_ats && ok=1 ;;
    direct-cpu0) start_origin_on_proxy_cpu && ok=1 ;;
    *) die "launch: unknown peer $name" ;;
  esac
  ((ok)) || return 1
  pin_tree "$PEER_PID" "$PROXY_CPU" "$name"
  PID_OF[$name]=$PEER_PID
  PORT_OF[$name]=$PEER_PORT
  ADMIN_OF[$name]=$PEER_ADMIN
  DIR_OF[$name]=$PEER_DIR
  CACHE_DIR_OF[$name]=$PEER_CACHE_DIR
  return 0
}

stop_peer() {
  local name=$1
  [[ -n "${PID_OF[$name]:-}" ]] || return 0
  stop_server "${PID_OF[$name]}"
  unset "PID_OF[$name]" "PORT_OF[$name]" "ADMIN_OF[$name]" "DIR_OF[$name]" "CACHE_DIR_OF[$name]"
}

stop_all_peers() {
  local name pids=()
  for name in "${!PID_OF[@]}"; do pids+=("${PID_OF[$name]}"); done
  ((${#pids[@]})) && stop_servers "${pids[@]}"
  for name in "${!PID_OF[@]}"; do
    unset "PID_OF[$name]" "PORT_OF[$name]" "ADMIN_OF[$name]" "DIR_OF[$name]" "CACHE_DIR_OF[$name]"
  done
}

peer_available() { # NAME: is this peer's software here and wanted?
  case "$1" in
    cachalot | cachalot-pass) ((HAVE_CACHALOT)) ;;
    nginx-*) ((HAVE_NGINX)) ;;
    varnish) ((HAVE_VARNISH)) ;;
    haproxy) ((HAVE_HAPROXY)) ;;
    ats) ((HAVE_ATS)) ;;
    *) return 0 ;;
  esac
}

# Sanity check before measuring: the URL answers 200 through the peer.
check_200() {
  local code
  code=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' "$1")
  [[ "$code" == 200 ]] && return 0
  log "  $1 answered HTTP $code; skipping"
  return 1
}

# ---------------------------------------------------------------- measuring

declare -A RPS P50 P99 ERRS OREQ CPUREQ RSS NOISE SPREAD ROUNDS_OK LASTRUN LASTREQS WARM_FAILED
RUN_SEQ=0
MAX_NOISE=""  # the largest noise of any wrk-measured run, percent

# measure KEY PID URL CONNS OPORT [WALK_PATH WALK_KEY]: warm-up run, then a
# measured run sampling the origin's request counter, the server's CPU time
# and the whole machine's CPU time around it. NOISE is the share of the
# machine's CPU used by anything other than the server, the origin and wrk
# during the run. With WALK_PATH, every request is a new URL
# (WALK_PATH?WALK_KEY=rN-1, -2, ...; bench/walk.lua), a fresh prefix per wrk run.
measure() {
  local key=$1 pid=$2 url=$3 conns=$4 oport=${5:-$ORIGIN_PORT} walk_path=${6:-} walk_key=${7:-}
  local out=$BENCH_TMP/wrk-${key//[|\/?=&@]/_}.txt script=()
  if [[ "$WARMUP" != 0 ]]; then
    RUN_SEQ=$((RUN_SEQ + 1))
    [[ -n "$walk_path" ]] && script=("$HERE/walk.lua" "$walk_path" "$walk_key" "r$RUN_SEQ" 0)
    run_wrk "$LOAD_CPU" "$url" "$conns" "$WARMUP" "$out.warmup" "${script[@]}" || { check_alive "$pid" "${key#*|}"; return 1; }
  fi
  wait_idle "$WAIT_IDLE"
  RUN_SEQ=$((RUN_SEQ + 1))
  [[ -n "$walk_path" ]] && script=("$HERE/walk.lua" "$walk_path" "$walk_key" "r$RUN_SEQ" 0)
  LASTRUN[$key]=r$RUN_SEQ
  local o0 c0 g0 s0 o1 c1 g1 s1
  o0=$(origin_requests "$oport")
  s0=$(sys_ticks)
  c0=$(cpu_ticks "$pid")
  g0=$(cpu_ticks "$ORIGIN_PID")
  run_wrk "$LOAD_CPU" "$url" "$conns" "$DURATION" "$out" "${script[@]}" || { check_alive "$pid" "${key#*|}"; return 1; }
  check_alive "$pid" "${key#*|}" || return 1
  c1=$(cpu_ticks "$pid")
  g1=$(cpu_ticks "$ORIGIN_PID")
  s1=$(sys_ticks)
  o1=$(origin_requests "$oport")
  ((pid == ORIGIN_PID)) && g1=$g0
  RPS[$key]=$W_RPS
  LASTREQS[$key]=$W_REQS
  P50[$key]=$W_P50_US
  P99[$key]=$W_P99_US
  ERRS[$key]=$W_ERRS
  OREQ[$key]=$((o1 - o0))
  CPUREQ[$key]=$(awk -v t=$((c1 - c0)) -v hz="$CLK_TCK" -v n="$W_REQS" 'BEGIN { printf "%.2f", t * 1e6 / hz / n }')
  RSS[$key]=$(awk -v k="$(rss_kib "$pid")" 'BEGIN { printf "%.1f", k / 1024 }')
  NOISE[$key]=$(awk -v a="$s0" -v b="$s1" -v ours=$((c1 - c0 + g1 - g0 + W_CPU_TICKS)) 'BEGIN {
    split(a, x, " "); split(b, y, " "); t = y[2] - x[2]; o = y[1] - x[1] - ours;
    printf "%.0f%%", ((t > 0 && o > 0) ? 100 * o / t : 0) }')
  ((${NOISE[$key]%\%} > ${MAX_NOISE:-0})) || [[ -z "$MAX_NOISE" ]] && MAX_NOISE=${NOISE[$key]%\%}
  log "  $key: ${W_RPS} req/s, p50 $(fmt_us "$W_P50_US"), p99 $(fmt_us "$W_P99_US"), cpu/req ${CPUREQ[$key]}us, noise ${NOISE[$key]}"
}

# Rounds. rot_add GROUP LABEL PEER URL CONNS [OPORT WALK_PATH WALK_KEY] adds
# one row; rot_run PREFIX measures every row ROUNDS times, group by group,
# the rows of a group in an order rotated by one each round, and stores the
# aggregate under PREFIX|GROUP|LABEL (per round: PREFIX|GROUP|LABEL|r).
# PEER "origin" is the shared origin (never paused).
ROT_GROUP=() ROT_LABEL=() ROT_PEER=() ROT_URL=() ROT_CONNS=() ROT_OPORT=() ROT_WALK=()
rot_reset() { ROT_GROUP=() ROT_LABEL=() ROT_PEER=() ROT_URL=() ROT_CONNS=() ROT_OPORT=() ROT_WALK=(); }
rot_add() {
  ROT_GROUP+=("$1") ROT_LABEL+=("$2") ROT_PEER+=("$3") ROT_URL+=("$4") ROT_CONNS+=("$5")
  ROT_OPORT+=("${6:-$ORIGIN_PORT}") ROT_WALK+=("${7:-} ${8:-}")
}

peer_pid() { [[ "$1" == origin ]] && echo "$ORIGIN_PID" || echo "${PID_OF[$1]:-}"; }

pause_peers() {
  local name
  for name in "${!PID_OF[@]}"; do pause_tree "${PID_OF[$name]}"; done
}

rot_run() {
  local prefix=$1 r g i k n pid peer groups=() idx walk
  declare -A dead=()
  for g in "${ROT_GROUP[@]}"; do [[ " ${groups[*]} " == *" $g "* ]] || groups+=("$g"); done
  pause_peers
  for ((r = 1; r <= ROUNDS; r++)); do
    log "  -- $prefix: round $r of $ROUNDS"
    for g in "${groups[@]}"; do
      idx=()
      for i in "${!ROT_GROUP[@]}"; do [[ "${ROT_GROUP[$i]}" == "$g" ]] && idx+=("$i"); done
      n=${#idx[@]}
      for ((k = 0; k < n; k++)); do
        i=${idx[$(((k + r - 1) % n))]}
        peer=${ROT_PEER[$i]}
        [[ -n "${dead[$peer]:-}" ]] && continue
        pid=$(peer_pid "$peer")
        [[ -n "$pid" ]] || continue
        [[ "$peer" != origin ]] && resume_tree "$pid"
        read -r -a walk <<<"${ROT_WALK[$i]}"
        if ! measure "$prefix|$g|${ROT_LABEL[$i]}|$r" "$pid" "${ROT_URL[$i]}" "${ROT_CONNS[$i]}" "${ROT_OPORT[$i]}" "${walk[@]}"; then
          kill -0 "$pid" 2>/dev/null || dead[$peer]=1
        fi
        [[ "$peer" != origin ]] && pause_tree "$pid"
      done
    done
  done
  for i in "${!ROT_GROUP[@]}"; do aggregate "$prefix|${ROT_GROUP[$i]}|${ROT_LABEL[$i]}"; done
  local name
  for name in "${!PID_OF[@]}"; do resume_tree "${PID_OF[$name]}"; done
}

# aggregate KEY: medians of the rounds KEY|1..ROUNDS into KEY; origin
# requests and errors summed, the worst noise, the last RSS.
aggregate() {
  local key=$1 r k rps=() p50=() p99=() cpu=() noise=0 errs=0 oreq=0 ok=0 rss=""
  for ((r = 1; r <= ROUNDS; r++)); do
    k="$key|$r"
    [[ -n "${RPS[$k]:-}" ]] || continue
    ok=$((ok + 1))
    rps+=("${RPS[$k]}") p50+=("${P50[$k]}") p99+=("${P99[$k]}") cpu+=("${CPUREQ[$k]}")
    errs=$((errs + ERRS[$k])) oreq=$((oreq + OREQ[$k])) rss=${RSS[$k]}
    ((${NOISE[$k]%\%} > noise)) && noise=${NOISE[$k]%\%}
    LASTRUN[$key]=${LASTRUN[$k]} LASTREQS[$key]=${LASTREQS[$k]}
  done
  ((ok)) || return 0
  RPS[$key]=$(median "${rps[@]}" | awk '{printf "%.0f", $1}')
  P50[$key]=$(median "${p50[@]}")
  P99[$key]=$(median "${p99[@]}")
  CPUREQ[$key]=$(median "${cpu[@]}" | awk '{printf "%.2f", $1}')
  ERRS[$key]=$errs
  OREQ[$key]=$oreq
  RSS[$key]=$rss
  NOISE[$key]="$noise%"
  # shellcheck disable=SC2034  # read through val's nameref
  SPREAD[$key]="$(spread "${rps[@]}")/$(spread "${cpu[@]}")"
  ROUNDS_OK[$key]=$ok
}

val() { # ARRAY KEY -> value or "-"
  local -n arr=$1
  echo "${arr[$2]:--}"
}

print_header() {
  printf '%-14s %10s %9s %9s %9s %8s %9s %7s %6s %9s  %s\n' name 'req/s' p50 p99 'cpu/req' 'rss' 'origin' errors noise spread "$1"
}

print_row() { # NAME KEY RATIO_TEXT
  local key=$2 n=${ROUNDS_OK[$2]:-} sp
  sp=$(val SPREAD "$key")
  [[ -n "$n" && "$n" != "$ROUNDS" ]] && sp="$sp($n)"
  printf '%-14s %10s %9s %9s %9s %8s %9s %7s %6s %9s  %s\n' "$1" "$(val RPS "$key")" \
    "$(fmt_us "$(val P50 "$key")")" "$(fmt_us "$(val P99 "$key")")" \
    "$([[ -n "${CPUREQ[$key]:-}" ]] && echo "${CPUREQ[$key]}us" || echo -)" \
    "$([[ -n "${RSS[$key]:-}" ]] && echo "${RSS[$key]}M" || echo -)" \
    "$(val OREQ "$key")" "$(val ERRS "$key")" "$(val NOISE "$key")" "$sp" "$3"
}

# Targets: printed where measured and again in the summary.
TARGET_LINES=()
verdict() { # CONDITION_EXIT_CODE|skip TEXT
  local line
  if [[ $1 == skip ]]; then line="target: $2: n/a"
  elif [[ $1 == 0 ]]; then line="target: $2: PASS"
  else line="target: $2: FAIL"; fi
  echo "  $line"
  TARGET_LINES+=("$line")
}

# target_le A FACTOR B TEXT: PASS if A <= FACTOR x B (n/a if either is missing).
target_le() {
  local a=$1 f=$2 b=$3 text=$4
  if [[ -z "$a" || -z "$b" || "$a" == - || "$b" == - ]]; then verdict skip "$text"; return; fi
  num_le "$a" "$(awk -v b="$b" -v f="$f" 'BEGIN { print b * f }')"
  verdict $? "$text ($(ratio "$a" "$b"))"
}

# target_ge A FACTOR B TEXT: PASS if A >= FACTOR x B.
target_ge() {
  local a=$1 f=$2 b=$3 text=$4
  if [[ -z "$a" || -z "$b" || "$a" == - || "$b" == - ]]; then verdict skip "$text"; return; fi
  num_le "$(awk -v b="$b" -v f="$f" 'BEGIN { print b * f }')" "$a"
  verdict $? "$text ($(ratio "$a" "$b"))"
}

# ---------------------------------------------------------------- case: proxy

case_proxy() {
  local c=$FIRST_CONNS url_path=/bench/1k g="1k|$FIRST_CONNS"
  log "== proxy: GET $url_path through each proxy with no cache, $c connections"
  rot_reset
  rot_add "$g" direct origin "http://127.0.0.1:$ORIGIN_PORT$url_path" "$c"
  # A second origin on the proxy's CPU: the same single hop, but across cores
  # like every proxied hop. It shows how much of a proxy's cost is the VM's
  # cross-CPU wake-ups rather than the proxy.
  if ((PROXY_CPU != ORIGIN_CPU)) && launch direct-cpu0; then
    rot_add "$g" "direct@cpu$PROXY_CPU" direct-cpu0 "http://127.0.0.1:${PORT_OF[direct-cpu0]}$url_path" "$c" "${PORT_OF[direct-cpu0]}"
  fi
  if launch cachalot-pass; then
    check_200 "http://127.0.0.1:${PORT_OF[cachalot-pass]}$url_path" &&
      rot_add "$g" cachalot cachalot-pass "http://127.0.0.1:${PORT_OF[cachalot-pass]}$url_path" "$c"
  fi
  if launch nginx-pass; then
    check_200 "http://127.0.0.1:${PORT_OF[nginx-pass]}$url_path" &&
      rot_add "$g" nginx-pass nginx-pass "http://127.0.0.1:${PORT_OF[nginx-pass]}$url_path" "$c"
  fi
  rot_run proxy
  stop_all_peers

  local d="proxy|$g|direct" dx="proxy|$g|direct@cpu$PROXY_CPU" ca="proxy|$g|cachalot" ng="proxy|$g|nginx-pass"
  echo
  echo "== proxy (issue #2): GET $url_path, no cache, $c connections, $DURATION x $ROUNDS rounds; ratios vs direct"
  echo "   direct: wrk -> origin, both on CPU $LOAD_CPU; direct@cpu$PROXY_CPU: the origin on the proxy's CPU (one cross-CPU hop)"
  echo "   cpu/req: the server's own CPU time per request (the origin's for direct); origin: requests that reached it"
  print_header "req/s, p50 vs direct"
  print_row direct "$d" ""
  print_row "direct@cpu$PROXY_CPU" "$dx" "$(ratio "$(val RPS "$dx")" "$(val RPS "$d")") $(ratio "$(val P50 "$dx")" "$(val P50 "$d")")"
  print_row cachalot "$ca" "$(ratio "$(val RPS "$ca")" "$(val RPS "$d")") $(ratio "$(val P50 "$ca")" "$(val P50 "$d")")"
  print_row nginx-pass "$ng" "$(ratio "$(val RPS "$ng")" "$(val RPS "$d")") $(ratio "$(val P50 "$ng")" "$(val P50 "$d")")"
  target_ge "$(val RPS "$ca")" 1 "$(val RPS "$ng")" "proxy: cachalot req/s >= nginx proxy_pass"
  target_le "$(val P50 "$ca")" 1.15 "$(val P50 "$d")" "proxy: cachalot p50 <= 1.15 x direct p50"
  target_le "$(val CPUREQ "$ca")" 1 "$(val CPUREQ "$ng")" "proxy: cachalot cpu/req <= nginx proxy_pass"
}

# ---------------------------------------------------------------- case: hit

HIT_PEERS=(cachalot haproxy ats varnish nginx-cache nginx-return)

# hit_ratios KEY: "req/s cpu/req p99" of KEY's peer over HAProxy's in the same run.
hit_ratios() {
  local k=$1 h="${1%|*}|haproxy"
  echo "$(ratio "$(val RPS "$k")" "$(val RPS "$h")") $(ratio "$(val CPUREQ "$k")" "$(val CPUREQ "$h")") $(ratio "$(val P99 "$k")" "$(val P99 "$h")")"
}

case_hit() {
  log "== hit: fresh cache hits (${HIT_RUNS[*]}, size@connections), $ROUNDS rounds"
  local peer size c base run sizes=()
  for run in "${HIT_RUNS[@]}"; do [[ " ${sizes[*]} " == *" ${run%@*} "* ]] || sizes+=("${run%@*}"); done
  rot_reset
  for peer in "${HIT_PEERS[@]}"; do
    peer_available "$peer" || continue
    launch "$peer" || continue
    base="http://127.0.0.1:${PORT_OF[$peer]}"
    for size in "${sizes[@]}"; do
      if [[ "$peer" == nginx-return ]]; then
        [[ "$size" == 1k ]] || continue
        check_200 "$base/bench/1k" || continue
      else
        check_200 "$base/bench/$size" || continue
        warm "$base/bench/$size" || WARM_FAILED["$peer|$size"]=1
      fi
      for run in "${HIT_RUNS[@]}"; do
        [[ "${run%@*}" == "$size" ]] || continue
        c=${run#*@}
        rot_add "$size|$c" "$peer" "$peer" "$base/bench/$size" "$c"
      done
    done
  done
  rot_run hit
  stop_all_peers

  local ca k
  for run in "${HIT_RUNS[@]}"; do
    size=${run%@*} c=${run#*@}
    ca="hit|$size|$c|cachalot"
    echo
    echo "== hit (issues #3, #10): GET /bench/$size, fresh, $c connections, $DURATION x $ROUNDS rounds"
    echo "   spread: (max - min) / median of req/s and of cpu/req over the rounds; ratios: peer / HAProxy (req/s: higher is"
    echo "   better; cpu/req and p99: lower is better). nginx-return answers itself (return 200, no cache): the floor"
    print_header "/haproxy: req/s cpu/req p99"
    for peer in "${HIT_PEERS[@]}"; do
      k="hit|$size|$c|$peer"
      [[ "$peer" == nginx-return && "$size" != 1k ]] && continue
      peer_available "$peer" || continue
      print_row "$peer" "$k" "$(hit_ratios "$k")"
      if [[ -n "${WARM_FAILED["$peer|$size"]:-}" ]]; then
        echo "  warning: $peer did not serve /bench/$size from its cache when warmed"
      elif [[ "$peer" != nginx-return && -n "${OREQ[$k]:-}" && "${OREQ[$k]}" != 0 ]]; then
        echo "  warning: $peer sent ${OREQ[$k]} requests to the origin during hit runs"
      fi
    done
    if [[ "$size" == 1k && "$c" == 50 ]]; then
      target_ge "$(val RPS "$ca")" 1.1 "$(val RPS "hit|$size|$c|haproxy")" "hit $size $c c: cachalot req/s >= 1.1 x HAProxy"
      target_le "$(val CPUREQ "$ca")" 0.9 "$(val CPUREQ "hit|$size|$c|haproxy")" "hit $size $c c: cachalot cpu/hit <= 0.9 x HAProxy"
      target_le "$(val CPUREQ "$ca")" 1.1 "$(val CPUREQ "hit|$size|$c|nginx-return")" "hit $size $c c: cachalot cpu/hit <= 1.1 x nginx return 200"
    fi
    if [[ "$size" == 64k && "$c" == 500 ]]; then
      target_le "$(val P99 "$ca")" 1 "$(val P99 "hit|$size|$c|nginx-cache")" "hit $size $c c: cachalot p99 <= nginx proxy_cache p99"
    fi
  done
}

# ---------------------------------------------------------------- case: miss

# Peers of the miss case: label -> peer.
MISS_ROWS=("cachalot-pass:cachalot-pass" "cachalot-store:cachalot" "nginx-pass:nginx-pass"
  "nginx-cache:nginx-cache" "varnish:varnish" "haproxy:haproxy" "ats:ats")

case_miss() {
  local c=$FIRST_CONNS g="1k|$FIRST_CONNS" row label peer base
  log "== miss: every request a new URL (/bench/1k?miss=...), $c connections, $ROUNDS rounds"
  rot_reset
  for row in "${MISS_ROWS[@]}"; do
    label=${row%%:*} peer=${row#*:}
    peer_available "$peer" || continue
    [[ -n "${PID_OF[$peer]:-}" ]] || launch "$peer" || continue
    base="http://127.0.0.1:${PORT_OF[$peer]}"
    check_200 "$base/bench/1k?miss=check" || continue
    rot_add "$g" "$label" "$peer" "$base/" "$c" "$ORIGIN_PORT" /bench/1k miss
  done
  rot_run miss

  # Did the storing peers store? A URL from the end of each one's last run
  # (2 x connections before the last answered one: issued and answered, and
  # the least likely to be evicted since), asked again, must not reach the
  # origin.
  declare -A stored=()
  local k o0 o1 i
  for row in "${MISS_ROWS[@]}"; do
    label=${row%%:*} peer=${row#*:}
    k="miss|$g|$label"
    [[ -n "${LASTRUN[$k]:-}" && -n "${PID_OF[$peer]:-}" ]] || continue
    [[ "$label" == *-pass ]] && continue
    i=$((${LASTREQS[$k]:-0} - 2 * c))
    ((i >= 1)) || i=1
    o0=$(origin_requests)
    curl -s --max-time 10 -o /dev/null "http://127.0.0.1:${PORT_OF[$peer]}/bench/1k?miss=${LASTRUN[$k]}-$i"
    o1=$(origin_requests)
    if ((o1 == o0)); then stored[$label]="stored"; else stored[$label]="NOT STORED"; fi
  done
  local objects=""
  [[ -n "${ADMIN_OF[cachalot]:-}" ]] &&
    objects="; cachalot holds $(cachalot_metric "${ADMIN_OF[cachalot]}" cachalot_cache_objects) objects, $(cachalot_metric "${ADMIN_OF[cachalot]}" cachalot_cache_evicted_objects) evicted"
  stop_all_peers

  local ng="miss|$g|nginx-pass" cp="miss|$g|cachalot-pass" cs="miss|$g|cachalot-store"
  echo
  echo "== miss (issue #10): GET /bench/1k?miss=<new each request>, $c connections, $DURATION x $ROUNDS rounds"
  echo "   *-pass: forwarded, never stored (cachalot: a bypass route); the others store every response (caches of ${CACHE_MB} MiB, evicting once full)"
  echo "   stored: a URL from the end of the last run, asked again, did not reach the origin$objects"
  print_header "cpu/req vs nginx-pass, stored?"
  for row in "${MISS_ROWS[@]}"; do
    label=${row%%:*} peer=${row#*:}
    peer_available "$peer" || continue
    print_row "$label" "miss|$g|$label" "$(ratio "$(val CPUREQ "miss|$g|$label")" "$(val CPUREQ "$ng")") ${stored[$label]:-}"
  done
  target_le "$(val CPUREQ "$cp")" 1 "$(val CPUREQ "$ng")" "miss: cachalot pass-through cpu/req <= nginx proxy_pass"
  target_le "$(val CPUREQ "$cs")" 1.2 "$(val CPUREQ "$ng")" "miss: cachalot miss-that-stores cpu/req <= 1.2 x nginx proxy_pass"
}

# ---------------------------------------------------------------- case: stale

stale_runs() { # PEER: fresh hits, then stale-every-second hits, back to back
  local peer=$1 c=$FIRST_CONNS base="http://127.0.0.1:${PORT_OF[$1]}" pid=${PID_OF[$1]}
  check_200 "$base/bench/1k" || return 1
  warm "$base/bench/1k"
  check_alive "$pid" "$peer" || return 1
  measure "fresh|$peer" "$pid" "$base/bench/1k" "$c" || return 1
  local url="$base/bench/1k?max-age=1&swr=30"
  check_200 "$url" || return 1
  warm "$url"
  check_alive "$pid" "$peer" || return 1
  measure "stale|$peer" "$pid" "$url" "$c"
}

# HAProxy's cache and ATS 9.2 have no stale-while-revalidate, so they are not in this case.
STALE_PEERS=(cachalot varnish nginx-cache)

case_stale() {
  local c=$FIRST_CONNS peer
  log "== stale: /bench/1k?max-age=1&swr=30, $c connections (one round: each peer's fresh run, then its stale run)"
  for peer in "${STALE_PEERS[@]}"; do
    peer_available "$peer" || continue
    if launch "$peer"; then stale_runs "$peer"; stop_peer "$peer"; fi
  done

  echo
  echo "== stale (issue #4): GET /bench/1k?max-age=1&swr=30 (stale every second), $c connections, $DURATION, one round"
  echo "   fresh: the same peer's /bench/1k hits, measured just before; origin/s should stay near 1 (one refresh per second)"
  echo "   HAProxy's cache and ATS 9.2 do not implement stale-while-revalidate: not measured"
  printf '%-14s %10s %9s %9s %10s %12s %9s %7s %6s\n' name 'req/s' p50 p99 'fresh' 'stale/fresh' 'origin/s' errors noise
  local k f
  for peer in "${STALE_PEERS[@]}"; do
    peer_available "$peer" || continue
    k="stale|$peer" f="fresh|$peer"
    printf '%-14s %10s %9s %9s %10s %12s %9s %7s %6s\n' "$peer" "$(val RPS "$k")" "$(fmt_us "$(val P50 "$k")")" \
      "$(fmt_us "$(val P99 "$k")")" "$(val RPS "$f")" "$(ratio "$(val RPS "$k")" "$(val RPS "$f")")" \
      "$([[ -n "${OREQ[$k]:-}" ]] && awk -v n="${OREQ[$k]}" -v s="$DURATION_S" 'BEGIN { printf "%.1f", n / s }' || echo -)" \
      "$(val ERRS "$k")" "$(val NOISE "$k")"
  done
}

# ---------------------------------------------------------------- memory helpers

# Memory of a peer right now, KiB: "PSS RSS FILES" where FILES is what its
# cache directory occupies on tmpfs (nginx keeps bodies in files there).
# HAProxy's cache is one shared area allocated and touched at start, so its
# growth is ~0: what the objects use is the 1 kB blocks "show cache" lists for
# them (the blocks hold HAProxy's entry, the stored head and the body).
mem_sample() { # PEER
  local pid=${PID_OF[$1]} files=0
  if [[ -n "${CACHE_DIR_OF[$1]:-}" && -d "${CACHE_DIR_OF[$1]}" ]]; then
    files=$(du -s -k "${CACHE_DIR_OF[$1]}" 2>/dev/null | awk '{print $1}')
  elif [[ "$1" == haproxy ]]; then
    files=$(haproxy_cache_usage | awk '{print $2}')
  fi
  echo "$(pss_kib "$pid") $(rss_kib "$pid") ${files:-0}"
}

# "OBJECTS BLOCKS" from HAProxy's "show cache" (one line per object, "(N blocks)").
haproxy_cache_usage() {
  "$PYTHON" - "${DIR_OF[haproxy]}/haproxy.sock" <<'PY' 2>/dev/null
import re, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(30)
s.connect(sys.argv[1])
s.sendall(b"show cache\n")
data = b""
while True:
    d = s.recv(1 << 20)
    if not d: break
    data += d
objects = blocks = 0
for line in data.decode(errors="replace").splitlines():
    m = re.search(r"hash:.*\((\d+) blocks?\)", line)
    if m:
        objects += 1
        blocks += int(m.group(1))
print(objects, blocks)
PY
}

# Objects a peer holds right now ("" if it cannot say).
object_count() { # PEER
  case "$1" in
    cachalot) cachalot_metric "${ADMIN_OF[cachalot]}" cachalot_cache_objects ;;
    varnish)
      [[ -n "$VARNISHSTAT" ]] || return 0
      "$VARNISHSTAT" -n "${DIR_OF[varnish]}/work" -1 -f MAIN.n_object 2>/dev/null | awk '$1 == "MAIN.n_object" {print $2}'
      ;;
    nginx-cache) find "${CACHE_DIR_OF[nginx-cache]}" -type f 2>/dev/null | wc -l ;;
    ats)
      # stats_over_http (loaded for this case only): directory entries in use,
      # a figure ATS refreshes every few seconds: read until it stops moving.
      local prev="" cur
      for _ in $(seq 20); do
        cur=$(curl -s --max-time 10 "http://127.0.0.1:${PORT_OF[ats]}/_stats" | tr ',' '\n' |
          sed -n 's/.*"proxy\.process\.cache\.direntries\.used": *"\([0-9]*\)".*/\1/p')
        [[ -n "$cur" && "$cur" == "$prev" ]] && break
        prev=$cur
        sleep 2
      done
      echo "$cur"
      ;;
    haproxy) haproxy_cache_usage | awk '{print $1}' ;;
  esac
}

# fill PEER PATH KEY PREFIX COUNT AFTER_URL_PATH [SECONDS]: walk COUNT distinct
# URLs once each through PEER (bench/walk.lua), bounded by --fill-time (or
# SECONDS). Sets F_RPS, F_SECS, F_ERRS, F_WALKED (walked URLs answered) and
# F_COMPLETE (1 if all COUNT were answered).
fill() { # ... [SECONDS]: bounded by SECONDS instead of --fill-time
  local peer=$1 path=$2 key=$3 prefix=$4 count=$5 after=$6 limit=${7:-$FILL_S}s c=$FIRST_CONNS
  local out=$BENCH_TMP/fill-$peer-$prefix.txt
  F_RPS="" F_SECS="" F_ERRS="" F_COMPLETE=0 F_WALKED=0
  run_wrk "$LOAD_CPU" "http://127.0.0.1:${PORT_OF[$peer]}/" "$c" "$limit" "$out" \
    "$HERE/walk.lua" "$path" "$key" "$prefix" "$count" "$after" $((4 * c)) || return 1
  F_RPS=$W_RPS F_SECS=$W_SECS F_ERRS=$W_ERRS
  F_WALKED=$((W_REQS < count ? W_REQS : count))
  ((W_REQS >= count)) && F_COMPLETE=1
  ((F_COMPLETE)) || log "  $peer: the walk of $count URLs stopped after $W_REQS answers (time limit $limit)"
  return 0
}

# ---------------------------------------------------------------- case: memory

MEMORY_PEERS=(cachalot haproxy ats varnish nginx-cache)
declare -A MEM_BPO MEM_RSS_BPO
MEM_CACHE_BPO=""

case_memory() {
  local n=$MEMORY_OBJECTS peer c=$FIRST_CONNS
  log "== memory: $n distinct 1-byte objects (/bench/1?mem=...) into each cache, one at a time"
  # What the origin sends with each object: status line, fields and the blank line.
  local head_bytes
  head_bytes=$(curl -s --max-time 10 -o /dev/null -w '%{size_header}' "http://127.0.0.1:$ORIGIN_PORT/bench/1?mem=f-1")
  local saved_mb=$CACHE_MB saved_zone=$NGINX_KEYS_ZONE
  # Room for every object in every cache: cachalot and Varnish 4 GiB (memory is
  # only used as filled), nginx a 256 MiB keys zone (~2M keys at 8k per MiB)
  # and 4 GiB of files. HAProxy allocates and initializes its whole cache at
  # start (1 kB blocks, one per small object here; 2 GiB takes over a minute
  # on this VM), so it gets 1.5 KiB per object plus 64 MiB. ATS gets a cache
  # file of 6 KiB per object plus 256 MiB on tmpfs (it uses ~4 KiB per small object).
  NGINX_KEYS_ZONE=256m
  ATS_STATS=1
  declare -A growth_rss growth_pss growth_files objects fill_rps fill_errs complete cache_bytes charge
  for peer in "${MEMORY_PEERS[@]}"; do
    peer_available "$peer" || continue
    case "$peer" in
      haproxy) CACHE_MB=$((n * 3 / 2 / 1024 + 64)) ;;
      ats) CACHE_MB=$((n * 6 / 1024 + 256)) ;;
      *) CACHE_MB=4096 ;;
    esac
    launch "$peer" || continue
    local base="http://127.0.0.1:${PORT_OF[$peer]}" warm_url="/bench/1?mem=warm"
    if ! check_200 "$base$warm_url"; then stop_peer "$peer"; continue; fi
    warm "$base$warm_url"
    # Grow per-connection buffers before the baseline: a short hit run on the
    # stored object with the fill's connection count.
    run_wrk "$LOAD_CPU" "$base$warm_url" "$c" 1s "$BENCH_TMP/mem-pre-$peer.txt" >/dev/null
    sleep 1
    local o0 n0 m0 m1 n1 o1
    o0=$(origin_requests)
    n0=$(object_count "$peer")
    read -r -a m0 <<<"$(mem_sample "$peer")"
    log "  $peer: filling ..."
    if ! fill "$peer" /bench/1 mem f "$n" "$warm_url"; then check_alive "${PID_OF[$peer]}" "$peer"; stop_peer "$peer"; continue; fi
    sleep 2  # let background work settle (nginx's cache manager, Varnish's expiry thread)
    read -r -a m1 <<<"$(mem_sample "$peer")"
    n1=$(object_count "$peer")
    o1=$(origin_requests)
    if [[ -n "$n0" && -n "$n1" ]]; then
      objects[$peer]=$((n1 - n0))
    else
      objects[$peer]=$((o1 - o0))  # no count from the cache: objects fetched
      log "  $peer: no object count; using the origin's count of fetches"
    fi
    fill_rps[$peer]=$F_RPS fill_errs[$peer]=$F_ERRS complete[$peer]=$F_COMPLETE
    growth_pss[$peer]=$((m1[0] - m0[0]))
    growth_rss[$peer]=$((m1[1] - m0[1]))
    growth_files[$peer]=$((m1[2] - m0[2]))
    if [[ "$peer" == cachalot ]]; then
      cache_bytes[$peer]=$(cachalot_metric "${ADMIN_OF[cachalot]}" cachalot_cache_bytes)
      charge[$peer]=$(curl -s --max-time 10 "http://127.0.0.1:${ADMIN_OF[cachalot]}/cache?path=/bench/1?mem=f-1" |
        sed -n 's/.*"charge":\([0-9]*\).*/\1/p')
    fi
    log "  $peer: ${objects[$peer]} objects, pss +${growth_pss[$peer]} KiB, rss +${growth_rss[$peer]} KiB, files +${growth_files[$peer]} KiB, origin +$((o1 - o0))"
    stop_peer "$peer"
  done
  CACHE_MB=$saved_mb NGINX_KEYS_ZONE=$saved_zone ATS_STATS=0

  echo
  echo "== memory (issue #10): $n distinct objects, 1-byte body, $head_bytes B of origin head each (GET /bench/1?mem=f-N), one cache at a time"
  echo "   the demo origin always sends Date, Content-Type, Cache-Control, ETag, Last-Modified, X-Origin-Requests"
  echo "   and Content-Length ($head_bytes B with the status line), not ~150 B: /bench/1 is its smallest response"
  echo "   growth: after the fill minus before it (after a hit run on one stored object with $c connections);"
  echo "   B/object = (PSS growth of the process tree (shared memory counted once) + store) / objects; store: tmpfs cache"
  echo "   files (nginx: a file per object, 4 KiB pages; ATS: its cache file) or HAProxy's 1 kB blocks in its cache area"
  echo "   (allocated and touched at start, so its PSS does not grow)"
  printf '%-12s %9s %9s %7s %10s %8s %10s %10s %10s %10s\n' name objects 'fill/s' errors 'rss+ MiB' 'rss/obj' 'pss+ MiB' 'store MiB' 'B/object' 'over/obj'
  local bpo over
  for peer in "${MEMORY_PEERS[@]}"; do
    peer_available "$peer" || continue
    [[ -n "${objects[$peer]:-}" ]] || { printf '%-12s %9s\n' "$peer" "-"; continue; }
    bpo=$(awk -v p="${growth_pss[$peer]}" -v f="${growth_files[$peer]}" -v n="${objects[$peer]}" 'BEGIN { if (n > 0) printf "%.0f", (p + f) * 1024 / n; else print "-" }')
    over=$(awk -v b="$bpo" -v h="$head_bytes" 'BEGIN { if (b == "-") print "-"; else printf "%.0f", b - h - 1 }')
    MEM_BPO[$peer]=$bpo
    MEM_RSS_BPO[$peer]=$(awk -v k="${growth_rss[$peer]}" -v n="${objects[$peer]}" 'BEGIN { if (n > 0) printf "%.0f", k * 1024 / n; else print "-" }')
    printf '%-12s %9s %9s %7s %10s %8s %10s %10s %10s %10s%s\n' "$peer" "${objects[$peer]}" "${fill_rps[$peer]}" "${fill_errs[$peer]}" \
      "$(awk -v k="${growth_rss[$peer]}" 'BEGIN { printf "%.1f", k / 1024 }')" "${MEM_RSS_BPO[$peer]}" \
      "$(awk -v k="${growth_pss[$peer]}" 'BEGIN { printf "%.1f", k / 1024 }')" \
      "$(awk -v k="${growth_files[$peer]}" 'BEGIN { printf "%.1f", k / 1024 }')" "$bpo" "$over" \
      "$( ((complete[$peer])) || echo "  (fill incomplete)")"
  done
  echo "   over/obj: B/object minus the origin head ($head_bytes B) and the body (1 B): what the cache adds per object"
  if [[ -n "${objects[cachalot]:-}" ]] && ((objects[cachalot] > 0)); then
    local n_c=${objects[cachalot]} rss_bpo cb_bpo c_over
    rss_bpo=$(awk -v k="${growth_rss[cachalot]}" -v n="$n_c" 'BEGIN { printf "%.0f", k * 1024 / n }')
    cb_bpo=$(awk -v b="${cache_bytes[cachalot]:-0}" -v n="$n_c" 'BEGIN { printf "%.0f", b / n }')
    c_over=$(awk -v b="$rss_bpo" -v h="$head_bytes" 'BEGIN { printf "%.0f", b - h - 1 }')
    MEM_CACHE_BPO=$cb_bpo
    echo "   cachalot: RSS growth $rss_bpo B/object, cachalot_cache_bytes $cb_bpo B/object (one entry's charge: ${charge[cachalot]:-?} B), overhead $c_over B/object beyond the $head_bytes B head and 1 B body"
    target_le "$c_over" 1 200 "memory: cachalot overhead <= 200 B/object beyond head and body"
    local cb_kib
    cb_kib=$(awk -v b="${cache_bytes[cachalot]:-0}" 'BEGIN { printf "%.0f", b / 1024 }')
    awk -v c="$cb_kib" -v r="${growth_rss[cachalot]}" 'BEGIN { d = c - r; if (d < 0) d = -d; exit !(r > 0 && d <= 0.05 * r) }'
    verdict $? "memory: cachalot_cache_bytes within 5% of RSS growth ($(ratio "$cb_kib" "${growth_rss[cachalot]}"))"
  fi
}

# ---------------------------------------------------------------- case: million

declare -A MIL
case_million() {
  local n=$MILLION_OBJECTS budget_mb=512 peer=cachalot
  log "== million: $n distinct 100-byte objects into cachalot with max_memory ${budget_mb}MiB"
  if ! peer_available cachalot; then echo; echo "== million: skipped (no cachalot)"; return; fi
  local saved_mb=$CACHE_MB
  CACHE_MB=$budget_mb
  launch cachalot || { CACHE_MB=$saved_mb; return; }
  CACHE_MB=$saved_mb
  local base="http://127.0.0.1:${PORT_OF[cachalot]}" admin=${ADMIN_OF[cachalot]} pid=${PID_OF[cachalot]}
  local warm_url="/bench/100?m=warm" bound_kib=$(((budget_mb + 64) * 1024))
  check_200 "$base$warm_url" || { stop_peer cachalot; return; }
  warm "$base$warm_url"

  # --fill-time bounds the whole case: each walk gets what is left of it.
  local deadline=$((SECONDS + FILL_S)) left
  MIL[fill_complete]=0 MIL[pass_complete]=0 MIL[flood_complete]=0
  MIL[pass_origin]=- MIL[pass_misses]=- MIL[hit_rate]=- MIL[pass_rps]=- MIL[pass_errs]=-
  MIL[flood_rps]=- MIL[flood_errs]=- MIL[rss_flood]=0 MIL[hwm_flood]=0 MIL[objects_flood]=- MIL[bytes_flood]=0 MIL[evicted_flood]=-

  # 1. The fill.
  local o0 o1 h0 h1
  o0=$(origin_requests)
  log "  million: fill (up to ${FILL_S}s for the whole case) ..."
  fill cachalot /bench/100 m f "$n" "$warm_url" "$FILL_S" || { check_alive "$pid" cachalot; stop_peer cachalot; return; }
  MIL[fill_rps]=$F_RPS MIL[fill_secs]=$F_SECS MIL[fill_errs]=$F_ERRS MIL[fill_complete]=$F_COMPLETE
  sleep 1
  o1=$(origin_requests)
  MIL[fill_origin]=$((o1 - o0))
  MIL[objects]=$(cachalot_metric "$admin" cachalot_cache_objects)
  MIL[bytes]=$(cachalot_metric "$admin" cachalot_cache_bytes)
  MIL[evicted]=$(cachalot_metric "$admin" cachalot_cache_evicted_objects)
  MIL[rss_fill]=$(rss_kib "$pid")
  MIL[hwm_fill]=$(hwm_kib "$pid")

  # 2. A second pass over the same URLs: every one should be a hit.
  left=$((deadline - SECONDS))
  if ((left >= 5)); then
    o0=$(origin_requests)
    h0=$(cachalot_metric "$admin" cachalot_requests_total 'result="miss",class="2xx"')
    log "  million: second pass (${left}s left) ..."
    fill cachalot /bench/100 m f "$n" "$warm_url" "$left" || { check_alive "$pid" cachalot; stop_peer cachalot; return; }
    MIL[pass_rps]=$F_RPS MIL[pass_errs]=$F_ERRS MIL[pass_complete]=$F_COMPLETE
    o1=$(origin_requests)
    h1=$(cachalot_metric "$admin" cachalot_requests_total 'result="miss",class="2xx"')
    MIL[pass_origin]=$((o1 - o0))
    MIL[pass_misses]=$((h1 - h0))
    # Over the walked URLs answered (all n unless the time ran out).
    MIL[hit_rate]=$(awk -v m="${MIL[pass_origin]}" -v n="$F_WALKED" 'BEGIN { if (n > 0) printf "%.2f", 100 * (n - m) / n; else print "-" }')
  else
    log "  million: no time left for the second pass (--fill-time $FILL_TIME)"
  fi

  # 3. A flood of new objects, 3x the budget in body bytes alone.
  local flood=$((3 * budget_mb * 1024 * 1024 / FLOOD_BYTES))
  MIL[flood_n]=$flood
  left=$((deadline - SECONDS))
  if ((left >= 5)); then
    log "  million: flood of $flood new ${FLOOD_SIZE} objects (${left}s left) ..."
    fill cachalot "/bench/$FLOOD_SIZE" fl x "$flood" "$warm_url" "$left" || { check_alive "$pid" cachalot; stop_peer cachalot; return; }
    MIL[flood_rps]=$F_RPS MIL[flood_errs]=$F_ERRS MIL[flood_complete]=$F_COMPLETE
    sleep 1
    MIL[rss_flood]=$(rss_kib "$pid")
    MIL[hwm_flood]=$(hwm_kib "$pid")
    MIL[objects_flood]=$(cachalot_metric "$admin" cachalot_cache_objects)
    MIL[bytes_flood]=$(cachalot_metric "$admin" cachalot_cache_bytes)
    MIL[evicted_flood]=$(cachalot_metric "$admin" cachalot_cache_evicted_objects)
  else
    log "  million: no time left for the flood (--fill-time $FILL_TIME)"
  fi
  stop_peer cachalot

  # shellcheck disable=SC2016  # an awk program
  local mib='{ printf "%.1f", $1 / 1024 }'
  echo
  echo "== million (issue #10): $n distinct objects of 100 B (GET /bench/100?m=f-N) into cachalot, max_memory ${budget_mb}MiB, $FIRST_CONNS connections"
  echo "   fill:        $(fmt_k "${MIL[fill_rps]}") req/s, ${MIL[fill_secs]} s, errors ${MIL[fill_errs]}, origin fetches ${MIL[fill_origin]}$( ((MIL[fill_complete])) || echo ", INCOMPLETE (--fill-time)")"
  echo "               cachalot_cache_objects ${MIL[objects]} (1 warm object + $n walked), cache_bytes $(awk -v b="${MIL[bytes]}" 'BEGIN { printf "%.1f", b / 1048576 }') MiB, evicted ${MIL[evicted]}"
  echo "               RSS $(echo "${MIL[rss_fill]}" | awk "$mib") MiB, peak $(echo "${MIL[hwm_fill]}" | awk "$mib") MiB (bound: budget + 64 MiB = $((budget_mb + 64)) MiB)"
  echo "   second pass: $(fmt_k "${MIL[pass_rps]}") req/s, origin fetches ${MIL[pass_origin]}, cachalot misses ${MIL[pass_misses]}, hit rate ${MIL[hit_rate]}%, errors ${MIL[pass_errs]}"
  echo "   flood:       $flood new ${FLOOD_SIZE} objects ($(awk -v n="$flood" -v b="$FLOOD_BYTES" 'BEGIN { printf "%.0f", n * b / 1048576 }') MiB of bodies = 3 x budget), $(fmt_k "${MIL[flood_rps]}") req/s, errors ${MIL[flood_errs]}$( ((MIL[flood_complete])) || echo ", INCOMPLETE (--fill-time)")"
  echo "               objects ${MIL[objects_flood]}, cache_bytes $(awk -v b="${MIL[bytes_flood]}" 'BEGIN { printf "%.1f", b / 1048576 }') MiB, evicted ${MIL[evicted_flood]}, RSS $(echo "${MIL[rss_flood]}" | awk "$mib") MiB, peak $(echo "${MIL[hwm_flood]}" | awk "$mib") MiB"
  [[ "${MIL[objects]}" -ge $((n + 1)) && "${MIL[fill_complete]}" == 1 ]]
  verdict $? "million: all $n objects fit in ${budget_mb}MiB (cachalot_cache_objects ${MIL[objects]})"
  ((MIL[rss_fill] <= bound_kib))
  verdict $? "million: RSS after the fill <= budget + 64 MiB ($(echo "${MIL[rss_fill]}" | awk "$mib") MiB)"
  if [[ "${MIL[pass_rps]}" == - ]]; then
    verdict skip "million: second pass hit rate 100% (not run: --fill-time)"
  else
    [[ "${MIL[pass_origin]}" == 0 && "${MIL[pass_misses]}" == 0 && "${MIL[pass_complete]}" == 1 ]]
    verdict $? "million: second pass hit rate 100% (${MIL[hit_rate]}%$( ((MIL[pass_complete])) || echo ", pass INCOMPLETE"))"
  fi
  if [[ "${MIL[flood_rps]}" == - ]]; then
    verdict skip "million: RSS during and after a 3x-budget flood <= budget + 64 MiB (not run: --fill-time)"
  else
    ((MIL[rss_flood] <= bound_kib && MIL[hwm_flood] <= bound_kib && MIL[flood_complete]))
    verdict $? "million: RSS during and after a 3x-budget flood <= budget + 64 MiB (peak $(echo "${MIL[hwm_flood]}" | awk "$mib") MiB$( ((MIL[flood_complete])) || echo ", flood INCOMPLETE"))"
  fi
}

# ---------------------------------------------------------------- case: instructions

declare -A INSTR
case_instructions() {
  log "== instructions: callgrind instruction counts per request (bench/instructions.sh)"
  echo
  echo "== instructions: cachalot instructions per request under callgrind (bench/instructions.sh; stable where req/s is not)"
  if ! ((HAVE_CACHALOT)) || ! command -v valgrind >/dev/null; then
    echo "   skipped (needs cachalot and valgrind)"
    return
  fi
  local k line
  for k in hit pass miss; do
    line=$("$HERE/instructions.sh" --cachalot "$CACHALOT_BIN" --origin "$ORIGIN_BIN" --case "$k" 2>"$BENCH_TMP/instructions-$k.log" | tail -1)
    if [[ "$line" =~ :\ ([0-9]+)\ instructions/request ]]; then
      INSTR[$k]=${BASH_REMATCH[1]}
      echo "   $line"
    else
      echo "   $k: failed (see $BENCH_TMP/instructions-$k.log with --keep-tmp)"
      sed 's/^/    | /' "$BENCH_TMP/instructions-$k.log" | tail -5
    fi
  done
}

# ---------------------------------------------------------------- summary

# cell KEY [p99|""] [ratio]: "73.4k · 13.2us" (median req/s and cpu/req), with
# p99; "ratio" appends the hit ratios over HAProxy's row, e.g. "(1.30x · 0.83x)".
cell() {
  local key=$1
  [[ -n "${RPS[$key]:-}" ]] || { echo "–"; return; }
  local s r h="${key%|*}|haproxy"
  s="$(fmt_k "${RPS[$key]}") · ${CPUREQ[$key]}us"
  [[ "${2:-}" == p99 ]] && s="$s · p99 $(fmt_us "${P99[$key]}")"
  if [[ "${3:-}" == ratio && -n "${RPS[$h]:-}" ]]; then
    r="$(ratio "${RPS[$key]}" "${RPS[$h]}") · $(ratio "${CPUREQ[$key]}" "${CPUREQ[$h]}")"
    [[ "${2:-}" == p99 ]] && r="$r · $(ratio "${P99[$key]}" "${P99[$h]}")"
    s="$s ($r)"
  fi
  echo "$s"
}

summary() {
  local cols=(cachalot haproxy ats varnish nginx-cache nginx-pass nginx-return direct)
  local out=() row c size g p
  local header="${cols[*]}"
  out+=("| case | ${header// / | } |")
  out+=("|---$(printf '|---%.0s' "${cols[@]}")|")
  mdrow() { # LABEL CELL...
    local label=$1
    shift
    local line="| $label"
    for c in "$@"; do line+=" | $c"; done
    out+=("$line |")
  }
  if want_case proxy; then
    g="1k|$FIRST_CONNS"
    mdrow "proxy 1k, $FIRST_CONNS c: req/s · cpu/req" "$(cell "proxy|$g|cachalot")" – – – – "$(cell "proxy|$g|nginx-pass")" – "$(cell "proxy|$g|direct")"
  fi
  if want_case hit; then
    local run with_p99
    for run in "${HIT_RUNS[@]}"; do
      size=${run%@*} c=${run#*@} g="${run%@*}|${run#*@}" with_p99=""
      ((c >= 500)) && with_p99=p99
      mdrow "hit $size, $c c: req/s · cpu/hit$([[ -n "$with_p99" ]] && echo " · p99") (ratios: ÷ HAProxy)" \
        "$(cell "hit|$g|cachalot" "$with_p99" ratio)" "$(cell "hit|$g|haproxy" "$with_p99")" "$(cell "hit|$g|ats" "$with_p99" ratio)" \
        "$(cell "hit|$g|varnish" "$with_p99" ratio)" "$(cell "hit|$g|nginx-cache" "$with_p99" ratio)" – \
        "$([[ "$size" == 1k ]] && cell "hit|$g|nginx-return" "$with_p99" ratio || echo –)" –
    done
  fi
  if want_case miss; then
    g="1k|$FIRST_CONNS"
    mdrow "miss, pass-through, new URL each: req/s · cpu/req" "$(cell "miss|$g|cachalot-pass")" – – – – "$(cell "miss|$g|nginx-pass")" – –
    mdrow "miss that stores, new URL each: req/s · cpu/req" "$(cell "miss|$g|cachalot-store")" "$(cell "miss|$g|haproxy")" \
      "$(cell "miss|$g|ats")" "$(cell "miss|$g|varnish")" "$(cell "miss|$g|nginx-cache")" – – –
  fi
  if want_case stale; then
    local st=()
    for p in cachalot haproxy ats varnish nginx-cache; do
      if [[ -n "${RPS["stale|$p"]:-}" ]]; then
        st+=("$(fmt_k "${RPS["stale|$p"]}") ($(ratio "${RPS["stale|$p"]}" "${RPS["fresh|$p"]:-}") fresh)")
      else
        st+=("–")
      fi
    done
    mdrow "stale-while-revalidate 1k, $FIRST_CONNS c: req/s (vs fresh)" "${st[@]}" – – –
  fi
  if want_case memory; then
    local mem=()
    for p in cachalot haproxy ats varnish nginx-cache; do
      if [[ -n "${MEM_BPO[$p]:-}" ]]; then
        if [[ "$p" == cachalot ]]; then
          mem+=("${MEM_BPO[$p]} B (RSS ${MEM_RSS_BPO[$p]} B, cache_bytes ${MEM_CACHE_BPO:-?} B)")
        else
          mem+=("${MEM_BPO[$p]} B")
        fi
      else
        mem+=("–")
      fi
    done
    mdrow "memory per 1 B object, $(fmt_k "$MEMORY_OBJECTS") objects: (PSS growth + store) / objects" "${mem[@]}" – – –
  fi
  if want_case million && [[ -n "${MIL[objects]:-}" ]]; then
    local m pass flood
    m="${MIL[objects]} stored$( ((MIL[fill_complete])) || echo " (fill INCOMPLETE)"), RSS $(awk -v k="${MIL[rss_fill]}" 'BEGIN { printf "%.0f", k / 1024 }') MiB"
    pass="2nd pass ${MIL[hit_rate]}% hits$( ((MIL[pass_complete])) || echo " (INCOMPLETE)")"
    [[ "${MIL[pass_rps]}" == - ]] && pass="no 2nd pass (--fill-time)"
    flood="flood peak RSS $(awk -v k="${MIL[hwm_flood]}" 'BEGIN { printf "%.0f", k / 1024 }') MiB$( ((MIL[flood_complete])) || echo " (INCOMPLETE)")"
    [[ "${MIL[flood_rps]}" == - ]] && flood="no flood (--fill-time)"
    mdrow "$(fmt_k "$MILLION_OBJECTS") objects of 100 B, max_memory 512 MiB (bound: RSS 576 MiB)" "$m, $pass, $flood" – – – – – – –
  fi
  if want_case instructions && [[ -n "${INSTR[hit]:-}${INSTR[pass]:-}${INSTR[miss]:-}" ]]; then
    mdrow "instructions/request (callgrind): hit · pass · miss" "${INSTR[hit]:-?} · ${INSTR[pass]:-?} · ${INSTR[miss]:-?}" – – – – – – –
  fi

  local t md=()
  while read -r t; do md+=("_${t#\# }_  "); done < <(printf '%s\n' "${HEADER_LINES[0]}" "${HEADER_LINES[1]}" "${HEADER_LINES[4]}")
  local noise_note=""
  [[ -n "$MAX_NOISE" ]] && noise_note="; other processes used up to ${MAX_NOISE}% of the machine's CPU during a run"
  md+=("_median of $ROUNDS interleaved rounds of $DURATION; cells: req/s · CPU µs per request${noise_note}; whole run $((SECONDS / 60)) min_")
  md+=("" "${out[@]}" "")
  for t in "${TARGET_LINES[@]}"; do md+=("- $t"); done
  echo
  echo "== summary (markdown)"
  echo
  printf '%s\n' "${md[@]}"
  [[ -n "$MARKDOWN_FILE" ]] && printf '%s\n' "${md[@]}" >"$MARKDOWN_FILE"
  return 0
}

# ---------------------------------------------------------------- main

for c in $ALL_CASES; do
  want_case "$c" || continue
  log "[$(date -u +%H:%M:%S), $((SECONDS / 60))m$((SECONDS % 60))s into the run]"
  "case_$c"
done
summary
exit 0
}
