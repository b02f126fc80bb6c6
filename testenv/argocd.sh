#!/usr/bin/env bash
# Builds argocd-cmp-server and a test client from Argo CD's own Go module (pinned in
# testenv/argocd/go.mod, with the release's replace block) into a cache keyed by the
# release, the Go toolchain and the two programs' source, and prints the directory
# holding `cmp-server` and `cmp-client`. Argo CD v3.6 needs Go 1.27: its go.mod names the
# toolchain, which the go command fetches through the module proxy (GOTOOLCHAIN).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
command -v go >/dev/null 2>&1 || { echo "testenv: Go is needed to build argocd-cmp-server" >&2; exit 1; }
module=github.com/argoproj/argo-cd/v3
version=$(awk -v m="$module" '$1 == "require" && $2 == m {print $3; exit} $1 == m {print $2; exit}' "$here/argocd/go.mod")
toolchain=go$(awk '$1 == "go" {print $2; exit}' "$here/argocd/go.mod")
source_hash=$(cat "$here/argocd/go.mod" "$here/argocd/go.sum" "$here/argocd/cmp-server/main.go" "$here/argocd/cmp-client/main.go" | sha256sum | cut -c1-12)
cache_root=${COURIER_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/courier-testenv}
out="$cache_root/argocd-$version-$toolchain-$source_hash"
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
if [ ! -x "$out/cmp-server" ] || [ ! -x "$out/cmp-client" ]; then
  echo "building argocd-cmp-server $version with $toolchain (cold: several minutes on 2 cores; cached afterwards in $out)" >&2
  (cd "$here/argocd" && CGO_ENABLED=0 GOTOOLCHAIN="$toolchain" GOFLAGS=-mod=readonly \
    go build -trimpath -ldflags "-s -w" -o "$out/tmp/" ./cmp-server ./cmp-client)
  mv "$out/tmp/cmp-server" "$out/tmp/cmp-client" "$out/"
  rmdir "$out/tmp"
fi
echo "$out"
