/**
 * This node's own suspicions (PROTOCOL.md §3): a member not heard for expireAfterMs is
 * suspected; the suspicion is a promise (until) renewed while the peer is not heard again, or
 * has been taken over, or was removed by the log; it ends when the peer is heard again after
 * it, or rejoins. Pure over the maps the {@link NodeController} owns.
 */
import type { FarmState } from "@vipfarm/domain"
import type { OwnSuspicion, PeerView } from "./liveness.ts"
import type { Pin } from "./pins.ts"

/** What {@link updateSuspicions} reads and updates. */
export interface SuspicionsState {
  readonly me: string
  readonly folded: FarmState
  readonly peers: ReadonlyMap<string, PeerView>
  readonly suspicions: Map<string, OwnSuspicion>
  readonly pins: Map<string, Pin>
  readonly removedAt: ReadonlyMap<string, number>
  readonly holdMs: number
  readonly expireAfterMs: number
  /** Before this (process start, resume after a pause) a peer's silence is not held against it. */
  readonly grace: number
  readonly log: (op: string, fields: Record<string, string | number | boolean>) => void
}

/** Start, renew and end suspicions of the folded members. True when a new one started (publish soon). */
export const updateSuspicions = (st: SuspicionsState, now: number): boolean => {
  let soon = false
  const grace = st.grace
  for (const m of st.folded.members) {
    if (m.name === st.me) continue
    if (m.status === "down") {
      // the log removed it, but a voter that has not folded that yet may still be taking it
      // over on our word: keep the promise fresh until the peer acks or rejoins (onHeartbeat)
      const s = st.suspicions.get(m.name)
      if (s !== undefined && s.incarnation === m.incarnation) s.until = Math.max(s.until, now + st.holdMs)
      continue
    }
    const p = st.peers.get(m.name)
    const heardAt = p === undefined || p.acceptedAt === -Infinity ? grace : Math.max(p.acceptedAt, grace)
    const s = st.suspicions.get(m.name)
    if (s === undefined) {
      if (now - heardAt >= st.expireAfterMs) {
        st.suspicions.set(m.name, {
          node: m.name,
          incarnation: m.incarnation,
          heard: p === undefined ? -1 : p.acceptedSentAt,
          until: now + st.holdMs,
          heardAgain: false,
          taken: false
        })
        soon = true
        st.log("suspect", { peer: m.name, incarnation: m.incarnation })
      }
    } else if (s.incarnation !== m.incarnation && m.incarnation > s.incarnation) {
      // the log says the peer rejoined: its old incarnation owns nothing any more
      st.suspicions.delete(m.name)
      st.pins.delete(m.name)
    } else if (!s.heardAgain || s.taken) {
      // a taken-over peer stays suspected until the log removes it (it must rejoin: its
      // buckets went to others, who may hold flows in them)
      s.until = Math.max(s.until, now + st.holdMs)
    } else if (now >= s.until && st.removedAt.get(m.name) === undefined) {
      st.suspicions.delete(m.name)
      st.pins.delete(m.name)
      const p = st.peers.get(m.name)
      if (p !== undefined && p.last !== null) {
        // heard again meanwhile: grant from its latest heartbeat on
        p.acceptedSentAt = p.last.sentAt
        p.acceptedAt = now
      }
      st.log("suspicion-ended", { peer: m.name, incarnation: s.incarnation })
    }
  }
  return soon
}
