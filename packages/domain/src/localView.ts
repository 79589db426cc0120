/**
 * A server's local view of the bucket tables: what its XDP filter does with each bucket.
 * The codes are shared with the C filter (packages/filter-xdp/bpf/vipfarm.h).
 */
import { BUCKETS } from "./hash.ts"

/** Maximum number of bucket tables (table 0: the weighted farm share; others: single-host rules). */
export const MAX_TABLES = 16

/** Per-bucket codes of a server's filter table. */
export const LocalBucket = {
  /** Another server owns the bucket: drop. */
  FOREIGN: 0,
  /** This server owns the bucket (also: taken over from a failed server): pass everything. */
  OWNED: 1,
  /** Moving away from this server: pass only packets of flows this server holds. */
  MOVING_OUT: 2,
  /** Moving to this server, UDP flow set not yet installed: take new TCP flows, no UDP. */
  MOVING_IN_WAIT: 3,
  /** Moving to this server: take new flows (TCP SYN; UDP not in the foreign-flow map). */
  MOVING_IN: 4
} as const

/** A local bucket code. */
export type LocalBucketCode = (typeof LocalBucket)[keyof typeof LocalBucket]

/** Options of {@link localTables}. */
export interface LocalViewOptions {
  /** Whether the UDP flow set of a hand-off is installed on the receiver (default: yes). */
  readonly udpReady?: (handoff: string) => boolean
}

/** Minimal shape of a bucket state needed here (see state.ts). */
type AnyBucket =
  | { readonly state: "owned"; readonly owner: string | null }
  | { readonly state: "taken-over"; readonly owner: string }
  | { readonly state: "moving"; readonly owner: string; readonly to: string; readonly handoff: string }

/**
 * What `node`'s filter does with each bucket of each table: MAX_TABLES * BUCKETS codes,
 * table-major (index = table * BUCKETS + bucket). Tables the farm does not use are FOREIGN.
 */
export const localTables = (
  tables: ReadonlyArray<ReadonlyArray<AnyBucket>>,
  node: string,
  options: LocalViewOptions = {}
): Uint8Array => {
  const out = new Uint8Array(MAX_TABLES * BUCKETS)
  const udpReady = options.udpReady ?? (() => true)
  for (let t = 0; t < tables.length && t < MAX_TABLES; t++) {
    const table = tables[t]
    const base = t * BUCKETS
    for (let b = 0; b < table.length; b++) {
      const s = table[b]
      if (s.state === "moving") {
        if (s.owner === node) out[base + b] = LocalBucket.MOVING_OUT
        else if (s.to === node) out[base + b] = udpReady(s.handoff) ? LocalBucket.MOVING_IN : LocalBucket.MOVING_IN_WAIT
      } else if (s.owner === node) {
        out[base + b] = LocalBucket.OWNED
      }
    }
  }
  return out
}
