#!/usr/bin/env bash
# Installs the pinned moto server (PyPI's `moto[server]`, which serves AWS Secrets Manager,
# SSM Parameter Store and STS over HTTP) into a virtualenv in courier's test cache and prints
# the path of its `moto_server`. Tests start it themselves: `moto_server -H 127.0.0.1 -p PORT`
# (with INITIAL_NO_AUTH_ACTION_COUNT=0 moto checks every request's SigV4 signature).
set -euo pipefail
version=5.2.5
cache_root=${COURIER_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/courier-testenv}
target="$cache_root/moto-$version"
binary="$target/bin/moto_server"
mkdir -p "$cache_root"
# Two test runs at once wait for each other rather than removing each other's install.
exec 9>"$cache_root/moto-$version.lock"
flock 9
# A virtualenv's scripts name its own path, so it is built in place; `.installed` marks a
# finished install (an interrupted one is started again).
if [ ! -f "$target/.installed" ]; then
  command -v python3 >/dev/null 2>&1 || { echo "testenv: python3 (with venv) is needed to install moto from PyPI" >&2; exit 1; }
  echo "installing moto[server] $version into $target" >&2
  rm -rf "$target" "$target.tmp"
  python3 -m venv "$target" >&2
  "$target/bin/python" -m pip install --quiet --disable-pip-version-check "moto[server]==$version" >&2
  touch "$target/.installed"
fi
echo "$binary"
