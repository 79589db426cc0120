// usage: node --import tsx packages/sim/bench/sweep.ts HB FENCE EXPIRE HOLD FROM TO [mode: gen|ship|both|model] [worker k/n]
// gen: the fixed-farm fault swarm (4 servers); model: scenarios of the model-based generator
// (src/timelineModel.ts, as generated.test.ts runs them: seed N is fc.sample(arbModelCase(), {seed: N})).
// A failing model seed prints its farm and timeline; `... N N+1 model` replays it alone.
import fc from "fast-check"
import { runScenario, loadScenario, shippedScenarios, type Scenario } from "../src/index.ts"
import { arbModelCase, buildTimeline, modelScenario } from "../src/timelineModel.ts"
const [hb, fa, ea, hold, from, to] = process.argv.slice(2, 8).map(Number)
const mode = process.argv[8] ?? "both"
const [wk, wn] = (process.argv[9] ?? "0/1").split("/").map(Number)
const NODES = ["s1", "s2", "s3", "s4"]
type Entry = NonNullable<Scenario["timeline"]>[number]
const arbFault: fc.Arbitrary<Array<Entry>> = fc.record({
  kind: fc.constantFrom("crash", "isolate", "cut", "pause", "unhealthy", "drain", "stop", "leader-kill", "slow", "sigkill"),
  node: fc.constantFrom(...NODES), other: fc.constantFrom(...NODES),
  at: fc.integer({ min: 300, max: 6000 }), len: fc.integer({ min: 100, max: 3000 })
}).map(({ kind, node, other, at, len }): Array<Entry> => {
  switch (kind) {
    case "crash": return [{ at, do: "crash", node }, { at: at + len, do: "restart", node }]
    case "sigkill": return process.env.NOKILL ? [] : [{ at, do: "kill", node } as any, { at: at + len, do: "restart", node }]
    case "isolate": return [{ at, do: "partition", groups: [NODES.filter((n) => n !== node).concat(["w1", "n1", "n2", "n3"]), [node]], for: len }]
    case "cut": return node === other ? [] : [{ at, do: "cut", a: node, b: other, oneWay: len % 2 === 0, for: len }]
    case "pause": return [{ at, do: "pause", node, for: len }]
    case "unhealthy": return [{ at, do: "unhealthy", node, for: len }]
    case "drain": return [{ at, do: "drain", node }, { at: at + len, do: "resume", node }]
    case "stop": return [{ at, do: "stop", node }, { at: at + len + 2000, do: "start", node }]
    case "leader-kill": return [{ at, do: "nats-leader-kill" }]
    default: return [{ at, do: "slow", node, delay: Math.round(len / 10), for: len }]
  }
})
const controller = { heartbeat: hb, fenceAfter: fa, expireAfter: ea, hold }
const gen = (faults: Array<Entry>): Scenario => ({ name: "generated", duration: 8000, servers: { count: 4, weight: 100 }, witnesses: 1,
  load: { tcp: { flowsPerSec: 400, maxDuration: "2s" }, udp: { flowsPerSec: 60, maxDuration: "2s" } }, timeline: faults, liveness: { timeout: "25s" }, controller } as any)
const fails: string[] = []
const crashes: number[] = []
const kills: number[] = []
let runs = 0
const rec = (r: ReturnType<typeof runScenario>, what: string) => {
  runs++
  for (const f of r.failovers) if (f.budgetApplies && f.durationMs !== null) (f.fault === "crash" ? crashes : f.fault === "kill" ? kills : []).push(f.durationMs)
  if (!r.ok) { const v = r.violations[0]; fails.push(`${what}: ${v.invariant} at ${Math.round(v.atMs)}: ${v.detail} [${v.event}]`); console.log("FAIL", fails.at(-1)) }
}
const ships = shippedScenarios().filter((n) => n !== "scale-2-32-2" || process.env.SCALE)
for (let seed = from; seed < to; seed++) {
  if (seed % wn !== wk) continue
  if (mode === "model") {
    const c = fc.sample(arbModelCase(), { numRuns: 1, seed })[0]
    const timeline = buildTimeline(c)
    rec(runScenario(modelScenario(c.farm, timeline, { controller }), { seed: c.seed, stopOnViolation: true }), `model seed ${seed} (run seed ${c.seed}) farm ${JSON.stringify(c.farm)} ${JSON.stringify(timeline)}`)
    continue
  }
  if (mode !== "ship") {
    const faults = fc.sample(fc.array(arbFault, { minLength: 1, maxLength: 5 }), { numRuns: 1, seed })[0].flat()
    rec(runScenario(gen(faults), { seed, stopOnViolation: true }), `gen seed ${seed} ${JSON.stringify(faults)}`)
  }
  if (mode !== "gen") for (const n of ships) {
    const s = loadScenario(n) as any
    rec(runScenario({ ...s, controller: { ...(s.controller ?? {}), ...controller } }, { seed, stopOnViolation: true }), `${n} seed ${seed}`)
  }
}
console.log(JSON.stringify({ runs, fails: fails.length, crashes, kills }))
