# Shared helpers of the benchmark scripts (sourced, not run). Every script: builds in
# release, runs servers from a temporary directory on loopback, kills them and removes
# the directory on exit or interrupt.

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aegis-target}"
BIN="$CARGO_TARGET_DIR/release"
REDIS_URL="${AEGIS_BENCH_REDIS_URL:-redis://127.0.0.1:6379}"
PG_URL="${AEGIS_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
# A fresh strong secret per run.
BENCH_SECRET="bench-$(head -c 32 /dev/urandom | base64 | tr -d "=+/")"
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# The password of every benchmark account (zxcvbn scores it 4).
BENCH_PASSWORD='correct horse battery staple 42'

build_release() {
  cargo build --release -q -p aegis -p aegis-bench
}

machine_line() {
  echo "# machine: $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
}

# ensure_wrk: installs wrk from Debian's packages when missing.
ensure_wrk() {
  command -v wrk >/dev/null && return
  echo "# wrk not found: installing it (apt-get install -y wrk)" >&2
  local sudo=()
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then sudo=(sudo -n); fi
  { "${sudo[@]}" apt-get install -y -qq wrk ||
    { "${sudo[@]}" apt-get update -qq && "${sudo[@]}" apt-get install -y -qq wrk; }
  } >/dev/null 2>&1 || true
  if ! command -v wrk >/dev/null; then
    echo "error: wrk is not installed and could not be installed; run 'apt-get install wrk' as root and re-run" >&2
    exit 1
  fi
}

# Where servers and load generators run. Scripts that call pin_cpus give the servers
# the first half of the CPUs and the load generator the rest, so the two do not fight
# over the same core and the ratio compares servers on equal hardware.
SERVER_PIN=()
LOAD_PIN=()
SERVER_CPUS=all
LOAD_CPUS=all
pin_cpus() {
  local n
  n=$(nproc)
  if [ "$n" -ge 2 ] && command -v taskset >/dev/null; then
    local half=$((n / 2))
    SERVER_CPUS="0-$((half - 1))"
    LOAD_CPUS="$half-$((n - 1))"
    SERVER_PIN=(taskset -c "$SERVER_CPUS")
    LOAD_PIN=(taskset -c "$LOAD_CPUS")
  fi
}

# load_cpu CMD... : runs a load generator on the load CPUs.
load_cpu() {
  "${LOAD_PIN[@]}" "$@"
}

WORK=$(mktemp -d)
PIDS=()
PG_DBS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  for db in "${PG_DBS[@]}"; do
    psql -q "$PG_URL" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# redis_up: true when $REDIS_URL answers PING (with redis-cli, else over bash's
# /dev/tcp).
redis_up() {
  if command -v redis-cli >/dev/null; then
    redis-cli -u "$REDIS_URL" ping 2>/dev/null | grep -q PONG
    return
  fi
  local hp=${REDIS_URL#*://}
  hp=${hp##*@}
  hp=${hp%%/*}
  local host=${hp%%:*} port=6379
  if [[ $hp == *:* ]]; then port=${hp##*:}; fi
  timeout 2 bash -c "exec 3<>/dev/tcp/$host/$port && printf 'PING\r\n' >&3 && head -c 5 <&3" 2>/dev/null |
    grep -q PONG
}

# pg_up: true when PostgreSQL answers at $PG_URL.
pg_up() {
  command -v psql >/dev/null && psql -q "$PG_URL" -c 'SELECT 1' >/dev/null 2>&1
}

# fresh_pg_db: creates an empty database next to $PG_URL's and sets PG_OWNER_URL (its
# owner, for migrations) and PG_APP_URL (the role `aegis_app`: not a superuser, no
# BYPASSRLS, so row-level security is on, as in production).
fresh_pg_db() {
  local name="aegis_bench_$$_${#PG_DBS[@]}"
  psql -q "$PG_URL" -c "CREATE DATABASE \"$name\"" >/dev/null
  PG_DBS+=("$name")
  psql -q "$PG_URL" -c "DO \$\$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'aegis_app') THEN
        CREATE ROLE aegis_app LOGIN NOSUPERUSER NOBYPASSRLS;
      END IF;
    END \$\$;" >/dev/null 2>&1 || true
  PG_OWNER_URL="${PG_URL%/*}/$name"
  PG_APP_URL=$(printf '%s' "$PG_OWNER_URL" | sed 's|://[^@/]*@|://aegis_app@|')
}

# start NAME CMD... : starts a server (env and command line given), waits for its
# "listening on ADDR" line and sets ADDR and PID.
start() {
  local name=$1
  shift
  mkdir -p "$WORK/$name"
  (cd "$WORK/$name" && exec "$@") >"$WORK/$name/out" 2>"$WORK/$name/err" &
  PID=$!
  PIDS+=("$PID")
  for _ in $(seq 1 300); do
    if grep -q '^listening on ' "$WORK/$name/out" 2>/dev/null; then
      ADDR=$(sed -n 's/^listening on //p' "$WORK/$name/out")
      return
    fi
    if ! kill -0 "$PID" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "error: $name did not start: $(cat "$WORK/$name/err")" >&2
  exit 1
}

# start_aegis NAME DATABASE_URL [ENV...] : starts a release aegis server (on the server
# CPUs) with only the given environment; sets ADDR and PID. Rate limiting stays on,
# with a rule set (bench/rules.toml) that refuses nothing, so every request pays the
# limiter but the load of one IP is never cut off.
start_aegis() {
  local name=$1 db=$2
  shift 2
  start "$name" "${SERVER_PIN[@]}" env -i PATH="$PATH" AEGIS_LISTEN=127.0.0.1:0 \
    AEGIS_LOG_LEVEL="${AEGIS_BENCH_LOG_LEVEL:-info}" AEGIS_DATABASE_URL="$db" \
    AEGIS_SECRET_KEY="$BENCH_SECRET" AEGIS_CONFIG="$BENCH_DIR/rules.toml" "$@" \
    "$BIN/aegis" serve
}

# http METHOD ADDR PATH [BODY] [HEADER...] : one request with curl; prints the body,
# fails on a non-2xx answer.
http() {
  local method=$1 addr=$2 path=$3 body=${4:-}
  shift 4 || shift $#
  local args=(-sS --fail-with-body -X "$method" "http://$addr$path")
  [ -n "$body" ] && args+=(-H 'content-type: application/json' --data "$body")
  for h in "$@"; do args+=(-H "$h"); done
  curl "${args[@]}"
}

# session_cookie ADDR EMAIL : registers EMAIL (if new), logs in, prints the session
# cookie as NAME=VALUE.
session_cookie() {
  local addr=$1 email=$2 body
  body="{\"email\":\"$email\",\"password\":\"$BENCH_PASSWORD\"}"
  curl -sS -o /dev/null -X POST -H 'content-type: application/json' --data "$body" \
    "http://$addr/api/v1/register" || true
  curl -sS -D - -o /dev/null -X POST -H 'content-type: application/json' --data "$body" \
    "http://$addr/api/v1/login" | tr -d '\r' |
    sed -n 's/^[Ss]et-[Cc]ookie: \([^=]*aegis_session=[^;]*\);.*/\1/p' | head -n1
}

# wrk_summary FILE : prints "p50_ms p99_ms req_per_s non2xx errors" of a wrk --latency run.
wrk_summary() {
  awk '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    /^ +50%/ { p50 = ms($2) } /^ +99%/ { p99 = ms($2) } /^Requests\/sec/ { rps = $2 }
    /Non-2xx/ { bad = $NF }
    /Socket errors/ { split($0, a, /[ ,]+/); for (i in a) if (a[i] ~ /^[0-9]+$/) errs += a[i] }
    END {
      if (rps == "") { print "error: could not parse wrk output" > "/dev/stderr"; exit 1 }
      printf "%.3f %.3f %.0f %d %d\n", p50, p99, rps, bad + 0, errs + 0
    }
  ' "$1" || { cat "$1" >&2; exit 1; }
}
