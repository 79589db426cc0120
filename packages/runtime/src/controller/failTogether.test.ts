import { describe, expect, it } from "vitest"
import { BUCKETS, type Command, decide, LocalBucket } from "@vipfarm/domain"
import { Result } from "effect"
import { Harness } from "./testHarness.ts"

/** Four servers and a witness (five voters: three make a majority), converged. */
const farm4 = (): Harness => {
  const h = new Harness()
  h.add("w1", "witness", ["w1"])
  for (const n of ["s1", "s2", "s3", "s4"]) h.add(n, "server", ["w1"])
  h.run(3000, () => h.noDoubleClaims())
  expect(h.allClaimed()).toBe(true)
  return h
}

/** An operator's command appended straight to the log (the CLI needs no lease), decided on s1's folded state. */
const operator = (h: Harness, cmd: Command): void => {
  const r = decide(cmd, h.nodes.get("s1")!.foldedState)
  if (Result.isFailure(r)) throw new Error(r.failure.reason)
  h.log.push(...r.success)
}

/**
 * Double claims, plus buckets a live, leased server stops serving without a hand-off (OWNED
 * or MOVING_IN straight to FOREIGN): the flows it accepted there would be dropped.
 */
const watch = (h: Harness): { check: () => void; dropped: Array<string> } => {
  const prev = new Map<string, Uint8Array>()
  const dropped: Array<string> = []
  const check = (): void => {
    h.noDoubleClaims()
    for (const [n, f] of h.filters) {
      const p = prev.get(n)
      prev.set(n, f.tables)
      if (p === undefined || p === f.tables || h.dead.has(n) || h.now >= f.deadline) continue
      for (let b = 0; b < BUCKETS; b++) {
        if ((p[b] === LocalBucket.OWNED || p[b] === LocalBucket.MOVING_IN) && f.tables[b] === LocalBucket.FOREIGN) dropped.push(`${n}: bucket ${b} at ${h.now}`)
      }
    }
  }
  return { check, dropped }
}

describe("two peers failing together (PROTOCOL.md §4: joint plan; §7)", () => {
  it("a node that folded one failure before taking the other over gives their buckets to the takers of a node that took both at once (sweep seed 1464)", () => {
    // s2's log reader stalls: it takes s4 and s1 over together at the same folded seq, while s3
    // folds s4's failure (whose takers include s1) and only then takes s1 over. Before the joint
    // plan, s2 gave s4's buckets pinned to s1 a taker computed afresh, and s3 the buckets s1
    // received from s4's failure another one: bucket 171 claimed by s2 and s3 (gaps 60-250 ms)
    for (const gap of [60, 250]) {
      const h = farm4()
      h.stalled.add("s2")
      h.dead.add("s4")
      h.run(gap, () => h.noDoubleClaims())
      h.dead.add("s1")
      h.run(1500, () => h.noDoubleClaims())
      h.stalled.clear()
      h.run(2000, () => h.noDoubleClaims())
      expect(h.allClaimed(), `gap ${gap} ms`).toBe(true)
      expect(h.nodes.get("s3")!.foldedState.members.filter((m) => m.status === "down").map((m) => m.name)).toEqual(["s1", "s4"])
    }
  })

  it("entries folded while two peers are taken over do not move the buckets their takers hold (sweep seed 1639)", () => {
    // s2 and s3 crash during a log stall; s1 and s4 take both over. The log records s2's failure,
    // then an operator's weight change (a rebalance decided on a state where s3 still serves)
    // folds before s3's failure: the takers of s3's buckets whose pinned taker was s2 were
    // computed afresh on the new state, and s1 dropped 16 buckets it had taken, flows and all
    const h = farm4()
    const { check, dropped } = watch(h)
    h.refuseAppend = () => true
    h.dead.add("s2")
    h.run(30, check)
    h.dead.add("s3")
    h.run(1500, check)
    expect(h.nodes.get("s1")!.overlayNodes).toEqual(["s2", "s3"])
    expect(h.allClaimed()).toBe(true)
    h.refuseAppend = (id) => !id.startsWith("failed-s2")
    h.run(200, check)
    operator(h, { _tag: "SetWeight", node: "s1", weight: 300, cause: { kind: "operator", by: "test" } })
    h.run(200, check)
    h.refuseAppend = null
    h.run(3000, check)
    expect(dropped).toEqual([])
    expect(h.allClaimed()).toBe(true)
  })

  it("a process restarted while taken over decides nothing until the log records its failure (sweep seed 1639)", () => {
    // s3's new process (same incarnation in the log) completed an open hand-off with a rebalance
    // decided on a view in which it still served, ahead of its own failure
    const h = farm4()
    for (const n of ["s1", "s2", "s3", "s4"]) h.flows.set(n, 1) // the operator's rebalance stays open
    operator(h, { _tag: "SetWeight", node: "s1", weight: 300, cause: { kind: "operator", by: "test" } })
    h.run(100, () => h.noDoubleClaims())
    h.refuseAppend = () => true
    h.dead.add("s2")
    h.dead.add("s3")
    h.run(1500, () => h.noDoubleClaims())
    h.dead.delete("s3")
    h.add("s3", "server", ["w1"])
    for (const n of ["s1", "s2", "s3", "s4"]) h.flows.set(n, 0)
    h.run(500, () => h.noDoubleClaims())
    const from = h.log.length
    // the log takes s2's failure and completions only: a survivor appends none before s3's failure
    h.refuseAppend = (id) => !id.startsWith("failed-s2") && !id.startsWith("complete-")
    h.run(500, () => h.noDoubleClaims())
    h.refuseAppend = null
    h.run(3000, () => h.noDoubleClaims())
    const entries = h.log.slice(from) as Array<{ _tag: string; node?: string; cause: { by?: string } }>
    const failed = entries.findIndex((e) => e._tag === "MemberFailed" && e.node === "s3")
    expect(failed).toBeGreaterThan(0)
    expect(entries.slice(0, failed).filter((e) => e.cause.by === "s3").map((e) => e._tag)).toEqual([])
    expect(entries.some((e) => e._tag === "MemberJoined" && e.node === "s3")).toBe(true)
    expect(h.allClaimed()).toBe(true)
  })
})
