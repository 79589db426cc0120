/**
 * Claims (PROTOCOL.md §5): a bucket this node starts to claim (take new flows in) is held back
 * until its previous claimant has acknowledged (heartbeat seq) the log entry that moved it,
 * unless that claimant is proven fenced; and the filter tables with those holds applied.
 * Pure helpers over the controller's wait map, which the {@link NodeController} owns.
 */
import { BUCKETS, type FarmState, findMember, LocalBucket } from "@vipfarm/domain"
import type { PeerView } from "./liveness.ts"
import type { Pin } from "./pins.ts"

/** A claimed bucket held back until `peer` folded `seq` (`inbound`: the receiver of a move became its owner). */
export interface ClaimWait {
  readonly peer: string
  readonly seq: number
  readonly inbound: boolean
}

/** Who takes a bucket's new flows in a state: the receiver while it moves, else the owner. */
export const claimant = (state: FarmState, t: number, b: number): string | null => {
  const table = state.tables[t]
  if (table === undefined) return null
  const s = table[b]
  return s.state === "moving" ? s.to : s.owner
}

/**
 * Update the waits (index table*BUCKETS+bucket) for the effective state moving from `before`
 * to `after`: a bucket this node no longer claims waits for nothing, one it starts to claim
 * waits for its previous claimant to ack `seq` (the folded seq when `seq` <= 0).
 */
export const updateWaits = (
  waits: Map<number, ClaimWait>, me: string, folded: FarmState, overlay: ReadonlyArray<string>, before: FarmState, after: FarmState, seq: number
): void => {
  const n = Math.max(before.tables.length, after.tables.length)
  for (let t = 0; t < n; t++) {
    const ta = before.tables[t]
    const tb = after.tables[t]
    if (ta === tb) continue
    for (let b = 0; b < BUCKETS; b++) {
      const next = claimant(after, t, b)
      const idx = t * BUCKETS + b
      if (next !== me) {
        if (waits.size > 0) waits.delete(idx)
        continue
      }
      const prev = claimant(before, t, b)
      let peer = prev
      let inbound = false
      if (prev === me) {
        // the receiver of a move becomes its owner (hand-off completed, the old owner failed its
        // checks): it takes the old owner's established flows only once the old owner folded
        // that, as the old owner keeps accepting them until then (seed 69, old timing: a UDP
        // packet accepted twice); meanwhile it keeps taking new flows only (MOVING_IN)
        const x = ta?.[b]
        const y = tb?.[b]
        if (x === undefined || y === undefined || x.state !== "moving" || y.state === "moving" || x.owner === null || x.owner === me) continue
        peer = x.owner
        inbound = true
      }
      if (peer === null) continue
      if (overlay.includes(peer)) continue
      const pm = findMember(folded, peer)
      if (pm !== undefined && pm.status === "down") continue // taken by the log after a majority proved it fenced
      waits.set(idx, { peer, seq: seq > 0 ? seq : folded.seq, inbound })
    }
  }
}

/**
 * Release the waits whose peer acked their seq, is gone (down in the log and not heard for
 * expireAfterMs) or is taken over — and that no other live member still claims as of the seq
 * it acked (`history`: folded states by seq). True when any was released (the tables change).
 *
 * The second part closes a chain: a server withholding its ack of its own stale unhealthy
 * report (§8) still serves the buckets the report took; the report gave bucket 0/428, moving to
 * it, back to s4 (held back for its ack), a rebalance then moved it from s4 to s1, and s1 waited
 * for s4's ack only: two servers took its new flows.
 */
export const releaseWaits = (
  waits: Map<number, ClaimWait>, peers: ReadonlyMap<string, PeerView>, folded: FarmState, overlay: ReadonlyArray<string>, expireAfterMs: number, now: number,
  me: string, history: ReadonlyMap<number, FarmState>
): boolean => {
  let changed = false
  for (const [idx, w] of waits) {
    const p = peers.get(w.peer)
    const acked = p?.last !== null && p?.last !== undefined && p.last.seq >= w.seq
    const pm = findMember(folded, w.peer)
    const gone = (pm === undefined || pm.status === "down") && (p === undefined || now - p.acceptedAt > expireAfterMs)
    if ((acked || gone || overlay.includes(w.peer)) && !claimedElsewhere(idx, w.seq, peers, folded, overlay, expireAfterMs, now, me, history)) {
      waits.delete(idx)
      changed = true
    }
  }
  return changed
}

/** A live member (heard lately, not down, not taken over) whose last ack is below `seq` still claims bucket `idx` in the state it acked. */
const claimedElsewhere = (
  idx: number, seq: number, peers: ReadonlyMap<string, PeerView>, folded: FarmState, overlay: ReadonlyArray<string>, expireAfterMs: number, now: number,
  me: string, history: ReadonlyMap<number, FarmState>
): boolean => {
  const t = Math.floor(idx / BUCKETS)
  const b = idx % BUCKETS
  for (const m of folded.members) {
    if (m.name === me || m.status === "down" || overlay.includes(m.name)) continue
    const p = peers.get(m.name)
    if (p === undefined || p.last === null || p.last.seq >= seq || now - p.lastAt >= expireAfterMs) continue
    const st = history.get(p.last.seq)
    if (st !== undefined && claimant(st, t, b) === m.name) return true
  }
  return false
}

/**
 * Apply the holds to local tables `t` (in place): a held-back bucket keeps the flows this
 * server holds (as moving out) and takes no new ones; a bucket it did not serve (`prev`, the
 * previous serving tables, or null) stays foreign (flows it held there before losing it, e.g.
 * before its failure or unhealthy report, are no longer its own: their packets go to the owner).
 */
export const holdBack = (
  t: Uint8Array, prev: Uint8Array | null, waits: ReadonlyMap<number, ClaimWait>, overlay: ReadonlyArray<string>,
  pins: ReadonlyMap<string, Pin>, peersCaughtUp: boolean
): void => {
  const hold = (idx: number): number => (prev !== null && prev[idx] === LocalBucket.FOREIGN ? LocalBucket.FOREIGN : LocalBucket.MOVING_OUT)
  for (const [idx, w] of waits) t[idx] = !w.inbound ? hold(idx) : t[idx] === LocalBucket.OWNED ? LocalBucket.MOVING_IN : t[idx]
  // takings from a peer whose pinned plan the live peers do not all publish yet
  for (const n of overlay) {
    const pin = pins.get(n)
    if (pin === undefined) continue
    if (!pin.agreed) for (const idx of pin.held) t[idx] = hold(idx)
    else if (!peersCaughtUp) for (const idx of pin.unpinned) t[idx] = hold(idx)
  }
}
