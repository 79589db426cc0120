/**
 * Leases and failure detection (issue 5), pure: who a node hears, the lease grants it
 * echoes, its own lease from a majority's echoes, its suspicions (promises not to grant a
 * silent peer a lease before `until`), and whether a majority's suspicions prove a peer
 * fenced so that its failure plan may be applied at once.
 *
 * Safety argument. A node's lease is the k-th freshest echo of its own send times among
 * the voters (k = strict majority), plus fenceAfterMs; a voter never echoes a peer it
 * suspects. A peer V is taken over at time T only when k voters suspect V with
 * `heard + fenceAfterMs <= T < until`: those k can give V no fresher contact than `heard`
 * before `until`, and any k voters granting V intersect them, so V is fenced at T.
 * (Clocks are assumed to run at the same rate and agree within the margins.)
 */
import type { FarmState } from "@vipfarm/domain"
import type { Heartbeat, Suspicion } from "./types.ts"

/** What a node knows of one peer. */
export interface PeerView {
  /** Latest heartbeat received from the peer (accepted or not). */
  last: Heartbeat | null
  /** Local time `last` arrived. */
  lastAt: number
  /** Peer's send time of the last heartbeat accepted (echoed back), or -1. */
  acceptedSentAt: number
  /** Local time the last accepted heartbeat arrived. */
  acceptedAt: number
  /** This node's own send time the peer last echoed (its lease grant), or -Infinity. */
  grant: number
}

/**
 * What a node has heard, as the overlay, pin agreement and ack checks read it: its folded
 * state and overlay, its own suspicions, and the last heartbeat of each peer.
 */
export interface Heard {
  readonly me: string
  readonly folded: FarmState
  readonly overlay: ReadonlyArray<string>
  readonly suspicions: ReadonlyMap<string, OwnSuspicion>
  readonly peers: ReadonlyMap<string, PeerView>
  readonly fenceAfterMs: number
  readonly expireAfterMs: number
}

/** A suspicion held by this node, with the bookkeeping to end it. */
export interface OwnSuspicion extends Suspicion {
  /** Renewed while the peer stays silent. */
  until: number
  /** The peer was heard again after the suspicion began (then `until` is no longer renewed unless taken). */
  heardAgain: boolean
  /** Its failure plan was applied (here or by a peer): renewed until the log removes it. */
  taken: boolean
}

let scratch = new Float64Array(64)

/** Strict majority of n voters. */
export const majority = (n: number): number => Math.floor(n / 2) + 1

/**
 * The lease deadline from the voters' grants: the k-th largest contact plus fenceAfterMs,
 * where this node's own contact is `now` if it is a voter. 0 when no majority ever granted;
 * with no voter at all (an empty farm) the node's own clock.
 */
export const leaseDeadline = (
  voters: ReadonlyArray<string>,
  self: string,
  now: number,
  grantOf: (voter: string) => number,
  fenceAfterMs: number
): number => {
  const n = voters.length
  if (n === 0) return now + fenceAfterMs // a farm's first server: nobody to ask
  if (scratch.length < n) scratch = new Float64Array(n * 2)
  const contacts = scratch.subarray(0, n)
  for (let i = 0; i < n; i++) contacts[i] = voters[i] === self ? now : grantOf(voters[i])
  contacts.sort()
  const kth = contacts[n - majority(n)]
  return kth === -Infinity ? 0 : kth + fenceAfterMs
}

/** True when a suspicion proves the suspect's lease from its author over at `now`. */
export const suspicionHolds = (s: Suspicion | undefined, incarnation: number, now: number, fenceAfterMs: number): boolean =>
  s !== undefined && s.incarnation === incarnation && s.heard + fenceAfterMs <= now && now < s.until

/**
 * Whether a strict majority of `voters` hold a suspicion of `node`@`incarnation` that
 * proves it fenced now. `suspicionOf(voter)` returns that voter's latest suspicion of node.
 */
export const majoritySuspects = (
  voters: ReadonlyArray<string>,
  node: string,
  incarnation: number,
  now: number,
  fenceAfterMs: number,
  suspicionOf: (voter: string) => Suspicion | undefined
): boolean => {
  const k = majority(voters.length)
  let n = 0
  for (const v of voters) {
    if (v === node) continue
    if (suspicionHolds(suspicionOf(v), incarnation, now, fenceAfterMs)) n++
    if (n >= k) return true
  }
  return false
}
