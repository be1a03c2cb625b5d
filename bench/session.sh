#!/usr/bin/env bash
# Session-check benchmark, one command: GET /api/v1/session and GET /api/v1/forward-auth
# with a valid session cookie, on SQLite and on PostgreSQL + Redis, with the session
# cache on and off, against a minimal axum server answering a constant body (the
# baseline), all measured in the same run. Each row alternates short slices of the
# baseline and of the row, so that the machine's changing speed (a shared VM's speed
# moves by a fifth within a second) hits both alike; then the same rounds with both
# loaded at once, for the CPU time each spends per request. Bounded: about 7 minutes
# after the build.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

ROUNDS="${BENCH_ROUNDS:-15}"
SLICE="${BENCH_SLICE:-1}"
CONNECTIONS="${BENCH_CONNECTIONS:-16}"

build_release
ensure_wrk
machine_line
pin_cpus

# slice ADDR PATH COOKIE : one wrk run of SLICE seconds; sets REQS, P50 and P99, and
# aborts the benchmark on a single non-2xx answer or socket error.
slice() {
  local out="$WORK/wrk.$RANDOM" rps bad errs
  load_cpu wrk -t1 -c"$CONNECTIONS" -d"${SLICE}s" --latency -H "cookie: $3" \
    "http://$1$2" >"$out"
  read -r P50 P99 rps bad errs < <(wrk_summary "$out")
  if [ "$bad" -gt 0 ] || [ "$errs" -gt 0 ]; then
    echo "error: $1$2: $bad non-2xx answers, $errs socket errors" >&2
    cat "$out" >&2
    exit 1
  fi
  REQS=$(awk '/requests in/ {print $1}' "$out")
}

# median : the median of the numbers on standard input.
median() {
  sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'
}

# threads_ns PID : one line per thread of PID, "TID ns-run-so-far".
threads_ns() {
  local t
  for t in /proc/"$1"/task/*; do
    printf '%s %s\n' "${t##*/}" "$(cut -d' ' -f1 "$t/schedstat" 2>/dev/null || echo 0)"
  done
}

# cpu_delta BEFORE AFTER : CPU time (ns) run between two `threads_ns` snapshots by the
# threads present in both (a connection's worker thread that ends takes its time with
# it; what it ran in the slice is lost, which is little against the server's).
cpu_delta() {
  awk 'NR == FNR {before[$1] = $2; next} ($1 in before) {s += $2 - before[$1]} END {printf "%d\n", s}' "$1" "$2"
}

# together ADDR PATH COOKIE PID : ROUNDS rounds in which two wrk runs of SLICE seconds
# load the baseline and the row at the same time (both servers share the server CPUs,
# both wrk the load CPUs); prints the median over the
# rounds of (baseline CPU time per request / row CPU time per request), its lowest and
# highest. Both are measured in the same instants, so a change in the machine's speed
# hits both alike, which alternating slices only approach.
together() {
  local addr=$1 path=$2 cookie=$3 pid=$4 xs="" ca cb ra rb wa wb
  for _ in $(seq 1 "$ROUNDS"); do
    threads_ns "$pid" >"$WORK/row.0"
    threads_ns "$BASE_PID" >"$WORK/base.0"
    load_cpu wrk -t1 -c"$CONNECTIONS" -d"${SLICE}s" -H "cookie: $cookie" \
      "http://$addr$path" >"$WORK/together.row" &
    wa=$!
    load_cpu wrk -t1 -c"$CONNECTIONS" -d"${SLICE}s" -H "cookie: x=1" \
      "http://$BASE/api/v1/session" >"$WORK/together.base" &
    wb=$!
    wait "$wa" "$wb"
    threads_ns "$pid" >"$WORK/row.1"
    threads_ns "$BASE_PID" >"$WORK/base.1"
    ca=$(cpu_delta "$WORK/row.0" "$WORK/row.1")
    cb=$(cpu_delta "$WORK/base.0" "$WORK/base.1")
    if grep -q 'Non-2xx\|Socket errors' "$WORK/together.row"; then
      echo "error: $addr$path: failed answers while loaded beside the baseline" >&2
      cat "$WORK/together.row" >&2
      exit 1
    fi
    ra=$(awk '/requests in/ {print $1}' "$WORK/together.row")
    rb=$(awk '/requests in/ {print $1}' "$WORK/together.base")
    xs+="$(awk -v ra="$ra" -v rb="$rb" -v ca="$ca" -v cb="$cb" \
      'BEGIN {print (cb / rb) / (ca / ra)}')"$'\n'
  done
  printf '%s|%s|%s' "$(printf '%s' "$xs" | median)" "$(printf '%s' "$xs" | sort -g | head -n1)" \
    "$(printf '%s' "$xs" | sort -g | tail -n1)"
}

RESULTS=()
# measure LABEL ADDR PATH COOKIE PID : a warm-up of both servers, then ROUNDS rounds of
# (baseline slice, row slice). Records the row's req/s, the medians of its slices'
# p50 and p99, x = the median over the rounds of (row requests / baseline requests),
# the lowest and highest of those, the baseline's req/s, then the CPU-time figures of
# `together`.
measure() {
  local label=$1 addr=$2 path=$3 cookie=$4 pid=$5 base=0 row=0 p50s="" p99s="" xs=""
  slice "$BASE" /api/v1/session "x=1"
  slice "$addr" "$path" "$cookie"
  for _ in $(seq 1 "$ROUNDS"); do
    slice "$BASE" /api/v1/session "x=1"
    local b=$REQS
    slice "$addr" "$path" "$cookie"
    base=$((base + b))
    row=$((row + REQS))
    p50s+="$P50"$'\n'
    p99s+="$P99"$'\n'
    xs+="$(awk -v r="$REQS" -v b="$b" 'BEGIN {print r / b}')"$'\n'
  done
  local secs=$((ROUNDS * SLICE))
  RESULTS+=("$label|$(printf '%s' "$p50s" | median)|$(printf '%s' "$p99s" | median)|$((row / secs))|$(printf '%s' "$xs" | median)|$(printf '%s' "$xs" | sort -g | head -n1)|$(printf '%s' "$xs" | sort -g | tail -n1)|$((base / secs))|$(together "$addr" "$path" "$cookie" "$pid")")
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
BASE_PID=$PID

# backend NAME DATABASE_URL [ENV...] : cache on (default) and off.
backend() {
  local name=$1 db=$2
  shift 2
  start_aegis "$name" "$db" "$@"
  local addr=$ADDR pid=$PID cookie
  cookie=$(session_cookie "$addr" bench@example.com)
  check_answer "$addr" "$cookie"
  measure "$name: session, cache on" "$addr" /api/v1/session "$cookie" "$pid"
  measure "$name: forward-auth, cache on" "$addr" /api/v1/forward-auth "$cookie" "$pid"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  start_aegis "$name-nocache" "$db" AEGIS_SESSION_CACHE_TTL_SECS=0 "$@"
  check_answer "$ADDR" "$cookie"
  measure "$name: session, cache off" "$ADDR" /api/v1/session "$cookie" "$PID"
  kill "$PID"
  wait "$PID" 2>/dev/null || true
}

echo "# each row: $ROUNDS rounds of (baseline ${SLICE}s, row ${SLICE}s) with wrk -t1 -c$CONNECTIONS --latency, after a warm-up of both; servers on CPU $SERVER_CPUS, wrk on CPU $LOAD_CPUS" >&2
backend sqlite "sqlite://$WORK/sqlite.db"
PG=""
if pg_up && redis_up; then
  fresh_pg_db
  PG=$PG_APP_URL
  backend "postgres+redis" "$PG" AEGIS_DATABASE_OWNER_URL="$PG_OWNER_URL" AEGIS_REDIS_URL="$REDIS_URL" \
    AEGIS_RATE_LIMIT_REDIS_PREFIX="aegis-bench:$(date +%s):$$:" \
    AEGIS_SESSION_CACHE_CHANNEL="aegis-bench:$$:sessions"
fi

echo "== session checks: wrk -t1 -c$CONNECTIONS --latency, one valid session cookie"
echo "   baseline = minimal axum server with a constant body, in slices alternating with the row's"
echo "   x = median over $ROUNDS rounds of (row requests / baseline requests in the round); range = lowest and highest of those"
echo "   cpu x = median over $ROUNDS rounds of (baseline CPU time per request / row CPU time per request), both loaded at the same time"
echo "   (target for 'sqlite: session, cache on': x >= 0.8)"
printf '%s\n' "${RESULTS[@]}" | awk -F'|' -v pg="$PG" '
  BEGIN { printf "%-40s %8s %8s %9s %7s %13s %15s %7s %13s\n", "row", "p50 ms", "p99 ms", "req/s", "x", "range", "baseline req/s", "cpu x", "range" }
  { printf "%-40s %8.3f %8.3f %9d %7.2f %6.2f-%-6.2f %15d %7.2f %6.2f-%-6.2f\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 }
  END { if (pg == "") print "postgres+redis rows skipped: PostgreSQL or Redis does not answer" }'
