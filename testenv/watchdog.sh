#!/usr/bin/env bash
# Runs a server for the tests and stops it when the test process is gone, however
# the tests ended (success, panic, Ctrl-C or SIGKILL): nothing is left running.
# Usage: watchdog.sh OWNER_PID LOG_FILE -- COMMAND [ARGS...]
# With WATCHDOG_REMOVE_DIR set, that directory is removed once the server has stopped.
set -u
owner=$1 log=$2
shift 3
"$@" >>"$log" 2>&1 &
child=$!
stop() {
  kill -TERM "$child" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$child" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$child" 2>/dev/null
  # Only when the tests are gone: a test that stops a server on purpose restarts it.
  if [ -n "${WATCHDOG_REMOVE_DIR:-}" ] && ! kill -0 "$owner" 2>/dev/null; then
    sleep 1
    rm -rf "$WATCHDOG_REMOVE_DIR"
  fi
  exit 0
}
trap stop TERM INT HUP
while kill -0 "$owner" 2>/dev/null && kill -0 "$child" 2>/dev/null; do
  sleep 0.5
done
stop
