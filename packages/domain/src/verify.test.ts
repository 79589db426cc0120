import { describe, expect, it } from "vitest"
import fc from "fast-check"
import { recordHash } from "./chain.ts"
import { EVENT_VERSION } from "./events.ts"
import { applyEntry, foldLog } from "./reducer.ts"
import { initialState } from "./state.ts"
import { attest, authorshipProblem, rejectionKind, shapeProblem } from "./verify.ts"

const cause = { kind: "daemon" as const, by: "s1" }
const joined = (node: string) => ({ _tag: "MemberJoined", v: EVENT_VERSION, cause, node, address: "198.18.0.1", weight: 100, priority: 1, rulesDigest: "d", incarnation: 1 })
const ready = (node: string) => ({ _tag: "MemberReady", v: EVENT_VERSION, cause, node })

/** Records chained as the daemon writes them. */
const chain = (batches: ReadonlyArray<ReadonlyArray<unknown>>) => {
  const out: Array<{ v: 1; events: ReadonlyArray<unknown>; prev: string }> = []
  for (const events of batches) out.push({ v: 1, events, prev: out.length === 0 ? "" : recordHash(out[out.length - 1]) })
  return out
}

const deep = (n: number): unknown => {
  let v: unknown = 1
  for (let i = 0; i < n; i++) v = [v]
  return v
}

describe("shape limits", () => {
  it("accept records the farm writes and refuse deep, huge or long ones without recursion", () => {
    expect(shapeProblem({ v: 1, events: [joined("s1")], prev: "" })).toBeNull()
    expect(shapeProblem(deep(100_000))).toMatch(/^limits: nested deeper than 16/)
    expect(shapeProblem({ s: "x".repeat(20_000) })).toMatch(/^limits: a string of 20000/)
    expect(shapeProblem(Array.from({ length: 300_000 }, () => 0))).toMatch(/^limits: more than/)
    expect(shapeProblem({ ["k".repeat(20_000)]: 1 })).toMatch(/member name/)
  })

  it("a record over the limits is rejected and counted, the fold goes on", () => {
    const s = applyEntry(initialState("web"), { v: 1, events: [deep(50_000)], prev: "" })
    expect(s.seq).toBe(1)
    expect(s.rejected).toBe(1)
    expect(rejectionKind(s.lastRejection!.reason)).toBe("limits")
  })

  it("never throws on any JSON value", () => {
    fc.assert(fc.property(fc.jsonValue({ maxDepth: 30 }), (v) => {
      const s = applyEntry(initialState("web"), v)
      expect(s.seq).toBe(1)
    }), { numRuns: 300 })
  })
})

describe("the fold checks the chain", () => {
  it("folds a chained log and rejects a record whose prev does not continue it", () => {
    const log = chain([[joined("s1")], [ready("s1")]])
    expect(foldLog(initialState("web"), log).members.map((m) => m.status)).toEqual(["up"])
    const forged = [log[0], { v: 1, events: [ready("s1")], prev: "0".repeat(64) }]
    const s = foldLog(initialState("web"), forged)
    expect(s.rejected).toBe(1)
    expect(s.lastRejection?.reason).toMatch(/^chain: prev 000000000000… does not continue/)
    expect(s.members.map((m) => m.status)).toEqual(["joining"])
  })

  it("rejects an unchained record once the chain started, and continues after a rejected one", () => {
    const log = chain([[joined("s1")]])
    const s = foldLog(initialState("web"), [...log, { v: 1, events: [ready("s1")] }])
    expect(s.lastRejection?.reason).toMatch(/^chain: no prev/)
    // the next honest record chains to the rejected one (the chain covers the log)
    const after = applyEntry(s, { v: 1, events: [ready("s1")], prev: recordHash({ v: 1, events: [ready("s1")] }) })
    expect(after.rejected).toBe(1)
    expect(after.members[0].status).toBe("up")
  })

  it("a first record must have prev \"\"", () => {
    expect(applyEntry(initialState("web"), { v: 1, events: [joined("s1")], prev: "a".repeat(64) }).rejected).toBe(1)
  })

  it("legacy leading records without prev still fold (the simulator writes those)", () => {
    const s = foldLog(initialState("web"), [{ v: 1, events: [joined("s1")] }, ready("s1")])
    expect(s.rejected).toBe(0)
  })
})

describe("a HandoffCompleted that names no open hand-off", () => {
  it("is rejected", () => {
    const log = chain([[joined("s1")], [{ _tag: "HandoffCompleted", v: EVENT_VERSION, cause, handoff: "never@1" }]])
    const s = foldLog(initialState("web"), log)
    expect(s.rejected).toBe(1)
    expect(s.lastRejection?.reason).toMatch(/hand-off never@1 is not in progress/)
  })
})

describe("authorship", () => {
  it("a record signed by s1 may not speak for s2 in s2's own events", () => {
    const log = chain([[joined("s1")], [joined("s2")], [{ _tag: "DrainStarted", v: EVENT_VERSION, cause, node: "s2" }]])
    let s = applyEntry(initialState("web"), attest(log[0], { _tag: "Signed", by: "s1" }))
    s = applyEntry(s, attest(log[1], { _tag: "Signed", by: "s2" }))
    s = applyEntry(s, attest(log[2], { _tag: "Signed", by: "s1" }))
    expect(s.rejected).toBe(1)
    expect(s.lastRejection?.reason).toMatch(/^events\[0\]: author: DrainStarted of s2 signed by s1/)
    expect(rejectionKind(s.lastRejection!.reason)).toBe("author")
    expect(s.members.find((m) => m.name === "s2")?.status).toBe("joining")
  })

  it("a survivor may declare a peer failed, naming itself; nobody may for itself", () => {
    const failed = (node: string, by: string) => ({ _tag: "MemberFailed", v: EVENT_VERSION, cause, node, detectedBy: by, incarnation: 1 })
    expect(authorshipProblem(failed("s2", "s1"), "s1")).toBeNull()
    expect(authorshipProblem(failed("s2", "s3"), "s1")).toMatch(/detected by s3 signed by s1/)
    expect(authorshipProblem(failed("s1", "s1"), "s1")).toMatch(/only a peer/)
    // the farm's first ConfigChanged is written before its author joined
    expect(authorshipProblem({ _tag: "ConfigChanged", vips: [] }, "s3")).toBeNull()
  })

  it("a refused signature is rejected with its reason", () => {
    const [r] = chain([[joined("s1")]])
    const s = applyEntry(initialState("web"), attest(r, { _tag: "Refused", reason: "signature: does not verify with s1's key" }))
    expect(s.rejected).toBe(1)
    expect(rejectionKind(s.lastRejection!.reason)).toBe("signature")
  })
})
