/**
 * The processes of the simulated world: servers and witnesses running the real node
 * controller. Starting (a fresh controller folding the log), crashing a machine, SIGKILL of a
 * daemon, delivering inputs (honouring pause and slowness) and carrying out the controller's
 * actions. Free functions over a World (see world.ts).
 */
import { LocalBucket } from "@vipfarm/domain"
import { NodeController, type Action, type ControllerConfig, udpReports, UdpHandoverReceiver, type UdpHandoverOptions, type UdpReport } from "../../runtime/src/controller/index.ts"
import { anyPausedOrSlow, beginFailover, networkWhole, setFilter, survivorsHaveMajority, ZERO } from "./claims.ts"
import { append, publish, scheduleLogDelivery } from "./natsLog.ts"
import { Prng } from "./prng.ts"
import type { Proc, World } from "./world.ts"

function controllerConfig(w: World, p: Proc): ControllerConfig {
  const t = w.setup.timing
  return {
    farm: w.setup.farm, node: p.name, role: p.role, address: `198.18.1.${p.idx + 1}`, weight: p.weight, priority: p.idx + 1,
    rulesDigest: "sim", witnesses: w.setup.witnesses, heartbeatMs: t.heartbeatMs, fenceAfterMs: t.fenceAfterMs,
    expireAfterMs: t.expireAfterMs, holdMs: t.holdMs, handoffMaxMs: t.handoffMaxMs, retryMs: 50, stopMaxMs: 60_000
  }
}

/** Start (or restart) a process: a fresh controller that folds the log from the start. */
export function start(w: World, p: Proc): void {
  if (p.running) return
  p.boot++
  p.running = true
  p.crashed = false
  p.stopping = false
  p.paused = false
  p.pausedQueue = []
  p.slowMs = 0
  p.readerStallUntil = 0
  p.intent = true
  p.logDelivered = 0
  // a restarted daemon (after a kill) counts again as an owner of the buckets it left
  for (const f of w.failovers) if (f.exclude === p.idx && f.doneAt === null) f.exclude = -1
  w.onStart(p)
  p.ctl = new NodeController(controllerConfig(w, p), w.now)
  p.udp = new UdpHandoverReceiver<number>(p.name, (k) => k, udpOptions(w))
  p.ctlTables = null
  p.udpApplied = null
  p.udpReportAt = -Infinity
  const h = w.healthOf(p)
  p.ctl.onAppHealth(h.healthy, h.failing)
  p.ctl.onLogHead(w.log.length)
  const boot = p.boot
  const tick = (): void => {
    if (!p.running || p.boot !== boot) return
    if (!p.paused) input(w, p, () => {
      p.ctl!.onFlowCounts(p.idx < w.serverCount && w.movingOut[p.idx] > 0 ? w.flowsPerBucket(p.idx) : ZERO)
      p.ctl!.tick(w.now)
    })
    if (p.running && p.boot === boot && !p.paused) sendUdpReports(w, p)
    w.at(w.now + w.setup.timing.tickMs, `tick ${p.name}`, tick)
  }
  w.at(w.now + w.rng.uniform(0, w.setup.timing.tickMs), `tick ${p.name}`, tick)
  scheduleLogDelivery(w, p, w.rng.uniform(...w.setup.nats.delivery))
  w.note("start", p.name, p.role)
}

/** The process is gone (crash or SIGKILL): it holds no controller and is not wanted back. */
function down(w: World, p: Proc, fault: "crash" | "kill"): void {
  p.running = false
  p.stopping = false
  p.crashed = true
  p.intent = false
  p.ctl = null
  // a SIGKILLed daemon's filter keeps its foreign-flow map until it fences; a crash loses it
  if (fault === "crash") p.udp = null
  w.onDown(p, fault)
}

/** Crash a machine: process, kernel filter and sockets gone. */
export function crash(w: World, p: Proc): void {
  if (!p.running && p.crashed) return
  const wasRunning = p.running
  down(w, p, "crash")
  if (p.idx < w.serverCount) {
    const budget = wasRunning && networkWhole(w) && !anyPausedOrSlow(w) && survivorsHaveMajority(w, p)
    beginFailover(w, p, "crash", budget)
    w.sockGen[p.idx]++
    w.faultGen[p.idx]++
    setFilter(w, p.idx, ZERO, 0)
  }
  w.note("crash", p.name)
}

/** SIGKILL of a server's daemon only (see World.kill). */
export function kill(w: World, p: Proc): void {
  if (!p.running) return
  down(w, p, "kill")
  if (p.idx < w.serverCount) {
    const budget = networkWhole(w) && !anyPausedOrSlow(w) && survivorsHaveMajority(w, p)
    beginFailover(w, p, "kill", budget)
  }
  w.note("kill", p.name, "daemon SIGKILL; filter fences at its deadline")
}

/** Deliver an input to a process (honouring pause and slowness), then act on its actions. */
export function input(w: World, p: Proc, fn: () => void): void {
  if (!p.running || p.ctl === null) return
  if (p.paused) {
    p.pausedQueue.push(fn)
    return
  }
  if (p.slowMs > 0) {
    const boot = p.boot
    const slow = p.slowMs
    p.slowMs = 0
    w.at(w.now + slow, `slow ${p.name}`, () => {
      if (p.running && p.boot === boot) {
        const s = p.slowMs
        p.slowMs = 0
        input(w, p, fn)
        p.slowMs = s
      }
    })
    p.slowMs = slow
    return
  }
  fn()
  act(w, p)
}

function act(w: World, p: Proc): void {
  const ctl = p.ctl
  if (ctl === null) return
  for (const a of ctl.drainActions()) perform(w, p, a)
}

function perform(w: World, p: Proc, a: Action): void {
  switch (a._tag) {
    case "PublishHeartbeat":
      publish(w, p, a.heartbeat)
      return
    case "Append": {
      const broken = w.options.noRebalance
      const events = broken !== undefined && w.now >= broken.fromMs
        ? a.events.filter((e) => !(e._tag === "HandoffStarted" && e.handoff.startsWith("rebalance")))
        : a.events
      if (events.length === 0) {
        // a deliberately broken planner: the rebalance never lands
        const boot = p.boot
        w.at(w.now + 1, `append-refused ${p.name}`, () => {
          if (p.boot === boot && p.running) input(w, p, () => p.ctl!.onAppendResult(a.msgId, { ok: false, error: "wrong-last-seq", lastSeq: w.log.length }, w.now))
        })
        return
      }
      append(w, p, events, a.expectLastSeq, a.msgId)
      return
    }
    case "SetFilter":
      if (p.idx < w.serverCount && (p.udp === null || p.ctl === null)) setFilter(w, p.idx, a.tables, a.deadlineMs) // after its Exit, in the same batch
      else if (p.idx < w.serverCount) {
        // as the daemon's applyTables: moving-in buckets wait for their old owner's UDP report
        if (a.tablesChanged || p.ctlTables === null || p.udpApplied === null) {
          p.ctlTables = a.tables
          p.udpApplied = p.udp!.adjust(a.tables, p.ctl!.effectiveState, w.now)
        }
        p.ctlDeadline = a.deadlineMs
        setFilter(w, p.idx, p.udpApplied!, a.deadlineMs)
      }
      return
    case "Log":
      if (a.op === "takeover" || a.op === "takeover-ended" || a.op === "suspicion-ended" || a.op === "fenced" || a.op === "unfenced" || a.op === "suspect" || a.op === "exit" || a.op === "pin" || a.op === "pin-agreed" || a.op === "pin-unavailable" || a.op.startsWith("stale-report")) {
        w.note(a.op, p.name, String(a.fields.peer ?? "") + (a.fields.taken === true ? " (taken over elsewhere)" : "") + (a.fields.seq !== undefined && a.op.startsWith("pin") ? ` @${a.fields.seq}` : ""))
      }
      return
    case "Exit":
      p.running = false
      p.stopping = false
      p.intent = false
      p.ctl = null
      p.udp = null
      if (p.idx < w.serverCount) {
        setFilter(w, p.idx, ZERO, 0)
        w.sockGen[p.idx]++
      }
      w.note("exited", p.name)
      w.onDown(p, "exit")
      w.onExit(p)
      return
  }
}

/** The daemon's report period of the UDP flows an old owner holds in its moving-out buckets. */
const UDP_REPORT_MS = 250

/** The report delays draw from their own generator: the rest of a seed's run stays as it was before reports were simulated. */
const reportRngs = new WeakMap<World, Prng>()
const reportRng = (w: World): Prng => {
  let r = reportRngs.get(w)
  if (r === undefined) reportRngs.set(w, (r = new Prng((w.seed ^ 0x5eed0d16) >>> 0)))
  return r
}

const udpOptions = (w: World): UdpHandoverOptions => (w.options.legacyUdpHandover === true ? { legacy: { waitMs: 2000 } } : {})

/**
 * An old owner of moving buckets reports its UDP flows in them to each receiver (core NATS, as
 * the daemon does every 250 ms while its tables hold MOVING_OUT buckets).
 */
function sendUdpReports(w: World, p: Proc): void {
  if (p.idx >= w.serverCount || p.ctl === null || p.ctlTables === null || w.now - p.udpReportAt < UDP_REPORT_MS) return
  if (!p.ctlTables.includes(LocalBucket.MOVING_OUT)) return
  p.udpReportAt = w.now
  for (const r of udpReports(p.ctl.effectiveState, p.name, w.udpFlowsHeld(p.idx), udpOptions(w))) {
    const to = w.procs.find((q) => q.name === r.to)
    if (to === undefined || !to.running || !w.link(p.idx, to.idx)) continue
    const boot = to.boot
    const [lo, hi] = w.setup.network.delay
    w.at(w.now + reportRng(w).uniform(lo, hi), `udp-report ${p.name}→${to.name}`, () => {
      if (to.boot !== boot || !to.running) return
      w.input(to, () => receiveUdpReport(w, to, r))
    })
  }
}

/** A receiver installs a report; the tables are applied again when a moving-in bucket may now take UDP. */
function receiveUdpReport(w: World, p: Proc, r: UdpReport<number>): void {
  if (p.udp === null || p.ctl === null || !p.udp.received(r) || p.ctlTables === null) return
  const applied = p.udp.adjust(p.ctlTables, p.ctl.effectiveState, w.now)
  p.udpApplied = applied
  setFilter(w, p.idx, applied, p.ctlDeadline)
}
