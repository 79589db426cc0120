import { describe, expect, it } from "vitest"
import { Result } from "effect"
import { decide } from "./decider.ts"
import { decodeEvent, EVENT_VERSION, MEMBER_FAILED_PLAN_VERSION, MEMBER_RECOVERED_RESTORE_VERSION, type FarmEvent } from "./events.ts"
import { failurePlan } from "./plan.ts"
import { applyEntry, applyEvent } from "./reducer.ts"
import { heldBy, initialState, type FarmState } from "./state.ts"
import { execute, operatorCause, settle } from "./testkit.ts"

const cause = operatorCause("test")

const farm = (names: ReadonlyArray<string>): FarmState => {
  let s = initialState("web")
  s = execute(s, { _tag: "Configure", vips: [{ address: "198.18.0.100", rules: [{ proto: "tcp", ports: [80], affinity: "client-ip" }] }], cause }).state
  for (const n of names) {
    s = execute(s, { _tag: "Join", node: n, address: "198.18.0.1", weight: 100, priority: 1, rulesDigest: "d", cause }).state
    s = execute(s, { _tag: "Ready", node: n, cause }).state
    s = settle(s)
  }
  return s
}

describe("MemberFailed version 2 (the pinned failure plan)", () => {
  it("still decodes version 1 and decodes version 2 with its plan", () => {
    const v1 = { _tag: "MemberFailed", v: EVENT_VERSION, cause, node: "s1", detectedBy: "s2", incarnation: 1 }
    expect(Result.isSuccess(decodeEvent(v1))).toBe(true)
    const v2 = { ...v1, v: MEMBER_FAILED_PLAN_VERSION, plan: [{ table: 0, bucket: 3, to: "s2" }] }
    const r = decodeEvent(v2)
    expect(Result.isSuccess(r)).toBe(true)
    expect(Result.isSuccess(decodeEvent({ ...v1, v: 3 }))).toBe(false)
    expect(Result.isSuccess(decodeEvent({ ...v2, plan: [{ table: 0, bucket: 99999, to: "s2" }] }))).toBe(false)
    // an empty plan is a plan (the survivors took nothing of it)
    expect(Result.isSuccess(decodeEvent({ ...v2, plan: [] }))).toBe(true)
  })

  it("the version fixes the shape: version 1 carries no plan, version 2 must", () => {
    const v1 = { _tag: "MemberFailed", v: EVENT_VERSION, cause, node: "s1", detectedBy: "s2", incarnation: 1 }
    const withPlan = decodeEvent({ ...v1, plan: [{ table: 0, bucket: 3, to: "s2" }] })
    expect(Result.isFailure(withPlan) && withPlan.failure.message).toMatch(/MemberFailed.*plan/s)
    const noPlan = decodeEvent({ ...v1, v: MEMBER_FAILED_PLAN_VERSION })
    expect(Result.isFailure(noPlan) && noPlan.failure.message).toMatch(/MemberFailed.*plan/s)
    const v3 = decodeEvent({ ...v1, v: 3 })
    expect(Result.isFailure(v3) && v3.failure.message).toMatch(/v: 3 is not a version of MemberFailed \(1, 2\)/)
    // neither is folded: a v1 with a plan does not pin, a v2 without one does not fall back
    const s = farm(["s1", "s2", "s3"])
    const entry = applyEntry(s, { ...v1, plan: [{ table: 0, bucket: 3, to: "s2" }] })
    expect(entry.rejected).toBe(s.rejected + 1)
    expect(entry.tables).toBe(s.tables)
    expect(entry.members).toBe(s.members)
  })

  it("an old version 1 log folds exactly as the computed failure plan", () => {
    const s = farm(["s1", "s2", "s3", "s4"])
    const folded = applyEntry(s, { _tag: "MemberFailed", v: EVENT_VERSION, cause, node: "s2", detectedBy: "s1", incarnation: 1 })
    expect(folded.rejected).toBe(s.rejected)
    expect(folded.tables).toEqual(failurePlan(s, "s2"))
    expect(folded.members.find((m) => m.name === "s2")!.status).toBe("down")
  })

  it("folds the listed takers where still valid, the computed plan elsewhere", () => {
    const s = farm(["s1", "s2", "s3", "s4"])
    const mine = s.tables[0].flatMap((b, i) => (heldBy(b, "s1") ? [i] : []))
    expect(mine.length).toBeGreaterThan(10)
    const computed = failurePlan(s, "s1")
    // pin every bucket of s1 to s4 except the first, which is pinned to s1 itself (invalid)
    const plan = mine.map((bucket, i) => ({ table: 0, bucket, to: i === 0 ? "s1" : "s4" }))
    const d = decide({ _tag: "DeclareFailed", node: "s1", by: "s2", cause, plan }, s)
    expect(Result.isSuccess(d)).toBe(true)
    const events = Result.isSuccess(d) ? d.success : []
    expect(events[0]).toMatchObject({ _tag: "MemberFailed", v: MEMBER_FAILED_PLAN_VERSION })
    let after = s
    for (const e of events) after = applyEvent(after, e)
    expect(after.rejected).toBe(s.rejected)
    expect(after.tables[0][mine[0]]).toEqual(computed[0][mine[0]])
    for (const b of mine.slice(1)) expect(after.tables[0][b]).toEqual({ state: "taken-over", owner: "s4", from: "s1" })
    // a bucket not held by s1 any more is left alone; a taker that is not up falls back
    const other = s.tables[0].findIndex((b) => b.owner === "s2")
    const s2down = applyEvent(s, { _tag: "MemberUnhealthy", v: EVENT_VERSION, cause, node: "s4", checker: "c", reason: "r" } as FarmEvent)
    const ev: FarmEvent = { _tag: "MemberFailed", v: MEMBER_FAILED_PLAN_VERSION, cause, node: "s1", detectedBy: "s2", incarnation: 1, plan: [{ table: 0, bucket: other, to: "s3" }, ...plan] }
    const folded = applyEvent(s2down, ev)
    expect(folded.tables[0][other]).toEqual(s2down.tables[0][other])
    const fallback = failurePlan(s2down, "s1")
    for (const b of mine) expect(folded.tables[0][b]).toEqual(fallback[0][b])
  })

})

describe("MemberRecovered version 2 (a stale unhealthy report withdrawn)", () => {
  it("decodes both versions; restores the buckets still as the report left them", () => {
    const v1 = { _tag: "MemberRecovered", v: EVENT_VERSION, cause, node: "s1" }
    expect(Result.isSuccess(decodeEvent(v1))).toBe(true)
    expect(Result.isSuccess(decodeEvent({ ...v1, v: MEMBER_RECOVERED_RESTORE_VERSION, restore: [{ table: 0, bucket: 1, owner: "s1" }] }))).toBe(true)
    // the version fixes the shape: version 1 restores nothing, version 2 must say what
    const v1restore = decodeEvent({ ...v1, restore: [{ table: 0, bucket: 1, owner: "s1" }] })
    expect(Result.isFailure(v1restore) && v1restore.failure.message).toMatch(/MemberRecovered.*restore/s)
    const v2bare = decodeEvent({ ...v1, v: MEMBER_RECOVERED_RESTORE_VERSION })
    expect(Result.isFailure(v2bare) && v2bare.failure.message).toMatch(/MemberRecovered.*restore/s)
    const emptyId = decodeEvent({ ...v1, v: MEMBER_RECOVERED_RESTORE_VERSION, restore: [{ table: 0, bucket: 1, owner: "s1", to: "s2", handoff: "" }] })
    expect(Result.isFailure(emptyId) && emptyId.failure.message).toMatch(/handoff/)
    const s = farm(["s1", "s2", "s3"])
    const mine = s.tables[0].flatMap((b, i) => (b.owner === "s1" ? [i] : []))
    const unhealthy = execute(s, { _tag: "ReportUnhealthy", node: "s1", checker: "http", reason: "500", cause }).state
    for (const b of mine) expect(unhealthy.tables[0][b]).toMatchObject({ state: "taken-over", from: "s1" })
    // one bucket moved on meanwhile (a later entry): it stays where it is
    const moved: FarmState = { ...unhealthy, tables: [unhealthy.tables[0].map((b, i) => (i === mine[0] ? { state: "owned" as const, owner: "s3" } : b))] }
    const restore = mine.map((bucket) => ({ table: 0, bucket, owner: "s1" }))
    const d = decide({ _tag: "ReportRecovered", node: "s1", cause, restore }, moved)
    expect(Result.isSuccess(d)).toBe(true)
    const events = Result.isSuccess(d) ? d.success : []
    expect(events[0]).toMatchObject({ _tag: "MemberRecovered", v: MEMBER_RECOVERED_RESTORE_VERSION })
    let after = moved
    for (const e of events.slice(0, 1)) after = applyEvent(after, e)
    expect(after.members.find((m) => m.name === "s1")!.status).toBe("up")
    expect(after.tables[0][mine[0]]).toEqual({ state: "owned", owner: "s3" })
    for (const b of mine.slice(1)) expect(after.tables[0][b]).toEqual({ state: "owned", owner: "s1" })
    // a restore naming buckets of another node changes nothing
    const other = s.tables[0].findIndex((b) => b.owner === "s2")
    const bogus = applyEvent(unhealthy, { _tag: "MemberRecovered", v: MEMBER_RECOVERED_RESTORE_VERSION, cause, node: "s1", restore: [{ table: 0, bucket: other, owner: "s2" }] } as FarmEvent)
    expect(bogus.tables).toEqual(unhealthy.tables)
  })
})
