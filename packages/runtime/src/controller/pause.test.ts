import { describe, expect, it } from "vitest"
import { BUCKETS, LocalBucket } from "@vipfarm/domain"
import { NodeController } from "./controller.ts"
import { defaultTiming, type ControllerConfig, type Heartbeat } from "./types.ts"

// The harness of controller.test.ts (instant log, 1 ms heartbeats), with filters that outlive
// their process (a keep-serving restart) and adoption of an inherited filter.
/** A scripted farm: instant log, 1 ms heartbeat delivery, a link matrix, a 1 ms clock. */
class Harness {
  now = 0
  readonly log: Array<unknown> = []
  readonly ids = new Set<string>()
  readonly nodes = new Map<string, NodeController>()
  readonly filters = new Map<string, { tables: Uint8Array; deadline: number }>()
  readonly dead = new Set<string>()
  readonly cut = new Set<string>()
  flows = new Map<string, number>()
  readonly adopting = new Map<string, number>()
  readonly adoptedAt = new Map<string, number>()
  private inbox: Array<{ at: number; to: string; hb: Heartbeat }> = []
  private delivered = new Map<string, number>()

  add(node: string, role: "server" | "witness" = "server", witnesses: Array<string> = []): NodeController {
    const cfg: ControllerConfig = {
      ...defaultTiming, farm: "web", node, role, address: node, weight: 100, priority: 1, rulesDigest: "d", witnesses, handoffMaxMs: 5000
    }
    const c = new NodeController(cfg, this.now)
    c.onAppHealth(true)
    this.nodes.set(node, c)
    this.delivered.set(node, 0)
    return c
  }

  link(a: string, b: string): boolean {
    return !this.cut.has(`${a}|${b}`) && !this.cut.has(`${b}|${a}`)
  }

  step(): void {
    this.now++
    const due = this.inbox.filter((m) => m.at <= this.now)
    this.inbox = this.inbox.filter((m) => m.at > this.now)
    for (const m of due) if (!this.dead.has(m.to)) this.nodes.get(m.to)!.onHeartbeat(m.hb, this.now)
    for (const [name, c] of this.nodes) {
      if (this.dead.has(name)) continue
      let d = this.delivered.get(name)!
      while (d < this.log.length) {
        d++
        c.onLogEntry(d, this.log[d - 1], this.now)
      }
      this.delivered.set(name, d)
      c.onFlowCount(this.flows.get(name) ?? 0)
      if (this.now % 5 === 0) c.tick(this.now)
      for (const a of c.drainActions()) {
        if (a._tag === "PublishHeartbeat") {
          for (const to of this.nodes.keys()) if (to !== name && this.link(name, to)) this.inbox.push({ at: this.now + 1, to, hb: a.heartbeat })
        } else if (a._tag === "Append") {
          if (this.ids.has(a.msgId)) c.onAppendResult(a.msgId, { ok: true, seq: this.log.length, duplicate: true }, this.now)
          else if (a.expectLastSeq !== this.log.length) c.onAppendResult(a.msgId, { ok: false, error: "wrong-last-seq", lastSeq: this.log.length }, this.now)
          else {
            this.ids.add(a.msgId)
            this.log.push(...a.events)
            c.onAppendResult(a.msgId, { ok: true, seq: this.log.length, duplicate: false }, this.now)
          }
        } else if (a._tag === "SetFilter") {
          const adopt = this.adopting.get(name)
          if (adopt !== undefined) {
            const ready = a.deadlineMs > this.now && c.foldedState.seq >= this.log.length && a.tables.some((x) => x !== 0)
            if (this.now < adopt && !ready) continue
            this.adopting.delete(name)
            this.adoptedAt.set(name, this.now)
            c.holdUntil(0)
          }
          this.filters.set(name, { tables: a.tables, deadline: a.deadlineMs })
        }
      }
    }
  }

  run(ms: number, check?: () => void): void {
    for (let i = 0; i < ms; i++) {
      this.step()
      check?.()
    }
  }

  /** Live, unfenced servers claiming new flows of a bucket of table 0. */
  claimants(b: number): Array<string> {
    const out: Array<string> = []
    for (const [name, f] of this.filters) {
      if (this.now >= f.deadline) continue
      const code = f.tables[b]
      if (code === LocalBucket.OWNED || code === LocalBucket.MOVING_IN || code === LocalBucket.MOVING_IN_WAIT) out.push(name)
    }
    return out
  }

  noDoubleClaims(): void {
    for (let b = 0; b < BUCKETS; b++) if (this.claimants(b).length > 1) throw new Error(`bucket ${b} claimed by ${this.claimants(b)} at ${this.now}`)
  }

  allClaimed(): boolean {
    for (let b = 0; b < BUCKETS; b++) if (this.claimants(b).length !== 1) return false
    return true
  }
}


const farm3 = (): Harness => {
  const h = new Harness()
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
