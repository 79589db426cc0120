/**
 * A 2-server farm with a witness (a third NATS node and `farm witness`, lab x4): when one
 * server's daemon is SIGKILLed, the survivor and the witness are a majority, so the survivor
 * keeps its lease and serves every client within the failover budget.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { LabState } from "@vipfarm/runtime"
import { addressesOf, killDaemon, type PollResult, probe, recoveryTimes, rootOrSkip, startLab, status, stopLab } from "./harness.ts"

const NAME = "x4"
const root = rootOrSkip("witness.e2e.test.ts")

describe.skipIf(!root)("a 2-server farm with a witness", () => {
  let lab: LabState

  beforeAll(async () => {
    lab = await startLab({ name: NAME, servers: 2, witness: true })
  }, 60_000)

  afterAll(() => {
    if (root) expect(stopLab(NAME)).toEqual([])
  })

  it("the survivor serves every client after the other server's daemon is killed", async () => {
    const addresses = addressesOf(lab)
    const polled = probe<PollResult>(lab, "c1", ["poll", lab.vip, "4", ...addresses])
    await new Promise((r) => setTimeout(r, 1500))
    const killedAt = killDaemon(lab, "s2")
    const result = await polled
    const times = recoveryTimes(result, killedAt, "s2")
    console.log(`2 servers + witness, failover after SIGKILL (ms): ${times.map((t) => Math.round(t)).join(" ")}`)
    expect(times.length).toBeGreaterThan(0)
    expect(Math.max(...times)).toBeLessThan(1000)
    // at the end every address is answered by s1
    for (const p of result) expect(p.samples[p.samples.length - 1][1]).toBe("s1")
    const st = await status(lab, "s1")
    expect(st.filter.fenced).toBe(false)
    expect(st.members.find((m) => m.name === "s1")?.buckets).toBe(1024)
  }, 60_000)
})
