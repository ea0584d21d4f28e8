#!/usr/bin/env bash
# Builds upstream Flux controllers of the pinned release (go.mod) from their Go modules into a cache
# keyed by go.mod/go.sum/this script, and prints that directory. A warm cache returns at once.
# Today: helm-controller, for the side-by-side benchmark (bench/helm.py --flux). Cold: about 3 minutes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
key=$(cat "$here/go.mod" "$here/go.sum" "$here/controllers.sh" | sha256sum | cut -c1-16)
out="${FLUXWARDEN_CACHE:-$HOME/.cache/fluxwarden}/flux-controllers/$key"
controllers="helm-controller"
ready=1
for c in $controllers; do [ -x "$out/$c" ] || ready=0; done
if [ "$ready" = 1 ]; then
  echo "$out"; exit 0
fi
export GOTOOLCHAIN=local CGO_ENABLED=0
cd "$here"
required() { awk -v m="$1" '$1==m && $2 ~ /^v/ {print $2; exit}' go.mod; }
moddir() { GOFLAGS=-mod=readonly go mod download "$1" && GOFLAGS=-mod=readonly go list -m -f '{{.Dir}}' "$1"; }
tmp="$out.partial.$$"
rm -rf "$tmp" && mkdir -p "$tmp/bin"
trap 'rm -rf "$tmp"' EXIT
for c in $controllers; do
  version=$(required "github.com/fluxcd/$c")
  [ -n "$version" ] || { echo "controllers.sh: go.mod does not require github.com/fluxcd/$c" >&2; exit 1; }
  echo "building Flux $c $version into $out (cold: about 3 minutes)" >&2
  src="$tmp/src/$c"
  mkdir -p "$tmp/src" && cp -r "$(moddir "github.com/fluxcd/$c")" "$src" && chmod -R u+w "$src"
  # The main module replaces its api module with ./api, which the module zip leaves out.
  api=$(cd "$src" && GOFLAGS=-mod=mod go mod download -json "github.com/fluxcd/$c/api@$version" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
  rm -rf "$src/api" && cp -r "$api" "$src/api" && chmod -R u+w "$src/api"
  (cd "$src" && GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$tmp/bin/$c" .) >&2
done
rm -rf "$out" && mv "$tmp/bin" "$out"
echo "$out"
