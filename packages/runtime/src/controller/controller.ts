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
  holdings
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

/** The pure controller of one node. */
export class NodeController {
  readonly config: ControllerConfig
  private folded: FarmState
  private effective: FarmState
  private overlay: Array<string> = []
  private knownHead = 0
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
  private readonly waits = new Map<number, { peer: string; seq: number }>()
  /** Seq at which a node was last removed by the log (MemberFailed / MemberLeft). */
  private readonly removedAt = new Map<string, number>()
  private readonly handoffStart = new Map<string, number>()
  private inflight: { msgId: string; at: number } | null = null
  private waitSeq = 0
  private retryAt = 0
  private readonly refused = new Set<string>()
  private healthy = false
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
    if (this.folded.rejected !== before.rejected) this.log("entry-rejected", { seq, reason: this.folded.lastRejection?.reason ?? "" })
    // a record is one event or a batch {v, events} decided together (domain applyEntry)
    const batch = (entry as { events?: unknown } | null)?.events
    for (const e of (Array.isArray(batch) ? batch : [entry]) as Array<{ _tag?: string; handoff?: string; node?: string } | null>) {
      if (e === null || typeof e !== "object") continue
      if (e._tag === "HandoffStarted" && typeof e.handoff === "string") this.handoffStart.set(e.handoff, now)
      if ((e._tag === "MemberFailed" || e._tag === "MemberLeft") && typeof e.node === "string") this.removedAt.set(e.node, seq)
    }
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
    for (const x of hb.suspects) if (x.taken === true) this.markTaken(x.node, x.incarnation, now)
    if (this.waits.size > 0) this.checkWaits(now)
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
    this.updateSuspicions(now)
    this.updateOverlay(now)
    if (this.waits.size > 0) this.checkWaits(now)
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
      } else if (!s.heardAgain || s.taken) {
        // a taken-over peer stays suspected until the log removes it (it must rejoin: its
        // buckets went to others, who may hold flows in them)
        s.until = Math.max(s.until, now + this.config.holdMs)
      } else if (now >= s.until && this.removedAt.get(m.name) === undefined) {
        this.suspicions.delete(m.name)
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
  private markTaken(node: string, incarnation: number, now: number): void {
    if (node === this.config.node) return
    const m = findMember(this.folded, node)
    if (m === undefined || m.status === "down" || m.incarnation !== incarnation) return
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
        if (majoritySuspects(voters, m.name, m.incarnation, now, this.config.fenceAfterMs, (v) => this.suspicionOf(v, m.name))) {
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
    const kept: Array<string> = []
    for (const n of this.overlay) {
      const m = findMember(s, n)
      if (m === undefined || m.status === "down") continue
      kept.push(n)
      const ev: FarmEvent = { _tag: "MemberFailed", v: EVENT_VERSION, cause: { kind: "lease", by: this.config.node }, node: n, detectedBy: this.config.node, incarnation: m.incarnation }
      s = applyEvent(s, ev)
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
        if (prev === me || prev === null) continue
        if (this.overlay.includes(prev)) continue
        const pm = findMember(this.folded, prev)
        if (pm !== undefined && pm.status === "down") continue // taken by the log after a majority proved it fenced
        this.waits.set(idx, { peer: prev, seq: seq > 0 ? seq : this.folded.seq })
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
    if (this.folded.seq < this.knownHead) return false
    const m = findMember(this.folded, this.config.node)
    return m !== undefined && m.status !== "down"
  }

  private computeTables(): Uint8Array {
    if (!this.serving()) return ZERO_TABLES
    const t = localTables(this.effective.tables, this.config.node)
    // held back: keep the flows this server holds (as moving out), take no new ones
    for (const idx of this.waits.keys()) t[idx] = LocalBucket.MOVING_OUT
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
      suspects.push(s.taken ? { node: s.node, incarnation: s.incarnation, heard: s.heard, until: s.until, taken: true } : { node: s.node, incarnation: s.incarnation, heard: s.heard, until: s.until })
    }
    const hb: Heartbeat = {
      node: this.config.node,
      incarnation: this.incarnation,
      seq: this.folded.seq,
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
    // 1. failures proven by a majority: make the log say so (first, in name order)
    for (const n of this.overlay) {
      const m = findMember(this.folded, n)
      if (m === undefined || m.status === "down") continue
      if (this.append({ _tag: "DeclareFailed", node: n, by: me, cause: { kind: "lease", by: me } }, `failed-${n}-${m.incarnation}`, now)) return
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
      if (this.healthy && leased && this.append({ _tag: "ReportRecovered", node: me, cause: { kind: "checker", by: me } }, `recovered-${me}-${m.incarnation}@${seq}`, now)) return
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

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => {
  if (a === b) return true
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}
