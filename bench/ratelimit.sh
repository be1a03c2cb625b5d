#!/usr/bin/env bash
# Rate-limit benchmark, one command: decisions/s (in-process and Redis, against
# baselines measured in the same run), then the latency a limited endpoint adds:
# GET /healthz on release servers with limits off, in-process and on Redis, loaded by
# wrk on loopback. Bounded: about 100 seconds after the build.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aegis-target}"
REDIS_URL="${AEGIS_BENCH_REDIS_URL:-redis://127.0.0.1:6379}"
export AEGIS_BENCH_REDIS_URL="$REDIS_URL"
DURATION="${BENCH_DURATION:-10s}"
CONNECTIONS="${BENCH_CONNECTIONS:-16}"

cargo build --release -q -p aegis -p aegis-bench
BIN="$CARGO_TARGET_DIR/release"

echo "# machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
"$BIN/ratelimit_decisions"

if ! command -v wrk >/dev/null; then
  echo "# wrk not found: installing it (apt-get install -y wrk)" >&2
  SUDO=()
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then SUDO=(sudo -n); fi
  { "${SUDO[@]}" apt-get install -y -qq wrk ||
    { "${SUDO[@]}" apt-get update -qq && "${SUDO[@]}" apt-get install -y -qq wrk; }
  } >/dev/null 2>&1 || true
  if ! command -v wrk >/dev/null; then
    echo "error: wrk is not installed and could not be installed; run 'apt-get install wrk' as root (or install wrk another way) and re-run" >&2
    exit 1
  fi
fi

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# No request of the benchmark may be refused (all load comes from one IP): one
# generous rule for everything, so every request pays the full limiter path.
cat > "$WORK/rules.toml" <<'TOML'
[rate_limit.rules.default]
routes = ["*"]
key = "ip"
limit = 1000000000
period_secs = 60
TOML

# redis_up: true when $REDIS_URL answers PING.
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

# start NAME ENV... : starts a release server and sets ADDR.
start() {
  local name=$1
  shift
  mkdir -p "$WORK/$name"
  env -i PATH="$PATH" AEGIS_LISTEN=127.0.0.1:0 AEGIS_LOG_LEVEL=warn \
    AEGIS_DATABASE_URL="sqlite://$WORK/$name/aegis.db" \
    AEGIS_SECRET_KEY="bench-$(head -c 32 /dev/urandom | base64 | tr -d '=+/')" \
    AEGIS_CONFIG="$WORK/rules.toml" "$@" \
    "$BIN/aegis" serve >"$WORK/$name/out" 2>"$WORK/$name/err" &
  PIDS+=($!)
  for _ in $(seq 1 100); do
    if grep -q '^listening on ' "$WORK/$name/out" 2>/dev/null; then
      ADDR=$(sed -n 's/^listening on //p' "$WORK/$name/out")
      return
    fi
    sleep 0.1
  done
  echo "error: $name did not start: $(cat "$WORK/$name/err")" >&2
  exit 1
}

# limit_header ADDR : the x-ratelimit-limit header of GET /healthz ("" when absent).
limit_header() {
  timeout 5 bash -c 'exec 3<>"/dev/tcp/${1%:*}/${1##*:}" &&
    printf "GET /healthz HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" "$1" >&3 &&
    cat <&3' _ "$1" | tr -d '\r' |
    awk 'tolower($1) == "x-ratelimit-limit:" { print $2 }'
}

# check NAME ADDR WANT : the server answers /healthz, with (WANT=on) or without
# (WANT=off) rate-limit headers, so each server measures what its row claims.
check() {
  local got
  got=$(limit_header "$2")
  if { [ "$3" = on ] && [ -z "$got" ]; } || { [ "$3" = off ] && [ -n "$got" ]; }; then
    echo "error: server '$1' answers x-ratelimit-limit='$got', expected limits $3" >&2
    exit 1
  fi
}

# load NAME ADDR : prints "p50_ms p99_ms req_per_s" for GET /healthz.
load() {
  wrk -t2 -c"$CONNECTIONS" -d2s "http://$2/healthz" >/dev/null # warm-up
  wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency "http://$2/healthz" >"$WORK/$1.wrk"
  awk '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    /^ +50%/ { p50 = ms($2) } /^ +99%/ { p99 = ms($2) } /^Requests\/sec/ { rps = $2 }
    /Non-2xx/ { bad = $NF } /Socket errors/ { errs = $0 }
    END {
      if (bad > 0) { print "error: non-2xx answers: " bad > "/dev/stderr"; exit 1 }
      if (errs != "") { print "warning: wrk " errs > "/dev/stderr" }
      if (rps == "") { print "error: could not parse wrk output" > "/dev/stderr"; exit 1 }
      printf "%.3f %.3f %.0f\n", p50, p99, rps
    }
  ' "$WORK/$1.wrk" || { cat "$WORK/$1.wrk" >&2; exit 1; }
}

start unlimited AEGIS_RATE_LIMIT_ENABLED=false
UNLIMITED=$ADDR
check unlimited "$UNLIMITED" off
start in-process AEGIS_RATE_LIMIT_ENABLED=true
MEMORY=$ADDR
check in-process "$MEMORY" on
REDIS=""
if redis_up; then
  # fail_closed: a Redis failure answers 503 (caught below) instead of silently
  # falling back to the in-process limiter.
  start redis AEGIS_RATE_LIMIT_ENABLED=true AEGIS_REDIS_URL="$REDIS_URL" \
    AEGIS_RATE_LIMIT_FAILURE_MODE=fail_closed \
    AEGIS_RATE_LIMIT_REDIS_PREFIX="aegis-bench:$(date +%s):$$:"
  REDIS=$ADDR
  check redis "$REDIS" on
fi

# Runs in the order unlimited, in-process, redis, unlimited: the baseline is the mean of
# the two unlimited runs (cancels a linear drift of the machine), and their difference
# is the noise floor against which the added figures are to be read.
RESULTS=()
measure() { # measure LABEL NAME ADDR
  local p50 p99 rps
  read -r p50 p99 rps < <(load "$2" "$3")
  RESULTS+=("$1|$p50|$p99|$rps")
}
echo "# loading GET /healthz with wrk: unlimited, in-process${REDIS:+, redis}, unlimited again" >&2
measure "unlimited (run 1)" unlimited-1 "$UNLIMITED"
measure "limited (in-process)" in-process "$MEMORY"
if [ -n "$REDIS" ]; then measure "limited (redis)" redis "$REDIS"; fi
measure "unlimited (run 2)" unlimited-2 "$UNLIMITED"

echo "== GET /healthz, wrk -t2 -c$CONNECTIONS -d$DURATION --latency (loopback, 2 s warm-up each): limits off vs on"
echo "   baseline = mean of the unlimited runs 1 and 2 (run before and after the others)"
echo "   +ms = row - baseline; x = row / baseline"
printf '%s\n' "${RESULTS[@]}" | awk -F'|' -v redis="$REDIS" '
  { name[NR] = $1; p50[NR] = $2; p99[NR] = $3; rps[NR] = $4 }
  $1 ~ /^unlimited/ { b50 += $2 / 2; b99 += $3 / 2; brps += $4 / 2 }
  END {
    printf "%-22s %8s %8s %9s %9s %9s %7s %7s %7s\n", "server", "p50 ms", "p99 ms", "req/s", "p50 +ms", "p99 +ms", "p50 x", "p99 x", "req/s x"
    printf "%-22s %8.3f %8.3f %9.0f %9s %9s %7s %7s %7s\n", "baseline (mean)", b50, b99, brps, "-", "-", "-", "-", "-"
    for (i = 1; i <= NR; i++)
      printf "%-22s %8.3f %8.3f %9.0f %+9.3f %+9.3f %7.2f %7.2f %7.2f\n", name[i], p50[i], p99[i], rps[i], p50[i] - b50, p99[i] - b99, p50[i] / b50, p99[i] / b99, rps[i] / brps
    if (redis == "") print "limited (redis)        skipped: no Redis answers at AEGIS_BENCH_REDIS_URL"
    printf "noise floor: unlimited run 2 / run 1 = p50 %.2f, p99 %.2f, req/s %.2f\n", p50[NR] / p50[1], p99[NR] / p99[1], rps[NR] / rps[1]
  }'
