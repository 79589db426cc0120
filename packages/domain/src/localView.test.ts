import { describe, expect, it } from "vitest"
import { Result } from "effect"
import { decodeEventJson } from "./events.ts"
import { BUCKETS } from "./hash.ts"
import { LocalBucket, localTables } from "./localView.ts"
import { initialState } from "./state.ts"
import { execute, operatorCause } from "./testkit.ts"

const cause = operatorCause("test")

describe("local view", () => {
  it("projects owned, moving and foreign buckets for each server", () => {
    let s = initialState("web")
    for (const node of ["s1", "s2"]) {
      s = execute(s, { _tag: "Join", node, address: "198.18.0.1", weight: 100, priority: 1, rulesDigest: "d", cause }).state
      s = execute(s, { _tag: "Ready", node, cause }).state
    }
    // s1 took everything, then half moves to s2 gracefully
    const v1 = localTables(s.tables, "s1")
    const v2 = localTables(s.tables, "s2", { udpReady: () => false })
    expect(v1.length).toBe(16 * BUCKETS)
    const moving = s.tables[0].filter((b) => b.state === "moving").length
    expect(moving).toBe(512)
    expect(v1.filter((c, i) => i < BUCKETS && c === LocalBucket.MOVING_OUT).length).toBe(512)
    expect(v1.filter((c, i) => i < BUCKETS && c === LocalBucket.OWNED).length).toBe(512)
    expect(v2.filter((c) => c === LocalBucket.MOVING_IN_WAIT).length).toBe(512)
    expect(v2.filter((c) => c === LocalBucket.OWNED).length).toBe(0)
    // tables beyond the farm's are all foreign
    expect(v1.slice(BUCKETS).every((c) => c === LocalBucket.FOREIGN)).toBe(true)
    // every bucket is OWNED or MOVING_OUT on exactly one server (the one that keeps old flows)
    for (let b = 0; b < BUCKETS; b++) {
      const keepers = [v1[b], v2[b]].filter((c) => c === LocalBucket.OWNED || c === LocalBucket.MOVING_OUT).length
      expect(keepers).toBe(1)
    }
  })

  it("names the offending field of a malformed event", () => {
    const r = decodeEventJson(JSON.stringify({ _tag: "MemberJoined", v: 1, cause, node: "s1", address: "198.18.0.1", weight: -5, priority: 1, rulesDigest: "d", incarnation: 1 }))
    expect(Result.isFailure(r)).toBe(true)
    if (Result.isFailure(r)) expect(r.failure.message).toMatch(/weight/)
    const j = decodeEventJson("{not json")
    expect(Result.isFailure(j) && j.failure.message).toMatch(/not JSON/)
  })
})
