/**
 * A server's local view of the bucket tables: what its XDP filter does with each bucket.
 * The codes are shared with the C filter (packages/filter-xdp/bpf/vipfarm.h).
 */

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
