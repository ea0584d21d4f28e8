#!/usr/bin/env bash
# Installs Azurite (Microsoft's Azure Storage emulator) from the pinned package.json/package-lock.json with
# `npm ci` into a cache keyed by those files and this script, and prints that directory: azurite-blob is
# <dir>/node_modules/.bin/azurite-blob. A warm cache returns at once. Cold: about half a minute.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
key=$(cat "$here/package.json" "$here/package-lock.json" "$here/install.sh" | sha256sum | cut -c1-16)
out="${FLUXWARDEN_CACHE:-$HOME/.cache/fluxwarden}/azurite/$key"
if [ -x "$out/node_modules/.bin/azurite-blob" ]; then
  echo "$out"; exit 0
fi
command -v npm >/dev/null || { echo "install.sh: npm not found (Azurite needs Node.js 20+ and npm)" >&2; exit 1; }
version=$(sed -n 's/^ *"azurite": "\(.*\)"$/\1/p' "$here/package.json" | head -1)
echo "installing Azurite $version into $out (cold: about half a minute of npm downloads)" >&2
started=$SECONDS
tmp="$out.partial.$$"
rm -rf "$tmp" && mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
cp "$here/package.json" "$here/package-lock.json" "$tmp/"
# No package in the lock has an install script; --ignore-scripts keeps it that way.
(cd "$tmp" && npm ci --ignore-scripts --no-audit --no-fund --omit=dev --loglevel=error) >&2
[ -x "$tmp/node_modules/.bin/azurite-blob" ] || { echo "install.sh: npm ci left no azurite-blob" >&2; exit 1; }
rm -rf "$out" && mv "$tmp" "$out"
echo "Azurite $version ready in $((SECONDS - started)) s" >&2
echo "$out"
