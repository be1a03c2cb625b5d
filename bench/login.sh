#!/usr/bin/env bash
# Login benchmark, one command: (1) logins/s through the real server against the raw
# Argon2id rate of the same parameters on the same cores, measured in the same run;
# (2) isolation: the p99 of session checks from a second client while a login flood
# saturates hashing, against the same p99 without the flood. Bounded: about 90 s
# after the build.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

DURATION="${BENCH_DURATION:-10}"
LOGIN_CLIENTS="${BENCH_LOGIN_CLIENTS:-$(($(nproc) * 4))}"
STORM_CLIENTS="${BENCH_STORM_CLIENTS:-256}"
CHECK_CLIENTS="${BENCH_CHECK_CLIENTS:-4}"

build_release
ensure_wrk
machine_line

start_aegis sqlite "sqlite://$WORK/sqlite.db"
A=$ADDR
COOKIE=$(session_cookie "$A" bench@example.com)
[ -n "$COOKIE" ] || { echo "error: could not sign in" >&2; exit 1; }
# The configured hashing capacity, as the server reports it at start-up.
echo "# hashing: $(nproc) cores; Argon2id m=19456 KiB, t=2, p=1" >&2

raw_rate() { "$BIN/argon2_rate" "$DURATION" | awk '{print $2}'; }

# logins : prints "logins_per_s non2xx".
logins() {
  local out="$WORK/login.$RANDOM"
  wrk -t2 -c"$LOGIN_CLIENTS" -d"${DURATION}s" -s bench/lua/login.lua "http://$A/api/v1/login" >"$out"
  local p50 p99 rps bad errs
  read -r p50 p99 rps bad errs < <(wrk_summary "$out")
  echo "$rps $((bad + errs))"
}

echo "# (1) raw Argon2id, logins, raw Argon2id again (${DURATION}s each)" >&2
R1=$(raw_rate)
read -r L LBAD < <(logins)
R2=$(raw_rate)

# session_p99 LABEL : p50/p99 of session checks from CHECK_CLIENTS connections.
session_run() {
  local out="$WORK/check.$RANDOM"
  wrk -t1 -c"$CHECK_CLIENTS" -d"${DURATION}s" --latency -H "cookie: $COOKIE" \
    "http://$A/api/v1/session" >"$out"
  wrk_summary "$out"
}

echo "# (2) session checks idle, then during a login storm of $STORM_CLIENTS clients" >&2
read -r I50 I99 IRPS IBAD IERR < <(session_run)
STORM_OUT="$WORK/storm"
wrk -t1 -c"$STORM_CLIENTS" -d"$((DURATION + 4))s" -s bench/lua/login.lua \
  "http://$A/api/v1/login" >"$STORM_OUT" &
STORM=$!
sleep 2
read -r S50 S99 SRPS SBAD SERR < <(session_run)
wait "$STORM"
read -r _ _ STORM_RPS STORM_BAD STORM_ERR < <(wrk_summary "$STORM_OUT")
STORM_TOTAL=$(awk '/requests in/ {print $1}' "$STORM_OUT")

echo "== (1) login throughput: wrk -t2 -c$LOGIN_CLIENTS -d${DURATION}s POST /api/v1/login (correct password)"
echo "   baseline = raw Argon2id hashes/s, one thread per core (mean of the runs before and after)"
awk -v r1="$R1" -v r2="$R2" -v l="$L" -v bad="$LBAD" 'BEGIN {
  b = (r1 + r2) / 2
  printf "%-30s %10.1f/s\n", "raw Argon2id (run 1)", r1
  printf "%-30s %10.1f/s\n", "raw Argon2id (run 2)", r2
  printf "%-30s %10.1f/s   non-2xx/errors: %d\n", "logins through Aegis", l, bad
  printf "ratio logins / raw Argon2id: %.2f (target >= 0.9)\n", l / b
}'
echo "== (2) isolation: GET /api/v1/session, wrk -t1 -c$CHECK_CLIENTS -d${DURATION}s, idle vs during a login storm (wrk -c$STORM_CLIENTS)"
awk -v i50="$I50" -v i99="$I99" -v irps="$IRPS" -v ibad="$((IBAD + IERR))" \
  -v s50="$S50" -v s99="$S99" -v srps="$SRPS" -v sbad="$((SBAD + SERR))" \
  -v st="$STORM_TOTAL" -v sr="$STORM_RPS" -v sref="$((STORM_BAD + STORM_ERR))" 'BEGIN {
  printf "%-26s %8s %8s %9s %8s\n", "session checks", "p50 ms", "p99 ms", "req/s", "errors"
  printf "%-26s %8.3f %8.3f %9.0f %8d\n", "idle", i50, i99, irps, ibad
  printf "%-26s %8.3f %8.3f %9.0f %8d\n", "during the login storm", s50, s99, srps, sbad
  printf "p99 storm / idle: %.2f (target < 10, and 0 errors)\n", s99 / i99
  printf "the storm: %d login attempts, %.0f/s answered; %d refused by hashing admission (429, after password.busy_delay_ms) or failed\n", st, sr, sref
}'
