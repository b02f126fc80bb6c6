#!/usr/bin/env bash
# Builds the Go-template oracle (eso-template/: External Secrets Operator's own template
# engine, pinned in its go.mod) into the testenv cache and prints the binary's path. The
# cache is keyed by the ESO release, Go's version and the oracle's own source. Concurrent
# runs wait for each other on a lock; a warm call returns at once.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
command -v go >/dev/null 2>&1 || {
  echo "testenv: Go is needed to build the Go-template oracle (Go 1.26, see README: Testing)" >&2
  exit 1
}
eso=$(awk '$1 == "github.com/external-secrets/external-secrets" {print $2}' "$here/eso-template/go.mod")
go_version=$(GOTOOLCHAIN=local go env GOVERSION)
cache_root=${COURIER_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/courier-testenv}
source_hash=$(cat "$here/eso-template/main.go" "$here/eso-template/go.sum" | sha256sum | cut -c1-12)
out="$cache_root/eso-template-$eso-$go_version-$source_hash"
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
if [ ! -x "$out/eso-template" ]; then
  echo "building the Go-template oracle (ESO $eso, $go_version)" >&2
  (cd "$here/eso-template" && CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=readonly \
    go build -trimpath -o "$out/eso-template.tmp" .)
  mv "$out/eso-template.tmp" "$out/eso-template"
fi
echo "$out/eso-template"
