/**
 * The controller tests' scripted farm: instant log, 1 ms heartbeat delivery, a link matrix,
 * a 1 ms clock; stalled log readers, and filters that outlive their process for the
 * keep-serving restart tests.
 */
import { BUCKETS, LocalBucket } from "@vipfarm/domain"
import { NodeController } from "./controller.ts"
import { defaultTiming, type ControllerConfig, type Heartbeat } from "./types.ts"

/** A scripted farm: instant log, 1 ms heartbeat delivery, a link matrix, a 1 ms clock. */
export class Harness {
  now = 0
  readonly log: Array<unknown> = []
  readonly ids = new Set<string>()
  readonly nodes = new Map<string, NodeController>()
  readonly filters = new Map<string, { tables: Uint8Array; deadline: number }>()
  readonly dead = new Set<string>()
  readonly cut = new Set<string>()
  /** Nodes whose log reader is stalled (a consumer on a cut-off NATS node): entries wait. */
  readonly stalled = new Set<string>()
  /** Restarted nodes keeping an inherited filter until this time or until they serve (keep-serving restart). */
  readonly adopting = new Map<string, number>()
  readonly adoptedAt = new Map<string, number>()
  flows = new Map<string, number>()
  /** Flows per bucket (table*BUCKETS+bucket) of a node: reported with onFlowCounts instead of `flows`. */
  bucketFlows = new Map<string, Uint32Array>()
  /** Appends this returns true for are answered `unavailable` (a log that does not take writes). */
  refuseAppend: ((msgId: string) => boolean) | null = null
  /** Filters stay in the kernel when their process dies (keep-serving restart tests). */
  filtersOutliveProcess = false
  /** The hand-off cap of the nodes added from now on (null: none, the default of a real farm). */
  handoffMaxMs: number | null = 5000
  private inbox: Array<{ at: number; to: string; hb: Heartbeat }> = []
  private delivered = new Map<string, number>()

  add(node: string, role: "server" | "witness" = "server", witnesses: Array<string> = []): NodeController {
    const cfg: ControllerConfig = {
      ...defaultTiming, farm: "web", node, role, address: `198.18.1.${this.nodes.size + 1}`, weight: 100, priority: 1, rulesDigest: "d", witnesses, handoffMaxMs: this.handoffMaxMs
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
      while (d < this.log.length && !this.stalled.has(name)) {
        d++
        c.onLogEntry(d, this.log[d - 1], this.now)
      }
      this.delivered.set(name, d)
      const per = this.bucketFlows.get(name)
      if (per !== undefined) c.onFlowCounts(per)
      else c.onFlowCount(this.flows.get(name) ?? 0)
      if (this.now % 5 === 0) c.tick(this.now)
      for (const a of c.drainActions()) {
        if (a._tag === "PublishHeartbeat") {
          for (const to of this.nodes.keys()) if (to !== name && this.link(name, to)) this.inbox.push({ at: this.now + 1, to, hb: a.heartbeat })
        } else if (a._tag === "Append") {
          if (this.refuseAppend?.(a.msgId) === true) c.onAppendResult(a.msgId, { ok: false, error: "unavailable" }, this.now)
          else if (this.ids.has(a.msgId)) c.onAppendResult(a.msgId, { ok: true, seq: this.log.length, duplicate: true }, this.now)
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

  /**
   * Unfenced filters claiming new flows of a bucket of table 0: of live servers, or of every
   * server when filters outlive their process (a restart keeps the kernel's filter).
   */
  claimants(b: number): Array<string> {
    const out: Array<string> = []
    for (const [name, f] of this.filters) {
      if ((!this.filtersOutliveProcess && this.dead.has(name)) || this.now >= f.deadline) continue
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
