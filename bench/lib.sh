# shellcheck shell=bash
# Helpers for bench/run.sh: process lifecycle, ports, wrk parsing, /proc sampling.
# Sourced, not executed. Every process started here is recorded in
# STARTED_PIDS and stopped by bench_cleanup (installed as an EXIT trap by run.sh).

STARTED_PIDS=()
declare -A SERVER_LOGS  # pid -> log file
USED_PORTS=" "
BENCH_TMP=""
BENCH_SHM=""
KEEP_TMP=0
CLK_TCK=$(getconf CLK_TCK)
# The system interpreter when there is one: a pyenv shim first in PATH costs
# over a second per call on a busy machine.
PYTHON=$(command -v /usr/bin/python3 || command -v python3 || echo python3)

log() { printf '%s\n' "$*" >&2; }
die() { log "run.sh: error: $*"; exit 1; }

# A free loopback TCP port, never the same twice in one run.
pick_port() {
  local port
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    port=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    if [[ "$USED_PORTS" != *" $port "* ]]; then
      USED_PORTS+="$port "
      echo "$port"
      return 0
    fi
  done
  die "could not find a free loopback port"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_port PORT PID NAME LOG [TIMEOUT_S]: poll connect() until the port accepts,
# failing early if the process died. Returns 1 (after showing the log) on failure.
wait_port() {
  local port=$1 pid=$2 name=$3 logfile=$4 timeout=${5:-15}
  local deadline=$((SECONDS + timeout))
  while ((SECONDS < deadline)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "  $name exited before listening on 127.0.0.1:$port; last log lines:"
      tail -n 20 "$logfile" 2>/dev/null | sed 's/^/    | /' >&2
      return 1
    fi
    port_open "$port" && return 0
    sleep 0.05
  done
  log "  $name did not listen on 127.0.0.1:$port within ${timeout}s; last log lines:"
  tail -n 20 "$logfile" 2>/dev/null | sed 's/^/    | /' >&2
  return 1
}

# start_server CPU LOGFILE CMD...: start CMD pinned to CPU in the background.
# Sets SERVER_PID. taskset execs CMD, so the pid is the server's own.
start_server() {
  local cpu=$1 logfile=$2
  shift 2
  taskset -c "$cpu" "$@" >"$logfile" 2>&1 &
  SERVER_PID=$!
  STARTED_PIDS+=("$SERVER_PID")
  SERVER_LOGS[$SERVER_PID]=$logfile
}

# check_alive PID NAME: 0 if running; otherwise say so with the log's tail.
check_alive() {
  kill -0 "$1" 2>/dev/null && return 0
  log "  $2 (pid $1) has exited; last log lines:"
  tail -n 20 "${SERVER_LOGS[$1]:-/dev/null}" 2>/dev/null | sed 's/^/    | /' >&2
  return 1
}

# PID followed by all its descendants (nginx workers, the varnish child), from
# one ps listing.
tree_pids() {
  ps -e -o pid=,ppid= 2>/dev/null | awk -v root="$1" '
    { kids[$2] = kids[$2] " " $1 }
    END { n = 1; q[1] = root; for (i = 1; i <= n; i++) { print q[i]; m = split(kids[q[i]], k, " "); for (j = 1; j <= m; j++) q[++n] = k[j] } }'
}

# running PID: the process exists and is not a zombie (exited, not yet reaped).
running() {
  local line
  read -r line 2>/dev/null <"/proc/$1/stat" || return 1
  line=${line##*) }
  [[ "${line:0:1}" != Z ]]
}

# stop_servers PID...: SIGTERM each process, wait up to 5 s for all of them,
# then SIGKILL any of them or their descendants still alive. Paused trees are
# resumed first so they can exit cleanly.
stop_servers() {
  local pid p tree=() all=() alive
  for pid in "$@"; do
    if [[ -z "$pid" ]] || ! kill -0 "$pid" 2>/dev/null; then continue; fi
    mapfile -t tree < <(tree_pids "$pid")
    all+=("${tree[@]}")
    for p in "${tree[@]}"; do kill -CONT "$p" 2>/dev/null; done
    kill -TERM "$pid" 2>/dev/null
  done
  for _ in $(seq 100); do
    alive=0
    for pid in "$@"; do [[ -n "$pid" ]] && running "$pid" && alive=1; done
    ((alive)) || break
    sleep 0.05
  done
  for p in "${all[@]}"; do
    kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
  done
  for pid in "$@"; do [[ -n "$pid" ]] && wait "$pid" 2>/dev/null; done
  return 0
}
stop_server() { stop_servers "$1"; }

bench_cleanup() {
  stop_servers "${STARTED_PIDS[@]}"
  if ((KEEP_TMP)); then
    [[ -n "$BENCH_TMP" ]] && log "run.sh: kept $BENCH_TMP"
  else
    [[ -n "$BENCH_TMP" && -d "$BENCH_TMP" ]] && rm -rf "$BENCH_TMP"
    [[ -n "$BENCH_SHM" && -d "$BENCH_SHM" ]] && rm -rf "$BENCH_SHM"
  fi
}

# utime+stime clock ticks of a process tree (all threads included).
cpu_ticks() {
  local total=0 p line f
  for p in $(tree_pids "$1"); do
    read -r line 2>/dev/null <"/proc/$p/stat" || continue
    # Fields after the ")" of comm: state is 1st, utime 12th, stime 13th.
    read -r -a f <<<"${line##*) }"
    total=$((total + f[11] + f[12]))
  done
  echo "$total"
}

# Resident set size of a process tree, KiB.
rss_kib() {
  local total=0 p r
  for p in $(tree_pids "$1"); do
    r=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null)
    total=$((total + ${r:-0}))
  done
  echo "$total"
}

# "10s" / "1m" / "2h" / "10" -> seconds.
duration_seconds() {
  local d=$1
  case "$d" in
    *ms) awk -v v="${d%ms}" 'BEGIN { print v / 1000 }' ;;
    *s) echo "${d%s}" ;;
    *m) echo $((${d%m} * 60)) ;;
    *h) echo $((${d%h} * 3600)) ;;
    *) echo "$d" ;;
  esac
}

# wrk latency ("165.00us", "3.74ms", "1.20s", "2.00m") -> microseconds.
to_us() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); print v + 0 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); print v * 1000 }
    else if (v ~ /m$/) { sub(/m$/, "", v); print v * 60000000 }
    else if (v ~ /s$/) { sub(/s$/, "", v); print v * 1000000 }
    else print "nan" }'
}

# microseconds -> "165us" / "3.74ms".
fmt_us() {
  awk -v v="$1" 'BEGIN {
    if (v == "" || v == "-" || v == "nan") print "-";
    else if (v < 1000) printf "%dus\n", v + 0.5;
    else if (v < 1000000) printf "%.2fms\n", v / 1000;
    else printf "%.2fs\n", v / 1000000 }'
}

# ratio A B -> "1.23x" (or "-" when either side is missing).
ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN {
    if (a == "" || b == "" || a == "-" || b == "-" || b + 0 == 0) print "-";
    else printf "%.2fx\n", a / b }'
}

# Compare two numbers: le A B -> exit 0 if A <= B (floating point).
num_le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 <= b + 0) }'; }

# run_wrk CPU URL CONNECTIONS DURATION OUTFILE [SCRIPT ARGS...]: one bounded
# wrk run (with a Lua script and its arguments if given); sets W_RPS W_P50_US
# W_P99_US W_REQS W_ERRS (W_ERRS counts socket errors and non-2xx/3xx
# responses), W_SECS (wall time of the run), W_CPU_TICKS (wrk's own CPU
# time) and W_EXIT (wrk's exit status). Returns 1 if wrk failed or did no
# requests.
run_wrk() {
  local cpu=$1 url=$2 conns=$3 duration=$4 out=$5 cpu_s
  shift 5
  local script=() script_args=()
  if (($#)); then
    script=(-s "$1")
    shift
    script_args=("$@")
  fi
  W_RPS="" W_P50_US="" W_P99_US="" W_REQS="" W_ERRS="" W_CPU_TICKS=0 W_SECS="" W_EXIT=0
  # wrk's user+system time: the subshell's children times (the second line
  # of the `times` builtin, "0m1.234s 0m0.567s") after wrk exits.
  if ! cpu_s=$(
    taskset -c "$cpu" wrk -t1 -c"$conns" -d"$duration" --timeout 5s --latency "${script[@]}" "$url" "${script_args[@]}" >"$out" 2>&1
    rc=$?
    times >"$out.times"  # not in a pipe: a forked builtin would report its own (empty) children
    echo "$rc" >>"$out.times"
    awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/); print u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$out.times"
    exit $rc
  ); then
    W_EXIT=$(awk 'NR == 3' "$out.times")
    log "  wrk failed (exit status ${W_EXIT:-?}$( [[ -s "$out" ]] || echo ", no output"))$( [[ -s "$out" ]] && echo :)"
    sed 's/^/    | /' "$out" >&2
    return 1
  fi
  # One pass over wrk's report (the W_* globals are read by run.sh): req/s, p50, p99 (in us), requests, the run's
  # wall time (s), errors (socket errors and non-2xx/3xx responses).
  # shellcheck disable=SC2034
  read -r W_RPS W_P50_US W_P99_US W_REQS W_SECS W_ERRS W_CPU_TICKS < <(awk -v cpu="$cpu_s" -v hz="$CLK_TCK" '
    function us(v) {
      if (v ~ /us$/) { sub(/us$/, "", v); return v + 0 }
      if (v ~ /ms$/) { sub(/ms$/, "", v); return v * 1000 }
      if (v ~ /m$/) { sub(/m$/, "", v); return v * 60000000 }
      if (v ~ /s$/) { sub(/s$/, "", v); return v * 1000000 }
      return "nan" }
    /^Requests\/sec:/ { rps = sprintf("%.0f", $2) }
    $1 == "50%" { p50 = us($2) }
    $1 == "99%" { p99 = us($2) }
    /requests in/ { reqs = $1; d = $4; sub(/,$/, "", d); secs = sprintf("%.2f", us(d) / 1e6) }
    /Socket errors:/ { gsub(/,/, ""); e += $4 + $6 + $8 + $10 }
    /Non-2xx or 3xx responses:/ { e += $5 }
    END { printf "%s %s %s %s %s %d %.0f\n", (rps == "" ? "-" : rps), (p50 == "" ? "nan" : p50), (p99 == "" ? "nan" : p99),
            (reqs == "" ? 0 : reqs), (secs == "" ? 0 : secs), e, cpu * hz }' "$out")
  if [[ -z "$W_REQS" || "$W_REQS" == 0 ]]; then
    log "  wrk did no requests against $url:"
    sed 's/^/    | /' "$out" >&2
    return 1
  fi
  return 0
}

# Machine-wide CPU ticks from /proc/stat: "BUSY TOTAL" (steal counts as busy:
# another tenant had the CPU).
sys_ticks() {
  awk '$1 == "cpu" { busy = $2 + $3 + $4 + $7 + $8 + $9; print busy, busy + $5 + $6; exit }' /proc/stat
}

# Percentage of the machine's CPU used over SECONDS (default 1), by anyone.
machine_busy_pct() {
  local a b
  a=$(sys_ticks)
  sleep "${1:-1}"
  b=$(sys_ticks)
  awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " ");
    t = y[2] - x[2]; printf "%.0f", (t > 0 ? 100 * (y[1] - x[1]) / t : 0) }'
}

# wait_idle MAX_S: wait (up to MAX_S seconds) until the machine is below 15%
# busy over one second, i.e. no other session is compiling or benchmarking.
wait_idle() {
  local max=$1 deadline busy said=0
  ((max > 0)) || return 0
  deadline=$((SECONDS + max))
  while ((SECONDS < deadline)); do
    busy=$(machine_busy_pct 1)
    ((busy < 15)) && return 0
    ((said)) || log "  waiting for the machine to go idle (${busy}% busy) ..."
    said=1
  done
  log "  still ${busy}% busy after ${max}s; measuring anyway"
}

# Total requests the origin on PORT (default ORIGIN_PORT) has answered; its
# /__stats is never cached and not counted.
origin_requests() {
  curl -s --max-time 5 "http://127.0.0.1:${1:-$ORIGIN_PORT}/__stats" | sed -n 's/^{"requests":\([0-9]*\).*/\1/p'
}

# X-Origin-Requests of one response through URL ("" on failure).
origin_seq_via() {
  curl -s --max-time 10 -o /dev/null -D - "$1" | tr -d '\r' | awk 'tolower($1) == "x-origin-requests:" {print $2}'
}

# warm URL: fetch until two consecutive responses carry the same
# X-Origin-Requests, i.e. the second one came from the cache.
warm() {
  local url=$1 prev="" seq
  for _ in $(seq 10); do
    seq=$(origin_seq_via "$url")
    [[ -n "$seq" && "$seq" == "$prev" ]] && return 0
    prev=$seq
  done
  log "  warning: $url is not served from cache (X-Origin-Requests keeps changing: $seq)"
  return 1
}

# ---------------------------------------------------------------- added for rounds and memory

# pause_tree / resume_tree PID: SIGSTOP / SIGCONT a process and its descendants,
# so that peers waiting for their turn in a round use no CPU at all.
pause_tree() {
  local p
  for p in $(tree_pids "$1"); do kill -STOP "$p" 2>/dev/null; done
}
resume_tree() {
  local p
  for p in $(tree_pids "$1"); do kill -CONT "$p" 2>/dev/null; done
}

# pin_tree PID CPU NAME: set the affinity of every thread of the process tree to
# CPU (taskset -a), then check it. Servers that set their own thread affinity
# at start (Traffic Server binds its ET_NET threads with hwloc) are brought
# back to the CPU they were started on. Returns 1 (after saying so) if any
# thread is still allowed elsewhere.
pin_tree() {
  local pid=$1 cpu=$2 name=$3 p f bad=0
  for p in $(tree_pids "$pid"); do
    taskset -a -p -c "$cpu" "$p" >/dev/null 2>&1
    for f in /proc/"$p"/task/*/status; do
      [[ -r "$f" ]] || continue
      if [[ "$(awk '/^Cpus_allowed_list:/ {print $2}' "$f" 2>/dev/null)" != "$cpu" ]]; then
        bad=1
      fi
    done
  done
  ((bad)) && { log "  warning: some threads of $name are not pinned to CPU $cpu"; return 1; }
  return 0
}

# Proportional set size of a process tree, KiB: shared memory (nginx's keys
# zone, HAProxy's cache) counted once rather than once per process.
pss_kib() {
  local total=0 p r
  for p in $(tree_pids "$1"); do
    r=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null)
    total=$((total + ${r:-0}))
  done
  echo "$total"
}

# Peak resident set size (VmHWM) of a process tree, KiB.
hwm_kib() {
  local total=0 p r
  for p in $(tree_pids "$1"); do
    r=$(awk '/^VmHWM:/ {print $2}' "/proc/$p/status" 2>/dev/null)
    total=$((total + ${r:-0}))
  done
  echo "$total"
}

# median V...: the middle value (the mean of the two middle ones for an even
# count); "-" if none.
median() {
  printf '%s\n' "$@" | awk '$1 != "" && $1 != "-" { v[n++] = $1 + 0 }
    END { if (n == 0) { print "-"; exit }
      for (i = 1; i < n; i++) for (j = i; j > 0 && v[j - 1] > v[j]; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
      m = (n % 2) ? v[int(n / 2)] : (v[n / 2 - 1] + v[n / 2]) / 2
      print m }'
}

# spread V...: (max - min) / median as a percentage, e.g. "12%"; "-" if fewer than 2 values.
spread() {
  local m
  m=$(median "$@")
  printf '%s\n' "$@" | awk -v m="$m" '$1 != "" && $1 != "-" { v = $1 + 0; if (n == 0 || v < lo) lo = v; if (n == 0 || v > hi) hi = v; n++ }
    END { if (n < 2 || m == "-" || m + 0 == 0) print "-"; else printf "%.0f%%\n", 100 * (hi - lo) / m }'
}

# 73456 -> "73.5k"; 1234567 -> "1.23M".
fmt_k() {
  awk -v v="$1" 'BEGIN {
    if (v == "" || v == "-") print "-";
    else if (v >= 1e6) printf "%.2fM\n", v / 1e6;
    else if (v >= 1e4) printf "%.1fk\n", v / 1e3;
    else if (v >= 1e3) printf "%.2fk\n", v / 1e3;
    else printf "%d\n", v + 0.5 }'
}

# cachalot_metric ADMIN_PORT NAME [LABELS]: one sample from cachalot's /metrics
# (labels as written there, e.g. 'result="hit",class="2xx"'); "" on failure.
cachalot_metric() {
  local sel=$2
  [[ -n "${3:-}" ]] && sel="$2{$3}"
  curl -s --max-time 10 "http://127.0.0.1:$1/metrics" | awk -v s="$sel" '$1 == s { printf "%.0f\n", $2; exit }'
}

# The cachalot and cachalot-origin binaries for a script that needs both
# (before-after.sh, cluster.sh): unless NO_BUILD=1 or both were given,
# configure BUILD_DIR (Release without tests when new) and build them; then
# set CACHALOT_BIN and ORIGIN_BIN (given ones win) and die without them.
# (run.sh builds on its own: a failed build there only skips cachalot's rows.)
bench_binaries() {
  if ((!NO_BUILD)) && [[ -z "$CACHALOT_BIN" || -z "$ORIGIN_BIN" ]]; then
    local extra=()
    [[ -f "$BUILD_DIR/CMakeCache.txt" ]] || extra=(-DCMAKE_BUILD_TYPE=Release -DCACHALOT_TESTS=OFF)
    mkdir -p "$BUILD_DIR"
    log "building in $BUILD_DIR ..."
    cmake -S "$ROOT" -B "$BUILD_DIR" "${extra[@]}" >"$BUILD_DIR/bench-configure.log" 2>&1 ||
      die "configure failed (see $BUILD_DIR/bench-configure.log)"
    cmake --build "$BUILD_DIR" --target cachalot cachalot-origin -j2 >"$BUILD_DIR/bench-build.log" 2>&1 ||
      die "build failed (see $BUILD_DIR/bench-build.log)"
  fi
  CACHALOT_BIN=${CACHALOT_BIN:-$BUILD_DIR/cachalot}
  ORIGIN_BIN=${ORIGIN_BIN:-$BUILD_DIR/demo/cachalot-origin}
  [[ -x "$CACHALOT_BIN" ]] || die "no cachalot binary at $CACHALOT_BIN"
  [[ -x "$ORIGIN_BIN" ]] || die "no origin binary at $ORIGIN_BIN"
}
