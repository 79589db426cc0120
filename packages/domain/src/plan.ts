/**
 * Plans computed from a state: the target ownership of every table, the graceful moves
 * that reach it, and the failure plan of each member (what happens to its buckets when its
 * lease expires). Pure functions of the state: every server computes the same plans.
 */
import { assign, assignSingleHost } from "./assignment.ts"
import type { Move } from "./events.ts"
import { ruleTables } from "./rules.ts"
import { type BucketState, type BucketTable, effectiveOwner, type FarmState, isEligible, type Member } from "./state.ts"

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
    if (!t.some((b) => b.owner === node || (b.state === "moving" && b.to === node))) return t
    const target = targetOwners(state, table, [node])
    return t.map((b, bucket): BucketState => {
      if (b.state === "moving" && b.to === node) return { state: "owned", owner: b.owner }
      if (b.owner !== node) return b
      const to = b.state === "moving" ? b.to : target[bucket]
      return to === null ? { state: "owned", owner: null } : { state: "taken-over", owner: to, from: node }
    })
  })

/** Buckets a member owns or is receiving, in all tables. */
export const holdings = (state: FarmState, node: string): number =>
  state.tables.reduce((n, t) => n + t.filter((b) => b.owner === node || (b.state === "moving" && b.to === node)).length, 0)

/** The table index used by each rule of each VIP (see rules.ts). */
export const tablesOfRules = (state: FarmState): Array<Array<number>> => ruleTables(state.vips)

/** A member that may receive buckets. */
export const eligibleMembers = (state: FarmState): Array<Member> => state.members.filter(isEligible)
