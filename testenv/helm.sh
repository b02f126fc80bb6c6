#!/usr/bin/env bash
# Builds helm from the Go module pinned in testenv/helm/go.mod (helm.sh/helm/v4) into a
# cache keyed by version, and prints the binary's path. A warm call returns at once.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=$(awk '$1 == "helm.sh/helm/v4" {print $2; exit} $1 == "require" && $2 == "helm.sh/helm/v4" {print $3; exit}' "$here/helm/go.mod")
cache_root=${COURIER_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/courier-testenv}
out="$cache_root/helm-$version-$(go env GOVERSION 2>/dev/null || echo nogo)"
mkdir -p "$out"
command -v go >/dev/null 2>&1 || { echo "testenv: Go is needed to build helm" >&2; exit 1; }
exec 9>"$out/.lock"
flock 9
if [ ! -x "$out/helm" ]; then
  echo "building helm $version (cold: about 2 minutes on 2 cores; cached afterwards in $out)" >&2
  ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=$version"
  (cd "$here/helm" && CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=readonly \
    go build -trimpath -ldflags "$ldflags" -o "$out/helm.tmp" helm.sh/helm/v4/cmd/helm)
  mv "$out/helm.tmp" "$out/helm"
fi
echo "$out/helm"
