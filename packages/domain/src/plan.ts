/**
 * Plans computed from a state: the target ownership of every table, the graceful moves
 * that reach it, and the failure plan of each member (what happens to its buckets when its
 * lease expires). Pure functions of the state: every server computes the same plans.
 */
import { assign, assignSingleHost } from "./assignment.ts"
import type { Move, PlannedTaker, RestoredBucket } from "./events.ts"
import { type BucketState, type BucketTable, effectiveOwner, type FarmState, heldBy, isEligible } from "./state.ts"

/** For each table index > 0, whether it is single-host (always true for tables > 0). */
const tableIsSingleHost = (table: number): boolean => table > 0

/** The target owners of one table, with `exclude` treated as gone. */
export const targetOwners = (state: FarmState, table: number, exclude: ReadonlyArray<string> = []): Array<string | null> => {
  const eligible = state.members.filter((m) => isEligible(m) && !exclude.includes(m.name))
  const t = state.tables[table]
  if (tableIsSingleHost(table)) return assignSingleHost(t.length, eligible)
  const names = new Set(eligible.map((m) => m.name))
  const current = t.map((b) => {
    const o = effectiveOwner(b)
    return o !== null && names.has(o) ? o : null
  })
  return assign(current, eligible)
}

/**
 * The graceful moves that bring every table to its target. Buckets already moving are
 * left alone until their hand-off completes.
 */
export const rebalanceMoves = (state: FarmState): Array<Move> => {
  const moves: Array<Move> = []
  state.tables.forEach((t, table) => {
    const target = targetOwners(state, table)
    t.forEach((b, bucket) => {
      if (b.state === "moving") return
      const to = target[bucket]
      if (to !== null && to !== b.owner) moves.push({ table, bucket, from: b.owner, to })
    })
  })
  return moves
}

/** Moves that take a member's buckets away (drain, unhealthy): targets computed without it. */
export const evacuationMoves = (state: FarmState, node: string): Array<Move> => {
  const moves: Array<Move> = []
  state.tables.forEach((t, table) => {
    const target = targetOwners(state, table, [node])
    t.forEach((b, bucket) => {
      if (b.state === "moving" || b.owner !== node) return
      const to = target[bucket]
      if (to !== null) moves.push({ table, bucket, from: node, to })
    })
  })
  return moves
}

/**
 * The failure plan of `node`: the tables once its lease expired. Its buckets are taken
 * over by their targets (computed without it); a bucket moving away from it is taken over
 * by its receiver; a bucket moving to it stays with its old owner. Nothing else changes.
 */
export const failurePlan = (state: FarmState, node: string): Array<BucketTable> =>
  state.tables.map((t, table) => {
    if (!t.some((b) => heldBy(b, node))) return t
    const target = targetOwners(state, table, [node])
    return t.map((b, bucket): BucketState => {
      if (b.state === "moving" && b.to === node) return { state: "owned", owner: b.owner }
      if (b.owner !== node) return b
      const to = b.state === "moving" ? b.to : target[bucket]
      return to === null ? { state: "owned", owner: null } : { state: "taken-over", owner: to, from: node }
    })
  })

/**
 * The failure plan of `node` with pinned takers (MemberFailed version 2): each listed
 * bucket still held by `node` goes to its taker if that taker is up (and not `node`); every
 * other bucket as {@link failurePlan}.
 */
export const pinnedFailurePlan = (state: FarmState, node: string, plan: ReadonlyArray<PlannedTaker>): Array<BucketTable> => {
  const tables = failurePlan(state, node)
  let copied: Array<boolean> | null = null
  for (const p of plan) {
    const t = state.tables[p.table]
    if (t === undefined || p.to === node) continue
    const b = t[p.bucket]
    if (b === undefined || !heldBy(b, node)) continue
    const taker = state.members.find((m) => m.name === p.to)
    if (taker === undefined || !isEligible(taker)) continue
    const cur = tables[p.table][p.bucket]
    if (cur.owner === p.to && cur.state !== "moving") continue
    if (copied === null) copied = []
    if (copied[p.table] !== true) {
      tables[p.table] = tables[p.table].slice()
      copied[p.table] = true
    }
    ;(tables[p.table] as Array<BucketState>)[p.bucket] = { state: "taken-over", owner: p.to, from: node }
  }
  return tables
}

/**
 * Undo the unhealthy plan of `node` for the listed buckets (MemberRecovered version 2): a
 * bucket gets its listed state back only if it is still exactly what {@link failurePlan} made
 * of that state (taken over from `node` by the receiver or a target, or back with the old
 * owner of a move to `node`) and every other node named is up.
 */
export const restoredTables = (state: FarmState, node: string, restore: ReadonlyArray<RestoredBucket>): Array<BucketTable> => {
  const tables: Array<BucketTable> = state.tables.slice()
  const copied: Array<boolean> = []
  const up = (name: string): boolean => name === node || state.members.some((m) => m.name === name && isEligible(m))
  for (const r of restore) {
    const t = tables[r.table]
    if (t === undefined) continue
    const cur = t[r.bucket]
    if (cur === undefined) continue
    let next: BucketState | null = null
    if (r.to === undefined) {
      // owned by node, taken over by a target
      if (r.owner === node && cur.state === "taken-over" && cur.from === node) next = { state: "owned", owner: node }
    } else if (r.handoff !== undefined && r.owner !== r.to && up(r.owner) && up(r.to)) {
      // moving away from node: taken over by its receiver; moving to node: back with its old owner
      if (r.owner === node && cur.state === "taken-over" && cur.from === node && cur.owner === r.to) next = { state: "moving", owner: node, to: r.to, handoff: r.handoff }
      else if (r.to === node && cur.state === "owned" && cur.owner === r.owner) next = { state: "moving", owner: r.owner, to: node, handoff: r.handoff }
    }
    if (next === null) continue
    if (copied[r.table] !== true) {
      tables[r.table] = t.slice()
      copied[r.table] = true
    }
    ;(tables[r.table] as Array<BucketState>)[r.bucket] = next
  }
  return tables
}

/** Buckets a member owns or is receiving, in all tables. */
export const holdings = (state: FarmState, node: string): number =>
  state.tables.reduce((n, t) => n + t.filter((b) => heldBy(b, node)).length, 0)
