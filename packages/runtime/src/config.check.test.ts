import { describe, expect, it } from "vitest"
import { Result } from "effect"
import { checkConfig, configErrors, parseConfig } from "./config.ts"

const good = `farm: web
node: s1
interface: eth0
nats:
  servers: [nats://198.18.0.11:4222]
metrics: {listen: "127.0.0.1:9469"}
restart: {holdMs: 8000}
vips:
  - address: 198.18.0.100
    rules:
      - {proto: tcp, ports: [80, 443], affinity: client-ip}
`

describe("farm config check", () => {
  it("accepts a good file, with metrics and restart settings", () => {
    expect(checkConfig(good, "farm.yaml")).toEqual([])
    const r = parseConfig(good, "farm.yaml")
    expect(Result.isSuccess(r) && r.success.metrics).toEqual({ listen: "127.0.0.1:9469" })
    expect(Result.isSuccess(r) && r.success.restart).toEqual({ holdMs: 8000 })
    const bare = parseConfig(good.replace(/^metrics.*\n/m, "").replace(/^restart.*\n/m, ""), "farm.yaml")
    expect(Result.isSuccess(bare) && bare.success.metrics).toBeNull()
    expect(Result.isSuccess(bare) && bare.success.restart.holdMs).toBe(10000)
  })

  it("reports every error with its line, in file order", () => {
    const bad = good
      .replace("interface: eth0", "interface: eth0\nwieght: 100")
      .replace("nats://198.18.0.11:4222", "http://198.18.0.11")
      .replace("127.0.0.1:9469", "localhost")
      .replace("198.18.0.100", "198.18.0.300")
      .replace("affinity: client-ip}", "affinity: sticky}")
    const errors = checkConfig(bad, "/etc/vipfarm/farm.yaml")
    expect(errors.map((e) => [e.line, e.key])).toEqual([
      [4, "wieght"],
      [6, "nats.servers[0]"],
      [7, "metrics.listen"],
      [10, "vips[0].address"],
      [12, "vips[0].rules[0].affinity"]
    ])
    for (const e of errors) expect(e.message).toMatch(/^\/etc\/vipfarm\/farm\.yaml:\d+: [\w.[\]]+: /)
    // the daemon still stops at the first
    const first = parseConfig(bad, "/etc/vipfarm/farm.yaml")
    expect(Result.isFailure(first)).toBe(true)
  })

  it("reports YAML syntax errors with lines, and checks across keys once the file decodes", () => {
    const syntax = configErrors("farm: [web\nnode: s1\n", "f.yaml")
    expect(syntax.length).toBeGreaterThan(0)
    expect(syntax[0].line).toBeGreaterThanOrEqual(1)
    const lease = checkConfig(good + "lease: {fenceAfterMs: 500, expireAfterMs: 450}\n", "f.yaml")
    expect(lease).toHaveLength(1)
    expect(lease[0]).toMatchObject({ key: "lease.expireAfterMs", line: 12 })
  })
})
