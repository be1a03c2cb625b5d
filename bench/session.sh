#!/usr/bin/env bash
# Session-check benchmark, one command: GET /api/v1/session and GET /api/v1/forward-auth
# with a valid session cookie, on SQLite and on PostgreSQL + Redis, with the session
# cache on and off, against a minimal axum server answering a constant body (the
# baseline), all measured in the same run. Bounded: about 2 minutes after the build.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

DURATION="${BENCH_DURATION:-10}"
CONNECTIONS="${BENCH_CONNECTIONS:-16}"

build_release
ensure_wrk
machine_line
pin_cpus

RESULTS=()
# measure LABEL ADDR PATH COOKIE : a warm-up, then the measured wrk run.
measure() {
  local label=$1 addr=$2 path=$3 cookie=$4 out="$WORK/wrk.$RANDOM"
  load_cpu wrk -t1 -c"$CONNECTIONS" -d2s -H "cookie: $cookie" "http://$addr$path" >/dev/null
  load_cpu wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -H "cookie: $cookie" \
    "http://$addr$path" >"$out"
  local p50 p99 rps bad errs
  read -r p50 p99 rps bad errs < <(wrk_summary "$out")
  if [ "$bad" -gt 0 ] || [ "$errs" -gt 0 ]; then
    echo "error: $label: $bad non-2xx answers, $errs socket errors" >&2
    cat "$out" >&2
    exit 1
  fi
  RESULTS+=("$label|$p50|$p99|$rps")
}

# check_answer ADDR COOKIE : the session answers 200 and names the benchmark account,
# so every row measures a real, successful check.
check_answer() {
  local body
  body=$(http GET "$1" /api/v1/session "" "cookie: $2")
  case $body in *'"email":"bench@example.com"'*) ;; *)
    echo "error: unexpected session answer: $body" >&2
    exit 1
    ;;
  esac
  curl -sS -o /dev/null -w '%{http_code}' -H "cookie: $2" "http://$1/api/v1/forward-auth" |
    grep -qx 200 || { echo "error: forward-auth refused the session" >&2; exit 1; }
}

start baseline "${SERVER_PIN[@]}" "$BIN/baseline_server"
BASE=$ADDR

# backend NAME DATABASE_URL [ENV...] : cache on (default) and off.
backend() {
  local name=$1 db=$2
  shift 2
  start_aegis "$name" "$db" "$@"
  local addr=$ADDR pid=$PID cookie
  cookie=$(session_cookie "$addr" bench@example.com)
  check_answer "$addr" "$cookie"
  measure "$name: session, cache on" "$addr" /api/v1/session "$cookie"
  measure "$name: forward-auth, cache on" "$addr" /api/v1/forward-auth "$cookie"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  start_aegis "$name-nocache" "$db" AEGIS_SESSION_CACHE_TTL_SECS=0 "$@"
  check_answer "$ADDR" "$cookie"
  measure "$name: session, cache off" "$ADDR" /api/v1/session "$cookie"
  kill "$PID"
  wait "$PID" 2>/dev/null || true
}

echo "# loading with wrk -t1 -c$CONNECTIONS -d${DURATION}s (2 s warm-up each); servers on CPU $SERVER_CPUS, wrk on CPU $LOAD_CPUS" >&2
measure "baseline (run 1)" "$BASE" /api/v1/session "x=1"
backend sqlite "sqlite://$WORK/sqlite.db"
PG=""
if pg_up && redis_up; then
  fresh_pg_db
  PG=$PG_APP_URL
  backend "postgres+redis" "$PG" AEGIS_DATABASE_OWNER_URL="$PG_OWNER_URL" AEGIS_REDIS_URL="$REDIS_URL" \
    AEGIS_RATE_LIMIT_REDIS_PREFIX="aegis-bench:$(date +%s):$$:" \
    AEGIS_SESSION_CACHE_CHANNEL="aegis-bench:$$:sessions"
fi
measure "baseline (run 2)" "$BASE" /api/v1/session "x=1"

echo "== session checks: wrk -t1 -c$CONNECTIONS -d${DURATION}s --latency, one valid session cookie"
echo "   baseline = minimal axum server with a constant body (mean of runs 1 and 2)"
echo "   x = req/s / baseline req/s (target for 'sqlite: session, cache on': >= 0.8)"
printf '%s\n' "${RESULTS[@]}" | awk -F'|' -v pg="$PG" '
  { name[NR] = $1; p50[NR] = $2; p99[NR] = $3; rps[NR] = $4 }
  $1 ~ /^baseline/ { b += $4 / 2 }
  END {
    printf "%-34s %8s %8s %9s %7s\n", "row", "p50 ms", "p99 ms", "req/s", "x"
    for (i = 1; i <= NR; i++)
      printf "%-34s %8.3f %8.3f %9.0f %7.2f\n", name[i], p50[i], p99[i], rps[i], rps[i] / b
    if (pg == "") print "postgres+redis rows skipped: PostgreSQL or Redis does not answer"
    printf "noise floor: baseline run 2 / run 1 = %.2f\n", rps[NR] / rps[1]
  }'
