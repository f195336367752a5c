#!/usr/bin/env bash
# Deploys an overlay in the order hooks needs: the migration Job first, to completion, then the services.
#
#   k8s/deploy.sh prod        # or dev
#
# 0. applies the overlay's namespace.yaml;
# 1. re-creates Job hooks-db-upgrade (a Job's template is immutable, so each release gets a fresh one)
#    from k8s/overlays/<overlay>/migrate and waits until `hooks db upgrade` completed;
# 2. applies k8s/overlays/<overlay> (ConfigMaps, Services, Deployments, HPAs, PDBs, NetworkPolicies);
# 3. waits for every Deployment's rollout.
# If step 1 fails nothing new is rolled out: the old pods keep serving on the old schema.
# KUBECTL overrides the kubectl binary (e.g. `KUBECTL="kubectl --context prod"`).
set -euo pipefail

overlay="${1:?usage: k8s/deploy.sh <overlay: dev|prod>}"
here="$(cd "$(dirname "$0")" && pwd)"
kubectl=(${KUBECTL:-kubectl})
dir="$here/overlays/$overlay"
[[ -d "$dir" && -d "$dir/migrate" ]] || { echo "no overlay $dir (with migrate/)" >&2; exit 2; }
namespace="$("${kubectl[@]}" kustomize "$dir/migrate" | sed -n 's/^  namespace: //p' | head -n 1)"
[[ -n "$namespace" ]] || { echo "cannot tell the namespace of $dir/migrate" >&2; exit 2; }

# The namespace (and its Pod Security labels) must exist before the Job can run in it.
"${kubectl[@]}" apply -f "$dir/namespace.yaml"

"${kubectl[@]}" -n "$namespace" delete job hooks-db-upgrade --ignore-not-found --wait=true
"${kubectl[@]}" apply -k "$dir/migrate"
if ! "${kubectl[@]}" -n "$namespace" wait --for=condition=complete --timeout=15m job/hooks-db-upgrade; then
  "${kubectl[@]}" -n "$namespace" logs job/hooks-db-upgrade --tail=100 >&2 || true
  echo "migration failed: nothing else was applied" >&2
  exit 1
fi

"${kubectl[@]}" apply -k "$dir"
for deployment in registry sender matcher gateway; do
  "${kubectl[@]}" -n "$namespace" rollout status "deployment/$deployment" --timeout=10m
done
