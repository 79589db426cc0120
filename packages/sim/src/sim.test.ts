import { describe, expect, it } from "vitest"
import { Result } from "effect"
import { mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { defaultScenarioName, formatReport, loadScenario, parseScenarioText, runScenario, scenariosDir, shippedScenarios, writeHtmlReport } from "./index.ts"
import { EventQueue } from "./queue.ts"
import { Prng } from "./prng.ts"

describe("simulator core", () => {
  it("delivers events by (time, seq), never in heap order", () => {
    const q = new EventQueue(2)
    const rng = new Prng(3)
    const pushed: Array<[number, number]> = []
    for (let i = 0; i < 500; i++) {
      const t = rng.int(20)
      q.push(t, i)
      pushed.push([t, i])
    }
    pushed.sort((a, b) => a[0] - b[0] || a[1] - b[1])
    const out: Array<number> = []
    while (q.size > 0) {
      out.push(q.peekRef())
      q.pop()
    }
    expect(out).toEqual(pushed.map((p) => p[1]))
  })

  it("the PRNG is reproducible from its seed", () => {
    const a = new Prng(42)
    const b = new Prng(42)
    for (let i = 0; i < 100; i++) expect(a.u32()).toBe(b.u32())
    expect(new Prng(43).u32()).not.toBe(new Prng(42).u32())
  })
})

describe("scenarios", () => {
  it("ships the library, with a default", () => {
    const names = shippedScenarios()
    for (const n of [defaultScenarioName, "steady-state", "crash", "partition", "flapping", "rolling-upgrade", "scale-2-32-2", "syn-flood"]) {
      expect(names).toContain(n)
    }
    expect(scenariosDir).toMatch(/scenarios$/)
  })

  it("names the file and the key of an invalid scenario", () => {
    const bad = parseScenarioText("name: x\nduration: 5s\nservers: {count: 3}\ntimeline:\n  - {at: 1s, do: crash}\n", "bad.yaml")
    expect(Result.isFailure(bad)).toBe(true)
    if (Result.isFailure(bad)) expect(bad.failure.message).toMatch(/bad\.yaml.*timeline.*\[0\].*node/s)
    const unknown = parseScenarioText("name: x\nduration: 5s\nservers: {count: 3}\ntimeline:\n  - {at: 1s, do: explode}\n", "u.yaml")
    if (Result.isFailure(unknown)) expect(unknown.failure.message).toMatch(/u\.yaml: timeline\[0\]\.do: unknown action "explode"/)
    else expect.unreachable()
    const dur = parseScenarioText("name: x\nduration: soon\nservers: {count: 3}\n", "d.yaml")
    if (Result.isFailure(dur)) expect(dur.failure.message).toMatch(/d\.yaml.*duration/s)
    else expect.unreachable()
    expect(() => loadScenario("/nonexistent/nothing.yaml")).toThrow(/cannot read/)
  })
})

describe("runs", () => {
  it("is deterministic: the same seed gives the same report", () => {
    const s = loadScenario("default")
    const a = runScenario(s, { seed: 7 })
    const b = runScenario(s, { seed: 7 })
    expect(JSON.stringify(a)).toBe(JSON.stringify(b))
    const c = runScenario(s, { seed: 8 })
    expect(JSON.stringify(c)).not.toBe(JSON.stringify(a))
  })

  it("runs the default scenario clean and reports it", () => {
    const progress: Array<number> = []
    const r = runScenario(loadScenario("default"), { seed: 1, onProgress: (p) => progress.push(p.simulatedMs) })
    const text = formatReport(r)
    expect(r.violations).toEqual([])
    expect(r.ok).toBe(true)
    expect(r.resets.handoff).toBe(0)
    expect(r.failover.count).toBe(1)
    expect(r.failover.worstMs!).toBeLessThan(1000)
    expect(r.liveness.converged).toBe(true)
    expect(r.packets.total).toBeGreaterThan(500_000)
    expect(progress.length).toBeGreaterThan(10)
    expect(text).toMatch(/scenario default \(seed 1\): OK/)
    const dir = mkdtempSync(join(tmpdir(), "vipfarm-sim-"))
    writeHtmlReport(r, join(dir, "r.html"))
    const html = readFileSync(join(dir, "r.html"), "utf8")
    expect(html).toMatch(/<svg/)
    expect(html).not.toMatch(/<script src|<link /)
  })

  for (const name of ["steady-state", "crash", "partition", "flapping", "rolling-upgrade", "syn-flood"]) {
    it(`runs the shipped scenario ${name} clean`, () => {
      const r = runScenario(loadScenario(name), { seed: 1 })
      expect(r.violations).toEqual([])
      expect(r.liveness.converged).toBe(true)
    })
  }

  it("catches a deliberately broken filter (a server that ignores fencing)", () => {
    const r = runScenario(loadScenario("partition"), { seed: 1, ignoreFencing: "s3", stopOnViolation: true })
    expect(r.ok).toBe(false)
    const v = r.violations[0]
    expect(v.invariant).toBe("two-live-owners")
    expect(v.replay).toBe("farm sim partition --seed 1")
    expect(formatReport(r)).toMatch(/replay: farm sim partition --seed 1/)
  })
})
