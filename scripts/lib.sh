#!/usr/bin/env bash
# Shared functions of scripts/run and scripts/test. Source it from the repo
# root after `set -euo pipefail`; it defines functions and one array only.
#
# Processes are tracked by PID: stop_started stops exactly what start_nats and
# start_redis launched from this shell, and nothing else.

# PIDs of the servers this shell started, in start order.
WEFT_STARTED_PIDS=()

log() { printf '[weft] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# The Debian packages needed to build, test and benchmark Weft. chromium:
# the docs page's browser test (headless; it fails without it).
WEFT_PACKAGES=(build-essential cmake pkg-config libpoco-dev libnats-dev libhiredis-dev
  libsqlite3-dev catch2 nats-server redis-server curl ca-certificates python3 wrk chromium)

# Installs the packages that are missing; installs nothing (and touches no
# network) when all are present.
ensure_packages() {
  local pkg status missing=()
  for pkg in "${WEFT_PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null) || true
    [[ $status == "install ok installed" ]] || missing+=("$pkg")
  done
  ((${#missing[@]} == 0)) && return 0

  local sudo=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null 2>&1 ||
      die "missing packages (${missing[*]}) and not root; install them or run as root"
    sudo=(sudo)
  fi
  log "installing: ${missing[*]}"
  "${sudo[@]}" apt-get update
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}"
}

# Configures and builds the whole tree in ./build.
build() {
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@"
  cmake --build build -j"$(nproc)"
}

# Prints a TCP port that is free on 127.0.0.1 right now (the kernel picks it).
free_port() {
  python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# True when something accepts TCP connections at host:port.
port_open() {
  local host=$1 port=$2
  # The child bash opens and closes fd 3; `timeout` bounds a connect that hangs.
  # shellcheck disable=SC2016  # $1 and $2 expand in the child bash
  timeout 1 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$host" "$port" 2>/dev/null
}

# wait_port HOST PORT TIMEOUT_SECONDS [PID]: polls until host:port accepts
# connections. Fails after the timeout, or at once when PID (the server that
# should open the port) has exited.
wait_port() {
  local host=$1 port=$2 timeout_s=$3 pid=${4:-}
  local deadline=$((SECONDS + timeout_s))
  until port_open "$host" "$port"; do
    if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

# _start_server NAME PORT LOG COMMAND...: runs COMMAND in the background with
# its output appended to LOG, records its PID and waits for the port.
_start_server() {
  local name=$1 port=$2 logfile=$3
  shift 3
  # Otherwise the other listener would pass for the new server.
  if port_open 127.0.0.1 "$port"; then
    log "cannot start $name: 127.0.0.1:$port is already in use"
    return 1
  fi
  "$@" </dev/null >>"$logfile" 2>&1 &
  local pid=$!
  WEFT_STARTED_PIDS+=("$pid")
  if ! wait_port 127.0.0.1 "$port" 20 "$pid"; then
    log "$name did not start on 127.0.0.1:$port; last lines of $logfile:"
    tail -n 20 "$logfile" >&2 || true
    return 1
  fi
  log "started $name on 127.0.0.1:$port (pid $pid, log $logfile)"
}

# start_nats PORT DIR: nats-server with JetStream on 127.0.0.1:PORT, its store
# in DIR/nats and its log in DIR/nats-server.log.
start_nats() {
  local port=$1 dir=$2
  mkdir -p "$dir/nats"
  _start_server nats-server "$port" "$dir/nats-server.log" \
    nats-server -js -a 127.0.0.1 -p "$port" -sd "$dir/nats"
}

# start_nats_cluster DIR PORT1 PORT2 PORT3 ROUTE1 ROUTE2 ROUTE3: three
# nats-server nodes with JetStream clustered on loopback (cluster "weft",
# server names n1..n3), client ports PORT1..3, route ports ROUTE1..3, stores
# in DIR/n1..n3, logs in DIR/n1.log..n3.log. Returns once every node accepts
# clients; JetStream may need a few more seconds to elect its meta leader
# (clients retry).
start_nats_cluster() {
  local dir=$1 i routes=""
  local ports=("$2" "$3" "$4") rports=("$5" "$6" "$7")
  for i in 0 1 2; do routes+="${routes:+,}nats://127.0.0.1:${rports[i]}"; done
  for i in 0 1 2; do
    mkdir -p "$dir/n$((i + 1))"
    _start_server "nats-server n$((i + 1))" "${ports[i]}" "$dir/n$((i + 1)).log" \
      nats-server -js -a 127.0.0.1 -p "${ports[i]}" -sd "$dir/n$((i + 1))" \
      -n "n$((i + 1))" --cluster_name weft --cluster "nats://127.0.0.1:${rports[i]}" \
      --routes "$routes" || return 1
  done
}

# start_redis PORT DIR: redis-server on 127.0.0.1:PORT with the append-only
# file on and fsynced before every reply (Debian's default, appendonly no,
# loses every write since the last snapshot on a crash; and with appendfsync
# everysec Redis 7.0 may acknowledge writes it has not yet written when an
# fsync is slow, which a kill -9 then loses), its data in DIR/redis and its log
# in DIR/redis-server.log.
start_redis() {
  local port=$1 dir=$2
  mkdir -p "$dir/redis"
  _start_server redis-server "$port" "$dir/redis-server.log" \
    redis-server --port "$port" --bind 127.0.0.1 --dir "$dir/redis" --appendonly yes \
    --appendfsync always
}

# True while PID runs (a zombie, exited but not yet reaped, does not count).
# Reads /proc because a fresh Debian image has no ps.
_running() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat:0:1} != Z ]]
}

# Stops the servers this shell started, newest first: SIGTERM, then SIGKILL
# after 10 s, and reaps each one. Safe to call more than once.
stop_started() {
  local i pid deadline
  for ((i = ${#WEFT_STARTED_PIDS[@]} - 1; i >= 0; i--)); do
    kill -TERM "${WEFT_STARTED_PIDS[i]}" 2>/dev/null || true
  done
  for pid in "${WEFT_STARTED_PIDS[@]}"; do
    deadline=$((SECONDS + 10))
    while _running "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
    if _running "$pid"; then
      log "pid $pid ignored SIGTERM for 10 s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  WEFT_STARTED_PIDS=()
}

# --- benchmark helpers (scripts/bench) ----------------------------------------
# Additive: the functions above are unchanged.

# Debian packages only the benchmark needs (charts).
WEFT_BENCH_PACKAGES=(python3-matplotlib)

# Installs the missing benchmark packages (same rules as ensure_packages).
ensure_bench_packages() {
  # ensure_packages reads WEFT_PACKAGES; bash's dynamic scoping lets a local
  # copy stand in for it during this call.
  local WEFT_PACKAGES=("${WEFT_BENCH_PACKAGES[@]}")
  ensure_packages
}

# build_targets TARGET...: configures the build directory (./build, or
# $WEFT_BUILD_DIR) when needed and builds only the named targets (the
# benchmark needs weftd, the plugins and weft-bench, not the test suite).
build_targets() {
  local dir=${WEFT_BUILD_DIR:-build}
  if [[ ! -f $dir/CMakeCache.txt ]]; then
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo
  fi
  cmake --build "$dir" -j"$(nproc)" --target "$@"
}

# start_server_at NAME PORT LOG COMMAND...: starts any server like
# start_nats/start_redis do (PID recorded, port awaited). Its PID is then
# ${WEFT_STARTED_PIDS[-1]}.
start_server_at() {
  _start_server "$@"
}

# spawn_started LOG COMMAND...: starts COMMAND in the background, output
# appended to LOG, and records its PID without waiting for any port (for
# timing a start-up from its first instant). Sets WEFT_SPAWNED_PID.
spawn_started() {
  local logfile=$1
  shift
  "$@" </dev/null >>"$logfile" 2>&1 &
  WEFT_SPAWNED_PID=$!
  WEFT_STARTED_PIDS+=("$WEFT_SPAWNED_PID")
}

# Removes PID from WEFT_STARTED_PIDS (after it was reaped), so stop_started
# never signals a PID that the kernel may have handed to another process.
_forget_started() {
  local pid=$1 kept=() p
  for p in "${WEFT_STARTED_PIDS[@]}"; do
    [[ $p == "$pid" ]] || kept+=("$p")
  done
  WEFT_STARTED_PIDS=("${kept[@]}")
}

# kill9_started PID: SIGKILL one server this shell started (a crash, no
# shutdown work), reap it and forget it.
kill9_started() {
  local pid=$1
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  _forget_started "$pid"
}

# stop_started_pid PID: SIGTERM one server this shell started, SIGKILL after
# 10 s, reap it and forget it.
stop_started_pid() {
  local pid=$1 deadline=$((SECONDS + 10))
  kill -TERM "$pid" 2>/dev/null || true
  while _running "$pid" && ((SECONDS < deadline)); do sleep 0.05; done
  if _running "$pid"; then
    log "pid $pid ignored SIGTERM for 10 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  _forget_started "$pid"
}
# --- end benchmark helpers -----------------------------------------------------

# --- fuzzing and sanitizer helpers (scripts/fuzz, scripts/test --asan/--tsan) ---
# Additive: the functions above are unchanged.

# Debian packages only the fuzz build needs: clang 14 and its runtime
# libraries (libFuzzer, ASan, UBSan).
WEFT_FUZZ_PACKAGES=(clang libclang-rt-14-dev)

# Installs the missing fuzzing packages (same rules as ensure_packages).
ensure_fuzz_packages() {
  local WEFT_PACKAGES=("${WEFT_FUZZ_PACKAGES[@]}")
  ensure_packages
}

# The libFuzzer targets of tests/fuzz (tests/fuzz/CMakeLists.txt).
WEFT_FUZZ_TARGETS=(fuzz_request_json fuzz_stored_record fuzz_cursor fuzz_routing fuzz_http_parser)

# build_fuzzers [DIR]: configures DIR (default build-fuzz) with clang and
# -DWEFT_FUZZ=ON (whole tree instrumented, ASan + UBSan) and builds only the
# fuzz targets.
build_fuzzers() {
  local dir=${1:-build-fuzz}
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
    -DCMAKE_CXX_COMPILER=clang++ -DWEFT_FUZZ=ON
  cmake --build "$dir" -j"$(nproc)" --target "${WEFT_FUZZ_TARGETS[@]}"
}

# build_sanitized DIR FLAGS: configures DIR with the sanitizer FLAGS on every
# C and C++ file and link (e.g. -fsanitize=thread) and builds the whole tree.
# No fuzz smoke tests there: they belong to the plain build.
build_sanitized() {
  local dir=$1 flags=$2
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWEFT_FUZZ_SMOKE=OFF \
    "-DCMAKE_C_FLAGS=$flags" "-DCMAKE_CXX_FLAGS=$flags"
  cmake --build "$dir" -j"$(nproc)"
}

# sanitizer_env KIND REPORT_DIR SUPP_DIR: exports the sanitizer runtime
# options for a KIND (asan: ASan + LSan + UBSan, tsan: TSan) run. Every
# report goes to REPORT_DIR/<kind>.<exe>.<pid> (emptied here) instead of
# stderr, because a child process's stderr is a log file no test reads;
# sanitizer_check then finds them. SUPP_DIR/<tool>.supp, when present, are the
# suppressions (third-party false positives only).
sanitizer_env() {
  local kind=$1 dir=$2 supp=$3
  rm -rf -- "$dir"
  mkdir -p -- "$dir"
  # log_exe_name: the file name says which program (weftd, a test, an agent).
  local common="log_path=$dir/$kind:log_exe_name=1"
  case $kind in
    asan)
      export ASAN_OPTIONS="$common:detect_leaks=1:detect_stack_use_after_return=1"
      ASAN_OPTIONS+=":check_initialization_order=1:strict_init_order=1"
      # halt_on_error=0 for UBSan: a run reports every finding, not the first
      # (ASan itself always stops at its first error).
      export UBSAN_OPTIONS="$common:print_stacktrace=1:halt_on_error=0:report_error_type=1"
      if [[ -f $supp/lsan.supp ]]; then export LSAN_OPTIONS="suppressions=$supp/lsan.supp"; fi
      if [[ -f $supp/ubsan.supp ]]; then UBSAN_OPTIONS+=":suppressions=$supp/ubsan.supp"; fi
      ;;
    tsan)
      # halt_on_error=0 (the default) so one race does not hide the next;
      # the process still exits 66 when it reported anything.
      export TSAN_OPTIONS="$common:halt_on_error=0:second_deadlock_stack=1:history_size=4"
      if [[ -f $supp/tsan.supp ]]; then TSAN_OPTIONS+=":suppressions=$supp/tsan.supp"; fi
      ;;
    *) die "sanitizer_env: unknown kind '$kind'" ;;
  esac
  log "sanitizer reports go to $dir"
}

# sanitizer_check REPORT_DIR: prints every report file (the first 150 lines
# each, then a summary line per file) and fails when there is any.
sanitizer_check() {
  local dir=$1 files=() f
  for f in "$dir"/*; do
    [[ -f $f && -s $f ]] && files+=("$f")
  done
  if ((${#files[@]} == 0)); then
    log "sanitizers: no reports"
    return 0
  fi
  for f in "${files[@]}"; do
    printf '\n===== %s =====\n' "$f"
    head -n 150 -- "$f" || true
  done
  log "sanitizers: ${#files[@]} report file(s) in $dir:"
  for f in "${files[@]}"; do
    log "  $(basename -- "$f"): $(grep -m1 -h 'SUMMARY:' -- "$f" || head -n1 -- "$f")"
  done
  return 1
}
# --- end fuzzing and sanitizer helpers ---------------------------------------------
