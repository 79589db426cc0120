/**
 * The overlay (PROTOCOL.md §4): the peers a majority of voters proves fenced, whose failure
 * plans the effective state applies ahead of the log (synthetic MemberFailed, in name order),
 * and what this node takes from each of them. Pure helpers; the {@link NodeController} keeps
 * the overlay and the effective state.
 */
import {
  applyEvent,
  BUCKETS,
  type Cause,
  EVENT_VERSION,
  type FarmEvent,
  type FarmState,
  heldBy,
  MEMBER_FAILED_PLAN_VERSION,
  type PlannedTaker
} from "@vipfarm/domain"
import { type Heard, majoritySuspects } from "./liveness.ts"
import { claimant } from "./claims.ts"
import type { Suspicion } from "./types.ts"

/** `voter`'s suspicion of `node`: this node's own, else the one in the voter's last heartbeat. */
export const suspicionOf = (h: Heard, voter: string, node: string): Suspicion | undefined => {
  if (voter === h.me) return h.suspicions.get(node)
  const hb = h.peers.get(voter)?.last
  if (hb === null || hb === undefined) return undefined
  for (const s of hb.suspects) if (s.node === node) return s
  return undefined
}

/**
 * The next overlay, in member order: the members a majority of `voters` suspects (or, once
 * applied, while this node's taken suspicion of them stands).
 */
export const nextOverlay = (h: Heard, voters: () => Array<string>, now: number): Array<string> => {
  // candidates: members suspected by anyone
  let any = h.suspicions.size > 0
  if (!any) {
    for (const p of h.peers.values()) {
      if (p.last !== null && p.last.suspects.length > 0) {
        any = true
        break
      }
    }
  }
  const next: Array<string> = []
  if (any) {
    const vs = voters()
    for (const m of h.folded.members) {
      if (m.status === "down" || m.name === h.me) continue
      // once applied, the overlay stands while this node's taken suspicion does (renewed until the
      // log removes the peer): a slow node seeing the majority's suspicions late let it flap
      const own = h.suspicions.get(m.name)
      const sticky = h.overlay.includes(m.name) && own !== undefined && own.taken && own.incarnation === m.incarnation
      if (sticky || majoritySuspects(vs, m.name, m.incarnation, now, h.fenceAfterMs, (v) => suspicionOf(h, v, m.name))) {
        next.push(m.name)
      }
    }
  }
  return next
}

/**
 * Apply `node`@`incarnation`'s failure to `s` with `plan` (bucket -> taker, see `planWith`;
 * null: the domain's own plan).
 */
export const applyFailure = (s: FarmState, me: string, node: string, incarnation: number, plan: Array<PlannedTaker> | null): FarmState => {
  const cause: Cause = { kind: "lease", by: me }
  const ev: FarmEvent = plan === null
    ? { _tag: "MemberFailed", v: EVENT_VERSION, cause, node, detectedBy: me, incarnation }
    : { _tag: "MemberFailed", v: MEMBER_FAILED_PLAN_VERSION, cause, node, detectedBy: me, incarnation, plan }
  return applyEvent(s, ev)
}

/**
 * What this node takes from `node` going from `prev` to `s` (buckets, table*BUCKETS+bucket):
 * `held` all of them, `unpinned` those `plan` does not give this node (a bucket moving from this
 * node to `node` goes back to this node: its own flows, nobody else's).
 */
export const takings = (
  prev: FarmState, s: FarmState, me: string, node: string, plan: Array<PlannedTaker> | null
): { held: Array<number>; unpinned: Array<number> } => {
  const held: Array<number> = []
  const unpinned: Array<number> = []
  let mine: Set<number> | null = null
  for (let t = 0; t < s.tables.length; t++) {
    const ta = prev.tables[t]
    if (ta === s.tables[t]) continue
    for (let b = 0; b < BUCKETS; b++) {
      if (!heldBy(ta[b], node) || claimant(s, t, b) !== me) continue
      const idx = t * BUCKETS + b
      held.push(idx)
      if (mine === null) {
        mine = new Set()
        for (const x of plan ?? []) if (x.to === me) mine.add(x.table * BUCKETS + x.bucket)
      }
      if (!mine.has(idx) && !(ta[b].state === "moving" && ta[b].owner === me)) unpinned.push(idx)
    }
  }
  return { held, unpinned }
}
