import { describe, expect, it } from "vitest"
import { CHECKER_DEFAULTS } from "../../runtime/src/app/module.ts"
import { DEFAULT_POLICY } from "../../runtime/src/app/policy.ts"
import { formatReport, loadScenario, runScenario, type Scenario } from "./index.ts"
import { resolveSetup, SIM_CHECKER_DEFAULTS } from "./setup.ts"

const small = (timeline: Scenario["timeline"], extra: Partial<Scenario> = {}): Scenario => ({
  name: "app-small", duration: 12_000, servers: { count: 3, weight: 100 }, witnesses: 1,
  load: { tcp: { flowsPerSec: 300, maxDuration: "2s" }, udp: { flowsPerSec: 40, maxDuration: "2s" } },
  app: {}, timeline, liveness: { timeout: "30s" }, ...extra
})

describe("simulated applications (the real health.ts and policy.ts)", () => {
  it("uses the module's checker defaults and the default policy", () => {
    expect(SIM_CHECKER_DEFAULTS).toEqual(CHECKER_DEFAULTS)
    const app = resolveSetup(small([])).app!
    expect(app.policy).toEqual(DEFAULT_POLICY)
    expect(app.checker).toMatchObject(CHECKER_DEFAULTS)
    expect(resolveSetup({ name: "x", duration: 1000, servers: { count: 2 } }).app).toBeNull()
  })

  it("app-broken: the server's buckets move within 3 s, it leaves when the restarts are used up, and rejoins after the fix", () => {
    const r = runScenario(loadScenario("app-failure"), { seed: 1 })
    expect(r.violations).toEqual([])
    expect(r.liveness.converged).toBe(true)
    expect(r.resets.handoff).toBe(0)
    const b = r.app.find((a) => a.fault === "app-broken")!
    expect(b.node).toBe("s3")
    expect(b.reportedMs!).toBeLessThanOrEqual(1100) // 2 failed probes 500 ms apart
    expect(b.takenOverMs!).toBeLessThan(3000)
    expect(b.buckets).toBeGreaterThan(0)
    expect(b.leftMs!).toBeLessThan(5000)
    expect(b.startFailures).toBe(DEFAULT_POLICY.maxRestarts)
    // fixed at 24 s: a healing restart, then every checker passing for the settle time
    expect(b.atMs + b.backMs!).toBeGreaterThanOrEqual(24_000 + DEFAULT_POLICY.settleMs)
    expect(b.atMs + b.backMs!).toBeLessThan(40_000)
    expect(r.timeline.some((l) => l.kind === "app:Leave" && l.node === "s3")).toBe(true)
    expect(r.timeline.some((l) => l.kind === "log:MemberRecovered" && l.node === "s3" && l.atMs > 24_000)).toBe(true)
    expect(r.balance.rows.find((x) => x.name === "s3")!.buckets).toBeGreaterThan(0)
    expect(formatReport(r)).toMatch(/app-broken s3 +reported \d+ ms, \d+ buckets owned by others after \d+ ms, 4 restarts \(3 failed\), left after/)
  })

  it("app-crash: the policy restarts the application and the server stays in", () => {
    const r = runScenario(loadScenario("app-failure"), { seed: 1 })
    const c = r.app.find((a) => a.fault === "app-crash")!
    expect(c.node).toBe("s2")
    expect(c.restarts).toBe(1)
    expect(c.startFailures).toBe(0)
    expect(c.leftMs).toBeNull()
    expect(c.backMs!).toBeLessThan(3000)
    expect(r.timeline.some((l) => l.kind === "app:Leave" && l.node === "s2")).toBe(false)
    expect(r.timeline.some((l) => l.kind === "log:MemberRecovered" && l.node === "s2")).toBe(true)
    expect(r.timeline.some((l) => l.kind === "log:MemberLeft" && l.node === "s2")).toBe(false)
  })

  it("is deterministic: the same seed gives the same report", () => {
    const s = loadScenario("app-failure")
    const a = runScenario(s, { seed: 5 })
    const b = runScenario(s, { seed: 5 })
    expect(JSON.stringify(a)).toBe(JSON.stringify(b))
    expect(JSON.stringify(runScenario(s, { seed: 6 }))).not.toBe(JSON.stringify(a))
  })

  it("an app-broken fault without an end is healed in the liveness phase; the unhealthy fault still works with applications", () => {
    const r = runScenario(small([
      { at: "3s", do: "unhealthy", node: "s1", for: "2s" },
      { at: "7s", do: "app-broken", node: "s2" }
    ]), { seed: 3 })
    expect(r.violations).toEqual([])
    expect(r.liveness.converged).toBe(true)
    expect(r.timeline.some((l) => l.kind === "unhealthy" && l.node === "s1")).toBe(true)
    expect(r.timeline.some((l) => l.kind === "log:MemberUnhealthy" && l.node === "s1")).toBe(true)
    const b = r.app.find((a) => a.node === "s2")!
    expect(b.takenOverMs!).toBeLessThan(3000)
    expect(b.backMs).not.toBeNull()
  })

  it("a server takes no buckets before its application passes its checkers", () => {
    const r = runScenario(small([], { duration: 3000 }), { seed: 1 })
    const firstReady = r.timeline.find((l) => l.kind === "app:Ready")!
    expect(firstReady.atMs).toBeGreaterThanOrEqual(500) // start 500 ms, then two passing probes
    const i = r.shares.timesMs.findIndex((t) => t >= firstReady.atMs)
    for (let k = 0; k < i; k++) for (const s of r.shares.buckets) expect(s[k]).toBe(0)
  })
})
