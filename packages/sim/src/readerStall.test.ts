import { describe, expect, it } from "vitest"
import { runScenario, type Scenario } from "./index.ts"

/** Three servers, steady TCP and UDP load, the default lease timing. */
const farm = (timeline: Scenario["timeline"]): Scenario => ({
  name: "reader-stall",
  duration: 8000,
  servers: { count: 3, weight: 100 },
  load: { tcp: { flowsPerSec: 400, maxDuration: "2s" }, udp: { flowsPerSec: 60, maxDuration: "2s" } },
  timeline,
  liveness: { timeout: "25s" }
}) as Scenario

describe("a survivor whose log reader stalls (its consumer's NATS node cut off)", () => {
  it("keeps serving the share it took over while the others fold the failure (lab split brain)", () => {
    // s1 is cut off from everything; s3's reader delivers nothing for 3 s, so s3 takes s1 over
    // on the overlay alone while s2 folds s1's failure. s3 must keep s1's buckets it took
    // until it catches up: the suspicion s2 publishes stays fresh after s2 folded the failure.
    const timeline = [
      { at: 2000, do: "partition", groups: [["s1"], ["s2", "s3", "n1", "n2", "n3"]], for: 4000 },
      { at: 2000, do: "reader-stall", node: "s3", for: 3000 }
    ] as Scenario["timeline"]
    for (const seed of [1, 2, 3]) {
      const r = runScenario(farm(timeline), { seed, stopOnViolation: true })
      expect(r.violations, `seed ${seed}`).toEqual([])
      expect(r.timeline.some((l) => l.kind === "reader-stall" && l.node === "s3")).toBe(true)
      // the failure was in the log (and folded by s2) while s3's reader was stalled
      const failed = r.timeline.find((l) => l.kind === "log:MemberFailed" && l.node === "s1")!
      expect(failed.atMs).toBeLessThan(5000)
      expect(r.timeline.some((l) => l.kind === "takeover" && l.node === "s3" && l.detail === "s1")).toBe(true)
      const takeover = r.failovers.find((f) => f.node === "s1")!
      expect(takeover.durationMs!, `seed ${seed}: s1's share served again`).toBeLessThan(1000)
      expect(r.timeline.some((l) => l.kind === "takeover-ended" && l.node === "s3" && l.detail === "s1")).toBe(false)
    }
  })
})
