#!/usr/bin/env bash
# Regenerates the pinned Go modules that build the test control plane.
# k8s.io/kubernetes points its ~33 staging modules at ./staging through local
# replaces, which a consumer module cannot follow; so we read the release's own
# go.mod and replace each staging module with its published v0.X.Y twin.
# Usage: testenv/pin.sh [KUBERNETES_VERSION] [ETCD_VERSION]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kube_version=${1:-v1.37.2}
etcd_version=${2:-v3.7.3}
staging_version="v0.${kube_version#v1.}"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod

upstream_mod=$(mktemp)
trap 'rm -f "$upstream_mod"' EXIT
(cd "$here/kube-apiserver" && go mod download -json "k8s.io/kubernetes@$kube_version") >/dev/null
cp "$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$kube_version.mod" "$upstream_mod"

cd "$here/kube-apiserver"
rm -f go.mod go.sum
go mod init courier.test/testenv/kube-apiserver >/dev/null 2>&1
go mod edit -go="$(awk '/^go /{print $2; exit}' "$upstream_mod")"
go mod edit -require="k8s.io/kubernetes@$kube_version"
# Every local "=> ./staging/..." replace in the release's go.mod becomes a versioned one.
awk '$2 == "=>" && $3 ~ /^\.\/staging\// {print $1}' "$upstream_mod" | while read -r module; do
  go mod edit -replace="$module=$module@$staging_version"
done
go mod tidy >/dev/null
echo "pinned kube-apiserver to k8s.io/kubernetes@$kube_version ($(grep -c '=> k8s.io' go.mod) staging replaces)"

cd "$here/etcd"
rm -f go.mod go.sum
go mod init courier.test/testenv/etcd >/dev/null 2>&1
go mod edit -require="go.etcd.io/etcd/server/v3@$etcd_version"
go mod tidy >/dev/null
echo "pinned etcd to go.etcd.io/etcd/server/v3@$etcd_version"
