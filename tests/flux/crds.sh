#!/usr/bin/env bash
# Puts the CRDs of the pinned Flux release (go.mod: github.com/fluxcd/flux2/v2) into a cache keyed by
# go.mod/go.sum/tools.go/this script, and prints that directory. A warm cache returns at once.
# Controllers whose module zip carries config/crd/bases are copied from it; for the others (main module
# not served) the CRDs are generated from their api module with controller-gen, as Flux's Makefiles do.
# Each CRD gets the labels `flux install` gives it (manifests/install and bases/*/labels.yaml).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
key=$(cat "$here/go.mod" "$here/go.sum" "$here/tools.go" "$here/crds.sh" | sha256sum | cut -c1-16)
out="${FLUXWARDEN_CACHE:-$HOME/.cache/fluxwarden}/flux-crds/$key"
if [ -s "$out/versions.txt" ]; then
  echo "$out"; exit 0
fi
export GOTOOLCHAIN=local GOFLAGS=-mod=readonly CGO_ENABLED=0
cd "$here"
started=$SECONDS
fail() { echo "crds.sh: $*" >&2; exit 1; }
required() { awk -v m="$1" '$1==m && $2 ~ /^v/ {print $2; exit}' go.mod; }
moddir() { go mod download "$1" && go list -m -f '{{.Dir}}' "$1"; }

flux_version=$(required github.com/fluxcd/flux2/v2)
[ -n "$flux_version" ] || fail "go.mod does not require github.com/fluxcd/flux2/v2 (go mod tidy drops it: restore it)"
echo "fetching the CRDs of Flux $flux_version into $out (cold: about 2 minutes, Go module downloads and a controller-gen build)" >&2
tmp="$out.partial.$$"
rm -rf "$tmp" && mkdir -p "$tmp/crds" "$tmp/src"
trap 'rm -rf "$tmp"' EXIT
flux_dir=$(moddir github.com/fluxcd/flux2/v2)
# flux2's manifests/crds lists one release asset per controller: <name>/releases/download/<version>/.
releases=$(sed -n 's|.*/fluxcd/\([a-z-]*\)/releases/download/\(v[^/]*\)/.*crds.yaml$|\1 \2|p' \
  "$flux_dir/manifests/crds/kustomization.yaml")
[ -n "$releases" ] || fail "no controller release found in $flux_dir/manifests/crds/kustomization.yaml"
controller_gen=""
while read -r name version; do
  major=${version#v}; major=${major%%.*}
  if [ "$(required "github.com/fluxcd/$name")" = "$version" ]; then
    mod="github.com/fluxcd/$name"
    src=$(moddir "$mod")/config/crd/bases
    how="$mod@$version config/crd/bases"
  else
    mod="github.com/fluxcd/$name/api"
    [ "$major" -ge 2 ] && mod="$mod/v$major"
    [ "$(required "$mod")" = "$version" ] ||
      fail "Flux $flux_version ships $name $version: go.mod must require github.com/fluxcd/$name or $mod at $version"
    if [ -z "$controller_gen" ]; then
      controller_gen="$tmp/controller-gen"
      go build -trimpath -ldflags "-s -w" -o "$controller_gen" sigs.k8s.io/controller-tools/cmd/controller-gen >&2
    fi
    cp -r "$(moddir "$mod")" "$tmp/src/$name" && chmod -R u+w "$tmp/src/$name"
    src="$tmp/src/$name/crds"
    (cd "$tmp/src/$name" && "$controller_gen" crd:crdVersions=v1 paths=./... output:crd:artifacts:config="$src" >&2)
    how="$mod@$version controller-gen $(required sigs.k8s.io/controller-tools)"
  fi
  files=$(cd "$src" && ls ./*.yaml 2>/dev/null) || fail "no CRD in $src ($name $version)"
  for f in $files; do
    grep -q '^  labels:' "$src/$f" && fail "$src/$f already has labels: merge them"
    awk -v c="$name" -v v="$flux_version" '!done && /^metadata:$/ { print
        print "  labels:"
        print "    app.kubernetes.io/component: " c
        print "    app.kubernetes.io/instance: flux-system"
        print "    app.kubernetes.io/part-of: flux"
        print "    app.kubernetes.io/version: " v
        done = 1; next } { print }' "$src/$f" >"$tmp/crds/$(basename "$f")"
  done
  echo "$name $version $how $(echo "$files" | wc -l) CRDs" >>"$tmp/versions.txt"
done <<<"$releases"
echo "flux $flux_version" >>"$tmp/versions.txt"
rm -rf "$out" && mkdir -p "$out"
mv "$tmp/crds/"*.yaml "$out/" && mv "$tmp/versions.txt" "$out/versions.txt"
echo "$(ls "$out"/*.yaml | wc -l) CRDs of Flux $flux_version ready in $((SECONDS - started)) s" >&2
echo "$out"
