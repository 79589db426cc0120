/**
 * The farm state every server folds from the same log: members, services and bucket tables.
 * Plain, immutable, JSON-serialisable data (a snapshot is just this object).
 */
import { BUCKETS } from "./hash.ts"
import type { Vip } from "./rules.ts"

/** A member's lifecycle status. */
export type MemberStatus = "joining" | "up" | "unhealthy" | "draining" | "down"

/** A server of the farm, as the log knows it. */
export interface Member {
  readonly name: string
  readonly address: string
  readonly weight: number
  readonly priority: number
  readonly rulesDigest: string
  readonly incarnation: number
  readonly status: MemberStatus
  /** The peer that last suspected it, until it is seen ready/recovered again. */
  readonly suspectedBy: string | null
  /** The failing checker while status is unhealthy. */
  readonly unhealthy: { readonly checker: string; readonly reason: string } | null
  /** True once DrainFinished was folded for the current drain. */
  readonly drained: boolean
  /** The application's last reported state (ApplicationChanged); absent until the first report. */
  readonly application?: MemberApplication
}

/** A member application's last reported state. */
export interface MemberApplication {
  readonly state: "running" | "restarting" | "left" | "stopped" | "healing" | "failed"
  readonly reason: string
  readonly restarts?: number
  readonly checker?: string
}

/** One bucket's ownership. */
export type BucketState =
  | { readonly state: "owned"; readonly owner: string | null }
  | { readonly state: "taken-over"; readonly owner: string; readonly from: string }
  | { readonly state: "moving"; readonly owner: string; readonly to: string; readonly handoff: string }

/** A table of BUCKETS buckets. */
export type BucketTable = ReadonlyArray<BucketState>

/** The last event the reducer refused, for operators. */
export interface Rejection {
  readonly seq: number
  readonly reason: string
}

/** The whole farm state. */
export interface FarmState {
  readonly farm: string
  /** Log entries consumed (folded or rejected). */
  readonly seq: number
  /** Members sorted by name. */
  readonly members: ReadonlyArray<Member>
  readonly vips: ReadonlyArray<Vip>
  /** Table 0: weighted share; then one table per single-host rule. */
  readonly tables: ReadonlyArray<BucketTable>
  /** How many log entries were refused (malformed or not applicable). */
  readonly rejected: number
  readonly lastRejection: Rejection | null
  /** The audit chain, once a record carried `prev` (reducer.ts): absent while the log is unchained. */
  readonly chain?: ChainPosition
}

/** Where the fold stands in the audit chain: the hash of the last entry, the next record's `prev`. */
export interface ChainPosition {
  readonly head: string
}

const UNOWNED: BucketState = { state: "owned", owner: null }

/** A table where nobody owns anything. */
export const emptyTable = (): BucketTable => Array<BucketState>(BUCKETS).fill(UNOWNED)

/** The state of a farm before its first event. */
export const initialState = (farm: string): FarmState => ({
  farm,
  seq: 0,
  members: [],
  vips: [],
  tables: [emptyTable()],
  rejected: 0,
  lastRejection: null
})

/** Find a member by name. */
export const findMember = (state: FarmState, name: string): Member | undefined =>
  state.members.find((m) => m.name === name)

/** The owner a bucket ends up with once any move in flight completes. */
export const effectiveOwner = (b: BucketState): string | null => (b.state === "moving" ? b.to : b.owner)

/** A bucket held by `node`: owned by it, or moving to or from it. */
export const heldBy = (b: BucketState, node: string): boolean => b.owner === node || (b.state === "moving" && b.to === node)

/** True when some bucket is still moving in graceful hand-off `handoff`. */
export const handoffInProgress = (state: FarmState, handoff: string): boolean =>
  state.tables.some((t) => t.some((b) => b.state === "moving" && b.handoff === handoff))

/** True when a member may own buckets: up (a suspected member is still up). */
export const isEligible = (m: Member): boolean => m.status === "up"

/** How many buckets of a table a node owns or is receiving (its effective share). */
export const effectiveCount = (table: BucketTable, node: string): number => {
  let n = 0
  for (const b of table) if (effectiveOwner(b) === node) n++
  return n
}

/** Buckets per member in table 0 (effective owners), members in name order. */
export const shares = (state: FarmState): Array<{ readonly name: string; readonly buckets: number }> =>
  state.members.map((m) => ({ name: m.name, buckets: effectiveCount(state.tables[0], m.name) }))

/** The ids of graceful hand-offs with buckets still moving, in table/bucket order, distinct. */
export const openHandoffs = (state: FarmState): Array<string> => {
  const ids: Array<string> = []
  for (const table of state.tables) {
    for (const b of table) if (b.state === "moving" && !ids.includes(b.handoff)) ids.push(b.handoff)
  }
  return ids
}
