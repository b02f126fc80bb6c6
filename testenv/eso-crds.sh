#!/usr/bin/env bash
# Prints the directory of ESO's own CRDs at the release pinned in testenv/eso-crds/go.mod
# (downloaded through the Go module proxy and checked against go.sum).
#   testenv/eso-crds.sh            -> the directory (config/crds/bases of the module)
#   testenv/eso-crds.sh --update   -> also copies the four CRDs courier reads into
#                                     charts/courier/files/eso-crds/
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
command -v go >/dev/null 2>&1 || { echo "testenv: Go is needed to fetch ESO's CRDs" >&2; exit 1; }
version=$(awk '$1 == "require" && $2 == "github.com/external-secrets/external-secrets" {print $3}' "$here/eso-crds/go.mod")
dir=$(cd "$here/eso-crds" && GOFLAGS=-mod=readonly GOTOOLCHAIN=local \
  go mod download -json "github.com/external-secrets/external-secrets@$version" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
bases="$dir/config/crds/bases"
[ -d "$bases" ] || { echo "testenv: $bases is missing from ESO $version's module" >&2; exit 1; }
if [ "${1:-}" = "--update" ]; then
  target="$here/../charts/courier/files/eso-crds"
  mkdir -p "$target"
  for kind in clusterexternalsecrets externalsecrets clustersecretstores secretstores; do
    install -m 0644 "$bases/external-secrets.io_$kind.yaml" "$target/"
  done
  echo "copied ESO $version's CRDs into $target" >&2
fi
echo "$bases"
