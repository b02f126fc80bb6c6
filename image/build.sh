#!/usr/bin/env bash
# Builds courier's container image without a Docker daemon (Debian's buildah, vfs storage,
# chroot isolation): FROM scratch, the static musl release binary, CA certificates, a
# non-root user, OCI labels. Same commit, same image digest: file times and the creation
# time are the commit's time, and nothing else varies.
#
#   image/build.sh            -> target/image/courier.oci.tar (an OCI archive); prints its digest
#   skopeo copy oci-archive:target/image/courier.oci.tar docker://REGISTRY/courier:TAG
set -euo pipefail
cd "$(dirname "$0")/.."

# buildah, skopeo, umoci, musl-gcc and the musl target: installed when missing (as root).
testenv/image-tools.sh
target=x86_64-unknown-linux-musl

out=target/image
mkdir -p "$out"
# One build at a time: buildah's storage and the archive are shared.
exec 9>"$out/.lock"
flock 9

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  revision="$revision-dirty"
fi
source_url=$(git remote get-url origin 2>/dev/null || echo "")
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}

echo "image: cargo build --release --target $target" >&2
CC_x86_64_unknown_linux_musl=musl-gcc cargo build --release --locked --quiet --target "$target"
binary="target/$target/release/courier"

root="$out/rootfs"
rm -rf "$root"
mkdir -p "$root/etc/ssl/certs" "$root/tmp"
mkdir -p "$root/usr/local/bin"
install -m 0755 "$binary" "$root/usr/local/bin/courier"
# Symbols and line tables stay in target/ for debugging; the image ships the code only.
strip --strip-all "$root/usr/local/bin/courier"
# Debian's bundle: the only file here that depends on the build machine (its package version).
install -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
chmod 0644 "$root/etc/passwd" "$root/etc/group"
chmod 1777 "$root/tmp"

storage=(--storage-driver vfs --root "$PWD/$out/storage" --runroot "$PWD/$out/run")
container=$(buildah "${storage[@]}" from --quiet scratch)
trap 'buildah "${storage[@]}" rm "$container" >/dev/null 2>&1 || true' EXIT
buildah "${storage[@]}" copy --quiet --chown 0:0 "$container" "$root/" / >/dev/null
labels=(
  --label "org.opencontainers.image.title=courier"
  --label "org.opencontainers.image.description=Distributes Kubernetes Secrets the way External Secrets Operator does, without an operator"
  --label "org.opencontainers.image.version=$version"
  --label "org.opencontainers.image.revision=$revision"
  --label "org.opencontainers.image.licenses=Apache-2.0"
)
if [ -n "$source_url" ]; then
  labels+=(--label "org.opencontainers.image.source=$source_url")
fi
buildah "${storage[@]}" config \
  --entrypoint '["/usr/local/bin/courier"]' --cmd '' \
  --user 65532:65532 --workingdir / \
  --env PATH=/usr/local/bin --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
  --os linux --arch amd64 \
  "${labels[@]}" "$container"
archive="$out/courier.oci.tar"
rm -f "$archive"
buildah "${storage[@]}" commit --quiet --format oci --timestamp "$epoch" --rm \
  "$container" "oci-archive:$archive:courier:$version" >/dev/null
trap - EXIT
digest=$(skopeo inspect --raw "oci-archive:$archive" | sha256sum | cut -d' ' -f1)
size=$(stat -c %s "$archive")
echo "image: $archive courier:$version sha256:$digest ($size bytes, revision $revision)" >&2
echo "sha256:$digest"
