#!/usr/bin/env bash
# Builds the real storage servers the source tests run on loopback, from the Go modules pinned in go.mod:
# versitygw (S3 over a local directory), the CNCF distribution registry (OCI) and a small bcrypt htpasswd
# (./cmd/htpasswd, for the registry's auth file). Caches them in a directory keyed by go.mod/go.sum/the
# sources/this script, and prints that directory. A warm cache returns at once. Cold: about 5 minutes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
key=$(cat "$here/go.mod" "$here/go.sum" "$here/tools.go" "$here/cmd/htpasswd/main.go" "$here/build.sh" | sha256sum | cut -c1-16)
out="${FLUXWARDEN_CACHE:-$HOME/.cache/fluxwarden}/bin/$key"
binaries="versitygw registry htpasswd"
ready=1
for b in $binaries; do [ -x "$out/$b" ] || ready=0; done
if [ "$ready" = 1 ]; then
  echo "$out"; exit 0
fi
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
cd "$here"
required() { awk -v m="$1" '$1==m && $2 ~ /^v/ {print $2; exit}' go.mod; }
versitygw_version=$(required github.com/versity/versitygw)
registry_version=$(required github.com/distribution/distribution/v3)
echo "building versitygw $versitygw_version, registry $registry_version and htpasswd into $out (cold: about 5 minutes)" >&2
started=$SECONDS
tmp="$out.partial.$$"
rm -rf "$tmp" && mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
go build -trimpath -ldflags "-s -w -X main.Version=$versitygw_version" -o "$tmp/versitygw" \
  github.com/versity/versitygw/cmd/versitygw >&2
go build -trimpath -ldflags "-s -w -X github.com/distribution/distribution/v3/version.version=$registry_version" \
  -o "$tmp/registry" github.com/distribution/distribution/v3/cmd/registry >&2
go build -trimpath -ldflags "-s -w" -o "$tmp/htpasswd" ./cmd/htpasswd >&2
rm -rf "$out" && mv "$tmp" "$out"
echo "storage servers ready in $((SECONDS - started)) s" >&2
echo "$out"
