#!/usr/bin/env bash
# Builds the real test binaries (kube-apiserver, kubectl, etcd, kustomize, helm v4) from the pinned Go modules
# into a cache keyed by go.mod/go.sum/this script, and prints that directory. A warm cache returns at once.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
helm_dir="$here/../helm"  # helm v4 needs newer Kubernetes libraries: its own module
key=$(cat "$here/go.mod" "$here/go.sum" "$here/build.sh" "$helm_dir/go.mod" "$helm_dir/go.sum" | sha256sum | cut -c1-16)
out="${FLUXWARDEN_CACHE:-$HOME/.cache/fluxwarden}/bin/$key"
binaries="kube-apiserver kubectl etcd kustomize helm"
ready=1
for b in $binaries; do [ -x "$out/$b" ] || ready=0; done
if [ "$ready" = 1 ]; then
  echo "$out"; exit 0
fi
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
kube_version=$(awk '$1=="k8s.io/kubernetes"{print $2}' "$here/go.mod" | head -1)
major=${kube_version#v}; major=${major%%.*}
minor=${kube_version#v*.}; minor=${minor%%.*}
vpkg=k8s.io/component-base/version
ldflags="-s -w -X $vpkg.gitVersion=$kube_version -X $vpkg.gitMajor=$major -X $vpkg.gitMinor=$minor -X $vpkg.gitTreeState=clean"
tmp="$out.partial.$$"
mkdir -p "$tmp"
cd "$here"
echo "building test binaries into $out (cold build: several minutes)" >&2
go build -trimpath -ldflags "$ldflags" -o "$tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver >&2
go build -trimpath -ldflags "$ldflags" -o "$tmp/kubectl" k8s.io/kubernetes/cmd/kubectl >&2
go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" ./cmd/etcd >&2
go build -trimpath -ldflags "-s -w" -o "$tmp/kustomize" sigs.k8s.io/kustomize/kustomize/v5 >&2
helm_version=$(awk '{for (i = 1; i < NF; i++) if ($i == "helm.sh/helm/v4") {print $(i+1); exit}}' "$helm_dir/go.mod")
(cd "$helm_dir" && go build -trimpath -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$helm_version" \
  -o "$tmp/helm" helm.sh/helm/v4/cmd/helm) >&2
rm -rf "$out" && mv "$tmp" "$out"
echo "$out"
