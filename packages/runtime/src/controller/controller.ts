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
 *
 * This class holds the state and orders the steps; the rules live in pure helpers:
 * `suspicions.ts` (own suspicions), `overlay.ts` (the overlay and what this node takes),
 * `pins.ts` (pinned failure plans and their agreement), `claims.ts` (claims waiting for acks,
 * held-back tables), `handoffs.ts` (open hand-offs, done, completable), `heartbeat.ts` (the
 * heartbeat published), `decisions.ts` (what to append), `liveness.ts` (lease, majority).
 */
import { applyEntry, BUCKETS, type Command, decide, type FarmState, findMember, initialState, localTables, MAX_TABLES } from "@vipfarm/domain"
import { Result } from "effect"
import { type ClaimWait, holdBack, releaseWaits, updateWaits } from "./claims.ts"
import { decisions, restoreOf } from "./decisions.ts"
import { allOldOwnersDone, doneHandoffs, type HandoffView, handoffView } from "./handoffs.ts"
import { buildHeartbeat } from "./heartbeat.ts"
import { type Heard, leaseDeadline, type OwnSuspicion, type PeerView } from "./liveness.ts"
import { applyFailure, nextOverlay, takings } from "./overlay.ts"
import { allCaughtUp, appliedPlan, HISTORY, type Pin, pinAgreed, planOf, planWith } from "./pins.ts"
import { updateSuspicions } from "./suspicions.ts"
import type { Action, AppendResult, ControllerConfig, Heartbeat } from "./types.ts"

const ZERO_TABLES = new Uint8Array(MAX_TABLES * BUCKETS)

/** A hand-off completes in part (its buckets without flows) only once open this long: most complete whole before. */
const PARTIAL_AFTER_MS = 2000

/** How long a node keeps a stale unhealthy report unacknowledged while it withdraws it (§8). */
const STALE_REPORT_MAX_MS = 5000

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
  private readonly waits = new Map<number, ClaimWait>()
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
  /** Appends failed in a row (timeout, log unavailable): the retry backs off (see {@link retryDelay}). */
  private appendFailures = 0
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
  /** Per open hand-off of this node's (onFlowCounts): the buckets where it still holds flows. */
  private busyBuckets: Map<string, Array<number>> | null = null
  /** The last flow count was taken with the current tables installed. */
  private flowCountFresh = false
  private nextHeartbeat = 0
  private heartbeatSoon = false
  /** Whether a rebalance is wanted, checked once per folded seq. */
  private readonly rebalance = { checkedAt: -1, wanted: false }
  private actions: Array<Action> = []
  private votersCache: { seq: number; voters: Array<string> } | null = null
  private handoffCache: { seq: number; view: HandoffView } | null = null
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
      p = { last: null, lastAt: -Infinity, acceptedSentAt: -1, acceptedAt: -Infinity, grant: -Infinity }
      this.peers.set(hb.node, p)
    }
    p.last = hb
    p.lastAt = now
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
    if (result.ok || result.error === "wrong-last-seq") this.appendFailures = 0
    if (result.ok) {
      this.waitSeq = Math.max(this.waitSeq, result.seq)
      if (result.seq > this.knownHead) this.knownHead = result.seq
      this.log("appended", { msgId, seq: result.seq, duplicate: result.duplicate })
    } else if (result.error === "wrong-last-seq") {
      this.waitSeq = Math.max(this.waitSeq, result.lastSeq)
      if (result.lastSeq > this.knownHead) this.knownHead = result.lastSeq
      this.log("append-conflict", { msgId, lastSeq: result.lastSeq })
    } else {
      this.appendFailures++
      const wait = retryDelay(this.config.retryMs, this.appendFailures, this.config.node)
      this.retryAt = now + wait
      this.log("append-failed", { msgId, error: result.error, retryMs: Math.round(wait) })
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
   * Number of flows this server holds in buckets moving away from it, counted with the
   * tables of the last SetFilter installed (a count taken before counts for nothing).
   */
  onFlowCount(movingOutFlows: number): void {
    this.movingOutFlows = movingOutFlows
    this.bucketFlows = null
    this.busyBuckets = null
    this.flowCountFresh = !this.tablesDirty
  }

  /**
   * Flows this server holds per bucket (index table*BUCKETS+bucket), counted with the tables
   * of the last SetFilter installed. Preferred over {@link onFlowCount}: each hand-off then
   * waits only for its own buckets' flows, so overlapping hand-offs do not hold each other open.
   */
  onFlowCounts(perBucket: ArrayLike<number>): void {
    const sums = new Map<string, number>()
    const busy = new Map<string, Array<number>>()
    for (const [h, idxs] of this.handoffView().mine) {
      let n = 0
      const held: Array<number> = []
      for (const idx of idxs) {
        n += perBucket[idx]
        if (perBucket[idx] > 0) held.push(idx)
      }
      sums.set(h, n)
      busy.set(h, held)
    }
    this.bucketFlows = sums
    this.busyBuckets = busy
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
    const st = {
      me: this.config.node, folded: this.folded, peers: this.peers, suspicions: this.suspicions, pins: this.pins, removedAt: this.removedAt,
      holdMs: this.config.holdMs, expireAfterMs: this.config.expireAfterMs, grace: Math.max(this.startedAt, this.resumedAt),
      log: (op: string, fields: Record<string, string | number | boolean>) => this.log(op, fields)
    }
    if (updateSuspicions(st, now)) this.heartbeatSoon = true
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
  private planOf(node: string): ReturnType<typeof planOf> {
    return planOf(this.pins, this.history, node)
  }

  /** What this node has heard, for the overlay, pin agreement and acks (a view of its fields). */
  private heard(): Heard {
    return {
      me: this.config.node, folded: this.folded, overlay: this.overlay, suspicions: this.suspicions, peers: this.peers,
      fenceAfterMs: this.config.fenceAfterMs, expireAfterMs: this.config.expireAfterMs
    }
  }

  private updateAgreement(now: number): void {
    let changed = false
    const heard = this.heard()
    const caughtUp = allCaughtUp(heard, now)
    if (caughtUp !== this.peersCaughtUp) {
      this.peersCaughtUp = caughtUp
      for (const n of this.overlay) if ((this.pins.get(n)?.unpinned.length ?? 0) > 0) changed = true
    }
    for (const n of this.overlay) {
      const pin = this.pins.get(n)
      if (pin === undefined) continue
      const a = this.planOf(n) !== null && pinAgreed(heard, pin, n, now)
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

  private updateOverlay(now: number): void {
    const next = nextOverlay(this.heard(), () => this.voters(), now)
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
      const prev = s
      const plan = planWith(this.pins, this.history, this.folded, n, kept)
      s = applyFailure(s, me, n, m.incarnation, plan === null ? null : plan.applied)
      // what this node takes from n: held back until the pin is agreed
      const { held, unpinned } = takings(prev, s, me, n, plan === null ? null : plan.pinned)
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
    updateWaits(this.waits, this.config.node, this.folded, this.overlay, before, after, seq)
    if (this.waits.size > 0) this.checkWaits(now)
  }

  private checkWaits(now: number): void {
    if (releaseWaits(this.waits, this.peers, this.folded, this.overlay, this.config.expireAfterMs, now, this.config.node, this.history)) {
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
    holdBack(t, prev, this.waits, this.overlay, this.pins, this.peersCaughtUp)
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
  private handoffView(): HandoffView {
    if (this.handoffCache !== null && this.handoffCache.seq === this.folded.seq) return this.handoffCache.view
    this.handoffCache = { seq: this.folded.seq, view: handoffView(this.folded, this.config.node) }
    return this.handoffCache.view
  }

  private doneHandoffs(now: number): Array<string> {
    return doneHandoffs(this.handoffView(), this.config.node, this.handoffStart, { movingOutFlows: this.movingOutFlows, bucketFlows: this.bucketFlows, flowCountFresh: this.flowCountFresh }, this.config.handoffMaxMs, now)
  }

  /** The open hand-offs this node is an old owner of and not done with, and its buckets with flows in each (null: count not fresh). */
  private ownBusy(now: number): Array<readonly [string, ReadonlyArray<number>]> | null {
    if (!this.flowCountFresh || this.busyBuckets === null) return null
    const done = this.doneHandoffs(now)
    const out: Array<readonly [string, ReadonlyArray<number>]> = []
    for (const [h, idxs] of this.busyBuckets) if (!done.includes(h) && this.handoffView().mine.has(h)) out.push([h, idxs])
    return out
  }

  /**
   * The buckets of open hand-off `h` that can complete while others cannot: every old owner
   * has told its buckets with flows (this node by its fresh count, a peer by its recent
   * heartbeat's `busy`, or is done, or taken over), some bucket is still held and some is not.
   * Waits PARTIAL_AFTER_MS after the hand-off started: most complete whole before.
   */
  private partialCompletion(h: string, now: number): Array<{ table: number; bucket: number }> | null {
    const started = this.handoffStart.get(h)
    if (started === undefined || now - started < PARTIAL_AFTER_MS) return null
    const view = this.handoffView()
    const busy = new Set<number>()
    for (const o of view.owners.get(h) ?? []) {
      if (o === this.config.node) {
        const own = this.ownBusy(now)
        if (own === null) return null
        for (const [x, idxs] of own) if (x === h) for (const i of idxs) busy.add(i)
        continue
      }
      if (this.overlay.includes(o)) continue
      const p = this.peers.get(o)
      if (p === undefined || p.last === null || now - p.acceptedAt >= this.config.expireAfterMs) return null
      if (p.last.done.includes(h)) continue
      const b = p.last.busy?.find(([x]) => x === h)
      if (b === undefined) return null
      for (const i of b[1]) busy.add(i)
    }
    if (busy.size === 0) return null
    const out: Array<{ table: number; bucket: number }> = []
    this.folded.tables.forEach((t, ti) => t.forEach((b, bi) => {
      if (b.state === "moving" && b.handoff === h && !busy.has(ti * BUCKETS + bi)) out.push({ table: ti, bucket: bi })
    }))
    return out.length > 0 ? out : null
  }

  private publishHeartbeat(now: number): void {
    this.heartbeatSoon = false
    this.nextHeartbeat = now + this.config.heartbeatMs
    const hb = buildHeartbeat({
      node: this.config.node,
      incarnation: this.incarnation,
      seq: this.staleReport !== null ? Math.min(this.folded.seq, this.staleReport.seq - 1) : this.folded.seq,
      peers: this.peers,
      suspicions: this.suspicions,
      pins: this.pins,
      expireAfterMs: this.config.expireAfterMs,
      done: this.config.role === "server" ? this.doneHandoffs(now) : [],
      busy: this.config.role === "server" ? this.ownBusy(now) : null,
      pausingMs: this.pausing !== null ? this.pausing.ms : null,
      holdingUntil: this.holdingUntil
    }, now)
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

  /**
   * A peer heard lately says this node's incarnation was taken over (a taken suspicion): its
   * failure is going to the log, and until it folds this process decides nothing (§7). A
   * process restarted during a log stall appended a CompleteHandoff with a rebalance decided on a
   * view in which it still served, ahead of its own failure (sweep seed 1639).
   */
  private takenOver(now: number): boolean {
    const me = this.config.node
    const m = findMember(this.folded, me)
    if (m === undefined || m.status === "down") return false
    for (const p of this.peers.values()) {
      if (p.last === null || now - p.lastAt >= this.config.expireAfterMs) continue
      for (const x of p.last.suspects) if (x.node === me && x.taken === true && x.incarnation === m.incarnation) return true
    }
    return false
  }

  private reconcile(now: number): void {
    if (this.exited || this.pausing !== null) return
    if (this.inflight !== null) {
      if (now - this.inflight.at < 5000) return
      this.inflight = null
    }
    if (now < this.retryAt || this.folded.seq < this.waitSeq || this.folded.seq < this.knownHead) return
    if (this.takenOver(now)) return
    const me = this.config.node
    const candidates = decisions({
      config: this.config, folded: this.folded, overlay: this.overlay, pins: this.pins, deadline: this.deadline, healthy: this.healthy,
      wantDrain: this.wantDrain, failing: this.failing, staleReport: this.staleReport, stopping: this.stopping,
      planOf: (n) => this.planOf(n),
      appliedPlan: (n) => appliedPlan(this.folded, this.effective, n),
      restoreOf: (seq) => restoreOf(this.history, this.folded, me, seq),
      handoffs: () => this.handoffView(),
      allOldOwnersDone: (h) =>
        allOldOwnersDone(this.handoffView(), h, me, () => this.doneHandoffs(now), this.overlay, this.peers, this.config.expireAfterMs, now),
      peersAcked: () => allCaughtUp(this.heard(), now),
      partialCompletion: (h) => this.partialCompletion(h, now),
      rebalance: this.rebalance
    }, now)
    for (const d of candidates) {
      if (d._tag === "Exit") {
        this.exited = true
        this.log("exit", {})
        this.actions.push({ _tag: "Exit" })
        return
      }
      if (this.append(d.cmd, d.msgId, now)) return
    }
  }
}

/** The longest wait between two appends while the log keeps failing. */
export const RETRY_MAX_MS = 1000

/**
 * The wait before the next append after `failures` failed in a row: `retryMs` doubled per
 * failure, at most {@link RETRY_MAX_MS}, with jitter (50-100 %, drawn from the node name and the
 * count, so the simulator stays deterministic). A NATS node that answers "jetstream is not
 * enabled" for seconds after a partition healed was asked every ~60 ms by every server behind it.
 */
export const retryDelay = (retryMs: number, failures: number, node: string): number => {
  const base = Math.min(RETRY_MAX_MS, retryMs * 2 ** Math.max(0, Math.min(failures - 1, 20)))
  let h = 0x811c9dc5 ^ failures
  for (let i = 0; i < node.length; i++) h = Math.imul(h ^ node.charCodeAt(i), 0x01000193) >>> 0
  return base * (0.5 + 0.5 * ((h >>> 0) / 0xffffffff))
}

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => {
  if (a === b) return true
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}
