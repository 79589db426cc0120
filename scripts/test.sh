#!/usr/bin/env bash
# vipfarm's test command: installs what the tests lack, starts what they need, runs every
# test (unit, property, simulation, kernel, end-to-end) and prints "N passed, N failed" as its
# last line. Arguments go to vitest (a file, -t NAME, ...).
# Kernel and network-namespace tests need root; run as root (CI does) so none is skipped.
#
# CI mode (VIPFARM_CI=1, set by .ci/run): nothing may be skipped. Not being root, a failed
# apt-get, a NATS server that does not start, any skipped test and anything a test left
# behind (namespace, process, veth, XDP program: see test/globalSetup.ts) each count as a
# failure. Outside CI mode a skipped test is allowed (each prints why) and is counted apart.
set -uo pipefail
cd "$(dirname "$0")/.."

ci=0
[ "${VIPFARM_CI:-}" = 1 ] && ci=1
setup_failures=()
log() { printf '[test.sh] %s\n' "$*" >&2; }
# a problem of the set-up: a failure in CI mode, a note otherwise
problem() {
  if [ "$ci" = 1 ]; then setup_failures+=("$1"); log "FAILED (CI mode): $1"; else log "$1"; fi
}

# Debian packages the tests use (only what is missing is installed).
pkgs=(iproute2 nftables nats-server libbpf1 curl procps nginx-light apache2 chromium gcc systemd)
if [ "$(id -u)" = 0 ]; then
  if command -v apt-get >/dev/null; then
    missing=()
    for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    if [ ${#missing[@]} -gt 0 ]; then
      log "installing Debian packages: ${missing[*]}"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || problem "apt-get could not install: ${missing[*]}"
    fi
    # Debian starts the services it installs where it can; the lab and tests run their own.
  else
    problem "no apt-get: install these Debian packages by hand: ${pkgs[*]}"
  fi
else
  problem "not root: kernel and namespace tests will be skipped (each says why); run as root for the full suite"
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci"
  npm ci --no-audit --no-fund >/dev/null 2>&1 || npm ci --no-audit --no-fund
fi

# The integration tests use a NATS server with JetStream on 127.0.0.1:4222; one started here
# is stopped at the end (one that was running already is left alone).
nats_pid=""
stop_nats() {
  if [ -n "$nats_pid" ]; then
    kill "$nats_pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$nats_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$nats_pid" 2>/dev/null
    nats_pid=""
  fi
}
trap stop_nats EXIT
trap 'stop_nats; exit 130' INT
trap 'stop_nats; exit 143' TERM
if ! (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; then
  if command -v nats-server >/dev/null; then
    log "starting nats-server -js on 127.0.0.1:4222 (stopped at the end)"
    rm -rf /tmp/vipfarm-nats && mkdir -p /tmp/vipfarm-nats
    nats-server -a 127.0.0.1 -p 4222 -js -sd /tmp/vipfarm-nats >/tmp/vipfarm-nats/nats.log 2>&1 </dev/null &
    nats_pid=$!
    for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null && break; sleep 0.1; done
    (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null || problem "nats-server did not start on 127.0.0.1:4222 (see /tmp/vipfarm-nats/nats.log)"
  else
    problem "nats-server is missing: the integration tests need it on 127.0.0.1:4222"
  fi
fi

# what `farm` runs (bin/farm.mjs would build it on first use; a broken build fails here, once)
node scripts/build.mjs || problem "the build (node scripts/build.mjs) failed"

# this run's own result files (another vitest run in the same tree cannot overwrite them)
work=$(mktemp -d /tmp/vipfarm-test.XXXXXX)
mkdir -p .ci
rm -f .ci/results.json
VIPFARM_LEAKS_FILE="$work/leaks.json" npx vitest run --outputFile.json="$work/results.json" "$@"
status=$?
cp "$work/results.json" .ci/results.json 2>/dev/null
stop_nats

# The summary: passed, failed (failed tests, broken files, and in CI mode: skipped tests,
# set-up failures, leftovers), skipped. Always the last line printed.
printf '%s\n' "${setup_failures[@]}" >"$work/setup.txt"
VIPFARM_CI_MODE=$ci node -e '
const fs = require("fs")
const [resultsFile, leaksFile, setupFile, statusText] = process.argv.slice(1)
const vitestStatus = Number(statusText)
const ci = process.env.VIPFARM_CI_MODE === "1"
const setup = fs.readFileSync(setupFile, "utf8").split("\n").filter(Boolean)
let r
try { r = JSON.parse(fs.readFileSync(resultsFile, "utf8")) } catch {
  console.error("[test.sh] vitest wrote no results (see above); counted as a failure")
  if (ci) for (const s of setup) console.error(`[test.sh] counted as a failure (CI mode): ${s}`)
  console.log(`0 passed, ${1 + (ci ? setup.length : 0)} failed`)
  process.exit(1)
}
let leaks = []
try { leaks = JSON.parse(fs.readFileSync(leaksFile, "utf8")).leaks } catch { leaks = [] }
const files = r.testResults || []
const skippedTests = files.flatMap((f) => (f.assertionResults || []).filter((a) => a.status === "pending" || a.status === "skipped" || a.status === "todo").map((a) => `${f.name.replace(process.cwd() + "/", "")}: ${a.fullName}`))
const skipped = Math.max(skippedTests.length, (r.numPendingTests || 0) + (r.numTodoTests || 0))
// a test file that failed without a failing test (import error, crash) counts as one failure
const broken = files.filter((f) => f.status === "failed" && !(f.assertionResults || []).some((a) => a.status === "failed")).length
let failed = r.numFailedTests + broken
// vitest failed with no failed test (an unhandled error, a failed globalSetup): one failure
if (vitestStatus !== 0 && failed === 0 && leaks.length === 0) {
  console.error(`[test.sh] vitest exited with status ${vitestStatus} without a failed test (an unhandled error or a failed global set-up: see above); counted as a failure`)
  failed = 1
}
if (ci) {
  for (const s of setup) console.error(`[test.sh] counted as a failure (CI mode): ${s}`)
  for (const t of skippedTests) console.error(`[test.sh] counted as a failure (CI mode: nothing may skip): skipped ${t}`)
  for (const l of leaks) console.error(`[test.sh] counted as a failure (CI mode): left behind: ${l}`)
  failed += setup.length + skipped + leaks.length
  console.log(`${r.numPassedTests} passed, ${failed} failed`)
  process.exit(failed > 0 ? 1 : 0)
}
if (leaks.length > 0) console.error(`[test.sh] the run left ${leaks.length} thing(s) behind (see [leak check] lines; a failure in CI mode)`)
console.log(`${r.numPassedTests} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ""))
process.exit(failed > 0 ? 1 : 0)
' "$work/results.json" "$work/leaks.json" "$work/setup.txt" "$status"
summary=$?
rm -rf "$work"
exit "$summary"
