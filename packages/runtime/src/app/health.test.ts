import { describe, expect, it } from "vitest"
import { dueProbes, type HealthState, initHealth, nextProbeAt, probeFinished, probeStarted, type ProbeResult, resetHealth, summarize } from "./health.ts"

const timing = (name: string) => ({ name, intervalMs: 500, timeoutMs: 1000, failures: 2, successes: 2 })

/** Probe every due checker at `now`, answering with `answer(name)` at `now + latency`. */
const round = (h: HealthState, now: number, answer: (name: string) => ProbeResult, latency = 5) => {
  const changes = []
  for (const name of dueProbes(h, now)) {
    const s = probeStarted(h, name, now)
    const r = probeFinished(s.state, name, s.token, answer(name), now + latency)
    h = r.state
    if (r.change) changes.push(r.change)
  }
  return { h, changes }
}

describe("health: consecutive counts flip checkers", () => {
  it("starts unknown, goes up after `successes` passes, down after `failures` failures", () => {
    let h = initHealth([timing("http"), timing("proc")], 0)
    expect(dueProbes(h, 0)).toEqual(["http", "proc"])
    let r = round(h, 0, () => ({ ok: true }))
    expect(r.changes).toEqual([])
    expect(nextProbeAt(r.h)).toBe(500)
    expect(dueProbes(r.h, 499)).toEqual([])
    r = round(r.h, 500, () => ({ ok: true }))
    expect(r.changes.map((c) => `${c.checker}:${c.to}`)).toEqual(["http:up", "proc:up"])
    expect(summarize(r.h)).toEqual({ allUp: true, failing: null })
    // one failure does not flip it; two do
    r = round(r.h, 1000, (n) => (n === "http" ? { ok: false, error: "status 500" } : { ok: true }))
    expect(r.changes).toEqual([])
    expect(summarize(r.h).allUp).toBe(true)
    r = round(r.h, 1500, (n) => (n === "http" ? { ok: false, error: "status 502" } : { ok: true }))
    expect(r.changes).toEqual([{ checker: "http", from: "up", to: "down", error: "status 502" }])
    expect(summarize(r.h)).toEqual({ allUp: false, failing: { checker: "http", error: "status 502" } })
    // a pass in between resets the run
    h = r.h
    r = round(h, 2000, () => ({ ok: true }))
    r = round(r.h, 2500, (n) => (n === "http" ? { ok: false, error: "x" } : { ok: true }))
    expect(summarize(r.h).failing?.checker).toBe("http")
    r = round(r.h, 3000, () => ({ ok: true }))
    r = round(r.h, 3500, () => ({ ok: true }))
    expect(summarize(r.h).allUp).toBe(true)
  })

  it("one probe at a time; the next is due an interval after the previous started", () => {
    const h = initHealth([timing("slow")], 0)
    const s = probeStarted(h, "slow", 0)
    expect(dueProbes(s.state, 800)).toEqual([])
    expect(nextProbeAt(s.state)).toBe(null)
    const r = probeFinished(s.state, "slow", s.token, { ok: false, error: "timeout" }, 1000)
    expect(dueProbes(r.state, 1000)).toEqual(["slow"])
  })

  it("ignores answers of probes started before a reset", () => {
    let h = initHealth([timing("a")], 0)
    h = round(h, 0, () => ({ ok: true })).h
    h = round(h, 500, () => ({ ok: true })).h
    const s = probeStarted(h, "a", 1000)
    const reset = resetHealth(s.state, 1010)
    expect(summarize(reset).allUp).toBe(false)
    const r = probeFinished(reset, "a", s.token, { ok: false, error: "stale" }, 1020)
    expect(r.change).toBe(null)
    expect(r.state).toBe(reset)
    expect(dueProbes(reset, 1010)).toEqual(["a"])
  })

  it("the defaults decide within 3 s of a failure, refused or hung", () => {
    // refused at once: failure at t=1001 (just after a probe), probes at 1500, 2000
    let h = initHealth([timing("x")], 0)
    h = round(h, 0, () => ({ ok: true })).h
    h = round(h, 500, () => ({ ok: true })).h
    h = round(h, 1000, () => ({ ok: true })).h
    let t = 1500
    let downAt: number | null = null
    while (downAt === null) {
      const r = round(h, t, () => ({ ok: false, error: "ECONNREFUSED" }))
      h = r.h
      if (r.changes.length) downAt = t
      t += 500
    }
    expect(downAt - 1001).toBeLessThan(3000)
    // hung: each probe times out after 1 s; the next starts when the previous ends
    h = initHealth([timing("y")], 0)
    h = round(h, 0, () => ({ ok: true })).h
    h = round(h, 500, () => ({ ok: true })).h
    h = round(h, 1000, () => ({ ok: true })).h
    t = 1500
    downAt = null
    while (downAt === null) {
      const s = probeStarted(h, "y", t)
      const r = probeFinished(s.state, "y", s.token, { ok: false, error: "timeout" }, t + 1000)
      h = r.state
      t += 1000
      if (r.change) downAt = t
    }
    expect(downAt - 1001).toBeLessThan(3000)
  })
})
