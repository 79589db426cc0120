import { loadScenario, runScenario } from "/work/main/packages/sim/src/index.ts"
const names = process.argv[2].split(",")
const seeds = process.argv[3].split(",").map(Number)
for (const n of names) for (const seed of seeds) {
  const r = runScenario(loadScenario(n), { seed })
  console.log(n, seed, r.ok ? "OK" : "FAIL", JSON.stringify(r.violationCounts), r.failover.medianMs, r.failover.worstMs, r.liveness.converged ? r.liveness.atMs : r.liveness.detail)
  for (const v of r.violations.slice(0, 2)) console.log("   ", v.atMs.toFixed(1), v.invariant, v.detail, "|", v.event)
}
