#!/usr/bin/env bash
# Profile of a warm session check, one command: the release server under callgrind
# (instruction counts: repeatable whatever else the machine does), GET /api/v1/session
# with one valid cookie for 10 s, then instructions per request and the functions
# that cost most, inclusive and exclusive. Needs valgrind. Bounded: about a minute.
# The same count for the baseline server shows the floor of the HTTP stack itself.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

command -v valgrind >/dev/null || { echo "error: valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
build_release
ensure_wrk
TOP="${BENCH_TOP:-25}"
# BENCH_PROFILE_KEEP=DIR keeps the callgrind files there, for callgrind_annotate
# --tree=caller and the like.
KEEP="${BENCH_PROFILE_KEEP:-}"

# profile NAME COOKIE CMD... : runs CMD (whose program is to be started through
# valgrind, see `callgrind` below) and prints "instructions requests callgrind-file".
profile() {
  local name=$1 cookie=$2
  shift 2
  start "$name-cg" "$@"
  local addr=$ADDR pid=$PID
  wrk -t1 -c4 -d3s -H "cookie: $cookie" "http://$addr/api/v1/session" >/dev/null
  callgrind_control -i on "$pid" >/dev/null
  wrk -t1 -c4 -d10s -H "cookie: $cookie" "http://$addr/api/v1/session" >"$WORK/$name.wrk"
  callgrind_control -d "$pid" >/dev/null
  callgrind_control -i off "$pid" >/dev/null
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  local requests instructions file
  requests=$(awk '/requests in/ {print $1}' "$WORK/$name.wrk")
  file=$(ls -S "$WORK/$name.cg"* | head -n1)
  instructions=$(callgrind_annotate "$file" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  echo "$instructions $requests $file"
}

start_aegis sqlite "sqlite://$WORK/aegis.db"
COOKIE=$(session_cookie "$ADDR" bench@example.com)
kill "$PID"
wait "$PID" 2>/dev/null || true

callgrind() { # callgrind NAME : the valgrind command line writing $WORK/NAME.cg
  echo valgrind --tool=callgrind --callgrind-out-file="$WORK/$1.cg" --instr-atstart=no
}
# shellcheck disable=SC2046
read -r AI AR AF < <(profile aegis "$COOKIE" env -i PATH="$PATH" AEGIS_LISTEN=127.0.0.1:0 \
  AEGIS_DATABASE_URL="sqlite://$WORK/aegis.db" AEGIS_SECRET_KEY="$BENCH_SECRET" \
  AEGIS_CONFIG="$BENCH_DIR/rules.toml" $(callgrind aegis) "$BIN/aegis" serve)
# shellcheck disable=SC2046
read -r BI BR _ < <(profile baseline "x=1" $(callgrind baseline) "$BIN/baseline_server")

if [ -n "$KEEP" ]; then
  mkdir -p "$KEEP"
  cp "$AF" "$KEEP/aegis.cg"
  cp "$(ls -S "$WORK"/baseline.cg* | head -n1)" "$KEEP/baseline.cg"
  echo "# callgrind files kept in $KEEP (aegis.cg, baseline.cg)" >&2
fi

echo "== instructions per request (callgrind, GET /api/v1/session, warm session cache)"
awk -v ai="$AI" -v ar="$AR" -v bi="$BI" -v br="$BR" 'BEGIN {
  printf "baseline (axum, constant body): %8.0f\n", bi / br
  printf "aegis:                          %8.0f   (x %.2f)\n", ai / ar, (ai / ar) / (bi / br)
}'
echo "   (valgrind hides SHA-NI, so SHA-256 runs in software here: the token hash costs"
echo "   several times what it costs outside callgrind on a CPU with SHA extensions)"
echo "== aegis: its own functions by inclusive cost (top $TOP; the runtime's frames left out)"
callgrind_annotate --inclusive=yes "$AF" 2>/dev/null | grep -E '^ *[0-9,]+ \(' |
  grep -E 'aegis(_core|_store)?::|serde_json|sha2::|tracing' | head -n "$TOP" | cut -c1-160
echo "== aegis: functions by exclusive cost (top $TOP)"
callgrind_annotate "$AF" 2>/dev/null | grep -E '^ *[0-9,]+ \(' | sed -n "2,$((TOP + 1))p" | cut -c1-160
