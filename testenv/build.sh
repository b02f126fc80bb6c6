#!/usr/bin/env bash
# Builds kube-apiserver, etcd and kubectl from the pinned Go modules beside this script
# into a cache keyed by version, and prints the directory holding both binaries.
# A warm call finds them there and returns at once.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# Handles both `require M v` and the `M v` lines of a require block.
module_version() { awk -v m="$1" '$1 == m {print $2; exit} $1 == "require" && $2 == m {print $3; exit}' "$2"; }
kube_version=$(module_version k8s.io/kubernetes "$here/kube-apiserver/go.mod")
etcd_version=$(module_version go.etcd.io/etcd/server/v3 "$here/etcd/go.mod")
cache_root=${COURIER_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/courier-testenv}
out="$cache_root/kube-$kube_version-etcd-$etcd_version"
mkdir -p "$out"
command -v go >/dev/null 2>&1 || {
  echo "testenv: Go is needed to build kube-apiserver and etcd (Go 1.26, see README: Testing)" >&2
  exit 1
}
# Two test runs at once wait for each other instead of building the same .tmp files.
exec 9>"$out/.lock"
flock 9
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=readonly

if [ ! -x "$out/etcd" ]; then
  echo "building etcd $etcd_version (cached afterwards in $out)" >&2
  (cd "$here/etcd" && go build -trimpath -o "$out/etcd.tmp" go.etcd.io/etcd/server/v3)
  mv "$out/etcd.tmp" "$out/etcd"
fi

minor=${kube_version#v1.}; minor=${minor%%.*}
ldflags="-s -w"
# The same variables Kubernetes' own hack/lib/version.sh stamps, so /version is honest.
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

if [ ! -x "$out/kube-apiserver" ]; then
  echo "building kube-apiserver $kube_version (a cold build takes about 5 minutes on 2 cores)" >&2
  (cd "$here/kube-apiserver" && go build -trimpath -ldflags "$ldflags" -o "$out/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver)
  mv "$out/kube-apiserver.tmp" "$out/kube-apiserver"
fi
if [ ! -x "$out/kubectl" ]; then
  # For the README's install walkthrough (tests/cluster/walkthrough.rs).
  echo "building kubectl $kube_version (about a minute more)" >&2
  (cd "$here/kube-apiserver" && go build -trimpath -ldflags "$ldflags" -o "$out/kubectl.tmp" k8s.io/kubernetes/cmd/kubectl)
  mv "$out/kubectl.tmp" "$out/kubectl"
fi
echo "$out"
