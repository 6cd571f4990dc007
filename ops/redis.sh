#!/usr/bin/env bash
# Start a local redis-server with ops/redis.conf unless something already answers PING
# on the port. Idempotent: safe to run on every start. Data, pid and log live in
# var/redis/ (git-ignored). Port: $SAEGUARD_REDIS_PORT (default 6379).
#   bash ops/redis.sh          # start if needed
#   bash ops/redis.sh stop     # stop the one this script started
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PORT=${SAEGUARD_REDIS_PORT:-6379}
DATA="$ROOT/var/redis"
PIDFILE="$DATA/redis.pid"

log() { echo "[redis] $*" >&2; }

ping() {
  if command -v redis-cli >/dev/null 2>&1; then
    [ "$(redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null || true)" = "PONG" ]
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT" && printf 'PING\r\n' >&3 && head -c 5 <&3 | grep -q PONG) 2>/dev/null
  fi
}

if [ "${1:-}" = "stop" ]; then
  if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    kill "$(cat "$PIDFILE")" && log "stopped (pid $(cat "$PIDFILE"))"
  else
    log "not running from $DATA"
  fi
  exit 0
fi

if ping; then
  log "already answering on 127.0.0.1:$PORT"
  exit 0
fi
command -v redis-server >/dev/null 2>&1 || { log "redis-server not installed (run: bash ops/setup.sh)"; exit 1; }
mkdir -p "$DATA"
log "starting redis-server on 127.0.0.1:$PORT (AOF in $DATA)"
redis-server "$ROOT/ops/redis.conf" --port "$PORT" --dir "$DATA" --daemonize yes \
  --pidfile "$PIDFILE" --logfile "$DATA/redis.log"
for _ in $(seq 1 100); do
  if ping; then
    log "ready"
    exit 0
  fi
  sleep 0.1
done
log "did not answer within 10 s; see $DATA/redis.log"
tail -n 20 "$DATA/redis.log" >&2 || true
exit 1
