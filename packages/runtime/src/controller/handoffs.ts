/**
 * Hand-offs (PROTOCOL.md §6): the open hand-offs of the folded state, which of them this
 * server is done with (no flows left in its moving-out buckets, or handoffMaxMs passed), and
 * whether every old owner of one is done (it may then be completed). Pure helpers.
 */
import { BUCKETS, type FarmState } from "@vipfarm/domain"
import type { PeerView } from "./liveness.ts"

/** The open hand-offs of a folded state (in table order), their old owners, and this node's buckets (table*BUCKETS+bucket) in each. */
export interface HandoffView {
  readonly open: Array<string>
  readonly owners: Map<string, Set<string>>
  readonly mine: Map<string, Array<number>>
}

/** The {@link HandoffView} of `folded` for node `me`. */
export const handoffView = (folded: FarmState, me: string): HandoffView => {
  const open: Array<string> = []
  const owners = new Map<string, Set<string>>()
  const mine = new Map<string, Array<number>>()
  for (let ti = 0; ti < folded.tables.length; ti++) {
    const t = folded.tables[ti]
    for (let bi = 0; bi < t.length; bi++) {
      const b = t[bi]
      if (b.state !== "moving") continue
      if (b.owner === me) {
        const m = mine.get(b.handoff)
        if (m === undefined) mine.set(b.handoff, [ti * BUCKETS + bi])
        else m.push(ti * BUCKETS + bi)
      }
      let o = owners.get(b.handoff)
      if (o === undefined) {
        o = new Set()
        owners.set(b.handoff, o)
        open.push(b.handoff)
      }
      o.add(b.owner)
    }
  }
  return { open, owners, mine }
}

/** The flows this server last counted in its moving-out buckets. */
export interface FlowCounts {
  /** All moving-out buckets together (onFlowCount). */
  readonly movingOutFlows: number
  /** Per open hand-off (onFlowCounts), or null. */
  readonly bucketFlows: ReadonlyMap<string, number> | null
  /** The count was taken with the current tables installed. */
  readonly flowCountFresh: boolean
}

/** The open hand-offs `me` is an old owner of and done with: no flows left (fresh count), or handoffMaxMs (if set) passed. */
export const doneHandoffs = (
  view: HandoffView, me: string, handoffStart: ReadonlyMap<string, number>, counts: FlowCounts, handoffMaxMs: number | null, now: number
): Array<string> => {
  const out: Array<string> = []
  for (const h of view.open) {
    if (!view.owners.get(h)!.has(me)) continue
    const started = handoffStart.get(h) ?? now
    let flows = counts.movingOutFlows
    if (counts.bucketFlows !== null) flows = counts.bucketFlows.get(h) ?? 1
    if ((counts.flowCountFresh && flows === 0) || (handoffMaxMs !== null && now - started >= handoffMaxMs)) out.push(h)
  }
  return out
}

/**
 * Whether every old owner of hand-off `h` is done: this node by `ownDone()`, a taken-over peer
 * trivially, any other by its recent heartbeat's `done`.
 */
export const allOldOwnersDone = (
  view: HandoffView, h: string, me: string, ownDone: () => Array<string>, overlay: ReadonlyArray<string>,
  peers: ReadonlyMap<string, PeerView>, expireAfterMs: number, now: number
): boolean => {
  const owners = view.owners.get(h) ?? new Set<string>()
  for (const o of owners) {
    if (o === me) {
      if (!ownDone().includes(h)) return false
      continue
    }
    if (overlay.includes(o)) continue
    const p = peers.get(o)
    const recent = p !== undefined && p.last !== null && now - p.acceptedAt < expireAfterMs
    if (!recent || !p!.last!.done.includes(h)) return false
  }
  return true
}
