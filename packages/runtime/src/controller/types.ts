/**
 * Inputs and outputs of the node controller: plain data, no I/O. The daemon turns the
 * actions into NATS publishes, JetStream appends and XDP map writes; the simulator turns
 * them into simulated messages.
 */
import type { FarmEvent } from "@vipfarm/domain"

/** Timing and identity of one controller. All times are milliseconds on the caller's clock. */
export interface ControllerConfig {
  /** The farm name. */
  readonly farm: string
  /** This process's node name. */
  readonly node: string
  /** "server": joins the farm and serves; "witness": only heartbeats, votes and reports suspicions. */
  readonly role: "server" | "witness"
  readonly address: string
  readonly weight: number
  readonly priority: number
  readonly rulesDigest: string
  /** Names of the configured witnesses (voters that never own buckets). */
  readonly witnesses: ReadonlyArray<string>
  /** Heartbeat period over core NATS (default 50 ms). */
  readonly heartbeatMs: number
  /** A node without a majority's fresh echo for this long fences itself (default 250 ms). */
  readonly fenceAfterMs: number
  /** A peer unheard for this long is suspected (default 350 ms; >= fenceAfterMs + heartbeatMs). */
  readonly expireAfterMs: number
  /** A suspicion is a promise not to grant the peer a lease before `until` = now + holdMs, renewed while unheard. */
  readonly holdMs: number
  /**
   * An old owner reports a hand-off done after this long even if it still holds flows (their
   * connections are then reset); null: no cap, a hand-off waits for the last flow to end.
   */
  readonly handoffMaxMs: number | null
  /** Wait before re-deciding after a failed or timed-out append. */
  readonly retryMs: number
  /** A stopping (SIGTERM) server leaves after this long even if its drain has not finished. */
  readonly stopMaxMs: number
}

/**
 * Defaults of the timing parameters (issue 5). 50/250/350: the simulator measures a crash
 * failover of 0.30-0.37 s (median ~0.33 s), the lab ~0.4 s; see packages/sim/BENCHMARKS.md.
 */
export const defaultTiming = {
  heartbeatMs: 50,
  fenceAfterMs: 250,
  expireAfterMs: 350,
  holdMs: 1000,
  handoffMaxMs: null as number | null,
  retryMs: 50,
  stopMaxMs: 60_000
} as const

/** A suspicion: `by` stopped granting `node`@`incarnation` a lease; it heard it last at (node's clock) `heard`. */
export interface Suspicion {
  readonly node: string
  readonly incarnation: number
  /** The suspected node's send time of the last heartbeat accepted from it. */
  readonly heard: number
  /** No lease is granted to the node before this time. */
  readonly until: number
  /**
   * The author (or a peer it heard from) applied this node's failure plan: the suspicion is
   * then kept and renewed even if the node is heard again, until the log removes the node and
   * its heartbeat shows it folded that, or it rejoins with a new incarnation. Absent: false.
   */
  readonly taken?: boolean
  /**
   * With `taken`: the log sequence whose folded state the author's failure plan of the node
   * is pinned to (PROTOCOL.md §4). Survivors adopt the lowest one they hear and claim the
   * node's buckets only once every live peer they hear publishes the same.
   */
  readonly planSeq?: number
}

/** A heartbeat, published over core NATS every heartbeatMs and on important changes. */
export interface Heartbeat {
  readonly node: string
  /** The sender's incarnation as its folded log says (0 before it joined). */
  readonly incarnation: number
  /** Last log sequence the sender folded. */
  readonly seq: number
  /** Sender's clock at sending. */
  readonly sentAt: number
  /** Lease grants: for each peer the sender hears, that peer's last `sentAt` it accepted. */
  readonly echo: ReadonlyArray<readonly [string, number]>
  /** Peers the sender suspects (and promises not to grant before `until`). */
  readonly suspects: ReadonlyArray<Suspicion>
  /** Open hand-offs for which the sender, an old owner, holds no more flows (or gave up waiting). */
  readonly done: ReadonlyArray<string>
  /**
   * Open hand-offs the sender is an old owner of and not done with, each with the buckets
   * (table*BUCKETS+bucket) where it still holds flows, counted with its current tables: the
   * others may complete (HandoffCompleted version 2). Absent: not known (older versions too).
   */
  readonly busy?: ReadonlyArray<readonly [string, ReadonlyArray<number>]>
  /**
   * The sender restarts and keeps serving (ms): a receiver counts this heartbeat as heard that
   * much later, i.e. suspects the sender no earlier than pause + expireAfterMs after it arrived.
   */
  readonly pause?: number
}

/** Result of an append, as the log answers it. */
export type AppendResult =
  | { readonly ok: true; readonly seq: number; readonly duplicate: boolean }
  | { readonly ok: false; readonly error: "wrong-last-seq"; readonly lastSeq: number }
  | { readonly ok: false; readonly error: "timeout" | "unavailable" }

/** What the controller asks its host to do. */
export type Action =
  | { readonly _tag: "PublishHeartbeat"; readonly heartbeat: Heartbeat }
  | {
    readonly _tag: "Append"
    readonly events: ReadonlyArray<FarmEvent>
    readonly expectLastSeq: number
    readonly msgId: string
  }
  | {
    readonly _tag: "SetFilter"
    /** localTables codes (MAX_TABLES * BUCKETS); the same array object while unchanged. */
    readonly tables: Uint8Array
    /** True when `tables` differs from the last SetFilter. */
    readonly tablesChanged: boolean
    /** The filter passes VIP traffic only while now < deadlineMs (0: fenced). */
    readonly deadlineMs: number
  }
  | { readonly _tag: "Log"; readonly op: string; readonly fields: Readonly<Record<string, string | number | boolean>> }
  | { readonly _tag: "Exit" }
