#!/usr/bin/env bash
# The JS client (clients/js): build, size budget and unit tests, then the
# client live against herald with Redis-backed history, in headless Chromium
# (tests/browser/js-client.test.js) and in Node with ws
# (tests/browser/js-client.node.test.mjs).
# usage: bash .ci/js.sh PATH_TO_HERALD_BINARY   (about 30 s; needs node, npm,
# chromium and redis-server, which .ci/run installs)
set -euo pipefail
herald_bin=$(realpath "${1:?usage: bash .ci/js.sh PATH_TO_HERALD_BINARY}")
cd "$(dirname "$0")/.."
[ -x "$herald_bin" ] || { echo "FAIL: $herald_bin is not an executable" >&2; exit 1; }
command -v redis-server >/dev/null 2>&1 || { echo "FAIL: redis-server is missing (apt-get install redis-server)" >&2; exit 1; }

(cd clients/js && npm ci --no-audit --no-fund --silent && npm run build && npm run size && npm test)
(cd tests/browser && npm ci --no-audit --no-fund --silent)
timeout 120 node tests/browser/js-client.test.js "$herald_bin"
timeout 60 node tests/browser/js-client.node.test.mjs "$herald_bin"
