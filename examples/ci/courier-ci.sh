#!/usr/bin/env bash
# Checks a repository's courier manifests in CI and fails the build on any error.
#   courier-ci.sh MANIFEST_DIR [OUT_DIR]
# 1. courier check --strict: every validation that needs no secret value and no cluster;
#    with a kubeconfig, check --world cluster also resolves namespaces, stores and
#    source key names against the cluster (no value is printed).
# 2. courier render --redact: the Secrets with every value redacted, safe for a PR comment
#    (skipped when the repo holds no source Secrets to render from).
# 3. courier diff --live, when a kubeconfig is available: what apply would change.
#    Exit codes as kubectl diff's: drift (1) is reported, not fatal; errors (2 and above,
#    usage errors among them) fail the build.
set -euo pipefail
manifests=${1:?usage: courier-ci.sh MANIFEST_DIR [OUT_DIR]}
out=${2:-courier-ci-out}
courier=${COURIER:-courier}
mkdir -p "$out"

echo "== courier check --strict $manifests"
"$courier" check --strict "$manifests" | tee "$out/targets.txt"

if [ "${COURIER_CI_RENDER:-true}" = true ]; then
  echo "== courier render --redact $manifests"
  "$courier" render --redact "$manifests" > "$out/rendered-redacted.yaml"
  echo "wrote $out/rendered-redacted.yaml ($(grep -c '^kind: Secret' "$out/rendered-redacted.yaml") Secrets)"
fi

if [ -n "${KUBECONFIG:-}" ]; then
  echo "== courier check --strict --world cluster $manifests"
  "$courier" check --strict --world cluster "$manifests" | tee "$out/targets-cluster.txt"
  echo "== courier diff --live $manifests"
  status=0
  "$courier" diff "$manifests" --live --instance "${COURIER_INSTANCE:-default}" > "$out/diff.txt" || status=$?
  cat "$out/diff.txt"
  case $status in
    0) echo "in sync" ;;
    1) echo "drift: the next apply changes the Secrets above" ;;
    *) exit "$status" ;;
  esac
fi
