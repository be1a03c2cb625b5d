#!/usr/bin/env bash
# S2.9 load test, one command: 500 concurrent users (connections), each thinking about
# a second between requests, doing 90 % session checks, 5 % logins and 5 % other calls
# (session list, forward-auth, CSRF token) for a bounded time, on SQLite and, when
# they answer, on PostgreSQL + Redis. Reports p50/p95/p99/max and the error rate
# against MISSION.md's ceilings (P95 < 2 s, P99 < 5 s, errors < 0.1 %). Bounded:
# about 2 minutes after the build.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

USERS="${BENCH_USERS:-500}"
DURATION="${BENCH_DURATION:-30}"
THINK_MS="${BENCH_THINK_MS:-1000}"

build_release
ensure_wrk
machine_line
# A connection per user: wrk and the server need that many descriptors.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# prepare NAME ADDR : imports USERS accounts (one Argon2id hash for all, made once)
# and signs each in; writes "email<TAB>cookie" lines to $WORK/NAME.accounts.
prepare() {
  local name=$1 addr=$2 hash
  hash=$("$BIN/argon2_rate" phc)
  for i in $(seq 1 "$USERS"); do
    printf '{"email":"user%d@bench.example","password_hash":"%s","role":"member"}\n' "$i" "$hash"
  done >"$WORK/$name.jsonl"
  env -i PATH="$PATH" AEGIS_DATABASE_URL="$DB" AEGIS_SECRET_KEY="$BENCH_SECRET" \
    "${RUN_ENV[@]}" AEGIS_LOG_LEVEL=error "$BIN/aegis" user import "$WORK/$name.jsonl" >/dev/null
  seq 1 "$USERS" | xargs -P "$(nproc)" -I{} bash -c '
    email="user{}@bench.example"
    c=$(curl -sS -D - -o /dev/null -X POST -H "content-type: application/json" \
      --data "{\"email\":\"$email\",\"password\":\"'"$BENCH_PASSWORD"'\"}" \
      "http://'"$addr"'/api/v1/login" | tr -d "\r" |
      sed -n "s/^[Ss]et-[Cc]ookie: \([^=]*aegis_session=[^;]*\);.*/\1/p" | head -n1)
    [ -n "$c" ] && printf "%s\t%s\n" "$email" "$c"' >"$WORK/$name.accounts"
  local n
  n=$(wc -l <"$WORK/$name.accounts")
  if [ "$n" -ne "$USERS" ]; then
    echo "error: only $n of $USERS accounts could sign in" >&2
    exit 1
  fi
}

RESULTS=()
# run NAME DATABASE_URL [ENV...]
run() {
  local name=$1
  DB=$2
  shift 2
  RUN_ENV=("$@")
  start_aegis "$name" "$DB" "$@"
  local addr=$ADDR pid=$PID
  echo "# $name: preparing $USERS accounts" >&2
  prepare "$name" "$addr"
  echo "# $name: $USERS users for ${DURATION}s" >&2
  wrk -t2 -c"$USERS" -d"${DURATION}s" --timeout 10s -s bench/lua/load.lua "http://$addr" \
    -- "$WORK/$name.accounts" "$THINK_MS" >"$WORK/$name.wrk"
  local line
  line=$(grep '^RESULT ' "$WORK/$name.wrk") || { cat "$WORK/$name.wrk" >&2; exit 1; }
  RESULTS+=("$name ${line#RESULT }")
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}

run sqlite "sqlite://$WORK/sqlite.db"
if pg_up && redis_up; then
  fresh_pg_db
  run postgres+redis "$PG_APP_URL" AEGIS_DATABASE_OWNER_URL="$PG_OWNER_URL" AEGIS_REDIS_URL="$REDIS_URL" \
    AEGIS_RATE_LIMIT_REDIS_PREFIX="aegis-bench:$(date +%s):$$:" \
    AEGIS_SESSION_CACHE_CHANNEL="aegis-bench:$$:sessions"
fi

echo "== S2.9 load: $USERS users, think time ${THINK_MS} ms (mean), ${DURATION}s; 90 % session checks, 5 % logins, 5 % other"
echo "   x ceiling = figure / MISSION.md's ceiling (P95 2 s, P99 5 s, errors 0.1 %): below 1 passes"
printf '%s\n' "${RESULTS[@]}" | awk '{
  err = ($6 + $8) > 0 ? 100 * ($7 + $8) / ($6 + $8) : 0
  printf "%-16s p50 %8.2f ms  p95 %8.2f ms  p99 %8.2f ms  max %8.2f ms  requests %7d  errors %.3f %%  (%s)\n", $1, $2, $3, $4, $5, $6, err, $9
  printf "%-16s x ceiling: p95 %.4f  p99 %.4f  errors %.2f\n", "", $3 / 2000, $4 / 5000, err / 0.1
}'
