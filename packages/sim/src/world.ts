/**
 * The simulated world: the event loop, the network (core NATS pub/sub with delay, loss,
 * cut links and partitions), the NATS JetStream log (ordered conditional appends with
 * msg-id dedupe, delivery delay, leader-election stalls, NATS nodes going down), and the
 * processes (servers running the real node controller, witnesses), their filters and the
 * bucket-level invariants. Client traffic lives in traffic.ts.
 */
import { BUCKETS, MAX_TABLES, EVENT_VERSION, type FarmEvent } from "@vipfarm/domain"
import { NodeController, type Action, type ControllerConfig, type Heartbeat, majority } from "../../runtime/src/controller/index.ts"
import { claimsNew } from "./filterAdapter.ts"
import { Prng } from "./prng.ts"
import { EventQueue } from "./queue.ts"
import type { TimelineLine, Violation } from "./report.ts"
import type { Setup } from "./setup.ts"

/** Maximum servers with a non-foreign code for one bucket tracked per bucket. */
export const MAXC = 8
const SLOTS = MAX_TABLES * BUCKETS
const ZERO = new Uint8Array(SLOTS)

/** A process endpoint: a server or a witness. */
export interface Proc {
  readonly idx: number
  readonly name: string
  readonly role: "server" | "witness"
  weight: number
  ctl: NodeController | null
  running: boolean
  paused: boolean
  pausedQueue: Array<() => void>
  slowMs: number
  /** Until then the log reader delivers nothing (a consumer on a cut-off NATS node). */
  readerStallUntil: number
  healthy: boolean
  boot: number
  logDelivered: number
  /** The operator wants it in the farm (false after stop/crash until start/restart). */
  intent: boolean
  crashed: boolean
  /** The simulated application's process is dead (its flows are lost to the fault). */
  appDown: boolean
}

/** What the simulated application's policy last told the farm (see app.ts). */
export interface AppStanding {
  readonly healthy: boolean
  readonly failing?: { readonly checker: string; readonly reason: string }
}

/** A failover being measured. */
interface PendingFailover {
  node: string
  fault: string
  atMs: number
  idxs: Array<number>
  total: number
  budgetApplies: boolean
  doneAt: number | null
  /** A server that does not count as the buckets' new owner (a killed daemon's filter still claims them until its deadline). */
  exclude: number
}

/** Options of a run that change what is simulated (for tests of the checks themselves). */
export interface WorldOptions {
  /** A deliberately broken filter: this server ignores its deadline (never fenced). */
  readonly ignoreFencing?: string
}

/** The world of one run. */
export class World {
  readonly setup: Setup
  readonly seed: number
  readonly rng: Prng
  readonly netRng: Prng
  readonly q = new EventQueue(4096)
  now = 0
  /** Label of the control event being processed. */
  current = "start"
  private readonly ctl: Array<{ label: string; fn: () => void } | undefined> = []
  private readonly freeSlots: Array<number> = []
  /** Handler of packet events (ref >= 0), set by the traffic model. */
  onFlowEvent: (ref: number) => void = () => {}
  /** Flows held by a server per bucket, counted by the traffic model (what hand-offs wait for). */
  flowsPerBucket: (server: number) => ArrayLike<number> = () => ZERO

  // endpoints: servers, then witnesses, then NATS nodes
  readonly procs: Array<Proc> = []
  readonly serverCount: number
  readonly endpoints: number
  readonly natsBase: number
  readonly natsUp: Array<boolean>
  readonly cut: Uint8Array

  // server filters (index = server idx)
  readonly tables: Array<Uint8Array>
  readonly deadline: Float64Array
  readonly fenced: Uint8Array
  /** 1 when the server's kernel takes VIP traffic: machine up, filter loaded, not fenced. */
  readonly on: Uint8Array
  readonly sockGen: Int32Array
  readonly faultGen: Int32Array
  readonly movingOut: Int32Array
  private readonly fenceTimerAt: Float64Array
  readonly cand: Int16Array
  readonly candN: Uint8Array
  /** Time since which a bucket has no live claimant (-1: claimed). */
  readonly unclaimedSince: Float64Array
  /** Bumped whenever any claim may have changed. */
  version = 0

  // the log
  readonly log: Array<FarmEvent> = []
  private readonly msgIds = new Map<string, number>()
  stallUntil = 0
  readonly logStats = { appends: 0, conflicts: 0, duplicates: 0, timeouts: 0, stalls: 0 }

  // observations
  readonly violations: Array<Violation> = []
  readonly violationCounts: Record<string, number> = {}
  readonly timeline: Array<TimelineLine> = []
  readonly failovers: Array<PendingFailover> = []
  unclaimedWindows = 0
  unclaimedWorst = 0
  replay = ""
  readonly options: WorldOptions
  private readonly ignoreFencing: number
  stopOnViolation = false
  stopped = false

  constructor(setup: Setup, seed: number, options: WorldOptions = {}) {
    this.setup = setup
    this.seed = seed
    this.options = options
    const root = new Prng(seed)
    this.rng = root.fork()
    this.netRng = root.fork()
    const names = [...setup.servers.map((s) => s.name), ...setup.witnesses]
    this.serverCount = setup.servers.length
    names.forEach((name, idx) => {
      const isServer = idx < this.serverCount
      this.procs.push({
        idx, name, role: isServer ? "server" : "witness", weight: isServer ? setup.servers[idx].weight : 0,
        ctl: null, running: false, paused: false, pausedQueue: [], slowMs: 0, readerStallUntil: 0, healthy: true, boot: 0, logDelivered: 0,
        intent: false, crashed: false, appDown: false
      })
    })
    this.natsBase = names.length
    this.endpoints = names.length + setup.natsNodes.length
    this.natsUp = setup.natsNodes.map(() => true)
    this.cut = new Uint8Array(this.endpoints * this.endpoints)
    const n = this.serverCount
    this.tables = Array.from({ length: n }, () => ZERO)
    this.deadline = new Float64Array(n)
    this.fenced = new Uint8Array(n).fill(1)
    this.on = new Uint8Array(n)
    this.sockGen = new Int32Array(n)
    this.faultGen = new Int32Array(n)
    this.movingOut = new Int32Array(n)
    this.fenceTimerAt = new Float64Array(n).fill(Infinity)
    this.cand = new Int16Array(SLOTS * MAXC)
    this.candN = new Uint8Array(SLOTS)
    this.unclaimedSince = new Float64Array(SLOTS).fill(-1)
    this.ignoreFencing = options.ignoreFencing === undefined ? -1 : names.indexOf(options.ignoreFencing)
  }

  // ---- event loop -----------------------------------------------------------------------

  /** Schedule a control event. */
  at(time: number, label: string, fn: () => void): void {
    const slot = this.freeSlots.length > 0 ? this.freeSlots.pop()! : this.ctl.length
    this.ctl[slot] = { label, fn }
    this.q.push(time < this.now ? this.now : time, -(slot + 1))
  }

  /** Run events up to and including `until`. */
  runUntil(until: number): void {
    const q = this.q
    while (!this.stopped && q.size > 0 && q.peekTime() <= until) {
      const t = q.peekTime()
      const ref = q.peekRef()
      q.pop()
      this.now = t
      if (ref >= 0) this.onFlowEvent(ref)
      else {
        const slot = -ref - 1
        const ev = this.ctl[slot]!
        this.ctl[slot] = undefined
        this.freeSlots.push(slot)
        this.current = ev.label
        ev.fn()
      }
    }
    if (!this.stopped && this.now < until) this.now = until
  }

  /** Record a violation of an invariant. */
  violation(invariant: string, detail: string, event: string = this.current): void {
    this.violationCounts[invariant] = (this.violationCounts[invariant] ?? 0) + 1
    if (this.violations.length < 50) {
      this.violations.push({ invariant, atMs: this.now, event, detail, seed: this.seed, replay: this.replay })
    }
    if (this.stopOnViolation) this.stopped = true
  }

  /** Add a timeline line. */
  note(kind: string, node: string, detail = ""): void {
    if (this.timeline.length < 2000) this.timeline.push({ atMs: Math.round(this.now * 1000) / 1000, kind, node, detail })
  }

  // ---- network ------------------------------------------------------------------------

  /** Whether a message from endpoint a reaches endpoint b. */
  link(a: number, b: number): boolean {
    return this.cut[a * this.endpoints + b] === 0
  }

  /** Index of an endpoint by name (servers, witnesses, NATS nodes). */
  endpointIndex(name: string): number {
    const i = this.procs.findIndex((p) => p.name === name)
    if (i >= 0) return i
    const j = this.setup.natsNodes.indexOf(name)
    return j < 0 ? -1 : this.natsBase + j
  }

  private delay(): number {
    const [lo, hi] = this.setup.network.delay
    return this.netRng.uniform(lo, hi)
  }

  /** Whether endpoint e reaches a majority of the NATS nodes that are up (and the cluster has a quorum). */
  logReachable(e: number): boolean {
    const k = majority(this.setup.natsNodes.length)
    let up = 0
    let reach = 0
    for (let i = 0; i < this.setup.natsNodes.length; i++) {
      if (!this.natsUp[i]) continue
      up++
      const n = this.natsBase + i
      if (this.link(e, n) && this.link(n, e)) reach++
    }
    return up >= k && reach >= k
  }

  // ---- processes ----------------------------------------------------------------------

  private controllerConfig(p: Proc): ControllerConfig {
    const t = this.setup.timing
    return {
      farm: this.setup.farm, node: p.name, role: p.role, address: `198.18.1.${p.idx + 1}`, weight: p.weight, priority: p.idx + 1,
      rulesDigest: "sim", witnesses: this.setup.witnesses, heartbeatMs: t.heartbeatMs, fenceAfterMs: t.fenceAfterMs,
      expireAfterMs: t.expireAfterMs, holdMs: t.holdMs, handoffMaxMs: t.handoffMaxMs, retryMs: 50, stopMaxMs: 60_000
    }
  }

  /** Start (or restart) a process: a fresh controller that folds the log from the start. */
  start(p: Proc): void {
    if (p.running) return
    p.boot++
    p.running = true
    p.crashed = false
    p.paused = false
    p.pausedQueue = []
    p.slowMs = 0
    p.readerStallUntil = 0
    p.intent = true
    p.logDelivered = 0
    // a restarted daemon (after a kill) counts again as an owner of the buckets it left
    for (const f of this.failovers) if (f.exclude === p.idx && f.doneAt === null) f.exclude = -1
    this.onStart(p)
    p.ctl = new NodeController(this.controllerConfig(p), this.now)
    const h = this.healthOf(p)
    p.ctl.onAppHealth(h.healthy, h.failing)
    p.ctl.onLogHead(this.log.length)
    const boot = p.boot
    const tick = (): void => {
      if (!p.running || p.boot !== boot) return
      if (!p.paused) this.input(p, () => {
        p.ctl!.onFlowCounts(p.idx < this.serverCount && this.movingOut[p.idx] > 0 ? this.flowsPerBucket(p.idx) : ZERO)
        p.ctl!.tick(this.now)
      })
      this.at(this.now + this.setup.timing.tickMs, `tick ${p.name}`, tick)
    }
    this.at(this.now + this.rng.uniform(0, this.setup.timing.tickMs), `tick ${p.name}`, tick)
    this.scheduleLogDelivery(p, this.rng.uniform(...this.setup.nats.delivery))
    this.note("start", p.name, p.role)
  }

  /** Hook: a process starts (before its controller exists; the application model starts its supervisor). */
  onStart: (p: Proc) => void = () => {}
  /** Hook: a process is gone (`crash`: with its machine and application; `kill`, `exit`: the daemon only). */
  onDown: (p: Proc, how: "crash" | "kill" | "exit") => void = () => {}
  /** Hook: the simulated application's standing (null: no application model). */
  appStanding: ((p: Proc) => AppStanding) | null = null

  /** The health a server's controller is told: an `unhealthy` fault, else the application model's standing. */
  healthOf(p: Proc): AppStanding {
    if (!p.healthy) return { healthy: false }
    return this.appStanding?.(p) ?? { healthy: true }
  }

  /** Tell a running process's controller its application's health. */
  pushHealth(p: Proc): void {
    if (!p.running || p.ctl === null) return
    const h = this.healthOf(p)
    this.input(p, () => p.ctl!.onAppHealth(h.healthy, h.failing))
  }

  /** Crash a machine: process, kernel filter and sockets gone. */
  crash(p: Proc): void {
    if (!p.running && p.crashed) return
    const wasRunning = p.running
    p.running = false
    p.crashed = true
    p.intent = false
    p.ctl = null
    this.onDown(p, "crash")
    if (p.idx < this.serverCount) {
      const budget = wasRunning && this.networkWhole() && !this.anyPausedOrSlow() && this.survivorsHaveMajority(p)
      this.beginFailover(p, "crash", budget)
      this.sockGen[p.idx]++
      this.faultGen[p.idx]++
      this.setFilter(p.idx, ZERO, 0)
    }
    this.note("crash", p.name)
  }

  /**
   * SIGKILL of a server's daemon only: the machine, the application and its sockets live on;
   * the filter keeps its last tables and deadline and fences at that deadline (then the new
   * owners reset the server's established flows). Measured like a crash: from the kill until
   * every bucket it took new flows in is taken by another live server.
   */
  kill(p: Proc): void {
    if (!p.running) return
    p.running = false
    p.crashed = true
    p.intent = false
    p.ctl = null
    this.onDown(p, "kill")
    if (p.idx < this.serverCount) {
      const budget = this.networkWhole() && !this.anyPausedOrSlow() && this.survivorsHaveMajority(p)
      this.beginFailover(p, "kill", budget)
    }
    this.note("kill", p.name, "daemon SIGKILL; filter fences at its deadline")
  }

  /** Deliver an input to a process (honouring pause and slowness), then act on its actions. */
  input(p: Proc, fn: () => void): void {
    if (!p.running || p.ctl === null) return
    if (p.paused) {
      p.pausedQueue.push(fn)
      return
    }
    if (p.slowMs > 0) {
      const boot = p.boot
      const slow = p.slowMs
      p.slowMs = 0
      this.at(this.now + slow, `slow ${p.name}`, () => {
        if (p.running && p.boot === boot) {
          const s = p.slowMs
          p.slowMs = 0
          this.input(p, fn)
          p.slowMs = s
        }
      })
      p.slowMs = slow
      return
    }
    fn()
    this.act(p)
  }

  private act(p: Proc): void {
    const ctl = p.ctl
    if (ctl === null) return
    for (const a of ctl.drainActions()) this.perform(p, a)
  }

  private perform(p: Proc, a: Action): void {
    switch (a._tag) {
      case "PublishHeartbeat":
        this.publish(p, a.heartbeat)
        return
      case "Append":
        this.append(p, a.events, a.expectLastSeq, a.msgId)
        return
      case "SetFilter":
        if (p.idx < this.serverCount) this.setFilter(p.idx, a.tables, a.deadlineMs)
        return
      case "Log":
        if (a.op === "takeover" || a.op === "takeover-ended" || a.op === "suspicion-ended" || a.op === "fenced" || a.op === "unfenced" || a.op === "suspect" || a.op === "exit" || a.op === "pin" || a.op === "pin-agreed" || a.op === "pin-unavailable" || a.op.startsWith("stale-report")) {
          this.note(a.op, p.name, String(a.fields.peer ?? "") + (a.fields.taken === true ? " (taken over elsewhere)" : "") + (a.fields.seq !== undefined && a.op.startsWith("pin") ? ` @${a.fields.seq}` : ""))
        }
        return
      case "Exit":
        p.running = false
        p.intent = false
        p.ctl = null
        if (p.idx < this.serverCount) {
          this.setFilter(p.idx, ZERO, 0)
          this.sockGen[p.idx]++
        }
        this.note("exited", p.name)
        this.onDown(p, "exit")
        this.onExit(p)
        return
    }
  }

  /** Hook: a process exited after leaving (rolling restarts use it). */
  onExit: (p: Proc) => void = () => {}

  private publish(from: Proc, hb: Heartbeat): void {
    const loss = this.setup.network.loss
    for (const to of this.procs) {
      if (to === from || !to.running) continue
      if (!this.link(from.idx, to.idx)) continue
      if (loss > 0 && this.netRng.chance(loss)) continue
      const boot = to.boot
      this.at(this.now + this.delay(), `heartbeat ${from.name}→${to.name}`, () => {
        if (to.boot !== boot || !to.running || to.paused) return
        this.input(to, () => to.ctl!.onHeartbeat(hb, this.now))
      })
    }
  }

  // ---- the log ----------------------------------------------------------------------------

  private append(p: Proc, events: ReadonlyArray<FarmEvent>, expect: number, msgId: string): void {
    this.logStats.appends++
    const boot = p.boot
    const sentAt = this.now
    const timeout = this.setup.nats.appendTimeoutMs
    const answer = (result: Parameters<NodeController["onAppendResult"]>[1]): void => {
      if (!result.ok && result.error === "timeout") this.logStats.timeouts++
      const deliver = (): void => {
        if (p.boot !== boot || !p.running) return
        this.input(p, () => p.ctl!.onAppendResult(msgId, result, this.now))
      }
      if (result.ok || result.error !== "timeout") {
        if (this.logReachable(p.idx)) this.at(this.now + this.delay(), `append-result ${p.name}`, deliver)
        else this.at(sentAt + timeout, `append-timeout ${p.name}`, () => {
          this.logStats.timeouts++
          if (p.boot === boot && p.running) this.input(p, () => p.ctl!.onAppendResult(msgId, { ok: false, error: "timeout" }, this.now))
        })
      } else deliver()
    }
    if (!this.logReachable(p.idx)) {
      this.at(this.now + timeout, `append-timeout ${p.name}`, () => answer({ ok: false, error: "timeout" }))
      return
    }
    const [lo, hi] = this.setup.nats.appendLatency
    const at = Math.max(this.now, this.stallUntil) + this.rng.uniform(lo, hi)
    if (at - this.now > timeout) {
      this.at(this.now + timeout, `append-timeout ${p.name}`, () => answer({ ok: false, error: "timeout" }))
      return
    }
    this.at(at, `append ${msgId} by ${p.name}`, () => {
      if (this.now < this.stallUntil) {
        answer({ ok: false, error: "timeout" })
        return
      }
      const dup = this.msgIds.get(msgId)
      if (dup !== undefined) {
        this.logStats.duplicates++
        answer({ ok: true, seq: dup, duplicate: true })
        return
      }
      if (expect !== this.log.length) {
        this.logStats.conflicts++
        answer({ ok: false, error: "wrong-last-seq", lastSeq: this.log.length })
        return
      }
      for (const e of events) {
        this.log.push(e)
        this.noteEvent(e)
      }
      this.msgIds.set(msgId, this.log.length)
      answer({ ok: true, seq: this.log.length, duplicate: false })
      for (const to of this.procs) if (to.running) this.scheduleLogDelivery(to, this.rng.uniform(...this.setup.nats.delivery))
    })
  }

  private noteEvent(e: FarmEvent): void {
    const node = "node" in e ? e.node : ""
    let detail = ""
    if (e._tag === "HandoffStarted") detail = `${e.handoff} ${e.mode} ${e.moves.length} moves`
    else if (e._tag === "HandoffCompleted") detail = e.handoff
    else if (e._tag === "MemberFailed") detail = `detected by ${e.detectedBy}`
    else if (e._tag === "MemberJoined") detail = `incarnation ${e.incarnation}`
    this.note(`log:${e._tag}`, node, `seq ${this.log.length}${detail === "" ? "" : ` ${detail}`}`)
  }

  /** Append an operator event directly (configuration at time 0). */
  appendOperator(e: FarmEvent): void {
    this.log.push(e)
    this.noteEvent(e)
  }

  /** Deliver the log to a process after `delay` (everything appended by then, in order). */
  scheduleLogDelivery(p: Proc, delay: number): void {
    const boot = p.boot
    this.at(this.now + delay, `log-delivery ${p.name}`, () => {
      if (p.boot !== boot || !p.running || p.ctl === null || p.paused) return
      if (p.logDelivered >= this.log.length || !this.logReachable(p.idx) || this.now < p.readerStallUntil) return
      this.input(p, () => {
        const ctl = p.ctl!
        ctl.onLogHead(this.log.length)
        while (p.logDelivered < this.log.length) {
          p.logDelivered++
          ctl.onLogEntry(p.logDelivered, this.log[p.logDelivered - 1], this.now)
        }
        ctl.tick(this.now)
      })
    })
  }

  /** Periodic catch-up of every process (after heals, pauses, reconnects). */
  startCatchUp(): void {
    const loop = (): void => {
      for (const p of this.procs) if (p.running && p.logDelivered < this.log.length) this.scheduleLogDelivery(p, 0)
      this.at(this.now + 100, "log-catch-up", loop)
    }
    this.at(100, "log-catch-up", loop)
  }

  /** A JetStream leader election: appends stall for a drawn 4.4–7.8 s. */
  leaderKill(): void {
    const [lo, hi] = this.setup.nats.stall
    const d = this.rng.uniform(lo, hi)
    this.stallUntil = Math.max(this.stallUntil, this.now + d)
    this.logStats.stalls++
    this.note("nats-leader-kill", "", `appends stall ${Math.round(d)} ms`)
  }

  // ---- filters and bucket invariants --------------------------------------------------------

  /** Install a server's filter tables and deadline (as the daemon writes its XDP maps). */
  setFilter(s: number, tables: Uint8Array, deadline: number): void {
    const old = this.tables[s]
    const changed = old !== tables
    if (changed) {
      let mo = 0
      for (let i = 0; i < SLOTS; i++) {
        const a = old[i]
        const b = tables[i]
        if (b === 2) mo++
        if (a === b) continue
        if (a === 0) this.addCand(i, s)
        else if (b === 0) this.removeCand(i, s)
      }
      this.tables[s] = tables
      this.movingOut[s] = mo
    }
    this.deadline[s] = s === this.ignoreFencing && deadline > 0 ? Infinity : deadline
    const wasFenced = this.fenced[s] === 1
    const nowFenced = this.now >= this.deadline[s]
    if (nowFenced !== wasFenced) this.setFenced(s, nowFenced)
    else if (!nowFenced) this.armFenceTimer(s)
    if (changed) this.recheckClaims(s)
  }

  private armFenceTimer(s: number): void {
    if (this.fenceTimerAt[s] !== Infinity) return
    const at = this.deadline[s]
    if (at === Infinity) return
    this.fenceTimerAt[s] = at
    this.at(at, `deadline ${this.procs[s].name}`, () => {
      this.fenceTimerAt[s] = Infinity
      if (this.fenced[s] === 1) return
      if (this.now >= this.deadline[s]) this.setFenced(s, true)
      else this.armFenceTimer(s)
    })
  }

  private setFenced(s: number, fenced: boolean): void {
    if (fenced) {
      this.faultGen[s]++
      const p = this.procs[s]
      if (p.running && p.intent) this.beginFailover(p, p.paused ? "pause" : "fenced", false)
    }
    this.fenced[s] = fenced ? 1 : 0
    if (!fenced) this.armFenceTimer(s)
    this.recheckClaims(s)
  }

  private addCand(i: number, s: number): void {
    const n = this.candN[i]
    if (n >= MAXC) return
    this.cand[i * MAXC + n] = s
    this.candN[i] = n + 1
  }

  private removeCand(i: number, s: number): void {
    const n = this.candN[i]
    const base = i * MAXC
    for (let k = 0; k < n; k++) {
      if (this.cand[base + k] === s) {
        this.cand[base + k] = this.cand[base + n - 1]
        this.candN[i] = n - 1
        return
      }
    }
  }

  /** After a change at server s: two live claimants of one bucket, unowned windows, failovers. */
  private recheckClaims(s: number): void {
    this.version++
    if (s >= 0) this.on[s] = this.fenced[s] === 0 && this.tables[s] !== ZERO ? 1 : 0
    const slots = this.setup.tables * BUCKETS
    for (let i = 0; i < slots; i++) {
      const n = this.candN[i]
      let live = 0
      let first = -1
      let second = -1
      const base = i * MAXC
      for (let k = 0; k < n; k++) {
        const c = this.cand[base + k]
        if (this.on[c] === 0 || !claimsNew(this.tables[c][i])) continue
        live++
        if (first < 0) first = c
        else second = c
      }
      if (live > 1) {
        this.violation("two-live-owners", `bucket ${i >> 10}/${i & 1023} taken by ${this.procs[first].name} and ${this.procs[second].name}`)
      }
      if (live === 0) {
        if (this.unclaimedSince[i] < 0) this.unclaimedSince[i] = this.now
      } else if (this.unclaimedSince[i] >= 0) {
        const w = this.now - this.unclaimedSince[i]
        this.unclaimedSince[i] = -1
        if (w > 0) {
          this.unclaimedWindows++
          if (w > this.unclaimedWorst) this.unclaimedWorst = w
        }
      }
    }
    this.checkFailovers()
  }

  /** Start measuring the failover of a server's buckets. */
  beginFailover(p: Proc, fault: string, budgetApplies: boolean): void {
    const s = p.idx
    const idxs: Array<number> = []
    const slots = this.setup.tables * BUCKETS
    const t = this.tables[s]
    if (this.on[s] === 0 && fault !== "crash") return
    for (let i = 0; i < slots; i++) if (claimsNew(t[i])) idxs.push(i)
    if (idxs.length === 0) return
    if (this.failovers.some((f) => f.node === p.name && f.doneAt === null)) return
    // a killed daemon's filter, and a server whose application failed, still claim their buckets: only others count
    const others = fault === "kill" || fault.startsWith("app-")
    this.failovers.push({ node: p.name, fault, atMs: this.now, idxs, total: idxs.length, budgetApplies, doneAt: null, exclude: others ? s : -1 })
    if (others) this.checkFailovers()
  }

  /** Another fault began: open failovers no longer measure one failure on a whole farm. */
  faultBegins(): void {
    for (const f of this.failovers) if (f.doneAt === null) f.budgetApplies = false
  }

  private checkFailovers(): void {
    for (const f of this.failovers) {
      if (f.doneAt !== null) continue
      f.idxs = f.idxs.filter((i) => {
        const n = this.candN[i]
        for (let k = 0; k < n; k++) {
          const c = this.cand[i * MAXC + k]
          if (c !== f.exclude && this.on[c] === 1 && claimsNew(this.tables[c][i])) return false
        }
        return true
      })
      if (f.idxs.length === 0) {
        f.doneAt = this.now
        const d = this.now - f.atMs
        this.note("failover", f.node, `${f.total} buckets owned again after ${Math.round(d)} ms`)
        if (f.budgetApplies && d > this.setup.checks.failoverWorstMs) {
          this.violation("failover-budget", `${f.node} ${f.fault}: buckets owned again after ${Math.round(d)} ms (budget ${this.setup.checks.failoverWorstMs} ms)`)
        }
      }
    }
  }

  /** True when no link is cut and every NATS node is up. */
  networkWhole(): boolean {
    for (let i = 0; i < this.cut.length; i++) if (this.cut[i] !== 0) return false
    return this.natsUp.every((u) => u)
  }

  /** Whether the live voters other than `victim` are a strict majority of the voters the log knows. */
  private survivorsHaveMajority(victim: Proc): boolean {
    const ref = this.procs.find((p) => p !== victim && p.running && p.ctl !== null && p.role === "server")?.ctl?.foldedState
    if (ref === undefined) return false
    const voters = [...ref.members.filter((m) => m.status !== "down").map((m) => m.name), ...this.setup.witnesses]
    let live = 0
    for (const v of voters) {
      const p = this.procs.find((x) => x.name === v)
      if (p !== undefined && p !== victim && p.running && (p.role === "witness" || this.fenced[p.idx] === 0)) live++
    }
    return live >= majority(voters.length) && this.procs.some((p) => p !== victim && p.role === "server" && p.running && p.healthy && this.fenced[p.idx] === 0)
  }

  private anyPausedOrSlow(): boolean {
    return this.procs.some((p) => p.running && (p.paused || p.slowMs > 0))
  }

  /** Failovers still open whose budget ran out: report them (called at the end). */
  closeFailovers(): void {
    for (const f of this.failovers) {
      if (f.doneAt === null && f.budgetApplies && this.now - f.atMs > this.setup.checks.failoverWorstMs) {
        this.violation("failover-budget", `${f.node} ${f.fault}: ${f.idxs.length} of ${f.total} buckets still without a live owner at the end`)
        f.budgetApplies = false
      }
    }
  }

  /** Events: a configuration event at time 0. */
  configure(): void {
    this.appendOperator({ _tag: "ConfigChanged", v: EVENT_VERSION, cause: { kind: "config", by: "sim" }, vips: this.setup.vips })
  }
}
