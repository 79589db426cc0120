import { describe, expect, it } from "vitest"
import { loadScenario, runScenario } from "./index.ts"

// The daemon's UDP hand-over is simulated (old owners report their UDP flows to each receiver every
// 250 ms; a receiver takes new UDP flows in a bucket once its old owner's report is installed). The
// hand-over as it was before issue 16 let two servers answer one datagram; the fixed one does not.
describe("UDP hand-over (issue 16: a UDP datagram answered by two servers)", () => {
  it("link flaps then a partition: the legacy hand-over answers a datagram twice, the fixed one never", () => {
    const s = loadScenario("link-flap-udp")
    const broken = runScenario(s, { seed: 3, legacyUdpHandover: true, stopOnViolation: true, safetyOnly: true })
    expect(broken.violations[0]?.invariant).toBe("udp-packet-accepted-twice")
    const fixed = runScenario(s, { seed: 3, safetyOnly: true })
    expect(fixed.violations).toEqual([])
    expect(fixed.packets.udp).toBeGreaterThan(10_000)
  })

  it("rolling restart (SIGTERM = drain to two receivers, start = rebalance from two old owners): legacy fails, fixed holds", () => {
    const s = loadScenario("rolling-upgrade")
    const broken = runScenario(s, { seed: 2, legacyUdpHandover: true, stopOnViolation: true, safetyOnly: true })
    expect(broken.violations[0]?.invariant).toBe("udp-packet-accepted-twice")
    expect(runScenario(s, { seed: 2, safetyOnly: true }).violations).toEqual([])
  })
})
