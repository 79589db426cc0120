/**
 * The simulated world: the state of one run and its event loop, the network's links and
 * partitions (cut links, NATS nodes going down, log reachability), and the processes' hooks.
 * The behaviour lives in modules named for it, which World's methods delegate to:
 * processes.ts (processes running the real node controller, witnesses), natsLog.ts (core NATS
 * heartbeats and the JetStream log: conditional appends with msg-id dedupe, delivery delay,
 * leader-election stalls), claims.ts (server filters, bucket-level invariants, failover
 * measurement). Client traffic lives in traffic.ts.
 */
import { EVENT_VERSION, type FarmEvent } from "@vipfarm/domain"
import { type HeldFlow, type NodeController, majority, type UdpHandoverReceiver } from "../../runtime/src/controller/index.ts"
import * as claims from "./claims.ts"
import { MAXC, SLOTS, ZERO, type PendingFailover } from "./claims.ts"
import * as natsLog from "./natsLog.ts"
import * as processes from "./processes.ts"
import { Prng } from "./prng.ts"
import { EventQueue } from "./queue.ts"
import type { TimelineLine, Violation } from "./report.ts"
import type { Setup } from "./setup.ts"

export { MAXC }

/** Timeline lines a run keeps (the report says how many more there were). */
export const TIMELINE_MAX = 2000

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
  /** Told to stop (SIGTERM) and not exited yet. */
  stopping: boolean
  /** The daemon's UDP hand-over (receiver side) of the running process, and the controller's last tables and deadline. */
  udp: UdpHandoverReceiver<number> | null
  ctlTables: Uint8Array | null
  /** The tables installed for ctlTables (moving-in buckets waiting for a UDP report: MOVING_IN_WAIT). */
  udpApplied: Uint8Array | null
  ctlDeadline: number
  /** When the process last sent its UDP flow reports (old owner of moving buckets). */
  udpReportAt: number
}

/** What the simulated application's policy last told the farm (see app.ts). */
export interface AppStanding {
  readonly healthy: boolean
  readonly failing?: { readonly checker: string; readonly reason: string }
}

/** Options of a run that change what is simulated (for tests of the checks themselves). */
export interface WorldOptions {
  /** A deliberately broken filter: this server ignores its deadline (never fenced). */
  readonly ignoreFencing?: string
  /** Deliberately broken hashing: client-ip rules also hash the client's port (breaks client-ip affinity). */
  readonly breakAffinity?: boolean
  /** A deliberately broken kernel: from this time on this server's filter loses its tables (every later write too), its daemon does not notice. */
  readonly forgetTables?: { readonly node: string; readonly atMs: number }
  /** A deliberately broken planner: from this time on no rebalance lands (a `weight` fault appends WeightChanged alone, the servers' rebalances are dropped). */
  readonly noRebalance?: { readonly fromMs: number }
  /** A deliberately broken TCP stack: a server drops its socket at the client's FIN (no LAST_ACK state). */
  readonly closeAtFin?: boolean
  /** The daemon's UDP hand-over as before issue 16 (one report per hand-off, readiness per hand-off, a 2 s fallback). */
  readonly legacyUdpHandover?: boolean
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
  /** The UDP flows a server holds (its filter's flow map: seen twice, fresh), keyed for the hand-over reports (set by Traffic). */
  udpFlowsHeld: (server: number) => Array<HeldFlow<number>> = () => []

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
  /** When each server's pending deadline timer fires (Infinity: none armed). */
  readonly fenceTimerAt: Float64Array
  readonly cand: Int16Array
  readonly candN: Uint8Array
  /** Time since which a bucket has no live claimant (-1: claimed). */
  readonly unclaimedSince: Float64Array
  /** Bumped whenever any claim may have changed. */
  version = 0
  /** Bumped when any server's code for the bucket slot changes. */
  readonly slotEpoch: Int32Array
  /** Bumped when any server starts or stops taking VIP traffic (fenced, unfenced, tables emptied). */
  onEpoch = 0
  /**
   * Why each bucket's open window without a live owner is allowed (see claims.ts): 0 none
   * (bounded by the failover budget, new flows in it are violations), 1 a failover being
   * measured covers it, 2 a fault, the farm forming or no server running, 3 a hand-off's
   * hold (bounded by the failover budget).
   */
  readonly unclaimedExcuse: Uint8Array
  /** Every bucket has had a live owner at least once (the farm formed). */
  formed = false
  /** Windows without a live owner excused by a fault (not bounded by the budget). */
  unclaimedExcused = 0
  /** Windows without a live owner during a hand-off's hold, and the longest. */
  unclaimedHandoff = 0
  unclaimedHandoffWorst = 0
  /** Timeline operations scheduled and not yet carried out (id → label); the liveness phase waits for them. */
  readonly pendingOps = new Map<number, { readonly label: string; readonly proc: Proc | null }>()
  private opSeq = 0

  // the log
  readonly log: Array<FarmEvent> = []
  /** Msg-ids of the appends the log holds, with their seq (JetStream's dedupe window). */
  readonly msgIds = new Map<string, number>()
  stallUntil = 0
  readonly logStats = { appends: 0, conflicts: 0, duplicates: 0, timeouts: 0, stalls: 0 }

  // observations
  readonly violations: Array<Violation> = []
  readonly violationCounts: Record<string, number> = {}
  readonly timeline: Array<TimelineLine> = []
  /** Timeline lines not kept (past {@link TIMELINE_MAX}). */
  timelineDropped = 0
  readonly failovers: Array<PendingFailover> = []
  unclaimedWindows = 0
  unclaimedWorst = 0
  replay = ""
  readonly options: WorldOptions
  /** Index of the server whose filter ignores its deadline (-1: none). */
  readonly ignoreFencing: number
  /** Index of the server whose kernel loses its tables (-1: none). */
  readonly forgetTables: number
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
        intent: false, crashed: false, appDown: false, stopping: false, udp: null, ctlTables: null, udpApplied: null, ctlDeadline: 0, udpReportAt: -Infinity
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
    // no bucket has an owner before the farm forms
    this.unclaimedSince = new Float64Array(SLOTS).fill(-1).fill(0, 0, setup.tables * 1024)
    this.unclaimedExcuse = new Uint8Array(SLOTS).fill(2)
    this.slotEpoch = new Int32Array(SLOTS)
    this.ignoreFencing = options.ignoreFencing === undefined ? -1 : names.indexOf(options.ignoreFencing)
    this.forgetTables = options.forgetTables === undefined ? -1 : names.indexOf(options.forgetTables.node)
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

  /** A timeline operation is scheduled (`proc`: the process it waits for, if any); returns its id for {@link done}. */
  pending(label: string, proc: Proc | null = null): number {
    const id = ++this.opSeq
    this.pendingOps.set(id, { label, proc })
    return id
  }

  /** A timeline operation was carried out (or can no longer be). */
  done(id: number): void {
    this.pendingOps.delete(id)
  }

  /** Record a violation of an invariant. */
  violation(invariant: string, detail: string, event: string = this.current): void {
    const n = (this.violationCounts[invariant] ?? 0) + 1
    this.violationCounts[invariant] = n
    // the first 50, and the first of every invariant
    if (this.violations.length < 50 || n === 1) {
      this.violations.push({ invariant, atMs: this.now, event, detail, seed: this.seed, replay: this.replay })
    }
    if (this.stopOnViolation) this.stopped = true
  }

  /** Add a timeline line. */
  note(kind: string, node: string, detail = ""): void {
    if (this.timeline.length < TIMELINE_MAX) this.timeline.push({ atMs: Math.round(this.now * 1000) / 1000, kind, node, detail })
    else this.timelineDropped++
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

  /** Start (or restart) a process: a fresh controller that folds the log from the start. */
  start(p: Proc): void {
    processes.start(this, p)
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
    processes.crash(this, p)
  }

  /**
   * SIGKILL of a server's daemon only: the machine, the application and its sockets live on;
   * the filter keeps its last tables and deadline and fences at that deadline (then the new
   * owners reset the server's established flows). Measured like a crash: from the kill until
   * every bucket it took new flows in is taken by another live server.
   */
  kill(p: Proc): void {
    processes.kill(this, p)
  }

  /** Deliver an input to a process (honouring pause and slowness), then act on its actions. */
  input(p: Proc, fn: () => void): void {
    processes.input(this, p, fn)
  }

  /** Hook: a process exited after leaving (rolling restarts use it). */
  onExit: (p: Proc) => void = () => {}

  // ---- the log ----------------------------------------------------------------------------

  /** Append an operator event directly (configuration at time 0). */
  appendOperator(e: FarmEvent): void {
    natsLog.appendOperator(this, e)
  }

  /** Deliver the log to a process after `delay` (everything appended by then, in order). */
  scheduleLogDelivery(p: Proc, delay: number): void {
    natsLog.scheduleLogDelivery(this, p, delay)
  }

  /** Periodic catch-up of every process (after heals, pauses, reconnects). */
  startCatchUp(): void {
    natsLog.startCatchUp(this)
  }

  /** A JetStream leader election: appends stall for a drawn 4.4–7.8 s. */
  leaderKill(): void {
    natsLog.leaderKill(this)
  }

  // ---- filters and bucket invariants --------------------------------------------------------

  /** Install a server's filter tables and deadline (as the daemon writes its XDP maps). */
  setFilter(s: number, tables: Uint8Array, deadline: number): void {
    claims.setFilter(this, s, tables, deadline)
  }

  /** Start measuring the failover of a server's buckets. */
  beginFailover(p: Proc, fault: string, budgetApplies: boolean): void {
    claims.beginFailover(this, p, fault, budgetApplies)
  }

  /** Another fault began: open failovers no longer measure one failure on a whole farm. */
  faultBegins(): void {
    claims.faultBegins(this)
  }

  /** Whether some fault is going on (a cut link, NATS trouble, a paused, slow, stalled, unhealthy or fenced server). */
  faultActive(): boolean {
    return claims.faultActive(this)
  }

  /** True when no link is cut and every NATS node is up. */
  networkWhole(): boolean {
    return claims.networkWhole(this)
  }

  /** Failovers still open whose budget ran out: report them (called at the end). */
  closeFailovers(): void {
    claims.closeFailovers(this)
  }

  /** Events: a configuration event at time 0. */
  configure(): void {
    this.appendOperator({ _tag: "ConfigChanged", v: EVENT_VERSION, cause: { kind: "config", by: "sim" }, vips: this.setup.vips })
  }
}
