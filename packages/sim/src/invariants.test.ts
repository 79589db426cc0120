import { describe, expect, it } from "vitest"
import { Result } from "effect"
import { htmlReport, loadScenario, parseScenario, runScenario, shippedScenarios, type Report, type Scenario } from "./index.ts"

/** Three servers under load, no fault unless given. */
const quiet = (timeline: Scenario["timeline"] = [], duration = "8s"): Scenario => ({
  name: "quiet",
  duration,
  servers: { count: 3, weight: 100 },
  load: { tcp: { flowsPerSec: 1500, clients: 3000, maxDuration: "2s" }, udp: { flowsPerSec: 200, maxDuration: "2s" } },
  timeline,
  liveness: { timeout: "20s" }
})

const first = (r: Report, invariant: string) => r.violations.find((v) => v.invariant === invariant)

describe("invariants: each check fires on a deliberately broken world", () => {
  it("client-ip affinity: a hash that also takes the client's port sends a client's flows to several servers", () => {
    const r = runScenario(quiet(), { seed: 1, breakAffinity: true, safetyOnly: true })
    const v = first(r, "client-ip-affinity")
    expect(v).toBeDefined()
    expect(v!.detail).toMatch(/client 10\.\d+\.\d+\.\d+ \(client-ip, table 0\): new flow taken by s\d, its previous flow at [\d.]+ ms by s\d, membership unchanged since/)
    expect(v!.event).toMatch(/new flow of flow \d+/)
    expect(v!.replay).toBe("farm sim quiet --seed 1")
    // nothing else notices: one claimant per bucket still holds
    expect(Object.keys(r.violationCounts).sort()).toEqual(["client-ip-affinity"])
  })

  it("each new flow by exactly one server: a kernel that silently loses its tables leaves SYNs unanswered with no fault to explain it", () => {
    const r = runScenario(quiet(), { seed: 1, forgetTables: { node: "s2", atMs: 3000 }, safetyOnly: true })
    const v = first(r, "new-flow-unanswered")
    expect(v).toBeDefined()
    expect(v!.atMs).toBeGreaterThanOrEqual(3000)
    expect(v!.detail).toMatch(/taken by no server: no live owner since 3000\.000 ms, no failure or fault to explain it/)
    // and the window is bounded by the failover budget
    const w = first(r, "unowned-window")
    expect(w).toBeDefined()
    expect(w!.detail).toMatch(/no live owner for \d+ ms \(still open\) with no failure or fault to explain it \(budget 1000 ms\)/)
  })

  it("shares follow weights at every settled point: a planner that never rebalances after a weight change is caught once the farm settles, not only at the end", () => {
    const timeline: Scenario["timeline"] = [{ at: "3s", do: "weight", node: "s1", weight: 300 }]
    const r = runScenario(quiet(timeline), { seed: 1, noRebalance: { fromMs: 2500 }, safetyOnly: true })
    const v = first(r, "balance")
    expect(v).toBeDefined()
    expect(v!.atMs).toBeGreaterThan(3000)
    expect(v!.atMs).toBeLessThan(8000)
    // settled once the hand-off open at the change completed
    expect(v!.event).toMatch(/farm settled after log entry \d+ \((WeightChanged|HandoffCompleted)\)/)
    expect(v!.detail).toMatch(/s1 341 \[\d+\.\.\d+\]/)
  })

  it("FIN and final ACK follow the socket: a stack that drops its socket at the client's FIN loses the final ACK of a flow moving out", () => {
    const r = runScenario(loadScenario("default"), { seed: 1, closeAtFin: true, safetyOnly: true, stopOnViolation: true })
    const v = r.violations[0]
    expect(v.invariant).toBe("established-flow-dropped")
    expect(v.detail).toMatch(/no server took the final ACK of a flow held by live s\d \(code 2\)/)
  })
})

describe("invariants: the shipped scenarios keep them (seed 1)", () => {
  // scale-2-32-2 takes a minute; the sweep's ship mode (SCALE=1) and the figures in the README cover it
  for (const name of shippedScenarios().filter((n) => n !== "scale-2-32-2")) {
    it(`${name}`, () => {
      const r = runScenario(loadScenario(name), { seed: 1 })
      expect(r.violations).toEqual([])
      expect(r.liveness.converged).toBe(true)
      // the checks ran: settled points, closes, long-lived connections across hand-offs
      expect(r.balance.settledChecks).toBeGreaterThan(0)
      expect(r.flows.affinityChecks).toBeGreaterThan(100)
      expect(r.tcp.closedFin).toBeGreaterThan(0)
      expect(r.tcp.closedRst).toBeGreaterThan(0)
      expect(r.tcp.long).toBeGreaterThan(0)
      expect(r.tcp.movingOutPackets).toBeGreaterThan(0)
      expect(r.unclaimed.handoffWorstMs).toBeLessThan(1000)
    }, 60_000)
  }
})

describe("timeline and report", () => {
  it("waits for timeline entries after the duration before it demands convergence (sweep seed 1020's shape)", () => {
    // a stop at 5 s and its start at 11 s in an 8 s run: the start must happen before convergence and the final balance
    const timeline: Scenario["timeline"] = [{ at: 5000, do: "stop", node: "s2" }, { at: 11_000, do: "start", node: "s2" }]
    const r = runScenario(quiet(timeline), { seed: 1 })
    expect(r.violations).toEqual([])
    expect(r.timeline.some((l) => l.kind === "safety-extended" && /timeline start s2 at 11000 ms/.test(l.detail))).toBe(true)
    // s2 still drains its long-lived connections at 11 s: the start is queued behind its exit
    const started = r.timeline.find((l) => l.kind === "start" && l.node === "s2" && l.atMs >= 11_000 && l.detail === "server")
    expect(started).toBeDefined()
    expect(r.liveness.atMs!).toBeGreaterThan(started!.atMs)
    expect(r.balance.rows.find((b) => b.name === "s2")!.buckets).toBeGreaterThan(300)
  })

  it("a weight fault is a WeightChanged with its rebalance at that time", () => {
    const r = runScenario(quiet([{ at: "3s", do: "weight", node: "s1", weight: 300 }]), { seed: 1 })
    expect(r.violations).toEqual([])
    const changed = r.timeline.find((l) => l.kind === "log:WeightChanged" && l.node === "s1")
    expect(changed?.atMs).toBe(3000)
    const s1 = r.balance.rows.find((b) => b.name === "s1")!
    expect(s1.weight).toBe(300)
    expect(s1.buckets).toBeGreaterThanOrEqual(s1.lo)
    expect(s1.buckets).toBeGreaterThan(600)
  })

  it("reports progress up to its total", () => {
    const seen: Array<{ simulatedMs: number; totalMs: number }> = []
    runScenario(quiet([], "3s"), { seed: 2, onProgress: (p) => seen.push(p) })
    const last = seen[seen.length - 1]
    expect(last.simulatedMs).toBe(last.totalMs)
    expect(seen.every((p) => p.simulatedMs <= p.totalMs)).toBe(true)
  })

  it("says when the HTML timeline is cut", () => {
    const r = runScenario(quiet([], "2s"), { seed: 1, safetyOnly: true })
    const many = { ...r, timeline: Array.from({ length: 700 }, (_, i) => ({ atMs: i, kind: "start", node: "s1", detail: "" })), timelineDropped: 5 }
    const html = htmlReport(many)
    expect(html).toMatch(/Timeline cut: the first 600 of 700 lines shown; 5 later lines were not recorded/)
    expect(htmlReport(r)).not.toMatch(/Timeline cut/)
  })

  it("validates the TCP load's RST share and long-lived connections", () => {
    const ok = parseScenario({ ...quiet(), load: { tcp: { flowsPerSec: 10, rst: 0.1, long: { share: 0.01, duration: "5s", gap: "1s" } } } })
    expect(Result.isSuccess(ok)).toBe(true)
    const bad = parseScenario({ ...quiet(), load: { tcp: { flowsPerSec: 10, long: { share: 2 } } } }, "l.yaml")
    expect(Result.isFailure(bad)).toBe(true)
    if (Result.isFailure(bad)) expect(bad.failure.message).toMatch(/l\.yaml.*long.*share/s)
  })
})
