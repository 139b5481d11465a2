#!/usr/bin/env bash
# Validates the Kubernetes manifests without a cluster: every resource against the Kubernetes
# API schema (the `kubernetes-validate` package from PyPI, strict: unknown fields are errors),
# and the manifests against each other (the kustomization lists every file; the initial cluster
# names one node per replica, at the pods' names under the StatefulSet's Service). What this does
# not check: that a cluster schedules, pulls the image and runs it (no cluster here).
# Usage: deploy/k8s/validate.sh   (scripts/test.sh runs it)
set -euo pipefail
cd "$(dirname "$0")"
version=1.37.0
export PATH="$HOME/.local/bin:$PATH"
if ! kubernetes-validate --version 2>/dev/null | grep -qx "$version"; then
  echo "==> installing kubernetes-validate $version (PyPI)"
  python3 -m pip install --quiet --user --disable-pip-version-check "kubernetes-validate==$version" 2>&1 \
    | grep -v "WARNING: Running pip as the 'root' user" || true
fi
files=(configmap.yaml services.yaml statefulset.yaml pdb.yaml)
kubernetes-validate --strict --quiet "${files[@]}"
python3 - "${files[@]}" <<'PY'
import re, sys
docs = {}
for f in sys.argv[1:]:
    for block in open(f).read().split("\n---\n"):
        kind = re.search(r"^kind: (\S+)", block, re.M).group(1)
        docs.setdefault(kind, []).append(block)
listed = re.findall(r"^  - (\S+)$", open("kustomization.yaml").read(), re.M)
assert sorted(listed) == sorted(sys.argv[1:]), f"kustomization.yaml lists {listed}"
sts = docs["StatefulSet"][0]
replicas = int(re.search(r"^  replicas: (\d+)", sts, re.M).group(1))
service = re.search(r"^  serviceName: (\S+)", sts, re.M).group(1)
name = re.search(r"^metadata:\n  name: (\S+)", sts, re.M).group(1)
cluster = re.search(r'CAIRN_INITIAL_CLUSTER: "([^"]+)"', docs["ConfigMap"][0]).group(1)
want = ",".join(f"{i + 1}={name}-{i}.{service}:7701/{name}-{i}.{service}:8701" for i in range(replicas))
assert cluster == want, f"CAIRN_INITIAL_CLUSTER is {cluster}, the StatefulSet needs {want}"
assert any(re.search(rf"^  name: {service}$", s, re.M) and "clusterIP: None" in s
           and "publishNotReadyAddresses: true" in s for s in docs["Service"]), f"no headless Service {service}"
print(f"==> deploy/k8s: {len(sys.argv) - 1} files valid against Kubernetes 1.37 (strict), consistent with each other")
PY
