/**
 * UDP hand-over between the old and the new owner of a moving bucket (PROTOCOL.md §9). UDP has
 * no socket the new owner's filter could ask about: the old owner keeps answering its
 * established UDP flows (MOVING_OUT), and the new owner must not answer them too. So every old
 * owner reports, to each receiver, the UDP flows it holds in the buckets moving from it to that
 * receiver; the receiver's filter takes new UDP flows in such a bucket (MOVING_IN, the reported
 * flows in its foreign-flow map) only once that old owner's report is installed, and drops UDP
 * there until then (MOVING_IN_WAIT). Pure: the daemon and the simulator drive it.
 */
import { BUCKETS, type FarmState, LocalBucket } from "@vipfarm/domain"

/** One old owner's report to one receiver: the UDP flows it holds in hand-off `handoff`'s buckets moving to `to`. */
export interface UdpReport<F> {
  readonly handoff: string
  /** The old owner (absent in reports of versions before issue 16: then it stands for every old owner). */
  readonly from?: string
  readonly to: string
  readonly flows: ReadonlyArray<F>
}

/** A UDP flow this node holds, with the bucket (table, bucket) it hashes to. */
export interface HeldFlow<F> {
  readonly flow: F
  readonly table: number
  readonly bucket: number
}

/** Options of the hand-over. */
export interface UdpHandoverOptions {
  /**
   * The hand-over as it was before issue 16, kept for the simulator's broken-world test: one
   * report per hand-off (sent to the first receiver only), a receiver ready for the whole
   * hand-off once any report arrived or `waitMs` after it first saw it. A hand-off with two
   * receivers (a drain) or two old owners (a rebalance after a rejoin), or a receiver that was
   * cut off while the reports were sent, let two servers answer one UDP datagram.
   */
  readonly legacy?: { readonly waitMs: number }
}

/**
 * The reports an old owner `me` sends (every report period while it holds moving-out buckets):
 * one per (hand-off, receiver) of the buckets moving away from it, with the UDP flows it holds in
 * them; an empty list is a report too (the receiver may then take new flows at once).
 */
export const udpReports = <F>(state: FarmState, me: string, held: Iterable<HeldFlow<F>>, options: UdpHandoverOptions = {}): Array<UdpReport<F>> => {
  const out = new Map<string, { handoff: string; from: string; to: string; flows: Array<F> }>()
  const key = (handoff: string, to: string) => (options.legacy !== undefined ? handoff : `${handoff}\u0000${to}`)
  for (const f of held) {
    const b = state.tables[f.table]?.[f.bucket]
    if (b === undefined || b.state !== "moving" || b.owner !== me) continue
    const k = key(b.handoff, b.to)
    const e = out.get(k)
    if (e === undefined) out.set(k, { handoff: b.handoff, from: me, to: b.to, flows: [f.flow] })
    else e.flows.push(f.flow)
  }
  state.tables.forEach((t) => t.forEach((b) => {
    if (b.state !== "moving" || b.owner !== me) return
    const k = key(b.handoff, b.to)
    if (!out.has(k)) out.set(k, { handoff: b.handoff, from: me, to: b.to, flows: [] })
  }))
  return [...out.values()].map((r) => (options.legacy !== undefined ? { handoff: r.handoff, to: r.to, flows: r.flows } : r))
}

/** The receiver's side: the reports installed and which moving-in buckets may take new UDP flows. */
export class UdpHandoverReceiver<F> {
  /** Flows reported per hand-off and old owner ("" for a report naming no old owner), by flow key. */
  private readonly reports = new Map<string, Map<string, Map<string | number, F>>>()
  private readonly firstSeen = new Map<string, number>()
  private foreignCache: Array<F> | null = []
  private keyCache: Set<string | number> | null = null

  /** `key`: a flow's identity (reports repeat the flows still held). */
  constructor(private readonly me: string, private readonly key: (f: F) => string | number, private readonly options: UdpHandoverOptions = {}) {}

  /**
   * A report arrived. Returns true when the tables must be applied again (a moving-in bucket
   * may now take new UDP flows); the foreign flows (see {@link foreignFlows}) change with any
   * report for this node. A flow once reported stays foreign until the hand-off is over: the
   * old owner may still answer a late packet of it.
   */
  received(r: UdpReport<F>): boolean {
    if (r.to !== this.me) return false
    let byOwner = this.reports.get(r.handoff)
    if (byOwner === undefined) {
      byOwner = new Map()
      this.reports.set(r.handoff, byOwner)
    }
    const from = r.from ?? ""
    let flows = byOwner.get(from)
    const firstFrom = flows === undefined
    if (flows === undefined) {
      flows = new Map()
      byOwner.set(from, flows)
    }
    let added = false
    for (const f of r.flows) {
      const k = this.key(f)
      if (!flows.has(k)) { flows.set(k, f); added = true }
    }
    if (added) { this.foreignCache = null; this.keyCache = null }
    // legacy: the tables were applied again only when the controller's changed
    return this.options.legacy === undefined && firstFrom
  }

  /** Forget hand-offs that are over (no bucket moving in them any more). */
  retain(open: ReadonlySet<string>): boolean {
    let changed = false
    for (const h of [...this.reports.keys()]) if (!open.has(h)) { this.reports.delete(h); changed = true }
    for (const h of [...this.firstSeen.keys()]) if (!open.has(h)) this.firstSeen.delete(h)
    if (changed) { this.foreignCache = null; this.keyCache = null }
    return changed
  }

  /** Whether this node may take new UDP flows in buckets of `handoff` moving from `from`. */
  ready(handoff: string, from: string, now: number): boolean {
    const byOwner = this.reports.get(handoff)
    const legacy = this.options.legacy
    if (legacy !== undefined) {
      if (byOwner !== undefined) return true
      const first = this.firstSeen.get(handoff)
      if (first === undefined) {
        this.firstSeen.set(handoff, now)
        return false
      }
      return now - first >= legacy.waitMs
    }
    return byOwner !== undefined && (byOwner.has(from) || byOwner.has(""))
  }

  /**
   * The filter codes to install for the controller's `tables`: a bucket moving in (MOVING_IN)
   * whose old owner's report is not installed yet drops UDP (MOVING_IN_WAIT). Returns `tables`
   * itself when nothing changes. Forgets the hand-offs that are over.
   */
  adjust(tables: Uint8Array, state: FarmState, now: number): Uint8Array {
    let out: Uint8Array | null = null
    const open = new Set<string>()
    state.tables.forEach((t, ti) => t.forEach((b, bi) => {
      if (b.state !== "moving") return
      open.add(b.handoff)
      const i = ti * BUCKETS + bi
      if (b.to === this.me && tables[i] === LocalBucket.MOVING_IN && !this.ready(b.handoff, b.owner, now)) {
        if (out === null) out = tables.slice()
        out[i] = LocalBucket.MOVING_IN_WAIT
      }
    }))
    this.retain(open)
    return out ?? tables
  }

  /** Whether the flow with this key is in {@link foreignFlows}. */
  isForeign(key: string | number): boolean {
    if (this.keyCache === null) {
      const keys = new Set<string | number>()
      for (const byOwner of this.reports.values()) for (const flows of byOwner.values()) for (const k of flows.keys()) keys.add(k)
      this.keyCache = keys
    }
    return this.keyCache.has(key)
  }

  /** The UDP flows other servers hold in buckets moving to this node (the filter's foreign-flow map). */
  foreignFlows(): ReadonlyArray<F> {
    if (this.foreignCache === null) {
      const all: Array<F> = []
      for (const byOwner of this.reports.values()) for (const flows of byOwner.values()) for (const f of flows.values()) all.push(f)
      this.foreignCache = all
    }
    return this.foreignCache
  }
}
