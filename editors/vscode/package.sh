#!/usr/bin/env bash
# Builds the VS Code extension: editors/vscode/lpn-VERSION.vsix.
# Needs node and npm (not run in CI). Install the result with
#   code --install-extension editors/vscode/lpn-*.vsix
set -euo pipefail
cd "$(dirname "$0")"
if [ -f package-lock.json ]; then
  npm ci --no-audit --no-fund
else
  npm install --no-audit --no-fund
fi
# The highlighting must cover every .lpn in the repository before it ships.
node test/scopes.js
# vsce ships the runtime dependency (vscode-languageclient) and leaves the
# dev dependencies out.
npx --no-install vsce package --allow-missing-repository --out . "$@"
ls -l ./*.vsix
