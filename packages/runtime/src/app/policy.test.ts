import { describe, expect, it } from "vitest"
import { type ApplicationReport, DEFAULT_POLICY, handoverOf, initPolicy, nextWakeAt, type PolicyAction, type PolicyConfig, type PolicyInput, type PolicyState, step, viewOf } from "./policy.ts"

/** A scripted run: feed inputs at given times, collect the actions (application reports apart, in `apps`). */
const run = (config: Partial<PolicyConfig> = {}) => {
  let s: PolicyState = initPolicy({ ...DEFAULT_POLICY, ...config }, 0)
  const all: Array<[number, string]> = []
  const apps: Array<ApplicationReport> = []
  const feed = (t: number, input: PolicyInput): Array<string> => {
    const r = step(s, input, t)
    s = r.state
    for (const a of r.actions) if (a._tag === "ReportApplication") apps.push(a)
    const names = r.actions.filter((a) => a._tag !== "ReportApplication").map(show)
    for (const n of names) all.push([t, n])
    return names
  }
  return { feed, get state() { return s }, all, apps }
}

const show = (a: PolicyAction): string =>
  a._tag === "ReportUnhealthy" ? `ReportUnhealthy(${a.checker}: ${a.reason})` : a._tag === "Leave" ? `Leave(${a.reason})` : a._tag

const up = { _tag: "Health", allUp: true, failing: null } as const
const down = (checker: string, error: string) => ({ _tag: "Health", allUp: false, failing: { checker, error } }) as const

describe("policy", () => {
  it("sends Ready only once every checker passes", () => {
    const p = run()
    expect(p.feed(0, { _tag: "Start" })).toEqual(["RunStart"])
    expect(viewOf(p.state, 0).state).toBe("starting")
    expect(p.feed(100, { _tag: "StartDone", ok: true, error: null })).toEqual([])
    expect(p.feed(300, down("http", "ECONNREFUSED"))).toEqual([]) // still starting: not a failure
    expect(p.feed(900, up)).toEqual(["Ready"])
    expect(viewOf(p.state, 900)).toMatchObject({ state: "up", checker: null, farm: "up" })
  })

  it("restarts on a failure and recovers without leaving", () => {
    const p = run()
    p.feed(0, { _tag: "Start" })
    p.feed(100, { _tag: "StartDone", ok: true, error: null })
    p.feed(600, up)
    expect(p.feed(5000, down("nginx", "0 processes match nginx, want at least 1"))).toEqual([
      "ReportUnhealthy(nginx: 0 processes match nginx, want at least 1)",
      "RunRestart"
    ])
    expect(viewOf(p.state, 5000)).toMatchObject({ state: "restarting", checker: "nginx", restarts: 1 })
    expect(p.feed(5200, { _tag: "RestartDone", ok: true, error: null })).toEqual([])
    expect(p.feed(6000, up)).toEqual(["ReportRecovered"])
    expect(viewOf(p.state, 6000).state).toBe("up")
  })

  it("after N restarts in the window leaves, keeps healing, and rejoins after settling", () => {
    const p = run({ maxRestarts: 2, windowMs: 60_000, settleMs: 3000, healIntervalMs: 1000 })
    p.feed(0, { _tag: "Start" })
    p.feed(10, { _tag: "StartDone", ok: true, error: null })
    p.feed(500, up)
    expect(p.feed(1000, down("http", "status 500"))).toEqual(["ReportUnhealthy(http: status 500)", "RunRestart"])
    expect(p.feed(1100, { _tag: "RestartDone", ok: false, error: "exit 1: bind() failed" })).toEqual(["RunRestart"])
    expect(p.feed(1200, { _tag: "RestartDone", ok: false, error: "exit 1: bind() failed" })).toEqual([
      "Leave(2 restarts in 60 s used up: restart: exit 1: bind() failed)"
    ])
    expect(viewOf(p.state, 1200)).toMatchObject({ state: "unhealthy", checker: "restart", farm: "left" })
    // heal attempts every second while a checker is down (health is unknown right after a restart)
    expect(nextWakeAt(p.state)).toBe(1200 + 15_000)
    expect(p.feed(1900, down("http", "ECONNREFUSED"))).toEqual([])
    expect(nextWakeAt(p.state)).toBe(2200)
    expect(p.feed(2000, { _tag: "Tick" })).toEqual([])
    expect(p.feed(2200, { _tag: "Tick" })).toEqual(["RunRestart"])
    expect(p.feed(2300, { _tag: "RestartDone", ok: false, error: "exit 1" })).toEqual([])
    expect(p.feed(3200, down("http", "ECONNREFUSED"))).toEqual([]) // the next heal waits an interval after the last one ended
    expect(p.feed(3300, { _tag: "Tick" })).toEqual(["RunRestart"])
    // fixed: passes, but must settle for 3 s before rejoining
    expect(p.feed(3300, down("http", "ECONNREFUSED"))).toEqual([]) // seen while the heal restart runs: stale
    expect(p.feed(3400, { _tag: "RestartDone", ok: true, error: null })).toEqual([])
    expect(p.state.failing).toBe(null)
    expect(p.feed(4000, up)).toEqual([])
    expect(nextWakeAt(p.state)).toBe(7000)
    expect(p.feed(5000, { _tag: "Tick" })).toEqual([])
    expect(p.feed(7000, { _tag: "Tick" })).toEqual(["Ready"])
    expect(viewOf(p.state, 7000)).toMatchObject({ state: "up", farm: "up" })
  })

  it("a flap during settling restarts the settle time", () => {
    const p = run({ maxRestarts: 0, settleMs: 2000, healIntervalMs: 10_000 })
    p.feed(0, { _tag: "Start" })
    p.feed(10, { _tag: "StartDone", ok: true, error: null })
    p.feed(500, up)
    expect(p.feed(1000, down("http", "status 500"))).toEqual(["ReportUnhealthy(http: status 500)", "Leave(0 restarts in 86400 s used up: http: status 500)"])
    p.feed(1500, up)
    p.feed(2500, down("http", "status 500"))
    p.feed(3000, up)
    expect(p.feed(4000, { _tag: "Tick" })).toEqual([])
    expect(p.feed(5000, { _tag: "Tick" })).toEqual(["Ready"])
  })

  it("the restart window forgets old restarts", () => {
    const p = run({ maxRestarts: 1, windowMs: 10_000 })
    p.feed(0, { _tag: "Start" })
    p.feed(10, { _tag: "StartDone", ok: true, error: null })
    p.feed(500, up)
    expect(p.feed(1000, down("a", "x"))).toContain("RunRestart")
    p.feed(1100, { _tag: "RestartDone", ok: true, error: null })
    p.feed(1600, up)
    expect(p.feed(20_000, down("a", "y"))).toContain("RunRestart")
  })

  it("counts a start that never passes within readyTimeoutMs as a failure", () => {
    const p = run({ readyTimeoutMs: 5000, maxRestarts: 1 })
    p.feed(0, { _tag: "Start" })
    p.feed(100, { _tag: "StartDone", ok: true, error: null })
    p.feed(1000, down("http", "status 503"))
    expect(nextWakeAt(p.state)).toBe(5100)
    expect(p.feed(5100, { _tag: "Tick" })).toEqual([
      "ReportUnhealthy(http: checkers did not all pass within 5000 ms (http: status 503))",
      "RunRestart"
    ])
  })

  it("stop policy: stops the application and leaves", () => {
    const p = run({ onFailure: "stop" })
    p.feed(0, { _tag: "Start" })
    p.feed(10, { _tag: "StartDone", ok: true, error: null })
    p.feed(500, up)
    expect(p.feed(1000, down("tcp", "ECONNREFUSED"))).toEqual([
      "ReportUnhealthy(tcp: ECONNREFUSED)",
      "Leave(application failed (policy stop): tcp: ECONNREFUSED)",
      "RunStop"
    ])
    expect(p.feed(1500, { _tag: "StopDone", ok: true, error: null })).toEqual([])
    expect(viewOf(p.state, 1500)).toMatchObject({ state: "stopped", checker: "tcp", error: "ECONNREFUSED" })
    // an operator start brings it back; it rejoins when it passes
    expect(p.feed(2000, { _tag: "Start" })).toEqual(["RunStart"])
    p.feed(2100, { _tag: "StartDone", ok: true, error: null })
    expect(p.feed(2600, up)).toEqual(["Ready"])
  })

  it("whenExhausted stop; a failed first start is reported and counted", () => {
    const p = run({ maxRestarts: 1, whenExhausted: "stop" })
    p.feed(0, { _tag: "Start" })
    expect(p.feed(10, { _tag: "StartDone", ok: false, error: "exit 1" })).toEqual(["ReportUnhealthy(start: exit 1)", "RunRestart"])
    expect(p.feed(20, { _tag: "RestartDone", ok: false, error: "exit 1" })).toEqual([
      "Leave(1 restart in 86400 s used up: restart: exit 1)",
      "RunStop"
    ])
  })

  it("operator stop leaves first; stray command results are ignored", () => {
    const p = run()
    p.feed(0, { _tag: "Start" })
    expect(p.feed(5, { _tag: "Stop" })).toEqual(["Leave(application stopped by the operator)", "RunStop"])
    expect(p.feed(10, { _tag: "StartDone", ok: true, error: null })).toEqual([])
    p.feed(20, { _tag: "StopDone", ok: true, error: null })
    expect(p.state.phase).toBe("stopped")
    expect(p.feed(30, up)).toEqual([])
  })

  it("a keep-serving restart hands the application over: adopted up without a command or a report", () => {
    const old = run({ maxRestarts: 2, windowMs: 60_000 })
    old.feed(0, { _tag: "Start" })
    old.feed(10, { _tag: "StartDone", ok: true, error: null })
    old.feed(500, up)
    old.feed(1000, down("http", "status 500"))
    old.feed(1100, { _tag: "RestartDone", ok: true, error: null })
    old.feed(1600, up)
    const h = handoverOf(old.state, "nginx", 5000)
    expect(h).toEqual({ module: "nginx", standing: "up", restartsAgoMs: [4000] })
    // the new process (its own clock): no start, no Ready, counted restarts kept
    const p = run({ maxRestarts: 2, windowMs: 60_000 })
    expect(p.feed(100, { _tag: "Adopt", restartsAgoMs: h.restartsAgoMs })).toEqual([])
    expect(viewOf(p.state, 100)).toMatchObject({ state: "up", farm: "up", restarts: 1 })
    expect(p.feed(200, up)).toEqual([]) // already up: nothing to report
    // the checkers still decide: a failure is reported and restarted; the window still counts the old restart
    expect(p.feed(300, down("http", "status 500"))).toEqual(["ReportUnhealthy(http: status 500)", "RunRestart"])
    expect(p.feed(400, { _tag: "RestartDone", ok: false, error: "exit 1" })).toEqual(["Leave(2 restarts in 60 s used up: restart: exit 1)"])
    expect(p.feed(500, { _tag: "Adopt", restartsAgoMs: [] })).toEqual([]) // only from stopped
    expect(p.state.phase).toBe("left")
  })

  it("the handover says stopped after an operator stop and other while failing", () => {
    const p = run()
    p.feed(0, { _tag: "Start" })
    expect(handoverOf(p.state, "m", 1).standing).toBe("other")
    p.feed(5, { _tag: "Stop" })
    expect(handoverOf(p.state, "m", 6).standing).toBe("stopped")
  })

  it("reports what the application does for the audit: restarts, leaving, heal attempts (1st, 2nd, 4th, ...), rejoining", () => {
    const p = run({ maxRestarts: 1, windowMs: 60_000, settleMs: 1000, healIntervalMs: 1000 })
    p.feed(0, { _tag: "Start" })
    p.feed(10, { _tag: "StartDone", ok: true, error: null })
    p.feed(500, up)
    expect(p.apps).toEqual([{ _tag: "ReportApplication", state: "running", reason: "started: every checker passes" }])
    p.feed(1000, down("http", "status 500"))
    p.feed(1100, { _tag: "RestartDone", ok: true, error: null })
    p.feed(1600, up)
    p.feed(2000, down("http", "status 500"))
    expect(p.apps.slice(1)).toEqual([
      { _tag: "ReportApplication", state: "restarting", reason: "http: status 500; restart 1 of 1 in 60 s", restarts: 1, checker: "http" },
      { _tag: "ReportApplication", state: "running", reason: "restarted: every checker passes", restarts: 1 },
      { _tag: "ReportApplication", state: "left", reason: "1 restart in 60 s used up: http: status 500; left the farm, healing every 1 s", restarts: 1, checker: "http" }
    ])
    // heal attempts 1..5 while it stays down: reported on 1, 2, 4
    let t = 2000
    for (let i = 0; i < 5; i++) {
      t += 1100 // an interval after the previous attempt ended
      p.feed(t, { _tag: "Tick" })
      p.feed(t + 50, { _tag: "RestartDone", ok: true, error: null })
      p.feed(t + 60, down("http", "status 500"))
    }
    const heals = p.apps.filter((a) => a.state === "healing")
    expect(heals.map((a) => a.reason)).toEqual([
      "heal attempt 1: restart (http: status 500)", "heal attempt 2: restart (http: status 500)", "heal attempt 4: restart (http: status 500)"
    ])
    expect(heals[0]).toMatchObject({ checker: "http", restarts: 1 })
    t += 1100
    expect(p.feed(t, { _tag: "Tick" })).toEqual(["RunRestart"])
    p.feed(t + 50, { _tag: "RestartDone", ok: true, error: null })
    p.feed(t + 100, up)
    expect(p.feed(t + 1100, { _tag: "Tick" })).toEqual(["Ready"])
    expect(p.apps[p.apps.length - 1]).toEqual({ _tag: "ReportApplication", state: "running", reason: "healed: every checker passed for 1 s; rejoins the farm", restarts: 1 })
    // an operator stop, and a stop command that fails
    p.feed(t + 2000, { _tag: "Stop" })
    p.feed(t + 2100, { _tag: "StopDone", ok: false, error: "exit 1" })
    expect(p.apps.slice(-2)).toEqual([
      { _tag: "ReportApplication", state: "stopped", reason: "application stopped by the operator", restarts: 1 },
      { _tag: "ReportApplication", state: "failed", reason: "the stop command failed: exit 1; the application may still run", checker: "stop" }
    ])
  })

  it("policy stop reports stopped with the failure; an adopted application reports nothing", () => {
    const p = run({ onFailure: "stop" })
    p.feed(0, { _tag: "Start" })
    p.feed(10, { _tag: "StartDone", ok: true, error: null })
    p.feed(500, up)
    p.feed(1000, down("tcp", "ECONNREFUSED"))
    expect(p.apps[1]).toEqual({
      _tag: "ReportApplication", state: "stopped", checker: "tcp", restarts: 0,
      reason: "application failed (policy stop): tcp: ECONNREFUSED; stays stopped until an operator starts it"
    })
    const q = run()
    q.feed(0, { _tag: "Adopt", restartsAgoMs: [] })
    q.feed(100, up)
    expect(q.apps).toEqual([])
  })

  it("restartGraceMs: a quick restart keeps the buckets; a slow or failed one reports unhealthy", () => {
    const p = run({ maxRestarts: 3, restartGraceMs: 1500 })
    p.feed(0, { _tag: "Start" })
    p.feed(10, { _tag: "StartDone", ok: true, error: null })
    p.feed(500, up)
    // quick: back within the grace, nothing reported to the farm
    expect(p.feed(1000, down("nginx", "0 processes"))).toEqual(["RunRestart"])
    expect(nextWakeAt(p.state)).toBe(2500)
    expect(viewOf(p.state, 1000)).toMatchObject({ state: "restarting", farm: "up" })
    expect(p.apps[p.apps.length - 1]).toMatchObject({ state: "restarting", reason: "nginx: 0 processes; restart 1 of 3 in 86400 s; keeps its buckets for up to 1.5 s" })
    p.feed(1200, { _tag: "RestartDone", ok: true, error: null })
    expect(p.feed(2000, up)).toEqual([])
    expect(viewOf(p.state, 2000)).toMatchObject({ state: "up", farm: "up", restarts: 1 })
    expect(p.feed(2600, { _tag: "Tick" })).toEqual([])
    // slow: the grace runs out before the checkers pass
    expect(p.feed(5000, down("nginx", "0 processes"))).toEqual(["RunRestart"])
    p.feed(5200, { _tag: "RestartDone", ok: true, error: null })
    expect(nextWakeAt(p.state)).toBe(6500)
    expect(p.feed(6500, { _tag: "Tick" })).toEqual(["ReportUnhealthy(nginx: 0 processes (not back within 1.5 s of a restart))"])
    expect(p.feed(7000, up)).toEqual(["ReportRecovered"])
    // failed: the restart fails, reported at once (and restarted again, without a second grace)
    expect(p.feed(9000, down("http", "status 502"))).toEqual(["RunRestart"])
    expect(p.feed(9100, { _tag: "RestartDone", ok: false, error: "exit 1" })).toEqual([
      "ReportUnhealthy(restart: exit 1)",
      "Leave(3 restarts in 86400 s used up: restart: exit 1)"
    ])
  })

  it("restartGraceMs does not apply when no restart is left or the policy stops", () => {
    const p = run({ maxRestarts: 0, restartGraceMs: 1500 })
    p.feed(0, { _tag: "Start" })
    p.feed(10, { _tag: "StartDone", ok: true, error: null })
    p.feed(500, up)
    expect(p.feed(1000, down("tcp", "refused"))[0]).toBe("ReportUnhealthy(tcp: refused)")
    const q = run({ onFailure: "stop", restartGraceMs: 1500 })
    q.feed(0, { _tag: "Start" })
    q.feed(10, { _tag: "StartDone", ok: true, error: null })
    q.feed(500, up)
    expect(q.feed(1000, down("tcp", "refused"))[0]).toBe("ReportUnhealthy(tcp: refused)")
  })

  it("is deterministic: the same inputs give the same outputs", () => {
    const script: Array<[number, PolicyInput]> = [
      [0, { _tag: "Start" }], [10, { _tag: "StartDone", ok: true, error: null }], [500, up], [900, down("a", "e")],
      [950, { _tag: "RestartDone", ok: false, error: "x" }], [960, { _tag: "RestartDone", ok: true, error: null }], [1500, up]
    ]
    const once = () => {
      const p = run({ maxRestarts: 3 })
      for (const [t, i] of script) p.feed(t, i)
      return JSON.stringify([p.all, p.state])
    }
    expect(once()).toBe(once())
  })
})
