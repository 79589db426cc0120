#!/usr/bin/env bash
# vipfarm's test command: installs what the tests lack, starts what they need, runs every
# test (unit, property, simulation, kernel, end-to-end) and prints "N passed, N failed".
# Kernel and network-namespace tests need root; run as root (CI does) so none is skipped.
set -uo pipefail
cd "$(dirname "$0")/.."

log() { printf '[test.sh] %s\n' "$*" >&2; }

# Debian packages the tests use (only what is missing is installed).
pkgs=(iproute2 nftables nats-server libbpf1 curl procps nginx-light apache2 chromium)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing=()
  for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
      || log "apt-get could not install: ${missing[*]}"
  fi
  # Debian starts the services it installs where it can; the lab and tests run their own.
else
  log "not root: kernel and namespace tests will be skipped (each says why); run as root for the full suite"
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci"
  npm ci --no-audit --no-fund >/dev/null 2>&1 || npm ci --no-audit --no-fund
fi

# The integration tests use a NATS server with JetStream on 127.0.0.1:4222.
if ! (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; then
  if command -v nats-server >/dev/null; then
    log "starting nats-server -js on 127.0.0.1:4222"
    mkdir -p /tmp/vipfarm-nats
    start-stop-daemon --start --oknodo --background --exec "$(command -v nats-server)" -- \
      -a 127.0.0.1 -p 4222 -js -sd /tmp/vipfarm-nats -l /tmp/vipfarm-nats/nats.log 2>/dev/null \
      || (nats-server -a 127.0.0.1 -p 4222 -js -sd /tmp/vipfarm-nats >/tmp/vipfarm-nats/nats.log 2>&1 &)
    for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null && break; sleep 0.1; done
  fi
fi

rm -f .ci/results.json
npx vitest run "$@"
status=$?

node -e '
const fs = require("fs")
let r
try { r = JSON.parse(fs.readFileSync(".ci/results.json", "utf8")) } catch { console.log("0 passed, 1 failed"); process.exit(0) }
const skipped = (r.numPendingTests || 0) + (r.numTodoTests || 0)
// a test file that failed without a failing test (import error, crash) counts as one failure
const broken = (r.testResults || []).filter((f) => f.status === "failed" && !(f.assertionResults || []).some((a) => a.status === "failed")).length
const failed = r.numFailedTests + broken
console.log(`${r.numPassedTests} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ""))
'
exit $status
