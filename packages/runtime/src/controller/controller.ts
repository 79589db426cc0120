/**
 * The node controller: the pure control logic of one farm server (or witness), shared by
 * the daemon and the simulator. Time is passed in (ms), nothing is read from the world;
 * every input returns nothing and queues actions, which the host takes with `drain()`.
 *
 * - The folded state comes only from the log (`onLogEntry`, domain `applyEntry`).
 * - The effective state is the folded state plus an overlay: the failure plan of every
 *   peer a majority proves fenced (synthetic MemberFailed, in name order), applied at
 *   once, never waiting for the log; it disappears when the real MemberFailed folds.
 * - A bucket this node starts to claim (take new flows in) is held back until its previous
 *   claimant has acknowledged (heartbeat seq) the log entry that moved it, unless that
 *   claimant is proven fenced: two live servers never take the same bucket's new flows.
 * - Decisions go through domain `decide` and are appended conditionally on the last
 *   folded sequence with deterministic message ids, one append in flight.
 */
import {
  applyEntry,
  applyEvent,
  type Command,
  type Cause,
  decide,
  EVENT_VERSION,
  type FarmEvent,
  type FarmState,
  findMember,
  initialState,
  localTables,
  LocalBucket,
  MAX_TABLES,
  BUCKETS,
  rebalanceMoves,
  holdings,
  failurePlan,
  heldBy,
  MEMBER_FAILED_PLAN_VERSION,
  type PlannedTaker,
  type RestoredBucket
} from "@vipfarm/domain"
import { Result } from "effect"
import { leaseDeadline, majoritySuspects, type OwnSuspicion, type PeerView } from "./liveness.ts"
import type { Action, AppendResult, ControllerConfig, Heartbeat, Suspicion } from "./types.ts"

const ZERO_TABLES = new Uint8Array(MAX_TABLES * BUCKETS)

/** Who takes a bucket's new flows in a state: the receiver while it moves, else the owner. */
const claimant = (state: FarmState, t: number, b: number): string | null => {
  const table = state.tables[t]
  if (table === undefined) return null
  const s = table[b]
  return s.state === "moving" ? s.to : s.owner
}

/** How long a node keeps a stale unhealthy report unacknowledged while it withdraws it (§8). */
const STALE_REPORT_MAX_MS = 5000

/** Folded states kept by seq, for failure plans pinned to an earlier position (§4). */
const HISTORY = 512

/**
 * A taken-over peer's failure plan, pinned to the folded state at `seq` (the lowest heard):
 * the takers do not change with entries folded while the peer is taken over.
 */
interface Pin {
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
}

/** The pure controller of one node. */
export class NodeController {
  readonly config: ControllerConfig
  private folded: FarmState
  private effective: FarmState
  private overlay: Array<string> = []
  private knownHead = 0
  /** The folded log reached the known head once: from then on a lag does not unserve (acks keep claims safe). */
  private caughtUp = false
  /** The last computed tables are this process's own serving tables (not the zero tables of a new process). */
  private prevServed = false
  private readonly peers = new Map<string, PeerView>()
  private readonly suspicions = new Map<string, OwnSuspicion>()
  private readonly startedAt: number
  private lastTickAt: number
  private resumedAt = -Infinity
  private deadline = 0
  private tables: Uint8Array = ZERO_TABLES
  private tablesDirty = true
  private lastEmittedTables: Uint8Array | null = null
  private lastEmittedDeadline = -1
  /** Buckets (table*BUCKETS+bucket) held back until `peer` folded `seq`. */
  private readonly waits = new Map<number, { peer: string; seq: number; inbound: boolean }>()
  /** Seq at which a node was last removed by the log (MemberFailed / MemberLeft). */
  private readonly removedAt = new Map<string, number>()
  private readonly handoffStart = new Map<string, number>()
  /** Folded states by seq (the last HISTORY). */
  private readonly history = new Map<number, FarmState>()
  /** Pinned failure plans of taken-over peers. */
  private readonly pins = new Map<string, Pin>()
  /** Every live member heard has folded this node's folded seq: unpinned takings may be claimed. */
  private peersCaughtUp = false
  private inflight: { msgId: string; at: number } | null = null
  private waitSeq = 0
  private retryAt = 0
  private readonly refused = new Set<string>()
  private healthy = false
  /**
   * This node's own MemberUnhealthy folded (at `seq`) while its application was healthy again
   * (a report decided during a log stall): the node keeps its tables and does not acknowledge
   * the entry (heartbeat seq < `seq`), so no peer claims its buckets, until its MemberRecovered
   * with the buckets restored folds (§8).
   */
  private staleReport: { readonly seq: number; readonly since: number } | null = null
  /** The failing checker and its error, reported with ReportUnhealthy. */
  private failing: { readonly checker: string; readonly reason: string } = { checker: "app", reason: "unhealthy" }
  private wantDrain = false
  private stopping: { since: number } | null = null
  private exited = false
  private movingOutFlows = 0
  /** Flows held per open hand-off (own moving-out buckets), from the last onFlowCounts. */
  private bucketFlows: Map<string, number> | null = null
  /** The last flow count was taken with the current tables installed. */
  private flowCountFresh = false
  private nextHeartbeat = 0
  private heartbeatSoon = false
  private rebalanceCheckedAt = -1
  private rebalanceWanted = false
  private actions: Array<Action> = []
  private votersCache: { seq: number; voters: Array<string> } | null = null
  private handoffCache: { seq: number; open: Array<string>; owners: Map<string, Set<string>>; mine: Map<string, Array<number>> } | null = null
  /** Keep-serving restart: heartbeats ask the peers to hold this node's share for `ms` (see {@link pauseFor}). */
  private pausing: { ms: number; since: number } | null = null
  /** A restarted process whose filter still serves an inherited lease until then: heartbeats ask the peers to hold as long. */
  private holdingUntil = 0

  constructor(config: ControllerConfig, now: number) {
    this.config = config
    this.folded = initialState(config.farm)
    this.effective = this.folded
    this.history.set(this.folded.seq, this.folded)
    this.startedAt = now
    this.lastTickAt = now
    this.nextHeartbeat = now
  }

  // ---- inputs -------------------------------------------------------------------------

  /** The log's last sequence as the consumer knows it (the node serves only once caught up). */
  onLogHead(seq: number): void {
    if (seq > this.knownHead) this.knownHead = seq
  }

  /** One log entry, in order from 1. Entries already folded are ignored. */
  onLogEntry(seq: number, entry: unknown, now: number): void {
    if (seq <= this.folded.seq) return
    if (seq !== this.folded.seq + 1) {
      this.log("log-gap", { seq, folded: this.folded.seq })
      return
    }
    if (seq > this.knownHead) this.knownHead = seq
    const before = this.folded
    this.folded = applyEntry(this.folded, entry)
    this.history.set(seq, this.folded)
    this.history.delete(seq - HISTORY)
    if (this.folded.rejected !== before.rejected) this.log("entry-rejected", { seq, reason: this.folded.lastRejection?.reason ?? "" })
    // a record is one event or a batch {v, events} decided together (domain applyEntry)
    const batch = (entry as { events?: unknown } | null)?.events
    for (const e of (Array.isArray(batch) ? batch : [entry]) as Array<{ _tag?: string; handoff?: string; node?: string } | null>) {
      if (e === null || typeof e !== "object") continue
      if (e._tag === "HandoffStarted" && typeof e.handoff === "string") this.handoffStart.set(e.handoff, now)
      if ((e._tag === "MemberFailed" || e._tag === "MemberLeft") && typeof e.node === "string") this.removedAt.set(e.node, seq)
      if (e._tag === "MemberUnhealthy" && e.node === this.config.node && this.config.role === "server" && this.healthy && this.staleReport === null &&
        findMember(this.folded, this.config.node)?.status === "unhealthy" && this.caughtUp) {
        this.staleReport = { seq, since: now }
        this.log("stale-report", { seq })
      }
    }
    if (this.staleReport !== null && findMember(this.folded, this.config.node)?.status !== "unhealthy") this.endStaleReport("recovered")
    this.refreshEffective(now, seq)
    this.heartbeatSoon = true
  }

  /** A heartbeat from a peer. */
  onHeartbeat(hb: Heartbeat, now: number): void {
    if (hb.node === this.config.node) return
    let p = this.peers.get(hb.node)
    if (p === undefined) {
      p = { last: null, acceptedSentAt: -1, acceptedAt: -Infinity, grant: -Infinity }
      this.peers.set(hb.node, p)
    }
    p.last = hb
    const s = this.suspicions.get(hb.node)
    if (s !== undefined) {
      const removed = this.removedAt.get(hb.node)
      if (hb.incarnation > s.incarnation || (removed !== undefined && hb.seq >= removed)) {
        this.suspicions.delete(hb.node)
        this.pins.delete(hb.node)
        this.log("suspicion-ended", { peer: hb.node, incarnation: hb.incarnation })
      } else {
        s.heardAgain = true
      }
    }
    if (!this.suspicions.has(hb.node)) {
      if (hb.sentAt > p.acceptedSentAt) p.acceptedSentAt = hb.sentAt
      // a restarting peer (pause) is heard, for suspicion, as if this heartbeat arrived pause ms later
      p.acceptedAt = hb.pause !== undefined && hb.pause > 0 ? now + hb.pause : now
    }
    for (const [name, t] of hb.echo) {
      if (name === this.config.node) {
        if (t > p.grant) p.grant = t
        break
      }
    }
    for (const x of hb.suspects) if (x.taken === true) this.markTaken(x.node, x.incarnation, now, x.planSeq)
    if (this.waits.size > 0) this.checkWaits(now)
    if (this.overlay.length > 0) this.updateAgreement(now)
  }

  /** The answer to the append in flight. */
  onAppendResult(msgId: string, result: AppendResult, now: number): void {
    if (this.inflight === null || this.inflight.msgId !== msgId) return
    this.inflight = null
    if (result.ok) {
      this.waitSeq = Math.max(this.waitSeq, result.seq)
      if (result.seq > this.knownHead) this.knownHead = result.seq
      this.log("appended", { msgId, seq: result.seq, duplicate: result.duplicate })
    } else if (result.error === "wrong-last-seq") {
      this.waitSeq = Math.max(this.waitSeq, result.lastSeq)
      if (result.lastSeq > this.knownHead) this.knownHead = result.lastSeq
      this.log("append-conflict", { msgId, lastSeq: result.lastSeq })
    } else {
      this.retryAt = now + this.config.retryMs
      this.log("append-failed", { msgId, error: result.error })
    }
  }

  /** The application's health (checkers). */
  onAppHealth(healthy: boolean, failing?: { readonly checker: string; readonly reason: string }): void {
    this.healthy = healthy
    if (!healthy && failing !== undefined) this.failing = failing
    // unhealthy again: the report holds after all
    if (!healthy && this.staleReport !== null) this.endStaleReport("unhealthy")
  }

  private endStaleReport(why: string): void {
    this.staleReport = null
    this.tablesDirty = true
    this.flowCountFresh = false
    this.heartbeatSoon = true
    this.log("stale-report-ended", { why })
  }

  /**
   * The buckets this node's stale MemberUnhealthy (at `seq`) took, as they were before it,
   * where the folded state still has them as the report's plan left them.
   */
  private restoreOf(seq: number): Array<RestoredBucket> | null {
    const pre = this.history.get(seq - 1)
    const post = this.history.get(seq)
    if (pre === undefined || post === undefined) return null
    const me = this.config.node
    const out: Array<RestoredBucket> = []
    for (let t = 0; t < pre.tables.length; t++) {
      const a = pre.tables[t]
      const b = post.tables[t]
      const c = this.folded.tables[t]
      if (a === b || b === undefined || c === undefined) continue
      for (let i = 0; i < a.length; i++) {
        const x = a[i]
        if (!heldBy(x, me) || sameBucket(b[i], x) || !sameBucket(c[i], b[i])) continue
        out.push(x.state === "moving" ? { table: t, bucket: i, owner: x.owner!, to: x.to, handoff: x.handoff } : { table: t, bucket: i, owner: me })
      }
    }
    return out
  }

  /**
   * Number of flows this server holds in buckets moving away from it, counted with the
   * tables of the last SetFilter installed (a count taken before counts for nothing).
   */
  onFlowCount(movingOutFlows: number): void {
    this.movingOutFlows = movingOutFlows
    this.bucketFlows = null
    this.flowCountFresh = !this.tablesDirty
  }

  /**
   * Flows this server holds per bucket (index table*BUCKETS+bucket), counted with the tables
   * of the last SetFilter installed. Preferred over {@link onFlowCount}: each hand-off then
   * waits only for its own buckets' flows, so overlapping hand-offs do not hold each other open.
   */
  onFlowCounts(perBucket: ArrayLike<number>): void {
    const sums = new Map<string, number>()
    for (const [h, idxs] of this.handoffView().mine) {
      let n = 0
      for (const idx of idxs) n += perBucket[idx]
      sums.set(h, n)
    }
    this.bucketFlows = sums
    this.flowCountFresh = !this.tablesDirty
  }

  /** Operator: drain this server (its buckets move away, keeping their connections). */
  drain(): void {
    this.wantDrain = true
  }

  /** Operator: resume after a drain. */
  resume(): void {
    this.wantDrain = false
  }

  /** SIGTERM: drain, wait for the hand-offs, leave, then Exit. */
  stop(now: number): void {
    if (this.stopping === null) this.stopping = { since: now }
  }

  /**
   * Keep-serving restart: from now on heartbeats carry `pause: ms` and nothing is decided. A
   * peer that accepts such a heartbeat suspects this node no earlier than ms + expireAfterMs
   * after it arrived, so once a majority echoed one, {@link pauseDeadline} is a lease the
   * process may leave in the filter when it exits without leaving the farm.
   */
  pauseFor(ms: number, now: number): void {
    if (this.pausing === null) this.pausing = { ms, since: now }
    this.heartbeatSoon = true
  }

  /**
   * A restarted process found its filter serving an inherited lease until `deadline` (set by
   * the previous process with {@link pauseFor}): until then its heartbeats carry the rest of it
   * as `pause`, so no peer suspects it before that lease is over. 0 ends it.
   */
  holdUntil(deadline: number): void {
    this.holdingUntil = deadline
  }

  /** The filter deadline that a majority's echo of a pause heartbeat guarantees (0: not granted yet). */
  get pauseDeadline(): number {
    const p = this.pausing
    if (p === null) return 0
    const d = leaseDeadline(this.voters(), this.config.node, this.lastTickAt, (v) => {
      const g = this.peers.get(v)?.grant ?? -Infinity
      return g >= p.since ? g : -Infinity
    }, this.config.fenceAfterMs)
    return d === 0 ? 0 : d + p.ms
  }

  /** Advance time: suspicions, lease, overlay, heartbeats, decisions. Call every few ms. */
  tick(now: number): void {
    if (this.exited) return
    // after a pause of this process (SIGSTOP, a stalled host) peers' silence is our own: give them time
    if (now - this.lastTickAt > 2 * this.config.heartbeatMs) this.resumedAt = now
    this.lastTickAt = now
    // a stale report that cannot be withdrawn in time (the log stalls again) is accepted
    if (this.staleReport !== null && now - this.staleReport.since >= STALE_REPORT_MAX_MS) this.endStaleReport("timeout")
    this.updateSuspicions(now)
    this.updateOverlay(now)
    if (this.waits.size > 0) this.checkWaits(now)
    if (this.overlay.length > 0) this.updateAgreement(now)
    this.updateDeadline(now)
    if (now >= this.nextHeartbeat || this.heartbeatSoon) this.publishHeartbeat(now)
    if (this.config.role === "server") this.reconcile(now)
    this.emitFilter()
  }

  /** Take the queued actions. */
  drainActions(): Array<Action> {
    const a = this.actions
    this.actions = []
    return a
  }

  // ---- views for hosts and tests ----------------------------------------------------

  /** The state folded from the log. */
  get foldedState(): FarmState {
    return this.folded
  }

  /** The folded state with the overlay of proven-fenced peers applied. */
  get effectiveState(): FarmState {
    return this.effective
  }

  /** Peers whose failure plan is applied ahead of the log. */
  get overlayNodes(): ReadonlyArray<string> {
    return this.overlay
  }

  /** The current filter deadline (lease end). */
  get leaseDeadline(): number {
    return this.deadline
  }

  /** True once the process left the farm and asked to exit. */
  get hasExited(): boolean {
    return this.exited
  }

  /** This node's incarnation in the folded log (0 before joining). */
  get incarnation(): number {
    return findMember(this.folded, this.config.node)?.incarnation ?? 0
  }

  // ---- internals ----------------------------------------------------------------------

  private log(op: string, fields: Record<string, string | number | boolean> = {}): void {
    this.actions.push({ _tag: "Log", op, fields: { node: this.config.node, ...fields } })
  }

  /** Voters: members of the folded state not down, plus the configured witnesses. */
  private voters(): Array<string> {
    if (this.votersCache !== null && this.votersCache.seq === this.folded.seq) return this.votersCache.voters
    const out: Array<string> = []
    for (const m of this.folded.members) if (m.status !== "down") out.push(m.name)
    for (const w of this.config.witnesses) if (!out.includes(w)) out.push(w)
    this.votersCache = { seq: this.folded.seq, voters: out }
    return out
  }

  private updateSuspicions(now: number): void {
    const me = this.config.node
    const grace = Math.max(this.startedAt, this.resumedAt)
    for (const m of this.folded.members) {
      if (m.name === me) continue
      if (m.status === "down") {
        // the log removed it, but a voter that has not folded that yet may still be taking it
        // over on our word: keep the promise fresh until the peer acks or rejoins (onHeartbeat)
        const s = this.suspicions.get(m.name)
        if (s !== undefined && s.incarnation === m.incarnation) s.until = Math.max(s.until, now + this.config.holdMs)
        continue
      }
      const p = this.peers.get(m.name)
      const heardAt = p === undefined || p.acceptedAt === -Infinity ? grace : Math.max(p.acceptedAt, grace)
      const s = this.suspicions.get(m.name)
      if (s === undefined) {
        if (now - heardAt >= this.config.expireAfterMs) {
          this.suspicions.set(m.name, {
            node: m.name,
            incarnation: m.incarnation,
            heard: p === undefined ? -1 : p.acceptedSentAt,
            until: now + this.config.holdMs,
            heardAgain: false,
            taken: false
          })
          this.heartbeatSoon = true
          this.log("suspect", { peer: m.name, incarnation: m.incarnation })
        }
      } else if (s.incarnation !== m.incarnation && m.incarnation > s.incarnation) {
        // the log says the peer rejoined: its old incarnation owns nothing any more
        this.suspicions.delete(m.name)
        this.pins.delete(m.name)
      } else if (!s.heardAgain || s.taken) {
        // a taken-over peer stays suspected until the log removes it (it must rejoin: its
        // buckets went to others, who may hold flows in them)
        s.until = Math.max(s.until, now + this.config.holdMs)
      } else if (now >= s.until && this.removedAt.get(m.name) === undefined) {
        this.suspicions.delete(m.name)
        this.pins.delete(m.name)
        const p = this.peers.get(m.name)
        if (p !== undefined && p.last !== null) {
          // heard again meanwhile: grant from its latest heartbeat on
          p.acceptedSentAt = p.last.sentAt
          p.acceptedAt = now
        }
        this.log("suspicion-ended", { peer: m.name, incarnation: s.incarnation })
      }
    }
  }

  /**
   * `node`@`incarnation`'s failure plan was applied (here, or by a peer that says so): suspect
   * it for good, so that it gets no lease again before the log removes it. Without this the
   * suspicions would end `holdMs` after the node is heard again (a paused process resumes, a
   * crashed one restarts while the log stalls), the overlay would end with them and the
   * takers would drop the flows they accepted in its buckets.
   */
  private markTaken(node: string, incarnation: number, now: number, planSeq?: number): void {
    if (node === this.config.node) return
    const m = findMember(this.folded, node)
    if (m === undefined || m.status === "down" || m.incarnation !== incarnation) return
    this.pinAt(node, incarnation, planSeq ?? this.folded.seq, now)
    const s = this.suspicions.get(node)
    if (s !== undefined) {
      if (s.incarnation !== incarnation || s.taken) return
      s.taken = true
      s.until = Math.max(s.until, now + this.config.holdMs)
    } else {
      const p = this.peers.get(node)
      this.suspicions.set(node, { node, incarnation, heard: p === undefined ? -1 : p.acceptedSentAt, until: now + this.config.holdMs, heardAgain: true, taken: true })
      this.log("suspect", { peer: node, incarnation, taken: true })
    }
    this.heartbeatSoon = true
  }

  /**
   * Pin `node`'s failure plan to the folded state at `seq`, or to a lower seq heard from a
   * peer (all survivors converge on the lowest; a state no longer kept is not adopted).
   */
  private pinAt(node: string, incarnation: number, seq: number, now: number, refresh = true): void {
    const p = this.pins.get(node)
    if (p !== undefined && p.incarnation === incarnation && p.seq <= seq) return
    if (p !== undefined && p.incarnation === incarnation && !this.history.has(seq)) {
      this.log("pin-unavailable", { peer: node, seq, pinned: p.seq })
      return
    }
    this.pins.set(node, { incarnation, seq, plan: null, agreed: false, held: [], unpinned: [], at: now })
    this.log("pin", { peer: node, seq })
    this.heartbeatSoon = true
    if (refresh && this.overlay.includes(node)) this.refreshEffective(now, -1)
  }

  /** The pinned plan of `node` (null until the state it is pinned to is folded). */
  private planOf(node: string): Array<PlannedTaker> | null {
    const pin = this.pins.get(node)
    if (pin === undefined) return null
    if (pin.plan !== null) return pin.plan
    const st = this.history.get(pin.seq)
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
    return plan
  }

  /**
   * The takers of `node`'s buckets in the effective state (the pinned plan as applied here,
   * with every peer taken over at once): what DeclareFailed records, so that the log lands the
   * failures on the same takers in whatever order they are appended.
   */
  private appliedPlan(node: string): Array<PlannedTaker> {
    const plan: Array<PlannedTaker> = []
    for (let t = 0; t < this.folded.tables.length; t++) {
      const before = this.folded.tables[t]
      const after = this.effective.tables[t]
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
   * Whether every live peer this node hears publishes the same pin of `node` as this node:
   * only then does it claim its takings (two survivors with plans pinned at different seqs
   * would otherwise both take a bucket).
   */
  private pinAgreed(node: string, now: number): boolean {
    const pin = this.pins.get(node)
    if (pin === undefined || pin.plan === null) return false
    const me = this.config.node
    for (const m of this.folded.members) {
      if (m.name === me || m.name === node || m.status === "down" || this.overlay.includes(m.name) || this.suspicions.has(m.name)) continue
      const p = this.peers.get(m.name)
      if (p === undefined || p.last === null || now - p.acceptedAt >= this.config.expireAfterMs) continue
      let same = false
      for (const x of p.last.suspects) {
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
  private allCaughtUp(now: number): boolean {
    const me = this.config.node
    for (const m of this.folded.members) {
      if (m.name === me || m.status === "down" || this.overlay.includes(m.name) || this.suspicions.has(m.name)) continue
      const p = this.peers.get(m.name)
      if (p === undefined || p.last === null || now - p.acceptedAt >= this.config.expireAfterMs) continue
      if (p.last.seq < this.folded.seq) return false
    }
    return true
  }

  private updateAgreement(now: number): void {
    let changed = false
    const caughtUp = this.allCaughtUp(now)
    if (caughtUp !== this.peersCaughtUp) {
      this.peersCaughtUp = caughtUp
      for (const n of this.overlay) if ((this.pins.get(n)?.unpinned.length ?? 0) > 0) changed = true
    }
    for (const n of this.overlay) {
      const pin = this.pins.get(n)
      if (pin === undefined) continue
      const a = this.planOf(n) !== null && this.pinAgreed(n, now)
      if (a !== pin.agreed) {
        pin.agreed = a
        if (pin.held.length > 0) changed = true
        if (a) this.log("pin-agreed", { peer: n, seq: pin.seq })
      }
    }
    if (changed) {
      this.tablesDirty = true
      this.flowCountFresh = false
    }
  }

  private suspicionOf(voter: string, node: string): Suspicion | undefined {
    if (voter === this.config.node) return this.suspicions.get(node)
    const hb = this.peers.get(voter)?.last
    if (hb === null || hb === undefined) return undefined
    for (const s of hb.suspects) if (s.node === node) return s
    return undefined
  }

  private updateOverlay(now: number): void {
    // candidates: members suspected by anyone
    let any = this.suspicions.size > 0
    if (!any) {
      for (const p of this.peers.values()) {
        if (p.last !== null && p.last.suspects.length > 0) {
          any = true
          break
        }
      }
    }
    let next: Array<string> = []
    if (any) {
      const voters = this.voters()
      for (const m of this.folded.members) {
        if (m.status === "down" || m.name === this.config.node) continue
        // once applied, the overlay stands while this node's taken suspicion does (renewed until the
        // log removes the peer): a slow node seeing the majority's suspicions late let it flap
        const own = this.suspicions.get(m.name)
        const sticky = this.overlay.includes(m.name) && own !== undefined && own.taken && own.incarnation === m.incarnation
        if (sticky || majoritySuspects(voters, m.name, m.incarnation, now, this.config.fenceAfterMs, (v) => this.suspicionOf(v, m.name))) {
          next.push(m.name)
        }
      }
    }
    if (next.length === this.overlay.length && next.every((n, i) => n === this.overlay[i])) return
    for (const n of next) {
      if (!this.overlay.includes(n)) this.log("takeover", { peer: n })
      const m = findMember(this.folded, n)!
      this.markTaken(n, m.incarnation, now)
    }
    for (const n of this.overlay) if (!next.includes(n)) this.log("takeover-ended", { peer: n })
    this.overlay = next
    this.refreshEffective(now, -1)
  }

  private cause(detail?: string): Cause {
    return detail === undefined ? { kind: "daemon", by: this.config.node } : { kind: "daemon", by: this.config.node, detail }
  }

  /** Recompute the effective state; `seq` > 0 when a log entry caused it (claims then wait for acks). */
  private refreshEffective(now: number, seq: number): void {
    const before = this.effective
    let s = this.folded
    const me = this.config.node
    const kept = this.overlay.filter((n) => {
      const m = findMember(s, n)
      return m !== undefined && m.status !== "down"
    })
    for (const n of kept) {
      const m = findMember(s, n)!
      if (this.pins.get(n)?.incarnation !== m.incarnation) this.pinAt(n, m.incarnation, this.folded.seq, now, false)
      const pinned = this.planOf(n)
      // a pinned taker that is taken over too takes nothing (its buckets follow its own plan)
      const plan = pinned === null || kept.length === 1 ? pinned : pinned.filter((x) => !kept.includes(x.to))
      const cause: Cause = { kind: "lease", by: me }
      const ev: FarmEvent = plan === null
        ? { _tag: "MemberFailed", v: EVENT_VERSION, cause, node: n, detectedBy: me, incarnation: m.incarnation }
        : { _tag: "MemberFailed", v: MEMBER_FAILED_PLAN_VERSION, cause, node: n, detectedBy: me, incarnation: m.incarnation, plan }
      const prev = s
      s = applyEvent(s, ev)
      // what this node takes from n: held back until the pin is agreed
      const held: Array<number> = []
      const unpinned: Array<number> = []
      let mine: Set<number> | null = null
      for (let t = 0; t < s.tables.length; t++) {
        const ta = prev.tables[t]
        if (ta === s.tables[t]) continue
        for (let b = 0; b < BUCKETS; b++) {
          if (!heldBy(ta[b], n) || claimant(s, t, b) !== me) continue
          const idx = t * BUCKETS + b
          held.push(idx)
          if (mine === null) {
            mine = new Set()
            for (const x of plan ?? []) if (x.to === me) mine.add(x.table * BUCKETS + x.bucket)
          }
          // a bucket moving from this node to n goes back to this node: its own flows, nobody else's
          if (!mine.has(idx) && !(ta[b].state === "moving" && ta[b].owner === me)) unpinned.push(idx)
        }
      }
      const pin = this.pins.get(n)
      if (seq > 0) this.peersCaughtUp = false // a new entry: the peers ack it first
      if (pin !== undefined) {
        pin.held = held
        pin.unpinned = unpinned
        if (plan === null) pin.agreed = false
      }
    }
    this.overlay = kept
    this.effective = s
    this.updateClaims(before, s, seq, now)
    this.tablesDirty = true
    this.flowCountFresh = false
  }

  private updateClaims(before: FarmState, after: FarmState, seq: number, now: number): void {
    const me = this.config.node
    const n = Math.max(before.tables.length, after.tables.length)
    for (let t = 0; t < n; t++) {
      const ta = before.tables[t]
      const tb = after.tables[t]
      if (ta === tb) continue
      for (let b = 0; b < BUCKETS; b++) {
        const next = claimant(after, t, b)
        const idx = t * BUCKETS + b
        if (next !== me) {
          if (this.waits.size > 0) this.waits.delete(idx)
          continue
        }
        const prev = claimant(before, t, b)
        let peer = prev
        let inbound = false
        if (prev === me) {
          // the receiver of a move becomes its owner (hand-off completed, the old owner failed its
          // checks): it takes the old owner's established flows only once the old owner folded
          // that, as the old owner keeps accepting them until then (seed 69, old timing: a UDP
          // packet accepted twice); meanwhile it keeps taking new flows only (MOVING_IN)
          const x = ta?.[b]
          const y = tb?.[b]
          if (x === undefined || y === undefined || x.state !== "moving" || y.state === "moving" || x.owner === null || x.owner === me) continue
          peer = x.owner
          inbound = true
        }
        if (peer === null) continue
        if (this.overlay.includes(peer)) continue
        const pm = findMember(this.folded, peer)
        if (pm !== undefined && pm.status === "down") continue // taken by the log after a majority proved it fenced
        this.waits.set(idx, { peer, seq: seq > 0 ? seq : this.folded.seq, inbound })
      }
    }
    if (this.waits.size > 0) this.checkWaits(now)
  }

  private checkWaits(now: number): void {
    let changed = false
    for (const [idx, w] of this.waits) {
      const p = this.peers.get(w.peer)
      const acked = p?.last !== null && p?.last !== undefined && p.last.seq >= w.seq
      const pm = findMember(this.folded, w.peer)
      const gone = (pm === undefined || pm.status === "down") && (p === undefined || now - p.acceptedAt > this.config.expireAfterMs)
      if (acked || gone || this.overlay.includes(w.peer)) {
        this.waits.delete(idx)
        changed = true
      }
    }
    if (changed) {
      this.tablesDirty = true
      this.flowCountFresh = false
    }
  }

  private updateDeadline(now: number): void {
    const d = leaseDeadline(this.voters(), this.config.node, now, (v) => this.peers.get(v)?.grant ?? -Infinity, this.config.fenceAfterMs)
    const wasFenced = now >= this.deadline
    this.deadline = d
    const fenced = now >= d
    if (fenced !== wasFenced && this.config.role === "server" && findMember(this.folded, this.config.node) !== undefined) {
      this.log(fenced ? "fenced" : "unfenced", { deadline: d })
    }
  }

  private serving(): boolean {
    if (this.exited || this.config.role !== "server") return false
    // a new process serves only once caught up; later, a log reader lagging behind the head
    // keeps the tables it has (a peer claims this node's buckets only after its ack, §5)
    if (!this.caughtUp) {
      if (this.folded.seq < this.knownHead) return false
      this.caughtUp = true
    }
    const m = findMember(this.folded, this.config.node)
    return m !== undefined && m.status !== "down"
  }

  private computeTables(): Uint8Array {
    if (!this.serving()) {
      this.prevServed = false
      return ZERO_TABLES
    }
    // a stale unhealthy report being withdrawn: keep serving what this node served before it
    if (this.staleReport !== null && this.prevServed) return this.tables
    const t = localTables(this.effective.tables, this.config.node)
    // held back: keep the flows this server holds (as moving out), take no new ones; a bucket
    // it did not serve stays foreign (flows it held there before losing it, e.g. before its
    // failure or unhealthy report, are no longer its own: their packets go to the owner)
    // (a restarted daemon's first tables keep MOVING_OUT: the filter it inherits served them)
    const prev = this.prevServed ? this.tables : null
    this.prevServed = true
    const hold = (idx: number): number => (prev !== null && prev[idx] === LocalBucket.FOREIGN ? LocalBucket.FOREIGN : LocalBucket.MOVING_OUT)
    for (const [idx, w] of this.waits) t[idx] = !w.inbound ? hold(idx) : t[idx] === LocalBucket.OWNED ? LocalBucket.MOVING_IN : t[idx]
    // takings from a peer whose pinned plan the live peers do not all publish yet
    for (const n of this.overlay) {
      const pin = this.pins.get(n)
      if (pin === undefined) continue
      if (!pin.agreed) for (const idx of pin.held) t[idx] = hold(idx)
      else if (!this.peersCaughtUp) for (const idx of pin.unpinned) t[idx] = hold(idx)
    }
    return t
  }

  private emitFilter(): void {
    if (this.config.role !== "server") return
    let changed = false
    if (this.tablesDirty) {
      this.tablesDirty = false
      const t = this.computeTables()
      const prev = this.tables
      if (t.length !== prev.length || !sameBytes(t, prev)) {
        this.tables = t
        changed = true
      }
    }
    if (this.lastEmittedTables === null) changed = true
    if (!changed && this.deadline === this.lastEmittedDeadline) return
    this.lastEmittedTables = this.tables
    this.lastEmittedDeadline = this.deadline
    this.actions.push({ _tag: "SetFilter", tables: this.tables, tablesChanged: changed, deadlineMs: this.deadline })
  }

  /** Open hand-offs of the folded state and their old owners, computed once per folded seq. */
  private handoffView(): { open: Array<string>; owners: Map<string, Set<string>>; mine: Map<string, Array<number>> } {
    if (this.handoffCache !== null && this.handoffCache.seq === this.folded.seq) return this.handoffCache
    const open: Array<string> = []
    const owners = new Map<string, Set<string>>()
    const mine = new Map<string, Array<number>>()
    for (let ti = 0; ti < this.folded.tables.length; ti++) {
      const t = this.folded.tables[ti]
      for (let bi = 0; bi < t.length; bi++) {
        const b = t[bi]
        if (b.state !== "moving") continue
        if (b.owner === this.config.node) {
          const m = mine.get(b.handoff)
          if (m === undefined) mine.set(b.handoff, [ti * BUCKETS + bi])
          else m.push(ti * BUCKETS + bi)
        }
        let o = owners.get(b.handoff)
        if (o === undefined) {
          o = new Set()
          owners.set(b.handoff, o)
          open.push(b.handoff)
        }
        o.add(b.owner)
      }
    }
    this.handoffCache = { seq: this.folded.seq, open, owners, mine }
    return this.handoffCache
  }

  private doneHandoffs(now: number): Array<string> {
    const me = this.config.node
    const out: Array<string> = []
    const view = this.handoffView()
    for (const h of view.open) {
      if (!view.owners.get(h)!.has(me)) continue
      const started = this.handoffStart.get(h) ?? now
      let flows = this.movingOutFlows
      if (this.bucketFlows !== null) flows = this.bucketFlows.get(h) ?? 1
      if ((this.flowCountFresh && flows === 0) || now - started >= this.config.handoffMaxMs) out.push(h)
    }
    return out
  }

  private publishHeartbeat(now: number): void {
    this.heartbeatSoon = false
    this.nextHeartbeat = now + this.config.heartbeatMs
    const echo: Array<readonly [string, number]> = []
    for (const [name, p] of this.peers) {
      if (p.acceptedSentAt < 0 || this.suspicions.has(name)) continue
      if (now - p.acceptedAt >= this.config.expireAfterMs) continue
      echo.push([name, p.acceptedSentAt])
    }
    const suspects: Array<Suspicion> = []
    for (const s of this.suspicions.values()) {
      const pin = s.taken ? this.pins.get(s.node) : undefined
      suspects.push(
        s.taken
          ? pin !== undefined && pin.incarnation === s.incarnation
            ? { node: s.node, incarnation: s.incarnation, heard: s.heard, until: s.until, taken: true, planSeq: pin.seq }
            : { node: s.node, incarnation: s.incarnation, heard: s.heard, until: s.until, taken: true }
          : { node: s.node, incarnation: s.incarnation, heard: s.heard, until: s.until }
      )
    }
    const hb: Heartbeat = {
      node: this.config.node,
      incarnation: this.incarnation,
      seq: this.staleReport !== null ? Math.min(this.folded.seq, this.staleReport.seq - 1) : this.folded.seq,
      sentAt: now,
      echo,
      suspects,
      done: this.config.role === "server" ? this.doneHandoffs(now) : [],
      ...(this.pausing !== null ? { pause: this.pausing.ms } : this.holdingUntil > now ? { pause: Math.ceil(this.holdingUntil - now) } : {})
    }
    this.actions.push({ _tag: "PublishHeartbeat", heartbeat: hb })
  }

  private append(cmd: Command, msgId: string, now: number): boolean {
    const key = `${msgId}@${this.folded.seq}`
    if (this.refused.has(key)) return false
    const r = decide(cmd, this.folded)
    if (Result.isFailure(r)) {
      this.refused.add(key)
      this.log("decision-refused", { command: cmd._tag, reason: r.failure.reason })
      return false
    }
    if (r.success.length === 0) return false
    this.inflight = { msgId, at: now }
    this.actions.push({ _tag: "Append", events: r.success, expectLastSeq: this.folded.seq, msgId })
    this.log("append", { command: cmd._tag, msgId, seq: this.folded.seq })
    return true
  }

  private allOldOwnersDone(h: string, now: number): boolean {
    const owners = this.handoffView().owners.get(h) ?? new Set<string>()
    for (const o of owners) {
      if (o === this.config.node) {
        if (!this.doneHandoffs(now).includes(h)) return false
        continue
      }
      if (this.overlay.includes(o)) continue
      const p = this.peers.get(o)
      const recent = p !== undefined && p.last !== null && now - p.acceptedAt < this.config.expireAfterMs
      if (!recent || !p!.last!.done.includes(h)) return false
    }
    return true
  }

  private reconcile(now: number): void {
    if (this.exited || this.pausing !== null) return
    if (this.inflight !== null) {
      if (now - this.inflight.at < 5000) return
      this.inflight = null
    }
    if (now < this.retryAt || this.folded.seq < this.waitSeq || this.folded.seq < this.knownHead) return
    const me = this.config.node
    const seq = this.folded.seq
    // 1. failures proven by a majority: make the log say so (first, in name order); a node
    // without a lease (itself taken over, e.g. restarted during a stall) records no plan: its
    // own buckets would be in it
    for (const n of this.overlay) {
      const m = findMember(this.folded, n)
      if (m === undefined || m.status === "down") continue
      if (this.config.role === "server" && now >= this.deadline) return
      // the log records the takers this node applied (the same pin as every live peer once agreed)
      const pin = this.pins.get(n)
      // once agreed (or, with a peer that never publishes a pin, after expireAfterMs)
      if (pin === undefined || this.planOf(n) === null || (!pin.agreed && now - pin.at < this.config.expireAfterMs)) return
      const plan = this.appliedPlan(n)
      if (this.append({ _tag: "DeclareFailed", node: n, by: me, cause: { kind: "lease", by: me }, plan }, `failed-${n}-${m.incarnation}`, now)) return
    }
    // wait only while a proven failure is not in the log yet (a dead peer stays suspected for ever)
    if (this.overlay.some((n) => { const x = findMember(this.folded, n); return x !== undefined && x.status !== "down" })) return
    const m = findMember(this.folded, me)
    const c = this.cause()
    // a node without a lease asks for no buckets (it could not serve them)
    const leased = now < this.deadline
    // 2. own membership
    if (this.stopping !== null) {
      if (m === undefined || m.status === "down") {
        this.exited = true
        this.log("exit", {})
        this.actions.push({ _tag: "Exit" })
        return
      }
      const overdue = now - this.stopping.since >= this.config.stopMaxMs
      if (m.status === "joining" || m.status === "unhealthy" || (m.status === "draining" && (m.drained || holdings(this.folded, me) === 0 || overdue))) {
        if (this.append({ _tag: "Leave", node: me, cause: c }, `leave-${me}-${m.incarnation}@${seq}`, now)) return
      } else if (m.status === "up") {
        if (this.append({ _tag: "Drain", node: me, cause: c }, `drain-${me}-${m.incarnation}@${seq}`, now)) return
      }
    } else if (m === undefined || m.status === "down") {
      if (!leased) return
      const cmd: Command = {
        _tag: "Join", node: me, address: this.config.address, weight: this.config.weight, priority: this.config.priority,
        rulesDigest: this.config.rulesDigest, cause: c
      }
      if (this.append(cmd, `join-${me}-${(m?.incarnation ?? 0) + 1}@${seq}`, now)) return
    } else if (m.status === "joining") {
      if (this.healthy && leased && !this.wantDrain && this.append({ _tag: "Ready", node: me, cause: c }, `ready-${me}-${m.incarnation}@${seq}`, now)) return
    } else if (m.status === "up") {
      if (!this.healthy) {
        if (this.append({ _tag: "ReportUnhealthy", node: me, checker: this.failing.checker, reason: this.failing.reason, cause: { kind: "checker", by: me, detail: `${this.failing.checker}: ${this.failing.reason}` } }, `unhealthy-${me}-${m.incarnation}@${seq}`, now)) return
      } else if (this.wantDrain) {
        if (this.append({ _tag: "Drain", node: me, cause: c }, `drain-${me}-${m.incarnation}@${seq}`, now)) return
      }
    } else if (m.status === "unhealthy") {
      const restore = this.staleReport !== null ? this.restoreOf(this.staleReport.seq) : null
      const cmd: Command = restore !== null && restore.length > 0
        ? { _tag: "ReportRecovered", node: me, cause: { kind: "checker", by: me, detail: "stale unhealthy report withdrawn" }, restore }
        : { _tag: "ReportRecovered", node: me, cause: { kind: "checker", by: me } }
      if (this.healthy && leased && this.append(cmd, `recovered-${me}-${m.incarnation}@${seq}`, now)) return
    } else if (m.status === "draining") {
      if (!this.wantDrain && this.healthy && leased && this.append({ _tag: "Resume", node: me, cause: c }, `resume-${me}-${m.incarnation}@${seq}`, now)) return
    }
    // 3. hand-offs whose old owners are all done
    const open = this.handoffView().open
    for (const h of open) {
      if (this.allOldOwnersDone(h, now) && this.append({ _tag: "CompleteHandoff", handoff: h, cause: c }, `complete-${h}`, now)) return
    }
    // 4. convergence: the lowest-named up member rebalances when nothing moves
    if (open.length === 0 && m !== undefined && m.status === "up" && leased) {
      if (this.rebalanceCheckedAt !== seq) {
        this.rebalanceCheckedAt = seq
        const firstUp = this.folded.members.find((x) => x.status === "up")
        this.rebalanceWanted = firstUp?.name === me && rebalanceMoves(this.folded).length > 0
      }
      if (this.rebalanceWanted && this.append({ _tag: "Rebalance", cause: c }, `rebalance@${seq}`, now)) return
    }
  }
}

const sameBucket = (a: { state: string; owner: string | null }, b: { state: string; owner: string | null }): boolean =>
  a === b || JSON.stringify(a) === JSON.stringify(b)

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => {
  if (a === b) return true
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}
