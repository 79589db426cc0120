import { describe, expect, it } from "vitest"
import { EventStore, eventsFromQuery, eventsHeader, formatRecord, recordJsonLines } from "./events.ts"
import { formatBuckets, summarizeBuckets, type BucketsDoc } from "./buckets.ts"

const at = Date.UTC(2026, 0, 2, 14, 3, 7, 250)

describe("farm events", () => {
  it("formats each event of a record with what happened and its cause", () => {
    const lines = formatRecord({
      seq: 42, seenAt: at, entry: {
        v: 1, events: [
          { _tag: "MemberFailed", v: 1, node: "s3", incarnation: 2, detectedBy: "s1", cause: { kind: "lease", by: "s1" } },
          { _tag: "HandoffStarted", v: 1, handoff: "h-9", mode: "takeover", cause: { kind: "lease", by: "s1" }, moves: [
            { table: 0, bucket: 1, from: "s3", to: "s1" }, { table: 0, bucket: 2, from: "s3", to: "s2" }, { table: 0, bucket: 3, from: "s3", to: "s1" }
          ] }
        ]
      }
    })
    expect(lines).toEqual([
      "42     2026-01-02 14:03:07.250  MemberFailed      s3 failed (incarnation 2), detected by s1  [lease by s1]",
      "42     2026-01-02 14:03:07.250  HandoffStarted    hand-off h-9 takeover: 3 buckets (s3->s1 2, s3->s2 1)  [lease by s1]"
    ])
    expect(eventsHeader()).toMatch(/^SEQ +SEEN \(UTC\) +EVENT +WHAT/)
  })

  it("formats single events, details and unknown shapes", () => {
    expect(formatRecord({ seq: 1, seenAt: at, entry: { _tag: "MemberJoined", node: "s1", incarnation: 1, weight: 100, address: "198.18.0.11", cause: { kind: "daemon", by: "s1", detail: "start" } } })[0])
      .toMatch(/MemberJoined +s1 joined \(incarnation 1, weight 100, 198\.18\.0\.11\)  \[daemon by s1 \(start\)\]$/)
    expect(formatRecord({ seq: 2, seenAt: at, entry: { _tag: "MemberUnhealthy", node: "s2", checker: "http", reason: "timeout", cause: { kind: "checker", by: "s2" } } })[0])
      .toMatch(/s2 unhealthy: http \(timeout\)/)
    expect(formatRecord({ seq: 3, seenAt: at, entry: { _tag: "ConfigChanged", vips: [{ address: "198.18.0.100" }], cause: { kind: "config", by: "s1" } } })[0]).toMatch(/services: 198\.18\.0\.100/)
    expect(formatRecord({ seq: 4, seenAt: at, entry: { malformed: "x" } })[0]).toMatch(/Malformed +\{"malformed":"x"\}/)
  })

  it("gives one JSON line per event", () => {
    const lines = recordJsonLines({ seq: 7, seenAt: at, entry: { v: 1, events: [{ _tag: "MemberReady", node: "s1" }, { _tag: "MemberLeft", node: "s2" }] } })
    expect(lines.map((l) => JSON.parse(l))).toEqual([
      { seq: 7, index: 0, seenAt: "2026-01-02T14:03:07.250Z", event: { _tag: "MemberReady", node: "s1" } },
      { seq: 7, index: 1, seenAt: "2026-01-02T14:03:07.250Z", event: { _tag: "MemberLeft", node: "s2" } }
    ])
  })

  it("keeps the last records and serves them from a sequence", () => {
    const s = new EventStore(3)
    for (let i = 1; i <= 5; i++) s.add(i, { i }, at)
    s.add(4, { dup: true }, at)
    expect(s.from(1)).toMatchObject({ first: 3, last: 5 })
    expect(s.from(1).records.map((r) => r.seq)).toEqual([3, 4, 5])
    expect(s.from(5).records.map((r) => r.seq)).toEqual([5])
    expect(s.from(6).records).toEqual([])
    expect(eventsFromQuery("/events?from=17")).toBe(17)
    expect(eventsFromQuery("/events")).toBe(1)
    expect(eventsFromQuery("/events?from=-3")).toBe(1)
  })
})

describe("farm buckets", () => {
  const doc: BucketsDoc = {
    farm: "web", node: "s1", seq: 9,
    tables: [[{ owner: "s1", state: "owned" }, { owner: "s2", state: "owned" }, { owner: "s1", state: "moving", to: "s2" }, { owner: null, state: "unassigned" }]],
    packets: [[10, 30, 60, 0]]
  }
  it("sums buckets and traffic per owner and lists the moving buckets", () => {
    expect(summarizeBuckets(doc)).toEqual([
      { table: 0, owner: "(none)", buckets: 1, moving: 0, packets: 0 },
      { table: 0, owner: "s1", buckets: 2, moving: 1, packets: 70 },
      { table: 0, owner: "s2", buckets: 1, moving: 0, packets: 30 }
    ])
    const text = formatBuckets(doc)
    expect(text).toContain("farm web, seen from s1 at log 9")
    expect(text).toMatch(/^TABLE +OWNER +BUCKETS +MOVING +PACKETS +TRAFFIC$/m)
    expect(text).toMatch(/^0 +s1 +2 +1 +70 +70\.0%$/m)
    expect(text).toMatch(/^0 +2 +s1 +moving +s2 +60$/m)
    expect(formatBuckets(doc, true).split("\n").filter((l) => /^0 +\d +/.test(l) && !/%/.test(l))).toHaveLength(4)
  })
})
