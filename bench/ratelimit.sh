#!/usr/bin/env bash
# Rate-limit benchmark, one command: decisions/s (in-process and Redis, against
# baselines measured in the same run), then the latency a limited endpoint adds:
# GET /healthz on release servers with limits off, in-process and on Redis, loaded by
# wrk on loopback. Bounded: about two minutes after the build.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aegis-target}"
REDIS_URL="${AEGIS_BENCH_REDIS_URL:-redis://127.0.0.1:6379}"
DURATION="${BENCH_DURATION:-10s}"
CONNECTIONS="${BENCH_CONNECTIONS:-16}"

cargo build --release -q -p aegis -p aegis-bench
BIN="$CARGO_TARGET_DIR/release"

echo "# machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
"$BIN/ratelimit_decisions"

if ! command -v wrk >/dev/null; then
  apt-get install -y -qq wrk >/dev/null 2>&1 || {
    echo "error: wrk is not installed and could not be installed (apt-get install wrk)" >&2
    exit 1
  }
fi

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# No request of the benchmark may be refused: one generous rule for everything.
cat > "$WORK/rules.toml" <<'TOML'
[rate_limit.rules.default]
routes = ["*"]
key = "ip"
limit = 1000000000
period_secs = 60
TOML

# start NAME ENV... : starts a release server and sets ADDR.
start() {
  local name=$1; shift
  mkdir -p "$WORK/$name"
  env -i PATH="$PATH" AEGIS_LISTEN=127.0.0.1:0 AEGIS_LOG_LEVEL=warn \
    AEGIS_DATABASE_URL="sqlite://$WORK/$name/aegis.db" \
    AEGIS_SECRET_KEY="bench-$(head -c 32 /dev/urandom | base64 | tr -d '=+/')" \
    AEGIS_CONFIG="$WORK/rules.toml" "$@" \
    "$BIN/aegis" serve > "$WORK/$name/out" 2> "$WORK/$name/err" &
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

# load NAME ADDR : prints "p50_ms p99_ms req_per_s" for GET /healthz.
load() {
  wrk -t2 -c"$CONNECTIONS" -d2s "http://$2/healthz" >/dev/null # warm-up
  wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency "http://$2/healthz" > "$WORK/$1.wrk"
  awk '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    /^ +50%/ { p50 = ms($2) } /^ +99%/ { p99 = ms($2) } /^Requests\/sec/ { rps = $2 }
    /Non-2xx/ { bad = $NF }
    END { if (bad > 0) { print "error: non-2xx answers: " bad > "/dev/stderr"; exit 1 } printf "%.3f %.3f %.0f\n", p50, p99, rps }
  ' "$WORK/$1.wrk"
}

start unlimited AEGIS_RATE_LIMIT_ENABLED=false
UNLIMITED=$ADDR
start memory AEGIS_RATE_LIMIT_ENABLED=true
MEMORY=$ADDR
REDIS=""
if redis-cli -u "$REDIS_URL" ping >/dev/null 2>&1; then
  start redis AEGIS_RATE_LIMIT_ENABLED=true AEGIS_REDIS_URL="$REDIS_URL" \
    AEGIS_RATE_LIMIT_REDIS_PREFIX="aegis-bench:$$:"
  REDIS=$ADDR
fi

echo "== GET /healthz, wrk -t2 -c$CONNECTIONS -d$DURATION (loopback), limits off vs on"
read -r base50 base99 baserps < <(load unlimited "$UNLIMITED")
printf "%-22s %10s %10s %12s %14s %14s\n" "server" "p50 ms" "p99 ms" "req/s" "p50 added ms" "p99 added ms"
printf "%-22s %10.3f %10.3f %12.0f %14s %14s\n" "unlimited (baseline)" "$base50" "$base99" "$baserps" "-" "-"
for pair in "in-process:$MEMORY" ${REDIS:+"redis:$REDIS"}; do
  name=${pair%%:*}; addr=${pair#*:}
  read -r p50 p99 rps < <(load "$name" "$addr")
  awk -v n="limited ($name)" -v p50="$p50" -v p99="$p99" -v rps="$rps" \
    -v b50="$base50" -v b99="$base99" -v brps="$baserps" 'BEGIN {
      printf "%-22s %10.3f %10.3f %12.0f %14.3f %14.3f   req/s ratio %.2f\n",
        n, p50, p99, rps, p50 - b50, p99 - b99, rps / brps }'
done
