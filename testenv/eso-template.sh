#!/usr/bin/env bash
# Builds the Go-template oracle (eso-template/: External Secrets Operator v2.9.0's own
# template engine, runtime/template/v2 with ESO's sprig fork) into the testenv cache and
# prints the binary's path. ESO's source tree comes from `testenv/eso-v2.sh source`; the
# build directory in the cache gets main.go and a go.mod (from go.mod.in) whose replaces
# point at that tree, and go.sum starts from ESO's runtime/go.sum (dependencies from the Go
# module proxy). The cache is keyed by the ESO release, Go's version and the oracle's own
# source. Concurrent runs wait for each other on a lock; a warm call returns at once.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
command -v go >/dev/null 2>&1 || {
  echo "testenv: Go is needed to build the Go-template oracle (Go 1.26, see README: Testing)" >&2
  exit 1
}
eso=v2.9.0
src=$("$here/eso-v2.sh" source)
go_version=$(GOTOOLCHAIN=local go env GOVERSION)
cache_root=${COURIER_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/courier-testenv}
source_hash=$(cat "$here/eso-template/main.go" "$here/eso-template/go.mod.in" | sha256sum | cut -c1-12)
out="$cache_root/eso-template-$eso-$go_version-$source_hash"
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
if [ ! -x "$out/eso-template" ]; then
  echo "building the Go-template oracle (ESO $eso's runtime/template/v2, $go_version)" >&2
  rm -rf "$out/build"
  mkdir -p "$out/build"
  cp "$here/eso-template/main.go" "$out/build/"
  sed "s|@ESO_SOURCE@|$src|g" "$here/eso-template/go.mod.in" >"$out/build/go.mod"
  cat "$src/runtime/go.sum" "$src/apis/go.sum" | sort -u >"$out/build/go.sum"
  (cd "$out/build" && GOTOOLCHAIN=local GOFLAGS=-mod=mod go mod tidy >&2 &&
    CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod \
      go build -trimpath -o "$out/eso-template.tmp" .)
  mv "$out/eso-template.tmp" "$out/eso-template"
fi
echo "$out/eso-template"
