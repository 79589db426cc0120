import { describe, expect, it } from "vitest"
import fc from "fast-check"
import { Result } from "effect"
import { cause, checkTables, NODES } from "./arbitraries.ts"
import { decodeEvent, EventVersions, type FarmEventTag } from "./events.ts"
import { applyEntry, foldLog } from "./reducer.ts"
import { initialState } from "./state.ts"

const node = fc.constantFrom(...NODES)
const bucket = fc.integer({ min: 0, max: 1023 })
const table = fc.integer({ min: 0, max: 2 })
const incarnation = fc.integer({ min: 1, max: 3 })
const handoff = fc.constantFrom("h@1", "h@2", "rebalance@7")
const tagged = <T extends FarmEventTag>(tag: T, v: number, fields: Record<string, fc.Arbitrary<unknown>>) =>
  fc.record({ _tag: fc.constant(tag), v: fc.constant(v), cause: fc.constant(cause), ...fields }).map((e) => e as Record<string, unknown>)

/** A well-formed event of every tag at every version it has (it may still not apply to the state it meets). */
const wellFormed: Record<string, fc.Arbitrary<Record<string, unknown>>> = {
  "MemberJoined v1": tagged("MemberJoined", 1, {
    node, address: fc.constantFrom("198.18.0.1", "198.18.0.2", "2001:db8::1"), weight: fc.constantFrom(0, 1, 100, 300),
    priority: fc.integer({ min: 1, max: 6 }), rulesDigest: fc.constant("d"), incarnation
  }),
  "MemberReady v1": tagged("MemberReady", 1, { node }),
  "MemberUnhealthy v1": tagged("MemberUnhealthy", 1, { node, checker: fc.constant("http"), reason: fc.constant("500") }),
  "MemberRecovered v1": tagged("MemberRecovered", 1, { node }),
  "MemberRecovered v2": tagged("MemberRecovered", 2, {
    node,
    restore: fc.array(fc.oneof(
      fc.record({ table, bucket, owner: node }),
      fc.record({ table, bucket, owner: node, to: node, handoff })
    ), { maxLength: 6 })
  }),
  "MemberSuspected v1": tagged("MemberSuspected", 1, { node, by: node }),
  "MemberFailed v1": tagged("MemberFailed", 1, { node, detectedBy: node, incarnation }),
  "MemberFailed v2": tagged("MemberFailed", 2, { node, detectedBy: node, incarnation, plan: fc.array(fc.record({ table, bucket, to: node }), { maxLength: 6 }) }),
  "MemberLeft v1": tagged("MemberLeft", 1, { node }),
  "DrainStarted v1": tagged("DrainStarted", 1, { node }),
  "DrainFinished v1": tagged("DrainFinished", 1, { node }),
  "WeightChanged v1": tagged("WeightChanged", 1, { node, weight: fc.constantFrom(0, 10, 100) }),
  "HandoffStarted v1": tagged("HandoffStarted", 1, {
    handoff, mode: fc.constantFrom("graceful", "takeover"),
    moves: fc.array(fc.record({ table, bucket, from: fc.constantFrom(null, ...NODES), to: node }), { minLength: 1, maxLength: 5 })
  }),
  "HandoffCompleted v1": tagged("HandoffCompleted", 1, { handoff }),
  "HandoffCompleted v2": tagged("HandoffCompleted", 2, { handoff, buckets: fc.array(fc.record({ table, bucket }), { minLength: 1, maxLength: 6 }) }),
  "ConfigChanged v1": tagged("ConfigChanged", 1, {
    vips: fc.constantFrom(
      [],
      [{ address: "198.18.0.100", rules: [{ proto: "tcp", ports: [80], affinity: "client-ip" }] }],
      [{ address: "198.18.0.100", rules: [{ proto: "tcp", ports: [80], affinity: "client-ip" }, { proto: "udp", ports: ["53"], affinity: "per-packet", mode: "single-host" }] }]
    )
  }),
  "ApplicationChanged v1": fc.record({
    _tag: fc.constant("ApplicationChanged"), v: fc.constant(1), cause: fc.constant(cause), node, incarnation,
    state: fc.constantFrom("running", "restarting", "left", "stopped", "healing", "failed"), reason: fc.constant("r"),
    restarts: fc.nat(4), checker: fc.constant("http")
  }, { requiredKeys: ["_tag", "v", "cause", "node", "incarnation", "state", "reason"] })
}

/** A well-formed event broken one way: a field dropped, replaced by anything, an extra field, another version. */
const mutated = fc.oneof(...Object.values(wellFormed)).chain((e) => {
  const keys = Object.keys(e)
  return fc.oneof(
    fc.constantFrom(...keys).map((k) => Object.fromEntries(Object.entries(e).filter(([x]) => x !== k))),
    fc.tuple(fc.constantFrom(...keys), fc.anything()).map(([k, v]) => ({ ...e, [k]: v })),
    fc.anything().map((v) => ({ ...e, junk: v })),
    fc.integer({ min: 0, max: 3 }).map((v) => ({ ...e, v }))
  )
})

const event = fc.oneof({ arbitrary: fc.oneof(...Object.values(wellFormed)), weight: 8 }, { arbitrary: mutated, weight: 2 })
/** A log entry: one event, a record of events (chained or not), or anything at all. */
const entry = fc.oneof(
  { arbitrary: event, weight: 6 },
  { arbitrary: fc.record({ v: fc.constant(1), events: fc.array(event, { minLength: 1, maxLength: 3 }), prev: fc.constantFrom("", "ab".repeat(32)) }, { requiredKeys: ["v", "events"] }), weight: 3 },
  { arbitrary: fc.anything(), weight: 1 }
)

describe("folding any log", () => {
  it("the well-formed generator of every tag and version decodes (so the fold below reaches every branch)", () => {
    const versions = Object.entries(EventVersions).flatMap(([tag, vs]) => Object.keys(vs).map((v) => `${tag} v${v}`)).sort()
    expect(Object.keys(wellFormed).sort()).toEqual(versions)
    for (const [name, arb] of Object.entries(wellFormed)) {
      for (const e of fc.sample(arb, { numRuns: 20, seed: 42 })) {
        const r = decodeEvent(e)
        if (Result.isFailure(r)) expect.fail(`${name}: ${r.failure.message}`)
      }
    }
  })

  it("every sequence of entries folds without throwing; each takes one position; snapshots give the same state", () => {
    fc.assert(fc.property(fc.array(entry, { maxLength: 60 }), fc.nat(), (entries, cut) => {
      let s = initialState("web")
      for (const e of entries) {
        const next = applyEntry(s, e)
        expect(next.seq).toBe(s.seq + 1)
        expect(next.rejected - s.rejected).toBeGreaterThanOrEqual(0)
        expect(next.rejected - s.rejected).toBeLessThanOrEqual(1)
        s = next
        checkTables(s)
      }
      const k = entries.length === 0 ? 0 : cut % (entries.length + 1)
      const snapshot = JSON.parse(JSON.stringify(foldLog(initialState("web"), entries.slice(0, k))))
      expect(foldLog(snapshot, entries.slice(k))).toEqual(s)
    }), { numRuns: 300 })
  })
})
