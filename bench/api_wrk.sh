#!/usr/bin/env bash
# Benchmark of POST /v1/emails with wrk (Debian package `wrk`): starts
# `postline api` on 127.0.0.1 and a free port with a fresh SQLite data
# directory, runs wrk for a bounded time, prints requests/s and latency
# p50/p99, and stops the server.
#
# Usage: bench/api_wrk.sh [BUILD_DIR] [SECONDS] [CONNECTIONS]
#        (defaults: build, 10, 16; 2 wrk threads)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${1:-build}
SECONDS_TO_RUN=${2:-10}
CONNECTIONS=${3:-16}
POSTLINE=$ROOT/$BUILD_DIR/src/app/postline
[[ -x "$POSTLINE" ]] || POSTLINE=$BUILD_DIR/src/app/postline
command -v wrk >/dev/null || { echo "api_wrk: wrk is not installed (apt-get install wrk)" >&2; exit 1; }

WORK=$(mktemp -d)
SERVER_PID=""
cleanup() {
  if [[ -n "$SERVER_PID" ]]; then kill -TERM "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# The request: one small envelope (a password reset, priority lane).
cat > "$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"to":["user@example.com"],"subject":"Reset your password","text":"Open https://example.com/reset?t=abc\\n","priority":1}'

done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write +
                 summary.errors.status + summary.errors.timeout
  io.write(string.format(
    '{"requests":%d,"duration_s":%.2f,"requests_per_s":%.1f,"p50_ms":%.2f,"p99_ms":%.2f,"max_ms":%.2f,"errors":%d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000, errors))
end
LUA

cd "$WORK"
POSTLINE_DATA_DIR="$WORK/var" POSTLINE_FROM="Bench <bench@example.com>" POSTLINE_LOG_LEVEL=warn \
  "$POSTLINE" api --listen 127.0.0.1:0 > "$WORK/server.out" 2> "$WORK/server.err" &
SERVER_PID=$!
for _ in $(seq 50); do [[ -s "$WORK/server.out" ]] && break; sleep 0.1; done
PORT=$(sed -n 's/.*"port":\([0-9]*\).*/\1/p' "$WORK/server.out")
[[ -n "$PORT" ]] || { echo "api_wrk: server did not start" >&2; cat "$WORK/server.err" >&2; exit 1; }

echo "api_wrk: POST /v1/emails for ${SECONDS_TO_RUN}s, ${CONNECTIONS} connections, 2 threads ($(nproc) cores)" >&2
wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_TO_RUN}s" --latency -s "$WORK/post.lua" \
  "http://127.0.0.1:$PORT/v1/emails" | tee "$WORK/wrk.out" >&2
RESULT=$(tail -1 "$WORK/wrk.out")
QUEUED=$(POSTLINE_DATA_DIR="$WORK/var" "$POSTLINE" queues --json | sed -n 's/.*"available": \([0-9]*\).*/\1/p' | head -1)
echo "$RESULT" | sed "s/}\$/,\"queued_priority\":${QUEUED:-0}}/"
