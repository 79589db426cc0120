import { describe, expect, it } from "vitest"
import { BUCKETS, LocalBucket } from "@vipfarm/domain"
import { Harness } from "./testHarness.ts"

const farm3 = (): Harness => {
  const h = new Harness()
  h.filtersOutliveProcess = true // a restarting process leaves its filter in the kernel
  for (const n of ["s1", "s2", "s3"]) h.add(n)
  h.run(3000, () => h.noDoubleClaims())
  expect(h.allClaimed()).toBe(true)
  return h
}

const owned = (h: Harness, n: string) => h.filters.get(n)!.tables.subarray(0, BUCKETS).filter((c) => c === LocalBucket.OWNED).length

describe("keep-serving restart (pause)", () => {
  it("peers hold a restarting server's share; the new process adopts its filter with the same incarnation", () => {
    const h = farm3()
    const old = h.nodes.get("s1")!
    const before = owned(h, "s1")
    const logBefore = h.log.length
    old.pauseFor(3000, h.now)
    let d = 0
    h.run(300, () => {
      if (d === 0 && old.pauseDeadline > h.now + 1000) d = old.pauseDeadline
    })
    expect(d).toBeGreaterThan(h.now + 2500)
    // the old process exits: its filter keeps serving until d
    h.filters.set("s1", { tables: h.filters.get("s1")!.tables, deadline: d })
    h.dead.add("s1")
    h.run(1500, () => h.noDoubleClaims())
    for (const n of ["s2", "s3"]) expect(h.nodes.get(n)!.overlayNodes).toEqual([])
    expect(h.allClaimed()).toBe(true)
    // the new process
    h.dead.delete("s1")
    const fresh = h.add("s1")
    fresh.holdUntil(d)
    h.adopting.set("s1", d)
    h.run(2000, () => h.noDoubleClaims())
    expect(h.adoptedAt.get("s1")).toBeLessThan(d)
    expect(fresh.incarnation).toBe(old.incarnation)
    expect(owned(h, "s1")).toBe(before)
    expect(h.allClaimed()).toBe(true)
    for (const n of ["s2", "s3"]) expect(h.nodes.get(n)!.overlayNodes).toEqual([])
    expect(h.log.slice(logBefore).map((e) => (e as { _tag: string })._tag)).not.toContain("MemberFailed")
  })

  it("without a granted pause the peers take the share over within a second (the ordinary failover)", () => {
    const h = farm3()
    h.dead.add("s1")
    const t0 = h.now
    let at = 0
    h.run(1500, () => {
      if (at === 0 && h.nodes.get("s2")!.overlayNodes.includes("s1")) at = h.now
    })
    expect(at).toBeGreaterThan(0)
    expect(at - t0).toBeLessThan(1000)
  })

  it("a pause needs a majority's echo: a server cut off from its peers gets none", () => {
    const h = farm3()
    const old = h.nodes.get("s1")!
    h.cut.add("s1|s2")
    h.cut.add("s1|s3")
    old.pauseFor(3000, h.now)
    h.run(300)
    expect(old.pauseDeadline).toBe(0)
  })
})
