#!/usr/bin/env bash
# Memory and start-up benchmark, one command: time from exec to GET /readyz = 200 and
# idle RSS (against the minimal axum baseline server, same measure), then RSS with
# 100,000 active sessions held in the session cache. Bounded: about a minute after the
# build.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

SESSIONS="${BENCH_SESSIONS:-100000}"
RUNS="${BENCH_RUNS:-5}"

build_release
ensure_wrk
machine_line

aegis_cmd() { # aegis_cmd DATABASE_URL : the command line of a release server
  echo env -i PATH="$PATH" AEGIS_LISTEN=127.0.0.1:0 AEGIS_DATABASE_URL="$1" \
    AEGIS_SECRET_KEY="$BENCH_SECRET" AEGIS_CONFIG="$BENCH_DIR/rules.toml" "$BIN/aegis" serve
}

# median of the "ready_ms rss" lines on stdin: prints "ready_ms rss_kib".
median() { sort -n -k2 | awk '{ r[NR] = $2; m[NR] = $4 } END { i = int((NR + 1) / 2); print r[i], m[i] }'; }

echo "# start-up: $RUNS runs each" >&2
FIRST=$("$BIN/startup" /readyz -- $(aegis_cmd "sqlite://$WORK/first.db"))
read -r FIRST_MS FIRST_RSS < <(echo "$FIRST" | awk '{print $2, $4}')
read -r AEGIS_MS AEGIS_RSS < <(for _ in $(seq "$RUNS"); do
  "$BIN/startup" /readyz -- $(aegis_cmd "sqlite://$WORK/first.db")
done | median)
read -r BASE_MS BASE_RSS < <(for _ in $(seq "$RUNS"); do
  "$BIN/startup" / -- "$BIN/baseline_server"
done | median)

echo "# $SESSIONS sessions: seeding, then checking each once" >&2
DB="sqlite://$WORK/sessions.db"
start_aegis sessions "$DB"
A=$ADDR
session_cookie "$A" bench@example.com >/dev/null
sleep 1.5 # the idle figure of this very process, for the difference below
IDLE_RSS=$(awk '/VmRSS/ {print $2}' "/proc/$PID/status")
"$BIN/seed_sessions" "$DB" bench@example.com "$SESSIONS" "$WORK/cookies"
# One pass over every session (a single wrk thread cycles through the file), then a
# second to show the cache answers them.
PASS_SECS=$(( SESSIONS / 5000 + 5 ))
wrk -t1 -c8 -d"${PASS_SECS}s" -s bench/lua/cycle.lua "http://$A/api/v1/session" -- "$WORK/cookies" >"$WORK/pass"
read -r _ _ PASS_RPS PASS_BAD PASS_ERR < <(wrk_summary "$WORK/pass")
PASS_TOTAL=$(awk '/requests in/ {print $1}' "$WORK/pass")
if [ "$PASS_BAD" -gt 0 ] || [ "$PASS_ERR" -gt 0 ] || [ "$PASS_TOTAL" -lt "$SESSIONS" ]; then
  echo "error: the pass over the sessions failed: $PASS_TOTAL requests, $PASS_BAD non-2xx, $PASS_ERR errors" >&2
  cat "$WORK/pass" >&2
  exit 1
fi
FULL_RSS=$(awk '/VmRSS/ {print $2}' "/proc/$PID/status")

echo "== start-up and memory (median of $RUNS starts; RSS from /proc/PID/status)"
awk -v fms="$FIRST_MS" -v frss="$FIRST_RSS" -v ams="$AEGIS_MS" -v arss="$AEGIS_RSS" \
  -v bms="$BASE_MS" -v brss="$BASE_RSS" -v idle="$IDLE_RSS" -v full="$FULL_RSS" \
  -v n="$SESSIONS" -v total="$PASS_TOTAL" -v rps="$PASS_RPS" 'BEGIN {
  printf "%-44s %10s %12s\n", "", "exec->ready", "idle RSS"
  printf "%-44s %8.1f ms %9.1f MiB\n", "baseline (axum, constant body)", bms, brss / 1024
  printf "%-44s %8.1f ms %9.1f MiB\n", "aegis, new SQLite file (runs migrations)", fms, frss / 1024
  printf "%-44s %8.1f ms %9.1f MiB\n", "aegis, existing SQLite file", ams, arss / 1024
  printf "x baseline (existing file): start-up %.1f, idle RSS %.1f\n", ams / bms, arss / brss
  printf "%d sessions, %d checks at %.0f/s over them: RSS %.1f MiB (idle %.1f MiB), %.0f bytes per cached session\n", n, total, rps, full / 1024, idle / 1024, (full - idle) * 1024 / n
}'
