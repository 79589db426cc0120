import { describe, expect, it } from "vitest"
import { Result } from "effect"
import { parseConfig } from "./config.ts"

const good = `farm: web                        # farm name
node: s1
interface: eth0
weight: 100
nats:
  servers: [nats://198.18.0.11:4222, nats://198.18.0.12:4222]
vips:
  - address: 198.18.0.100
    rules:
      - {proto: tcp, ports: [80, 443], affinity: client-ip}
      - {proto: udp, ports: ["5000-5100"], affinity: client-ip-port}
`

const errorOf = (text: string) => {
  const r = parseConfig(text, "/etc/vipfarm/farm.yaml")
  if (Result.isSuccess(r)) throw new Error("expected an error")
  return r.failure
}

describe("config", () => {
  it("accepts the documented example and fills defaults", () => {
    const r = parseConfig(good, "farm.yaml")
    expect(Result.isSuccess(r)).toBe(true)
    if (Result.isSuccess(r)) {
      expect(r.success.node).toBe("s1")
      expect(r.success.control).toBe("/run/vipfarm/web.sock")
      expect(r.success.lease).toEqual({ heartbeatMs: 50, fenceAfterMs: 250, expireAfterMs: 350 })
      expect(r.success.vips[0].rules[1].ports).toEqual(["5000-5100"])
    }
  })

  it("names file, line and key of a bad value", () => {
    const e = errorOf(good.replace('"5000-5100"', '"5100-5000"'))
    expect(e.file).toBe("/etc/vipfarm/farm.yaml")
    expect(e.line).toBe(11)
    expect(e.key).toBe("vips[0].rules[1].ports[0]")
    expect(e.message).toMatch(/^\/etc\/vipfarm\/farm\.yaml:11: vips\[0\]\.rules\[1\]\.ports\[0\]: /)
  })

  it("names a bad affinity and a bad address", () => {
    expect(errorOf(good.replace("affinity: client-ip}", "affinity: sticky}"))).toMatchObject({ line: 10, key: "vips[0].rules[0].affinity" })
    expect(errorOf(good.replace("198.18.0.100", "198.18.0.300"))).toMatchObject({ line: 8, key: "vips[0].address" })
  })

  it("names a missing key, an unknown key and a YAML syntax error", () => {
    expect(errorOf(good.replace("interface: eth0\n", ""))).toMatchObject({ key: "interface" })
    expect(errorOf(good.replace("weight: 100", "wieght: 100"))).toMatchObject({ line: 4, key: "wieght" })
    // a syntax error names the key it follows (the sequence that farm: opens is never closed)
    expect(errorOf(good.replace("farm: web", "farm: [web"))).toMatchObject({ key: "farm" })
  })

  it("refuses lease timings that would let two servers serve one bucket", () => {
    const e = errorOf(good + "lease: {fenceAfterMs: 500, expireAfterMs: 450}\n")
    expect(e.key).toBe("lease.expireAfterMs")
    expect(e.problem).toMatch(/fences/)
  })

  it("handoff.maxMs is an optional cap with no default", () => {
    const none = parseConfig(good, "farm.yaml")
    expect(Result.isSuccess(none) && none.success.handoffMaxMs).toBeNull()
    const capped = parseConfig(good + "handoff: {maxMs: 600000}\n", "farm.yaml")
    expect(Result.isSuccess(capped) && capped.success.handoffMaxMs).toBe(600000)
    expect(errorOf(good + "handoff: {maxMs: -1}\n")).toMatchObject({ line: 12, key: "handoff.maxMs" })
  })
})
