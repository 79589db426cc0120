import { describe, expect, it } from "vitest"
import { runScenario, type Scenario } from "./index.ts"

/** The generated-timeline scenario of generated.test.ts and bench/sweep.ts. */
const generated = (timeline: Scenario["timeline"], controller?: Record<string, number>): Scenario => ({
  name: "generated",
  duration: 8000,
  servers: { count: 4, weight: 100 },
  witnesses: 1,
  load: { tcp: { flowsPerSec: 400, maxDuration: "2s" }, udp: { flowsPerSec: 60, maxDuration: "2s" } },
  timeline,
  liveness: { timeout: "25s" },
  ...(controller === undefined ? {} : { controller })
}) as Scenario

describe("protocol races found by the simulator (issue 5)", () => {
  it("a failure plan stays pinned while entries fold during the takeover: no two live owners (crash s1 at 300, restart at 644, seed 5)", () => {
    // s1's restarted process appends CompleteHandoff + a rebalance (no lease needed) while the
    // survivors take s1 over: s4 applied the plan at seq 15, s2 after folding 16-17, and the
    // plans differed on bucket 0/255. Now the plan is pinned to the lowest seq any survivor
    // published, claimed once every live peer publishes the same, and MemberFailed carries it.
    const r = runScenario(generated([{ at: 300, do: "crash", node: "s1" }, { at: 644, do: "restart", node: "s1" }]), { seed: 5, stopOnViolation: true })
    expect(r.violations).toEqual([])
    expect(r.liveness.converged).toBe(true)
    const crash = r.failovers.find((f) => f.fault === "crash")!
    expect(crash.durationMs!).toBeLessThan(500)
    const failed = r.timeline.find((l) => l.kind === "log:MemberFailed" && l.node === "s1")
    expect(failed).toBeDefined()
  })

  it("a stale unhealthy report (decided during a log stall, folded after the application recovered) is withdrawn, not a takeover (seed 78, was 199, 222)", () => {
    // the append stall of the leader kill holds s3's ReportUnhealthy until 4757 ms; its
    // application recovered at 3830. s3 does not acknowledge the entry, keeps its tables and
    // appends MemberRecovered restoring its buckets, so its established flows are kept.
    // (Seed 222 showed it until the simulator's traffic and stall model changed.) With seed 199
    // a CompleteHandoff + rebalance was decided on the report before s3's recovery: bucket 0/428,
    // given back to s4 (held for s3's ack), moved on to s1, which waited for s4's ack only (two
    // live owners); and a bucket moving to s3 moved elsewhere with s3's flows. Now a claim also
    // waits for any live member still claiming the bucket in the state it acked, and completions
    // and rebalances wait for every live member's ack (PROTOCOL.md §5, §8).
    const timeline = [
      { at: 303, do: "slow", node: "s3", delay: 101, for: 1008 }, { at: 1323, do: "unhealthy", node: "s3", for: 2507 }, { at: 309, do: "nats-leader-kill" }
    ] as Scenario["timeline"]
    // (since appends back off after a failure, issue 16, seed 199 no longer times the report this way; seed 78 does)
    const r = runScenario(generated(timeline), { seed: 78, stopOnViolation: true })
    expect(r.violations).toEqual([])
    expect(r.liveness.converged).toBe(true)
    const unhealthy = r.timeline.find((l) => l.kind === "log:MemberUnhealthy" && l.node === "s3")!
    expect(unhealthy.atMs).toBeGreaterThan(3830)
    expect(r.timeline.some((l) => l.kind === "stale-report" && l.node === "s3")).toBe(true)
    expect(r.timeline.some((l) => l.kind === "log:MemberRecovered" && l.node === "s3" && l.atMs < unhealthy.atMs + 50)).toBe(true)
  })

  it("a bucket held back while its previous claimant acks stays foreign if this node did not serve it (sweep seed 548)", () => {
    // s3, paused and taken over, rejoins; its stale UDP flow state in a bucket moving back to it
    // must not make it accept that flow's packets (as MOVING_OUT) next to the owner s1
    const timeline = [
      { at: 2821, do: "pause", node: "s1", for: 252 }, { at: 4977, do: "pause", node: "s3", for: 1158 }, { at: 2622, do: "drain", node: "s3" },
      { at: 3579, do: "resume", node: "s3" }, { at: 3642, do: "slow", node: "s1", delay: 271, for: 2706 }, { at: 1420, do: "slow", node: "s4", delay: 150, for: 1497 }
    ] as Scenario["timeline"]
    const r = runScenario(generated(timeline), { seed: 548, stopOnViolation: true })
    expect(r.violations).toEqual([])
  })

  it("a receiver that becomes owner takes the old owner's established flows only after its ack (seed 69, timing 100/300/450)", () => {
    // s2's unhealthy report gives bucket 0/871, moving s2 -> s4, to s4 at once: s4 took every
    // packet (OWNED) while s2, not yet folded, still took its established UDP flow's packets
    const r = runScenario(generated([{ at: 2177, do: "unhealthy", node: "s2", for: 2593 }], { heartbeat: 100, fenceAfter: 300, expireAfter: 450, hold: 1000 }), { seed: 69, stopOnViolation: true })
    expect(r.violations).toEqual([])
    expect(r.liveness.converged).toBe(true)
  })

  it("an applied overlay stands on a slow node until the log removes the peer (sweep seed 512)", () => {
    // s1's inputs are delayed 187 ms: it saw the majority's suspicions of s4 late, its overlay
    // flapped (takeover, takeover-ended, takeover...) and it dropped the flows it had taken
    const timeline = [
      { at: 3817, do: "nats-leader-kill" }, { at: 2507, do: "slow", node: "s1", delay: 187, for: 1874 }, { at: 5997, do: "unhealthy", node: "s4", for: 298 },
      { at: 4095, do: "partition", groups: [["s1", "s2", "s3", "w1", "n1", "n2", "n3"], ["s4"]], for: 1745 }, { at: 5147, do: "cut", a: "s1", b: "s2", oneWay: false, for: 417 }
    ] as Scenario["timeline"]
    const r = runScenario(generated(timeline), { seed: 512, stopOnViolation: true })
    expect(r.violations).toEqual([])
    expect(r.timeline.some((l) => l.kind === "takeover-ended" && l.node === "s1" && l.detail === "s4")).toBe(false)
  })

  it("takings the pinned plan does not name wait for the log: two peers failing at once (sweep seed 1742)", () => {
    // s2 and s1 paused 120 ms apart: s3 recorded s2's failure (giving some of its buckets to s1)
    // before it took s1 over, s4 had taken both over at once; their fresh plans for those
    // buckets differed (two live owners while the pinned plan was the only guard)
    const timeline = [
      { at: 657, do: "pause", node: "s1", for: 1661 }, { at: 538, do: "pause", node: "s2", for: 2675 }, { at: 1034, do: "pause", node: "s3", for: 1863 },
      { at: 3383, do: "cut", a: "s4", b: "s3", oneWay: false, for: 819 }, { at: 472, do: "cut", a: "s4", b: "s1", oneWay: true, for: 2340 }
    ] as Scenario["timeline"]
    const r = runScenario(generated(timeline), { seed: 1742, stopOnViolation: true })
    expect(r.violations).toEqual([])
  })
  it("two peers failing 48 ms apart: a node that folded the first failure gives the second's buckets to the takers of a node that took both at once (sweep seed 1464)", () => {
    // s3 recorded s4's failure (takers including s1) before it took s1 over; s2 had taken both
    // over at the same folded seq. Their fresh plans for the buckets pinned to the other failed
    // peer differed: the log landed bucket 0/201, which s2 had taken, on s3 (a reset). Now both
    // use the joint plan of s1 and s4 failed at the pinned state (controller failTogether.test.ts)
    const timeline = [
      { at: 3687, do: "pause", node: "s4", for: 2997 }, { at: 3735, do: "pause", node: "s1", for: 2427 }, { at: 306, do: "kill", node: "s3" },
      { at: 2602, do: "restart", node: "s3" }
    ] as Scenario["timeline"]
    const r = runScenario(generated(timeline), { seed: 1464, stopOnViolation: true })
    expect(r.violations).toEqual([])
    expect(r.liveness.converged).toBe(true)
  })

  it("a peer taken over restarts during a log stall: its takers keep its buckets until the log records its failure (sweep seed 1639)", () => {
    // s3 and s2 crash while the log is stalled; s1 and s4 take both over. s3's new process
    // appended a CompleteHandoff with a rebalance between s2's failure and its own, and s4's
    // taking of bucket 0/521 (pinned to s2, computed afresh) moved to s1 with an established flow.
    // Now a process that hears itself taken over decides nothing, and the takers use the joint plan
    const timeline = [
      { at: 5662, do: "crash", node: "s2" }, { at: 7712, do: "restart", node: "s2" }, { at: 1081, do: "unhealthy", node: "s1", for: 640 },
      { at: 2183, do: "nats-leader-kill" }, { at: 5549, do: "crash", node: "s3" }, { at: 7379, do: "restart", node: "s3" }, { at: 2125, do: "nats-leader-kill" }
    ] as Scenario["timeline"]
    const r = runScenario(generated(timeline), { seed: 1639, stopOnViolation: true })
    expect(r.violations).toEqual([])
    expect(r.liveness.converged).toBe(true)
    const logged = r.timeline.filter((l) => l.kind.startsWith("log:") && l.atMs > 5549)
    const failed = logged.findIndex((l) => l.kind === "log:MemberFailed" && l.node === "s3")
    expect(failed).toBeGreaterThanOrEqual(0)
    expect(logged.slice(0, failed).map((l) => l.kind).filter((k) => k !== "log:MemberFailed")).toEqual([])
  })
})
