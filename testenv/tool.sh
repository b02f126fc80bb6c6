#!/usr/bin/env bash
# Builds a Go tool the tests use from the module pinned beside this script, into a cache
# keyed by tool, version and Go version, and prints the binary's path. A warm call returns
# at once; two runs at once wait for each other (flock).
#   testenv/tool.sh helm       helm.sh/helm/v4 (testenv/helm/go.mod): the chart's tests
#   testenv/tool.sh registry   CNCF Distribution (testenv/registry/go.mod): the image push test
#   testenv/tool.sh eso        External Secrets Operator's controller (testenv/eso/go.mod): the
#                              peer of `cargo bench --bench eso` (cold: about 5 minutes)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tool=${1:?usage: testenv/tool.sh helm|registry|eso}
case "$tool" in
  helm) module=helm.sh/helm/v4; package=helm.sh/helm/v4/cmd/helm ;;
  registry) module=github.com/distribution/distribution/v3; package=$module/cmd/registry ;;
  eso) module=github.com/external-secrets/external-secrets; package=$module ;;
  *) echo "testenv: unknown tool $tool" >&2; exit 2 ;;
esac
command -v go >/dev/null 2>&1 || { echo "testenv: Go is needed to build $tool" >&2; exit 1; }
version=$(awk -v m="$module" '$1 == m {print $2; exit} $1 == "require" && $2 == m {print $3; exit}' "$here/$tool/go.mod")
cache_root=${COURIER_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/courier-testenv}
out="$cache_root/$tool-$version-$(go env GOVERSION)"
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
if [ ! -x "$out/$tool" ]; then
  echo "building $tool $version (cold: 1-3 minutes on 2 cores; cached afterwards in $out)" >&2
  ldflags="-s -w"
  if [ "$tool" = helm ]; then ldflags+=" -X helm.sh/helm/v4/internal/version.version=$version"; fi
  if [ "$tool" = registry ]; then ldflags+=" -X $module/version.version=$version"; fi
  (cd "$here/$tool" && CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=readonly \
    go build -trimpath -ldflags "$ldflags" -o "$out/$tool.tmp" "$package")
  mv "$out/$tool.tmp" "$out/$tool"
fi
echo "$out/$tool"
