import { describe, expect, it } from "vitest"
import { type BucketState, emptyTable, type FarmState, initialState, LocalBucket } from "@vipfarm/domain"
import { udpReports, UdpHandoverReceiver } from "./udpHandover.ts"

/** A farm state whose table 0 has the given buckets moving (the rest owned by nobody). */
const moving = (moves: Array<{ bucket: number; owner: string; to: string; handoff: string }>): FarmState => {
  const t: Array<BucketState> = emptyTable().slice()
  for (const m of moves) t[m.bucket] = { state: "moving", owner: m.owner, to: m.to, handoff: m.handoff }
  return { ...initialState("web"), tables: [t] }
}

/** The controller's tables of `me` for a state: MOVING_IN where a bucket moves to it. */
const ctlTables = (s: FarmState, me: string): Uint8Array => {
  const out = new Uint8Array(16 * 1024)
  s.tables[0].forEach((b, i) => { if (b.state === "moving" && b.to === me) out[i] = LocalBucket.MOVING_IN })
  return out
}

describe("UDP hand-over", () => {
  it("a drain to two receivers reports to each receiver its own buckets' flows (legacy: one report, to the first receiver only)", () => {
    const s = moving([{ bucket: 1, owner: "s1", to: "s2", handoff: "drain-s1@5" }, { bucket: 2, owner: "s1", to: "s3", handoff: "drain-s1@5" }])
    const held = [{ flow: "a", table: 0, bucket: 1 }, { flow: "b", table: 0, bucket: 2 }, { flow: "c", table: 0, bucket: 9 }]
    const r = udpReports(s, "s1", held)
    expect(r).toEqual([
      { handoff: "drain-s1@5", from: "s1", to: "s2", flows: ["a"] },
      { handoff: "drain-s1@5", from: "s1", to: "s3", flows: ["b"] }
    ])
    const legacy = udpReports(s, "s1", held, { legacy: { waitMs: 2000 } })
    expect(legacy).toEqual([{ handoff: "drain-s1@5", to: "s2", flows: ["a", "b"] }])
  })

  it("a receiver takes new UDP flows in a bucket only once that bucket's old owner reported, and applies its tables again then", () => {
    const s = moving([{ bucket: 1, owner: "s1", to: "s3", handoff: "rebalance@9" }, { bucket: 2, owner: "s2", to: "s3", handoff: "rebalance@9" }])
    const rx = new UdpHandoverReceiver<string>("s3", (f) => f)
    const t = ctlTables(s, "s3")
    let out = rx.adjust(t, s, 0)
    expect([out[1], out[2]]).toEqual([LocalBucket.MOVING_IN_WAIT, LocalBucket.MOVING_IN_WAIT])
    expect(rx.received({ handoff: "rebalance@9", from: "s1", to: "s3", flows: ["x"] })).toBe(true)
    out = rx.adjust(t, s, 10)
    expect([out[1], out[2]]).toEqual([LocalBucket.MOVING_IN, LocalBucket.MOVING_IN_WAIT])
    expect(rx.isForeign("x")).toBe(true)
    // the same old owner again: nothing to re-apply; its flows add up
    expect(rx.received({ handoff: "rebalance@9", from: "s1", to: "s3", flows: ["x", "y"] })).toBe(false)
    expect([...rx.foreignFlows()].sort()).toEqual(["x", "y"])
    // however long the wait (a receiver cut off while the reports were sent), s2's buckets wait for s2
    out = rx.adjust(t, s, 60_000)
    expect(out[2]).toBe(LocalBucket.MOVING_IN_WAIT)
    expect(rx.received({ handoff: "rebalance@9", from: "s2", to: "s3", flows: [] })).toBe(true)
    out = rx.adjust(t, s, 60_010)
    expect(out[2]).toBe(LocalBucket.MOVING_IN)
    // reports for another receiver are ignored
    expect(rx.received({ handoff: "rebalance@9", from: "s2", to: "s4", flows: ["z"] })).toBe(false)
    expect(rx.isForeign("z")).toBe(false)
  })

  it("legacy: any report made the whole hand-off ready, and 2 s without one too", () => {
    const s = moving([{ bucket: 1, owner: "s1", to: "s3", handoff: "h" }, { bucket: 2, owner: "s2", to: "s3", handoff: "h" }])
    const rx = new UdpHandoverReceiver<string>("s3", (f) => f, { legacy: { waitMs: 2000 } })
    const t = ctlTables(s, "s3")
    expect(rx.adjust(t, s, 0)[2]).toBe(LocalBucket.MOVING_IN_WAIT)
    expect(rx.adjust(t, s, 2000)[2]).toBe(LocalBucket.MOVING_IN)
  })

  it("forgets a hand-off that is over, and returns the tables unchanged when nothing waits", () => {
    const s = moving([{ bucket: 1, owner: "s1", to: "s3", handoff: "h" }])
    const rx = new UdpHandoverReceiver<string>("s3", (f) => f)
    rx.received({ handoff: "h", from: "s1", to: "s3", flows: ["x"] })
    const t = ctlTables(s, "s3")
    expect(rx.adjust(t, s, 0)).toBe(t)
    const done = moving([])
    expect(rx.adjust(new Uint8Array(16 * 1024), done, 1).every((c) => c === 0)).toBe(true)
    expect(rx.foreignFlows()).toEqual([])
  })
})
