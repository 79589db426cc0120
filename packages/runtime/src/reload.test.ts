import { Result } from "effect"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { type Config, loadConfig, parseConfig } from "./config.ts"
import { type LiveChange, planReload, reloadConfig } from "./reload.ts"

const base = `farm: web
node: s1
interface: eth0
weight: 100
nats:
  servers: [nats://198.18.0.11:4222]
vips:
  - address: 198.18.0.100
    rules:
      - {proto: tcp, ports: [80], affinity: client-ip}
`

const parse = (text: string): Config => {
  const r = parseConfig(text, "/etc/vipfarm/farm.yaml")
  if (Result.isFailure(r)) throw new Error(r.failure.message)
  return r.success
}

describe("planReload", () => {
  it("the same file changes nothing and refuses nothing", () => {
    expect(planReload(parse(base), parse(base))).toEqual({ changes: [], refused: [] })
  })

  it("weight changes live", () => {
    const plan = planReload(parse(base), parse(base.replace("weight: 100", "weight: 250")))
    expect(plan.changes).toEqual([{ _tag: "SetWeight", from: 100, weight: 250 }])
    expect(plan.refused).toEqual([])
  })

  it("every other difference is refused naming its key, and the weight still changes", () => {
    const next = parse(
      base.replace("weight: 100", "weight: 0").replace("node: s1", "node: s2").replace("nats://198.18.0.11:4222", "nats://198.18.0.12:4222")
        .replace("ports: [80]", "ports: [8080]") + "xdp: {mode: native}\nhandoff: {maxMs: 5000}\n"
    )
    const plan = planReload(parse(base), next)
    expect(plan.changes).toEqual([{ _tag: "SetWeight", from: 100, weight: 0 }])
    expect(plan.refused.map((r) => r.key).sort()).toEqual(["handoff.maxMs", "nats.servers", "node", "vips", "xdp.mode"])
    expect(plan.refused.find((r) => r.key === "vips")?.reason).toMatch(/log/)
    expect(plan.refused.find((r) => r.key === "node")?.reason).toMatch(/restart/)
  })
})

const dir = mkdtempSync(join(tmpdir(), "vipfarm-reload-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe("reloadConfig", () => {
  const run = async (text: string, apply: (c: LiveChange) => Promise<string>) => {
    const file = join(dir, `farm-${Math.random().toString(36).slice(2)}.yaml`)
    writeFileSync(file, base)
    let current = { ...parse(base), file }
    writeFileSync(file, text)
    const applied: Array<LiveChange> = []
    const lines: Array<string> = []
    const write = process.stderr.write.bind(process.stderr)
    process.stderr.write = ((chunk: string) => { lines.push(String(chunk)); return true }) as typeof process.stderr.write
    try {
      const plan = await reloadConfig({
        node: "s1", current: () => current, load: (f) => loadConfig(f, { checkApp: false }),
        apply: (c) => { applied.push(c); return apply(c) }, applied: (c) => { current = c }
      })
      return { plan, applied, current, lines: lines.filter((l) => l.includes("op=config.reload")) }
    } finally {
      process.stderr.write = write
    }
  }

  it("applies the weight, logs each refusal, and keeps the weight in force for the next reload", async () => {
    const r = await run(base.replace("weight: 100", "weight: 40").replace("interface: eth0", "interface: eth1"), async () => "Appended")
    expect(r.applied).toEqual([{ _tag: "SetWeight", from: 100, weight: 40 }])
    expect(r.current.weight).toBe(40)
    expect(r.current.interface).toBe("eth0")
    expect(r.lines.some((l) => /key=interface/.test(l) && /result=refused/.test(l))).toBe(true)
    expect(r.lines.some((l) => /key=weight/.test(l) && /result=applied/.test(l))).toBe(true)
  })

  it("a failed append is logged and the running weight stays", async () => {
    const r = await run(base.replace("weight: 100", "weight: 40"), () => Promise.reject(new Error("log unavailable")))
    expect(r.current.weight).toBe(100)
    expect(r.lines.some((l) => /result=failed/.test(l) && /log unavailable/.test(l))).toBe(true)
  })

  it("a file that does not load is refused as a whole, naming the key", async () => {
    const r = await run(base.replace("weight: 100", "weight: -3"), async () => "Appended")
    expect(r.plan).toBeNull()
    expect(r.applied).toEqual([])
    expect(r.lines.some((l) => /result=invalid/.test(l) && /weight/.test(l))).toBe(true)
  })
})

