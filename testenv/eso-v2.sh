#!/usr/bin/env bash
# ESO v2.9.0 from its source release (../shared/eso/external-secrets-v2.9.0.tar.gz, beside
# the repository), unpacked into testenv's cache and built there, never in the project's tree.
#   testenv/eso-v2.sh source            prints the unpacked source tree (for oracles that import
#                                       ESO's packages through a `replace` to it)
#   testenv/eso-v2.sh controller [TAGS] builds ESO's controller (`go build .`; TAGS such as `aws`
#                                       add providers, as ESO's release uses `all_providers`) and
#                                       prints the binary's path (cold: about 5-8 minutes on 2 cores)
# Dependencies come from the Go module proxy. Two runs at once wait for each other (flock); a
# warm call returns at once. COURIER_ESO_SOURCE overrides where the tarball is looked for.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
what=${1:?usage: testenv/eso-v2.sh source|controller [TAGS]}
tags=${2:-}
version=v2.9.0
tarball=${COURIER_ESO_SOURCE:-$here/../../shared/eso/external-secrets-$version.tar.gz}
[ -f "$tarball" ] || {
  echo "testenv: ESO's source $tarball is missing (expected ../shared/eso/ beside the repository; set COURIER_ESO_SOURCE)" >&2
  exit 1
}
command -v go >/dev/null 2>&1 || { echo "testenv: Go is needed to build ESO $version" >&2; exit 1; }
cache_root=${COURIER_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/courier-testenv}
tar_hash=$(sha256sum "$tarball" | cut -c1-12)
src_root="$cache_root/eso-src-$version-$tar_hash"
mkdir -p "$src_root"
exec 9>"$src_root/.lock"
flock 9
if [ ! -f "$src_root/.unpacked" ]; then
  echo "unpacking ESO $version's source into $src_root" >&2
  rm -rf "$src_root/tree" "$src_root/tree.tmp"
  mkdir -p "$src_root/tree.tmp"
  tar -xzf "$tarball" -C "$src_root/tree.tmp" --strip-components=1
  mv "$src_root/tree.tmp" "$src_root/tree"
  touch "$src_root/.unpacked"
fi
# The source tree is read-only from here on: let go of its lock, so that a long controller
# build (which takes its own lock below) does not hold up `source` callers.
exec 9>&-
src="$src_root/tree"
case "$what" in
  source)
    echo "$src"
    ;;
  controller)
    go_version=$(GOTOOLCHAIN=local go env GOVERSION)
    out="$cache_root/eso-$version-$go_version${tags:+-${tags//[, ]/_}}"
    mkdir -p "$out"
    exec 8>"$out/.lock"
    flock 8
    if [ ! -x "$out/eso" ]; then
      echo "building ESO $version's controller${tags:+ with tags $tags} (cold: 5-8 minutes on 2 cores; cached in $out)" >&2
      (cd "$src" && CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod \
        go build -trimpath -ldflags "-s -w" ${tags:+-tags "$tags"} -o "$out/eso.tmp" .)
      mv "$out/eso.tmp" "$out/eso"
    fi
    echo "$out/eso"
    ;;
  *) echo "testenv: unknown target $what (source|controller)" >&2; exit 2 ;;
esac
