#!/usr/bin/env bash
# Cachalot benchmark harness: cachalot against direct origin access, nginx
# (proxy_pass and proxy_cache) and Varnish on one 2-core machine, loopback only.
# See bench/README.md for what each case measures and how to read the ratios.
#
# CPU placement (2 cores): the proxy under test gets CPU 0 to itself; wrk and
# the origin share CPU 1. In "hit" runs the origin is idle, so wrk has CPU 1 to
# itself; in "proxy" runs every peer pays the same origin cost on CPU 1. For
# the "direct" row the origin is alone with wrk on CPU 1 (CPU 0 idles), so it
# is a latency floor for one hop, not a throughput ceiling.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$HERE/lib.sh"

usage() {
  cat <<'EOF'
usage: bench/run.sh [options]
  --duration D        wrk duration per measured run (default 10s)
  --connections N[,N] connections (default: proxy 50, hit 50,500, stale 50);
                      proxy and stale use the first value
  --case C            all | proxy | hit | stale (default all)
  --build-dir DIR     build tree with cachalot and demo/cachalot-origin
                      (default build-release; configured Release if absent)
  --no-build          use the binaries in the build dir as they are
  --cachalot BIN      use this cachalot binary
  --origin BIN        use this cachalot-origin binary
  --sizes S[,S]       body sizes for "hit" (default 1k,64k)
  --warmup D          unmeasured wrk run before each measured one (default 1s; 0 = none)
  --origin-cpu N      CPU for the origin (default 1, shared with wrk)
  --wait-idle S       before each measured run, wait up to S seconds for the
                      machine to be idle (other sessions compiling); default 0
  --keep-tmp          keep the temporary directory (configs, logs, wrk output)
EOF
}

DURATION=10s
CONNS_ARG=""
CASE=all
BUILD_DIR=$ROOT/build-release
NO_BUILD=0
CACHALOT_BIN=""
ORIGIN_BIN=""
SIZES=1k,64k
WARMUP=1s
WAIT_IDLE=0
PROXY_CPU=0    # the proxy under test
LOAD_CPU=1     # wrk
ORIGIN_CPU=1   # the origin (see the note at the top)

while (($#)); do
  case "$1" in
    --duration) DURATION=${2:?}; shift 2 ;;
    --connections) CONNS_ARG=${2:?}; shift 2 ;;
    --case) CASE=${2:?}; shift 2 ;;
    --build-dir) BUILD_DIR=$(realpath -m "${2:?}"); shift 2 ;;
    --no-build) NO_BUILD=1; shift ;;
    --cachalot) CACHALOT_BIN=$(realpath -m "${2:?}"); shift 2 ;;
    --origin) ORIGIN_BIN=$(realpath -m "${2:?}"); shift 2 ;;
    --sizes) SIZES=${2:?}; shift 2 ;;
    --warmup) WARMUP=${2:?}; shift 2 ;;
    --origin-cpu) ORIGIN_CPU=${2:?}; shift 2 ;;
    --wait-idle) WAIT_IDLE=${2:?}; shift 2 ;;
    --keep-tmp) KEEP_TMP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
case "$CASE" in all | proxy | hit | stale) ;; *) die "--case must be all, proxy, hit or stale" ;; esac
[[ "$DURATION" =~ ^[0-9]+[smh]?$ ]] || die "--duration: expected e.g. 10s"
[[ "$WAIT_IDLE" =~ ^[0-9]+$ ]] || die "--wait-idle: expected seconds"
[[ "$ORIGIN_CPU" =~ ^[0-9]+$ ]] || die "--origin-cpu: expected a CPU number"
[[ "$WARMUP" =~ ^[0-9]+[smh]?$ ]] || die "--warmup: expected e.g. 1s or 0"
[[ -z "$CONNS_ARG" || "$CONNS_ARG" =~ ^[0-9]+(,[0-9]+)*$ ]] || die "--connections: expected N or N,N"
[[ "$SIZES" =~ ^[0-9]+[kKmM]?(,[0-9]+[kKmM]?)*$ ]] || die "--sizes: expected e.g. 1k,64k"

IFS=, read -r -a HIT_CONNS <<<"${CONNS_ARG:-50,500}"
IFS=, read -r -a SIZE_LIST <<<"$SIZES"
FIRST_CONNS=${CONNS_ARG%%,*}
FIRST_CONNS=${FIRST_CONNS:-50}
DURATION_S=$(duration_seconds "$DURATION")

# ---------------------------------------------------------------- tools

for tool in wrk taskset curl python3 awk ps; do
  command -v "$tool" >/dev/null || die "$tool is required"
done
HAVE_NGINX=0
HAVE_VARNISH=0
NGINX=$(command -v nginx || ls /usr/sbin/nginx 2>/dev/null || true)
VARNISHD=$(command -v varnishd || ls /usr/sbin/varnishd 2>/dev/null || true)
if [[ -n "$NGINX" ]]; then HAVE_NGINX=1; else log "nginx not found: nginx rows are skipped"; fi
if [[ -n "$VARNISHD" ]]; then HAVE_VARNISH=1; else log "varnishd not found: Varnish rows are skipped"; fi
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
  if [[ -z "$CACHALOT_BIN" ]] &&
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
if [[ -z "$CACHALOT_BIN" ]]; then
  CACHALOT_BIN=$BUILD_DIR/cachalot
  ((CACHALOT_BUILD_FAILED)) && HAVE_CACHALOT=0
fi
if [[ ! -x "$CACHALOT_BIN" ]]; then
  log "no cachalot binary at $CACHALOT_BIN: cachalot rows are skipped"
  HAVE_CACHALOT=0
fi

# ---------------------------------------------------------------- environment

BENCH_TMP=$(mktemp -d /tmp/cachalot-bench.XXXXXX)
trap bench_cleanup EXIT
trap 'exit 130' INT TERM
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
(($(ulimit -n) >= 4096)) || log "warning: ulimit -n is $(ulimit -n); 500-connection runs may fail"

# Start the origin on an ephemeral port; it prints "listening on 127.0.0.1:PORT".
start_server "$ORIGIN_CPU" "$BENCH_TMP/origin.log" "$ORIGIN_BIN" --listen 127.0.0.1:0 --threads 1
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

echo "# cachalot bench: $(date -u '+%Y-%m-%d %H:%M:%SZ'), $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "# $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) CPUs; proxy on CPU $PROXY_CPU, wrk and origin on CPU $LOAD_CPU/$ORIGIN_CPU"
echo "# wrk -t1 --latency, ${DURATION} per run (warm-up ${WARMUP}); one worker/thread per proxy where configurable"
echo "# machine busy before start: $(machine_busy_pct 1)% (other sessions); the noise column is the same per run"
echo "# $( ((HAVE_NGINX)) && "$NGINX" -v 2>&1 | sed 's/.*: //')  $( ((HAVE_VARNISH)) && "$VARNISHD" -V 2>&1 | head -1 | sed 's/ revision.*//;s/(//')"

# ---------------------------------------------------------------- peers
# Each start_* sets PEER_PID and PEER_PORT, or returns 1 after saying why.

start_cachalot() {  # MODE: bypass | cache
  local mode=$1
  ((HAVE_CACHALOT)) || { log "  cachalot: skipped (no binary)"; return 1; }
  local dir=$BENCH_TMP/cachalot-$mode
  mkdir -p "$dir"
  PEER_PORT=$(pick_port)
  {
    echo "server:"
    echo "  listen: [\"127.0.0.1:$PEER_PORT\"]"
    echo "  workers: 1"
    echo "upstream:"
    echo "  url: \"http://127.0.0.1:$ORIGIN_PORT\""
    echo "cache:"
    echo "  max_memory: \"256MiB\""
    echo "admin:"
    echo "  listen: \"\""
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
  local dir=$BENCH_TMP/$name cache_dir user_directive=""
  mkdir -p "$dir"
  # tmpfs for proxy_cache_path, so hits are memory reads like the other caches.
  if [[ -z "$BENCH_SHM" ]]; then
    BENCH_SHM=$(mktemp -d /dev/shm/cachalot-bench.XXXXXX 2>/dev/null) || BENCH_SHM=""
    [[ -n "$BENCH_SHM" ]] || log "  note: /dev/shm not writable; nginx cache on $BENCH_TMP"
  fi
  cache_dir=${BENCH_SHM:-$BENCH_TMP}/nginx-cache-$name
  mkdir -p "$cache_dir"
  # As root the workers would switch to "nobody" and lose access to the temp dirs.
  ((EUID == 0)) && user_directive="user root;"
  PEER_PORT=$(pick_port)
  sed -e "s|@PREFIX@|$dir|g" -e "s|@CACHE_DIR@|$cache_dir|g" -e "s|@PORT@|$PEER_PORT|g" \
    -e "s|@ORIGIN_PORT@|$ORIGIN_PORT|g" -e "s|@USER_DIRECTIVE@|$user_directive|g" \
    "$HERE/$template" >"$dir/nginx.conf"
  start_server "$PROXY_CPU" "$dir/stderr.log" "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
  PEER_PID=$SERVER_PID
  wait_port "$PEER_PORT" "$PEER_PID" "$name" "$dir/error.log" || { stop_server "$PEER_PID"; return 1; }
}

start_varnish() {
  ((HAVE_VARNISH)) || { log "  varnish: skipped (varnishd not installed)"; return 1; }
  local dir=$BENCH_TMP/varnish max_conns=0 c
  mkdir -p "$dir"
  for c in "${HIT_CONNS[@]}" "$FIRST_CONNS"; do ((c > max_conns)) && max_conns=$c; done
  PEER_PORT=$(pick_port)
  sed -e "s|@ORIGIN_PORT@|$ORIGIN_PORT|g" "$HERE/varnish.vcl.in" >"$dir/bench.vcl"
  # Varnish needs a thread per active connection and cannot run on one thread,
  # so it is confined to the proxy CPU instead; threads are pre-spawned so the
  # runs do not measure thread creation. -j none: run as the current user.
  start_server "$PROXY_CPU" "$dir/varnishd.log" "$VARNISHD" -F -j none -n "$dir/work" -T none \
    -a "127.0.0.1:$PEER_PORT" -f "$dir/bench.vcl" -s malloc,256m \
    -p thread_pools=1 -p thread_pool_min=$((max_conns + 50)) -p thread_pool_max=$((max_conns * 2 + 100))
  PEER_PID=$SERVER_PID
  wait_port "$PEER_PORT" "$PEER_PID" varnish "$dir/varnishd.log" 30 || { stop_server "$PEER_PID"; return 1; }
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

declare -A RPS P50 P99 ERRS OREQ CPUREQ RSS NOISE

# measure KEY PID URL CONNS [ORIGIN_PORT]: warm-up run, then a measured run
# sampling the origin's request counter, the server's CPU time and the whole
# machine's CPU time around it. NOISE is the share of the machine's CPU used
# by anything other than the server, the origin and wrk during the run.
measure() {
  local key=$1 pid=$2 url=$3 conns=$4 oport=${5:-$ORIGIN_PORT}
  local out=$BENCH_TMP/wrk-${key//[|\/?=&]/_}.txt
  if [[ "$WARMUP" != 0 ]]; then
    run_wrk "$LOAD_CPU" "$url" "$conns" "$WARMUP" "$out.warmup" || { check_alive "$pid" "${key#*|}"; return 1; }
  fi
  wait_idle "$WAIT_IDLE"
  local o0 c0 g0 s0 o1 c1 g1 s1
  o0=$(origin_requests "$oport")
  s0=$(sys_ticks)
  c0=$(cpu_ticks "$pid")
  g0=$(cpu_ticks "$ORIGIN_PID")
  run_wrk "$LOAD_CPU" "$url" "$conns" "$DURATION" "$out" || { check_alive "$pid" "${key#*|}"; return 1; }
  check_alive "$pid" "${key#*|}" || return 1
  c1=$(cpu_ticks "$pid")
  g1=$(cpu_ticks "$ORIGIN_PID")
  s1=$(sys_ticks)
  o1=$(origin_requests "$oport")
  ((pid == ORIGIN_PID)) && g1=$g0
  RPS[$key]=$W_RPS
  P50[$key]=$W_P50_US
  P99[$key]=$W_P99_US
  ERRS[$key]=$W_ERRS
  OREQ[$key]=$((o1 - o0))
  CPUREQ[$key]=$(awk -v t=$((c1 - c0)) -v hz="$CLK_TCK" -v n="$W_REQS" 'BEGIN { printf "%.2f", t * 1e6 / hz / n }')
  RSS[$key]=$(awk -v k="$(rss_kib "$pid")" 'BEGIN { printf "%.1f", k / 1024 }')
  NOISE[$key]=$(awk -v a="$s0" -v b="$s1" -v ours=$((c1 - c0 + g1 - g0 + W_CPU_TICKS)) 'BEGIN {
    split(a, x, " "); split(b, y, " "); t = y[2] - x[2]; o = y[1] - x[1] - ours;
    printf "%.0f%%", ((t > 0 && o > 0) ? 100 * o / t : 0) }')
  log "  $key: ${W_RPS} req/s, p50 $(fmt_us "$W_P50_US"), p99 $(fmt_us "$W_P99_US"), noise ${NOISE[$key]}"
}

val() { # ARRAY KEY -> value or "-"
  local -n arr=$1
  echo "${arr[$2]:--}"
}

print_header() {
  printf '%-14s %10s %9s %9s %9s %8s %9s %7s %6s  %s\n' name 'req/s' p50 p99 'cpu/req' 'rss' 'origin' errors noise "$1"
}

print_row() { # NAME KEY RATIO_TEXT
  local key=$2
  printf '%-14s %10s %9s %9s %9s %8s %9s %7s %6s  %s\n' "$1" "$(val RPS "$key")" \
    "$(fmt_us "$(val P50 "$key")")" "$(fmt_us "$(val P99 "$key")")" \
    "$( [[ -n "${CPUREQ[$key]:-}" ]] && echo "${CPUREQ[$key]}us" || echo -)" \
    "$( [[ -n "${RSS[$key]:-}" ]] && echo "${RSS[$key]}M" || echo -)" \
    "$(val OREQ "$key")" "$(val ERRS "$key")" "$(val NOISE "$key")" "$3"
}

verdict() { # CONDITION_EXIT_CODE TEXT
  if [[ $1 == skip ]]; then echo "  target: $2: n/a"
  elif [[ $1 == 0 ]]; then echo "  target: $2: PASS"
  else echo "  target: $2: FAIL"; fi
}

# ---------------------------------------------------------------- case: proxy

case_proxy() {
  local c=$FIRST_CONNS url_path=/bench/1k
  log "== proxy: GET $url_path through each proxy with no cache, $c connections"
  local d="proxy|direct" dx="proxy|direct-x" ca="proxy|cachalot" ng="proxy|nginx"
  measure "$d" "$ORIGIN_PID" "http://127.0.0.1:$ORIGIN_PORT$url_path" "$c"
  # A second origin on the proxy's CPU: the same single hop, but across cores
  # like every proxied hop. It shows how much of a proxy's cost is the VM's
  # cross-CPU wake-ups rather than the proxy.
  if ((PROXY_CPU != ORIGIN_CPU)); then
    local log2=$BENCH_TMP/origin-cpu$PROXY_CPU.log port2=""
    start_server "$PROXY_CPU" "$log2" "$ORIGIN_BIN" --listen 127.0.0.1:0 --threads 1
    local pid2=$SERVER_PID
    for _ in $(seq 200); do
      port2=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$log2")
      [[ -n "$port2" ]] && break
      kill -0 "$pid2" 2>/dev/null || break
      sleep 0.05
    done
    if [[ -n "$port2" ]] && wait_port "$port2" "$pid2" origin-cpu$PROXY_CPU "$log2"; then
      measure "$dx" "$pid2" "http://127.0.0.1:$port2$url_path" "$c" "$port2"
    fi
    stop_server "$pid2"
  fi
  if start_cachalot bypass; then
    check_200 "http://127.0.0.1:$PEER_PORT$url_path" && measure "$ca" "$PEER_PID" "http://127.0.0.1:$PEER_PORT$url_path" "$c"
    stop_server "$PEER_PID"
  fi
  if start_nginx nginx-proxy-pass.conf.in nginx-pass; then
    check_200 "http://127.0.0.1:$PEER_PORT$url_path" && measure "$ng" "$PEER_PID" "http://127.0.0.1:$PEER_PORT$url_path" "$c"
    stop_server "$PEER_PID"
  fi

  echo
  echo "== proxy (issue #2): GET $url_path, no cache, $c connections, $DURATION; ratios vs direct"
  echo "   direct: wrk -> origin, both on CPU $LOAD_CPU; direct@cpu$PROXY_CPU: the origin on the proxy's CPU (one cross-CPU hop)"
  echo "   cpu/req: the server's own CPU time per request (the origin's for direct); origin: requests that reached it"
  print_header "req/s, p50 vs direct"
  print_row direct "$d" ""
  print_row "direct@cpu$PROXY_CPU" "$dx" "$(ratio "$(val RPS "$dx")" "$(val RPS "$d")") $(ratio "$(val P50 "$dx")" "$(val P50 "$d")")"
  print_row cachalot "$ca" "$(ratio "$(val RPS "$ca")" "$(val RPS "$d")") $(ratio "$(val P50 "$ca")" "$(val P50 "$d")")"
  print_row nginx-pass "$ng" "$(ratio "$(val RPS "$ng")" "$(val RPS "$d")") $(ratio "$(val P50 "$ng")" "$(val P50 "$d")")"
  if [[ -n "${RPS[$ca]:-}" && -n "${RPS[$ng]:-}" ]]; then
    num_le "${RPS[$ng]}" "${RPS[$ca]}"
    verdict $? "cachalot req/s >= nginx proxy_pass ($(ratio "${RPS[$ca]}" "${RPS[$ng]}"))"
  else
    verdict skip "cachalot req/s >= nginx proxy_pass"
  fi
  if [[ -n "${P50[$ca]:-}" && -n "${P50[$d]:-}" ]]; then
    num_le "${P50[$ca]}" "$(awk -v d="${P50[$d]}" 'BEGIN { print d * 1.15 }')"
    verdict $? "cachalot p50 <= 1.15 x direct p50 ($(ratio "${P50[$ca]}" "${P50[$d]}"))"
  else
    verdict skip "cachalot p50 <= 1.15 x direct p50"
  fi
}

# ---------------------------------------------------------------- case: hit

hit_runs() { # PEER: warm every size, then measure each size x connections
  local peer=$1 size c base="http://127.0.0.1:$PEER_PORT"
  for size in "${SIZE_LIST[@]}"; do
    check_200 "$base/bench/$size" || return 1
    warm "$base/bench/$size"
  done
  check_alive "$PEER_PID" "$peer" || return 1
  for size in "${SIZE_LIST[@]}"; do
    for c in "${HIT_CONNS[@]}"; do
      measure "hit|$peer|$size|$c" "$PEER_PID" "$base/bench/$size" "$c" ||
        kill -0 "$PEER_PID" 2>/dev/null || return 1
    done
  done
}

case_hit() {
  log "== hit: fresh cache hits, sizes ${SIZE_LIST[*]}, connections ${HIT_CONNS[*]}"
  if start_cachalot cache; then hit_runs cachalot; stop_server "$PEER_PID"; fi
  if start_varnish; then hit_runs varnish; stop_server "$PEER_PID"; fi
  if start_nginx nginx-proxy-cache.conf.in nginx-cache; then hit_runs nginx-cache; stop_server "$PEER_PID"; fi

  local size c ca vn ng
  for size in "${SIZE_LIST[@]}"; do
    for c in "${HIT_CONNS[@]}"; do
      ca="hit|cachalot|$size|$c" vn="hit|varnish|$size|$c" ng="hit|nginx-cache|$size|$c"
      echo
      echo "== hit (issue #3): GET /bench/$size, fresh, $c connections, $DURATION"
      print_header ""
      print_row cachalot "$ca" ""
      print_row varnish "$vn" ""
      print_row nginx-cache "$ng" ""
      echo "  cachalot/varnish: req/s $(ratio "$(val RPS "$ca")" "$(val RPS "$vn")"), p50 $(ratio "$(val P50 "$ca")" "$(val P50 "$vn")"), p99 $(ratio "$(val P99 "$ca")" "$(val P99 "$vn")"), cpu/req $(ratio "$(val CPUREQ "$ca")" "$(val CPUREQ "$vn")")"
      echo "  cachalot/nginx:   req/s $(ratio "$(val RPS "$ca")" "$(val RPS "$ng")"), p50 $(ratio "$(val P50 "$ca")" "$(val P50 "$ng")"), p99 $(ratio "$(val P99 "$ca")" "$(val P99 "$ng")"), cpu/req $(ratio "$(val CPUREQ "$ca")" "$(val CPUREQ "$ng")")"
    done
  done
}

# ---------------------------------------------------------------- case: stale

stale_runs() { # PEER: fresh hits, then stale-every-second hits, back to back
  local peer=$1 c=$FIRST_CONNS base="http://127.0.0.1:$PEER_PORT"
  check_200 "$base/bench/1k" || return 1
  warm "$base/bench/1k"
  check_alive "$PEER_PID" "$peer" || return 1
  measure "fresh|$peer" "$PEER_PID" "$base/bench/1k" "$c" || return 1
  local url="$base/bench/1k?max-age=1&swr=30"
  check_200 "$url" || return 1
  warm "$url"
  check_alive "$PEER_PID" "$peer" || return 1
  measure "stale|$peer" "$PEER_PID" "$url" "$c"
}

case_stale() {
  local c=$FIRST_CONNS
  log "== stale: /bench/1k?max-age=1&swr=30, $c connections"
  if start_cachalot cache; then stale_runs cachalot; stop_server "$PEER_PID"; fi
  if start_varnish; then stale_runs varnish; stop_server "$PEER_PID"; fi
  if start_nginx nginx-proxy-cache.conf.in nginx-cache; then stale_runs nginx-cache; stop_server "$PEER_PID"; fi

  echo
  echo "== stale (issue #4): GET /bench/1k?max-age=1&swr=30 (stale every second), $c connections, $DURATION"
  echo "   fresh: the same peer's /bench/1k hits, measured just before; origin/s should stay near 1 (one refresh per second)"
  printf '%-14s %10s %9s %9s %10s %12s %9s %7s %6s\n' name 'req/s' p50 p99 'fresh' 'stale/fresh' 'origin/s' errors noise
  local peer k f
  for peer in cachalot varnish nginx-cache; do
    k="stale|$peer" f="fresh|$peer"
    printf '%-14s %10s %9s %9s %10s %12s %9s %7s %6s\n' "$peer" "$(val RPS "$k")" "$(fmt_us "$(val P50 "$k")")" \
      "$(fmt_us "$(val P99 "$k")")" "$(val RPS "$f")" "$(ratio "$(val RPS "$k")" "$(val RPS "$f")")" \
      "$( [[ -n "${OREQ[$k]:-}" ]] && awk -v n="${OREQ[$k]}" -v s="$DURATION_S" 'BEGIN { printf "%.1f", n / s }' || echo -)" \
      "$(val ERRS "$k")" "$(val NOISE "$k")"
  done
}

# ---------------------------------------------------------------- main

case "$CASE" in
  proxy) case_proxy ;;
  hit) case_hit ;;
  stale) case_stale ;;
  all) case_proxy; case_hit; case_stale ;;
esac
