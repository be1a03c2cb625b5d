#!/usr/bin/env bash
# Rate-limit benchmark, one command: decisions/s (in-process and Redis, against
# baselines measured in the same run), then the latency a limited endpoint adds:
# GET /healthz on release servers with limits off, in-process and on Redis, loaded by
# wrk on loopback. Bounded: about 100 seconds after the build.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=bench/lib.sh
source bench/lib.sh
# The decisions benchmark reads its Redis from the environment.
export AEGIS_BENCH_REDIS_URL="$REDIS_URL"
DURATION="${BENCH_DURATION:-10s}"
CONNECTIONS="${BENCH_CONNECTIONS:-16}"

build_release
machine_line
"$BIN/ratelimit_decisions"
ensure_wrk

# start_limited NAME ENV... : a release server on its own SQLite file, with bench/rules.toml
# (one rule of 10^9/min for every route: no request of the benchmark, all from one IP,
# is refused, and every one pays the full limiter path); sets ADDR.
start_limited() {
  local name=$1
  shift
  start_aegis "$name" "sqlite://$WORK/$name/aegis.db" AEGIS_LOG_LEVEL=warn "$@"
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
  local p50 p99 rps bad errs
  read -r p50 p99 rps bad errs < <(wrk_summary "$WORK/$1.wrk")
  if [ "$bad" -gt 0 ]; then
    echo "error: $1: $bad non-2xx answers" >&2
    exit 1
  fi
  if [ "$errs" -gt 0 ]; then echo "warning: $1: $errs wrk socket errors" >&2; fi
  echo "$p50 $p99 $rps"
}

start_limited unlimited AEGIS_RATE_LIMIT_ENABLED=false
UNLIMITED=$ADDR
check unlimited "$UNLIMITED" off
start_limited in-process AEGIS_RATE_LIMIT_ENABLED=true
MEMORY=$ADDR
check in-process "$MEMORY" on
REDIS=""
if redis_up; then
  # fail_closed: a Redis failure answers 503 (caught below) instead of silently
  # falling back to the in-process limiter.
  start_limited redis AEGIS_RATE_LIMIT_ENABLED=true AEGIS_REDIS_URL="$REDIS_URL" \
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
