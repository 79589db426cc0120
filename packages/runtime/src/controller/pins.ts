/**
 * Pinned failure plans (PROTOCOL.md §4): a taken-over peer's plan is pinned to the folded state
 * at the lowest seq heard, so its takers do not change with entries folded meanwhile; a node
 * claims its takings only once every live peer heard publishes the same pin (agreement), and
 * the takings the pin does not name only once every live member acked its folded seq.
 * Pure helpers over the controller's state; the {@link NodeController} owns the maps.
 */
import { applyEvent, BUCKETS, EVENT_VERSION, type FarmState, failurePlan, findMember, heldBy, type PlannedTaker } from "@vipfarm/domain"
import type { Heard } from "./liveness.ts"
import type { Heartbeat } from "./types.ts"

/** Folded states kept by seq, for failure plans pinned to an earlier position (§4). */
export const HISTORY = 512

/**
 * A taken-over peer's failure plan, pinned to the folded state at `seq` (the lowest heard):
 * the takers do not change with entries folded while the peer is taken over.
 */
export interface Pin {
  readonly incarnation: number
  readonly seq: number
  /** bucket -> taker, computed once the state at `seq` is folded (null: not yet). */
  plan: Array<PlannedTaker> | null
  /** Every live peer heard publishes the same pin: this node may claim its takings. */
  agreed: boolean
  /** Buckets (table*BUCKETS+bucket) this node takes from the peer in the effective state. */
  held: Array<number>
  /**
   * Of those, the ones the pinned plan does not give this node (computed afresh: the bucket
   * reached the peer after the pin, or its pinned taker is taken over too): their takers depend
   * on each node's folded state, so they also wait until every live member heard acked this
   * node's folded seq.
   */
  unpinned: Array<number>
  /** When it was pinned (local clock). */
  readonly at: number
  /** The folded state at `seq`, kept with the plan (the history drops it after HISTORY seqs). */
  base?: FarmState
  /** The plan applied with the peers failing together with it (see {@link planWith}), by their names. */
  joint?: { readonly key: string; readonly applied: Array<PlannedTaker>; readonly pinned: Array<PlannedTaker> }
}

/**
 * The pinned plan of `node` (null until the state it is pinned to is folded); computed once
 * and kept in the pin.
 */
export const planOf = (pins: Map<string, Pin>, history: Map<number, FarmState>, node: string): Array<PlannedTaker> | null => {
  const pin = pins.get(node)
  if (pin === undefined) return null
  if (pin.plan !== null) return pin.plan
  const st = history.get(pin.seq)
  if (st === undefined) return null
  const tables = failurePlan(st, node)
  const plan: Array<PlannedTaker> = []
  for (let t = 0; t < st.tables.length; t++) {
    const before = st.tables[t]
    const after = tables[t]
    if (before === after) continue
    for (let b = 0; b < before.length; b++) {
      if (!heldBy(before[b], node)) continue
      const to = after[b].owner
      if (to !== null && to !== node) plan.push({ table: t, bucket: b, to })
    }
  }
  pin.plan = plan
  pin.base = st
  return plan
}

/**
 * The members that fail together with `node` as seen from its pinned state `base`: `node`, the
 * other peers taken over here (`kept`), and the members up at the pin that the log removed
 * since (same incarnation). In `base`'s member order.
 */
export const failingWith = (base: FarmState, folded: FarmState, node: string, kept: ReadonlyArray<string>): Array<string> => {
  const out: Array<string> = []
  for (const m of base.members) {
    if (m.status === "down") continue
    if (m.name === node || kept.includes(m.name)) {
      out.push(m.name)
      continue
    }
    const now = findMember(folded, m.name)
    if (now === undefined || (now.status === "down" && now.incarnation === m.incarnation)) out.push(m.name)
  }
  return out
}

/**
 * The plan this node applies for `node` (null until its pin's state is folded): the pinned
 * plan, except that a bucket whose pinned taker fails too, or that another member failing with
 * it held at the pin, goes to its taker in the **joint plan** — every member of
 * {@link failingWith} failed at the pinned state, in member order. The joint plan depends only
 * on the pin and on who fails, not on entries folded meanwhile: computed afresh on the current
 * state instead, a rebalance folded during the takeover (appended by the doomed peer's restarted
 * process) moved a bucket a survivor had taken, with its flows, to another survivor (sweep seed
 * 1639), and a node that folded one peer's failure before taking the other over gave the other's
 * buckets to itself while a node that took both over at once had taken them (seed 1464).
 * `pinned` is the part of the pinned plan kept (its takings need no ack of the folded seq).
 */
export const planWith = (
  pins: Map<string, Pin>, history: Map<number, FarmState>, folded: FarmState, node: string, kept: ReadonlyArray<string>
): { readonly applied: Array<PlannedTaker>; readonly pinned: Array<PlannedTaker> } | null => {
  const plan = planOf(pins, history, node)
  const pin = pins.get(node)
  if (plan === null || pin === undefined || pin.base === undefined) return null
  const base = pin.base
  const dead = failingWith(base, folded, node, kept)
  if (dead.length <= 1) return { applied: plan, pinned: plan }
  const key = dead.join(",")
  if (pin.joint !== undefined && pin.joint.key === key) return pin.joint
  let st = base
  for (const d of dead) {
    const m = findMember(st, d)!
    st = applyEvent(st, { _tag: "MemberFailed", v: EVENT_VERSION, cause: { kind: "lease", by: d }, node: d, detectedBy: d, incarnation: m.incarnation })
  }
  const pinned = plan.filter((x) => !dead.includes(x.to))
  const covered = new Set<number>()
  for (const x of pinned) covered.add(x.table * BUCKETS + x.bucket)
  const applied = pinned.slice()
  for (let t = 0; t < base.tables.length; t++) {
    const before = base.tables[t]
    const after = st.tables[t]
    if (before === after || after === undefined) continue
    for (let b = 0; b < before.length; b++) {
      if (covered.has(t * BUCKETS + b) || !dead.some((d) => heldBy(before[b], d))) continue
      const to = after[b].owner
      if (to !== null && !dead.includes(to)) applied.push({ table: t, bucket: b, to })
    }
  }
  pin.joint = { key, applied, pinned }
  return pin.joint
}

/**
 * The takers of `node`'s buckets in the effective state (the pinned plan as applied here,
 * with every peer taken over at once): what DeclareFailed records, so that the log lands the
 * failures on the same takers in whatever order they are appended.
 */
export const appliedPlan = (folded: FarmState, effective: FarmState, node: string): Array<PlannedTaker> => {
  const plan: Array<PlannedTaker> = []
  for (let t = 0; t < folded.tables.length; t++) {
    const before = folded.tables[t]
    const after = effective.tables[t]
    if (after === undefined || before === after) continue
    for (let b = 0; b < before.length; b++) {
      if (!heldBy(before[b], node)) continue
      const to = after[b].owner
      if (to !== null && to !== node) plan.push({ table: t, bucket: b, to })
    }
  }
  return plan
}

/**
 * The last heartbeats of the live members this node hears: not itself, not down, not taken
 * over or suspected, heard within `expireAfterMs`; `except` is skipped too.
 */
function* liveHeard(h: Heard, now: number, except?: string): Generator<Heartbeat> {
  for (const m of h.folded.members) {
    if (m.name === h.me || m.name === except || m.status === "down" || h.overlay.includes(m.name) || h.suspicions.has(m.name)) continue
    const p = h.peers.get(m.name)
    if (p === undefined || p.last === null || now - p.acceptedAt >= h.expireAfterMs) continue
    yield p.last
  }
}

/**
 * Whether every live peer this node hears publishes the same pin of `node` as this node:
 * only then does it claim its takings (two survivors with plans pinned at different seqs
 * would otherwise both take a bucket).
 */
export const pinAgreed = (h: Heard, pin: Pin | undefined, node: string, now: number): boolean => {
  if (pin === undefined || pin.plan === null) return false
  for (const last of liveHeard(h, now, node)) {
    let same = false
    for (const x of last.suspects) {
      if (x.node === node) {
        same = x.taken === true && x.incarnation === pin.incarnation && x.planSeq === pin.seq
        break
      }
    }
    if (!same) return false
  }
  return true
}

/** Whether every live member this node hears (as in {@link pinAgreed}) acked its folded seq. */
export const allCaughtUp = (h: Heard, now: number): boolean => {
  for (const last of liveHeard(h, now)) if (last.seq < h.folded.seq) return false
  return true
}
