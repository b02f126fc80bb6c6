#!/usr/bin/env bash
# Builds the sync-window oracle (sync-windows/: ESO v2.9.0's syncWindows rule over
# robfig/cron v3.0.1, the version ESO's go.mod pins) into the testenv cache and prints the
# binary's path. go.sum holds robfig's line from ESO's go.sum; the module comes from the
# Go module cache or proxy. Keyed by Go's version and the oracle's source; concurrent
# runs wait for each other on a lock; a warm call returns at once.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
command -v go >/dev/null 2>&1 || {
  echo "testenv: Go is needed to build the sync-window oracle (Go 1.26, see README: Testing)" >&2
  exit 1
}
go_version=$(GOTOOLCHAIN=local go env GOVERSION)
cache_root=${COURIER_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/courier-testenv}
source_hash=$(cat "$here/sync-windows/main.go" "$here/sync-windows/go.mod" "$here/sync-windows/go.sum" | sha256sum | cut -c1-12)
out="$cache_root/sync-windows-$go_version-$source_hash"
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
if [ ! -x "$out/sync-windows" ]; then
  echo "building the sync-window oracle (robfig/cron v3.0.1, $go_version)" >&2
  rm -rf "$out/build"
  mkdir -p "$out/build"
  cp "$here/sync-windows/main.go" "$here/sync-windows/go.mod" "$here/sync-windows/go.sum" "$out/build/"
  (cd "$out/build" && CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod \
    go build -trimpath -o "$out/sync-windows.tmp" .)
  mv "$out/sync-windows.tmp" "$out/sync-windows"
fi
echo "$out/sync-windows"
