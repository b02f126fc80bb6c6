#!/usr/bin/env bash
# The container image's tools, from Debian's packages: buildah (builds without a daemon),
# skopeo and umoci (read and unpack the image), musl-gcc (ring's and aws-lc's C code in the static
# binary), and rustup's musl target. Installed when missing, so `image/build.sh`, and with
# it `cargo test` (the walkthrough builds the image as the README says), work on a fresh
# machine that has only what the README lists. Installing needs root (the tests need it
# anyway, for the chroot that plays the Job's pod); otherwise this says what to install.
set -euo pipefail

missing=()
for tool in buildah:buildah skopeo:skopeo umoci:umoci musl-gcc:musl-tools; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "image: missing ${missing[*]}; as root: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  # Two test processes may get here at once; apt takes one at a time.
  lock="${XDG_CACHE_HOME:-$HOME/.cache}/courier-testenv/.apt.lock"
  mkdir -p "$(dirname "$lock")"
  exec 8>"$lock"
  flock 8
  still=()
  for package in "${missing[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || still+=("$package")
  done
  if [ ${#still[@]} -gt 0 ]; then
    echo "image: apt-get install ${still[*]} (the container image's tools)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${still[@]}" >/dev/null 2>&1 ||
      { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${still[@]}" >/dev/null; }
  fi
fi
target=x86_64-unknown-linux-musl
rustup target list --installed 2>/dev/null | grep -qx "$target" || rustup target add "$target" >&2
