#!/usr/bin/env bash
# Builds the Go-template oracle (eso-template/: text/template + the sprig release ESO
# requires) into the testenv cache and prints the binary's path. Concurrent runs wait for
# each other on a lock; a warm call returns at once.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
command -v go >/dev/null 2>&1 || {
  echo "testenv: Go is needed to build the Go-template oracle (Go 1.26, see README: Testing)" >&2
  exit 1
}
sprig=$(awk '$1 == "require" && $2 == "github.com/Masterminds/sprig/v3" {print $3}' "$here/eso-template/go.mod")
go_version=$(GOTOOLCHAIN=local go env GOVERSION)
cache_root=${COURIER_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/courier-testenv}
out="$cache_root/eso-template-sprig-$sprig-$go_version"
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
if [ ! -x "$out/eso-template" ]; then
  echo "building the Go-template oracle (sprig $sprig, $go_version)" >&2
  (cd "$here/eso-template" && CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=readonly \
    go build -trimpath -o "$out/eso-template.tmp" .)
  mv "$out/eso-template.tmp" "$out/eso-template"
fi
echo "$out/eso-template"
