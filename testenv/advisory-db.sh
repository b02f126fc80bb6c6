#!/usr/bin/env bash
# Lays the RustSec advisory database snapshot (../shared/rustsec/advisory-db.tar.gz, beside
# the clone, read-only) out the way cargo-deny 0.20 reads it offline, in the testenv cache,
# and prints the directory to give `[advisories] db-path` (deny.toml reads it from
# $COURIER_ADVISORY_DB). cargo-deny wants a git repository (it reads HEAD's commit time) in
# a folder named after the default database URL; the snapshot is a plain tree, so it is
# committed once, dated as the snapshot. The cache is keyed by the tarball's digest; two runs
# at once wait for each other (flock); a warm call returns at once.
#   testenv/advisory-db.sh          the db-path
#   testenv/advisory-db.sh --date   the snapshot's date (from ../shared/rustsec/README.md)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
shared=${COURIER_SHARED:-$here/../../shared}
tarball=$shared/rustsec/advisory-db.tar.gz
readme=$shared/rustsec/README.md
for file in "$tarball" "$readme"; do
  [ -r "$file" ] || {
    echo "testenv: the RustSec snapshot is missing: $file (shared/ is expected beside the clone)" >&2
    exit 1
  }
done
# "... at commit <sha> (<date>)": the README names the snapshot's upstream commit and date.
read -r commit date < <(tr '\n' ' ' <"$readme" |
  sed -n 's/.* commit *\([0-9a-f]\{40\}\) *(\([0-9]\{4\}-[0-9]\{2\}-[0-9]\{2\}\)).*/\1 \2/p') || true
[ -n "${date:-}" ] || {
  echo "testenv: $readme does not say the snapshot's commit and date (\"at commit <sha> (YYYY-MM-DD)\")" >&2
  exit 1
}
if [ "${1:-}" = --date ]; then
  echo "$date"
  exit 0
fi
command -v git >/dev/null 2>&1 || { echo "testenv: git is needed to lay out the advisory database" >&2; exit 1; }
cache_root=${COURIER_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/courier-testenv}
digest=$(sha256sum "$tarball" | cut -c1-12)
out="$cache_root/advisory-db-$date-$digest"
# cargo-deny's folder name for https://github.com/RustSec/advisory-db, its default db-urls.
db="$out/advisory-db-3157b0e258782691"
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
if [ ! -e "$out/.done" ]; then
  rm -rf "$db" "$out/unpack"
  mkdir -p "$out/unpack"
  tar -xzf "$tarball" -C "$out/unpack"
  mv "$out/unpack/advisory-db" "$db"
  rmdir "$out/unpack"
  stamp="${date}T00:00:00Z"
  git -C "$db" init --quiet
  git -C "$db" add --all
  GIT_AUTHOR_DATE=$stamp GIT_COMMITTER_DATE=$stamp \
    git -C "$db" -c user.name=courier-testenv -c user.email=testenv@courier.invalid \
    -c commit.gpgsign=false commit --quiet --no-verify \
    -m "RustSec advisory-db at $commit ($date), from shared/rustsec"
  touch "$out/.done"
fi
echo "$out"
