#!/usr/bin/env bash
# Installs ONNX Runtime for Node.js (the npm package onnxruntime-node, whose CPU binaries ship
# inside the package) where the ONNX peer tests look for it: <repo>/data/onnxruntime.
# --ignore-scripts: the package's install script only fetches GPU extras.
#
# Usage: scripts/get_onnxruntime.sh [OUT_DIR]       Idempotent. Needs node and npm.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$(dirname "$here")/data/onnxruntime}"
version=1.30.0
if [[ -f "$out/node_modules/onnxruntime-node/package.json" ]]; then
    echo "get_onnxruntime: onnxruntime-node already in $out"
    exit 0
fi
for tool in node npm; do
    command -v "$tool" >/dev/null || { echo "get_onnxruntime: '$tool' is required" >&2; exit 1; }
done
mkdir -p "$out"
echo "get_onnxruntime: installing onnxruntime-node@$version into $out"
npm install --prefix "$out" --ignore-scripts --no-audit --no-fund --silent \
    "onnxruntime-node@$version"
node -e "require('$out/node_modules/onnxruntime-node')" ||
    { echo "get_onnxruntime: the package does not load on this machine" >&2; exit 1; }
