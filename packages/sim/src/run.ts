/**
 * Running a scenario: the safety phase (load plus the timeline of faults, every invariant
 * checked as it runs), then the liveness phase (faults healed, crashed servers restarted,
 * the farm must converge), and the report. Pure compute: the same scenario and seed give
 * the same report.
 */
import { BUCKETS, decide, EVENT_VERSION, type FarmEvent, type FarmState, findMember, foldLog, initialState, openHandoffs, quotas } from "@vipfarm/domain"
import { Result } from "effect"
import { SimApps } from "./app.ts"
import type { BalanceRow, Report } from "./report.ts"
import { setFilter, ZERO } from "./claims.ts"
import { claimsNew } from "./filterAdapter.ts"
import { durationMs as resolveDuration, type Scenario } from "./scenario.ts"
import { resolveSetup, type TimedEntry } from "./setup.ts"
import { Traffic } from "./traffic.ts"
import { type Proc, World, type WorldOptions } from "./world.ts"

/** Progress of a run, for a progress bar. */
export interface Progress {
  readonly simulatedMs: number
  readonly totalMs: number
  readonly phase: "safety" | "liveness"
  readonly packets: number
}

/** Options of {@link runScenario}. */
export interface RunOptions extends WorldOptions {
  readonly seed?: number
  /** Called about every simulated second. */
  readonly onProgress?: (p: Progress) => void
  /** How the scenario was named on the command line (for the replay command). */
  readonly source?: string
  /** Stop at the first violation (property tests). */
  readonly stopOnViolation?: boolean
  /** Skip the liveness phase. */
  readonly safetyOnly?: boolean
}

/** Run a scenario and return its report. */
export const runScenario = (scenario: Scenario, options: RunOptions = {}): Report => {
  const setup = resolveSetup(scenario)
  const seed = (options.seed ?? 1) >>> 0
  const w = new World(setup, seed, options)
  const source = options.source ?? scenario.name
  w.replay = `farm sim ${source} --seed ${seed}`
  w.stopOnViolation = options.stopOnViolation ?? false
  const traffic = new Traffic(w)
  const apps = setup.app === null ? null : new SimApps(w, setup.app)

  w.configure()
  for (const p of w.procs) if (p.role === "witness" || !setup.servers[p.idx].standby) w.start(p)
  w.startCatchUp()
  traffic.startGenerators()
  schedule(w, traffic, apps, setup.timeline)

  // samples of shares over time
  const nServers = w.serverCount
  const sampleEvery = Math.max(50, Math.round((setup.durationMs + setup.liveness.timeoutMs / 3) / 300))
  const timesMs: Array<number> = []
  const buckets: Array<Array<number>> = Array.from({ length: nServers }, () => [])
  const flows: Array<Array<number>> = Array.from({ length: nServers }, () => [])
  const lastFlows = new Float64Array(nServers)
  const sample = (): void => {
    timesMs.push(Math.round(w.now))
    for (let s = 0; s < nServers; s++) {
      let n = 0
      if (w.on[s] === 1) {
        const t = w.tables[s]
        for (let b = 0; b < BUCKETS; b++) if (claimsNew(t[b])) n++
      }
      buckets[s].push(n)
      flows[s].push(traffic.newFlows[s] - lastFlows[s])
      lastFlows[s] = traffic.newFlows[s]
    }
    w.at(w.now + sampleEvery, "sample", sample)
  }
  w.at(0, "sample", sample)

  // shares follow weights at every settled point: checked whenever the log moved and the farm settled
  let settledAt = -1
  let settledChecks = 0
  const settledCheck = (): void => {
    if (w.log.length !== settledAt && notSettled(w) === null) {
      settledAt = w.log.length
      settledChecks++
      const b = balanceRows(w, traffic, null)
      if (b !== null && !b.within) {
        const last = w.log[w.log.length - 1]
        w.violation("balance", `bucket shares outside the domain's bound once settled: ${describeRows(b.rows)}`, `farm settled after log entry ${w.log.length} (${last?._tag ?? "none"})`)
      }
    }
    w.at(w.now + 100, "settled-check", settledCheck)
  }
  w.at(100, "settled-check", settledCheck)

  if (options.forgetTables !== undefined) {
    const { node, atMs } = options.forgetTables
    const s = w.procs.findIndex((p) => p.name === node)
    if (s >= 0 && s < nServers) w.at(atMs, `broken kernel ${node} forgets its tables`, () => setFilter(w, s, ZERO, w.deadline[s]))
  }

  const hardEnd = setup.durationMs + setup.liveness.timeoutMs
  let total = hardEnd
  const progress = (phase: "safety" | "liveness"): void =>
    options.onProgress?.({ simulatedMs: w.now, totalMs: total, phase, packets: traffic.stats.packets })

  // safety phase, until the duration and every timeline entry after it has fired
  for (let t = 1000; t <= setup.durationMs && !w.stopped; t += 1000) {
    w.runUntil(t)
    progress("safety")
  }
  w.runUntil(setup.durationMs)
  if (w.pendingOps.size > 0 && !w.stopped) {
    w.note("safety-extended", "", `${[...w.pendingOps.values()][0].label} and ${w.pendingOps.size - 1} more pending after the duration`)
    let next = w.now + 1000
    while (w.pendingOps.size > 0 && w.now < hardEnd && !w.stopped) {
      w.runUntil(Math.min(w.now + 100, hardEnd))
      if (w.now >= next) {
        progress("safety")
        next += 1000
      }
    }
  }
  w.closeFailovers()

  // liveness phase: heal everything, restart what crashed, demand convergence
  let converged = options.safetyOnly === true
  let convergedAt: number | null = null
  let detail = options.safetyOnly ? "skipped" : ""
  const flowMark = Float64Array.from(traffic.newFlows)
  if (!options.safetyOnly && !w.stopped) {
    w.note("liveness", "", "faults healed; convergence demanded")
    w.cut.fill(0)
    w.natsUp.fill(true)
    apps?.healAll()
    for (const p of w.procs) {
      p.slowMs = 0
      if (p.paused) resume(w, p)
      if (!p.healthy) setHealth(w, p, true)
      if (p.crashed && setup.liveness.restartCrashed) w.start(p)
    }
    // operations waiting for a process that crashed (a rolling restart's start) are moot: it was restarted
    for (const [id, op] of w.pendingOps) if (op.proc !== null && op.proc.crashed) w.done(id)
    const end = w.now + setup.liveness.timeoutMs
    total = end
    let next = w.now + 1000
    while (w.now < end && !w.stopped) {
      w.runUntil(Math.min(w.now + 100, end))
      const why = notConverged(w)
      if (why === null) {
        converged = true
        convergedAt = w.now
        break
      }
      detail = why
      if (w.now >= next) {
        progress("liveness")
        next += 1000
      }
    }
    if (!converged && !w.stopped) w.violation("liveness", `no convergence within ${setup.liveness.timeoutMs} ms: ${detail}`, "liveness phase")
    // a little more traffic on the converged farm for the flow shares
    if (converged) w.runUntil(w.now + 2000)
  }
  w.closeFailovers()

  // balance at the end
  const end = balanceRows(w, traffic, flowMark)
  const rows: ReadonlyArray<BalanceRow> = end?.rows ?? []
  const within = end === null || !converged || options.safetyOnly === true || end.within
  if (!within) w.violation("balance", `bucket shares outside the domain's bound: ${describeRows(rows)}`, "end of run")
  total = w.now
  progress(options.safetyOnly ? "safety" : "liveness")

  const done = w.failovers.filter((f) => f.doneAt !== null && (f.fault === "crash" || f.fault === "kill")).map((f) => f.doneAt! - f.atMs).sort((a, b) => a - b)
  const median = done.length === 0 ? null : done.length % 2 === 1 ? done[(done.length - 1) / 2] : (done[done.length / 2 - 1] + done[done.length / 2]) / 2
  if (median !== null && done.length >= 5 && median > setup.checks.failoverMedianMs) {
    w.violation("failover-median", `median failover ${Math.round(median)} ms over ${done.length} crashes (budget ${setup.checks.failoverMedianMs} ms)`, "end of run")
  }
  const st = traffic.stats
  return {
    scenario: setup.name,
    source,
    seed,
    simulatedMs: Math.round(w.now),
    servers: w.procs.filter((p) => p.idx < nServers).map((p) => p.name),
    packets: { total: st.packets, tcp: st.tcpPackets, udp: st.udpPackets, flood: st.floodPackets, accepted: st.accepted, dropped: st.dropped },
    flows: {
      tcp: st.tcpFlows, udp: st.udpFlows, completed: st.completed, synRetries: st.synRetries, connectFailed: st.connectFailed,
      lostToFault: st.lostToFault, udpMovedInProbation: st.udpMovedInProbation, affinityChecks: st.affinityChecks
    },
    tcp: { closedFin: st.closedFin, closedRst: st.closedRst, long: st.longFlows, movingOutPackets: st.movingOutPackets },
    resets: { handoff: st.resetsHandoff, fault: st.lostToFault },
    failovers: w.failovers.map((f) => ({
      node: f.node, fault: f.fault, atMs: Math.round(f.atMs * 1000) / 1000,
      durationMs: f.doneAt === null ? null : Math.round((f.doneAt - f.atMs) * 1000) / 1000, buckets: f.total, budgetApplies: f.budgetApplies
    })),
    app: apps?.failures() ?? [],
    failover: { count: done.length, medianMs: median === null ? null : Math.round(median * 10) / 10, worstMs: done.length === 0 ? null : Math.round(done[done.length - 1] * 10) / 10 },
    unclaimed: {
      windows: w.unclaimedWindows, worstMs: Math.round(w.unclaimedWorst * 10) / 10, excused: w.unclaimedExcused, unansweredExcused: st.unansweredExcused,
      handoff: w.unclaimedHandoff, handoffWorstMs: Math.round(w.unclaimedHandoffWorst * 10) / 10, unansweredHandoff: st.unansweredHandoff
    },
    balance: { rows, withinBound: within, settledChecks },
    shares: { timesMs, buckets, flows },
    timeline: w.timeline,
    timelineDropped: w.timelineDropped,
    log: { entries: w.log.length, ...w.logStats },
    liveness: { converged, atMs: convergedAt === null ? null : Math.round(convergedAt), detail: converged ? "" : detail },
    violations: w.violations,
    violationCounts: w.violationCounts,
    ok: Object.keys(w.violationCounts).length === 0
  }
}

/** Why the farm has not converged yet (a timeline operation still to come, or not settled), or null. */
const notConverged = (w: World): string | null => {
  for (const op of w.pendingOps.values()) return `${op.label} has not happened yet`
  return notSettled(w)
}

/**
 * The bucket shares of the members the log knows (flow shares since `flowMark`, if given)
 * against the domain's bound (`quotas` of the members up with a weight), or null when no
 * server runs.
 */
const balanceRows = (w: World, traffic: Traffic, flowMark: Float64Array | null): { rows: Array<BalanceRow>; within: boolean } | null => {
  const ref = w.procs.find((p) => p.role === "server" && p.running && p.ctl !== null)?.ctl?.foldedState
  if (ref === undefined) return null
  const nServers = w.serverCount
  const rows: Array<BalanceRow> = []
  let within = true
  const eligible = ref.members.filter((m) => m.status === "up" && m.weight > 0)
  const q = quotas(eligible)
  const totalWeight = eligible.reduce((a, m) => a + m.weight, 0)
  const since = (s: number): number => traffic.newFlows[s] - (flowMark === null ? 0 : flowMark[s])
  let flowTotal = 0
  for (let s = 0; s < nServers; s++) flowTotal += since(s)
  for (const m of ref.members) {
    const s = w.procs.findIndex((p) => p.name === m.name)
    let n = 0
    if (s >= 0 && s < nServers && w.on[s] === 1) for (let b = 0; b < BUCKETS; b++) if (claimsNew(w.tables[s][b])) n++
    const quota = q.get(m.name)
    const lo = quota?.lo ?? 0
    const hi = quota?.hi ?? 0
    if (n < lo || n > hi) within = false
    rows.push({
      name: m.name, weight: m.weight, buckets: n, lo, hi,
      flowShare: flowTotal > 0 && s >= 0 && s < nServers ? since(s) / flowTotal : 0,
      weightShare: totalWeight > 0 && quota !== undefined ? m.weight / totalWeight : 0
    })
  }
  return { rows, within }
}

const describeRows = (rows: ReadonlyArray<BalanceRow>): string => rows.map((r) => `${r.name} ${r.buckets} [${r.lo}..${r.hi}]`).join(", ")

/** Why the farm has not settled (a process behind the log, not up, fenced, a hand-off open, a bucket without owner), or null. */
const notSettled = (w: World, handoffsMayBeOpen = false): string | null => {
  const len = w.log.length
  for (const p of w.procs) {
    if (!p.intent) continue
    if (!p.running || p.ctl === null) return `${p.name} is not running`
    const f = p.ctl.foldedState
    if (f.seq !== len) return `${p.name} folded ${f.seq} of ${len} entries`
    if (p.role !== "server") continue
    if (w.fenced[p.idx] === 1) return `${p.name} is fenced`
    const m = findMember(f, p.name)
    if (m === undefined) return `${p.name} is not a member`
    if (m.status !== "up" && !(m.status === "draining" && m.drained)) return `${p.name} is ${m.status}`
    if (p.ctl.overlayNodes.length > 0) return `${p.name} still applies the failure plan of ${p.ctl.overlayNodes.join(",")}`
    if (!handoffsMayBeOpen && openHandoffs(f).length > 0) return `hand-off ${openHandoffs(f)[0]} still open`
  }
  const slots = w.setup.tables * BUCKETS
  for (let i = 0; i < slots; i++) if (w.unclaimedSince[i] >= 0) return `bucket ${i >> 10}/${i & 1023} has no live owner`
  return null
}

/** SIGTERM: the daemon leaves the farm (drain, Leave) and exits. */
const stop = (w: World, p: Proc): void => {
  p.stopping = true
  w.input(p, () => p.ctl!.stop(w.now))
}

const resume = (w: World, p: Proc): void => {
  p.paused = false
  const q = p.pausedQueue
  p.pausedQueue = []
  for (const fn of q) w.input(p, fn)
  w.note("resume-process", p.name)
}

const setHealth = (w: World, p: Proc, healthy: boolean): void => {
  p.healthy = healthy
  if (p.idx < w.serverCount) {
    // flows accepted by a broken application are lost with it (also those taken while it was broken)
    if (!healthy) w.beginFailover(p, "unhealthy", false)
    w.faultGen[p.idx]++
  }
  w.pushHealth(p)
  w.note(healthy ? "healthy" : "unhealthy", p.name)
}

const proc = (w: World, name: string): Proc | undefined => w.procs.find((p) => p.name === name)

/** Put the timeline's entries on the event queue. */
const schedule = (w: World, traffic: Traffic, apps: SimApps | null, timeline: ReadonlyArray<TimedEntry>): void => {
  const setCut = (a: number, b: number, v: number): void => {
    if (a < 0 || b < 0) return
    w.cut[a * w.endpoints + b] = v
  }
  for (const e of timeline) {
    const label = `timeline ${e.do}${"node" in e ? ` ${e.node}` : ""} at ${e.atMs} ms`
    const op = w.pending(label)
    w.at(e.atMs, label, () => {
      w.done(op)
      switch (e.do) {
        case "crash": {
          const p = proc(w, e.node)
          if (p) w.crash(p)
          return
        }
        case "kill": {
          const p = proc(w, e.node)
          if (p) w.kill(p)
          return
        }
        case "restart":
        case "start": {
          const p = proc(w, e.node)
          if (p === undefined) return
          if (e.do === "start" && e.weight !== undefined) p.weight = e.weight
          if (!p.running) w.start(p)
          else if (p.stopping) {
            // still leaving (its flows drain): started once it exits, as a service manager queues a start behind a stop
            const boot = p.boot
            const after = w.pending(`${label} (after ${p.name} exits)`, p)
            w.note(e.do, p.name, "queued until it exits")
            const prev = w.onExit
            w.onExit = (x) => {
              // decided before the hooks before it run: one of them may start it again (another queued start)
              const mine = x === p && x.boot === boot
              prev(x)
              if (mine) {
                w.done(after)
                w.start(p)
              }
            }
          }
          return
        }
        case "stop": {
          const p = proc(w, e.node)
          if (p?.running) {
            w.note("stop", p.name, "SIGTERM")
            stop(w, p)
          }
          return
        }
        case "drain":
        case "resume": {
          const p = proc(w, e.node)
          if (p?.running) {
            w.note(e.do, p.name)
            w.input(p, () => (e.do === "drain" ? p.ctl!.drain() : p.ctl!.resume()))
          }
          return
        }
        case "unhealthy":
        case "healthy": {
          const p = proc(w, e.node)
          if (!p) return
          setHealth(w, p, e.do === "healthy")
          if (e.do === "unhealthy" && e.for !== undefined) {
            w.at(w.now + durationOf(e.for), `timeline healthy ${p.name}`, () => setHealth(w, p, true))
          }
          return
        }
        case "app-crash":
        case "app-broken": {
          const p = proc(w, e.node)
          if (!p || apps === null) return
          if (e.do === "app-crash") apps.crash(p)
          else apps.broken(p, e.for === undefined ? Infinity : durationOf(e.for))
          return
        }
        case "pause": {
          w.faultBegins()
          const p = proc(w, e.node)
          if (!p?.running || p.paused) return
          p.paused = true
          w.note("pause", p.name, `${durationOf(e.for)} ms`)
          const boot = p.boot
          w.at(w.now + durationOf(e.for), `timeline resume-process ${p.name}`, () => {
            if (p.boot === boot && p.running && p.paused) resume(w, p)
          })
          return
        }
        case "slow": {
          w.faultBegins()
          const p = proc(w, e.node)
          if (!p?.running) return
          p.slowMs = durationOf(e.delay)
          w.note("slow", p.name, `${p.slowMs} ms`)
          w.at(w.now + durationOf(e.for), `timeline unslow ${p.name}`, () => {
            p.slowMs = 0
          })
          return
        }
        case "reader-stall": {
          w.faultBegins()
          const p = proc(w, e.node)
          if (!p?.running) return
          p.readerStallUntil = w.now + durationOf(e.for)
          w.note("reader-stall", p.name, `${durationOf(e.for)} ms`)
          return
        }
        case "weight": {
          // the operator's `farm weight`: WeightChanged and the rebalance it decides, appended to the log now
          const p = proc(w, e.node)
          if (p) p.weight = e.weight // the daemon's configuration too: a later join uses it
          const state = foldLog(initialState(w.setup.farm), w.log)
          const bare: FarmEvent = { _tag: "WeightChanged", v: EVENT_VERSION, cause: { kind: "operator", by: "sim" }, node: e.node, weight: e.weight }
          const events: ReadonlyArray<FarmEvent> = w.options.noRebalance !== undefined
            ? (findMember(state, e.node) === undefined ? [] : [bare])
            : decided(state, e.node, e.weight)
          for (const ev of events) w.appendOperator(ev)
          w.note("weight", e.node, events.length === 0 ? `${e.weight} (not a member: applies at its join)` : `${e.weight}`)
          return
        }
        case "partition": {
          w.faultBegins()
          const groups = e.groups.map((g) => g.map((n) => w.endpointIndex(n)).filter((i) => i >= 0))
          const groupOf = new Int32Array(w.endpoints).fill(-1)
          groups.forEach((g, gi) => g.forEach((i) => (groupOf[i] = gi)))
          // endpoints not named go with the first group
          for (let i = 0; i < w.endpoints; i++) if (groupOf[i] < 0) groupOf[i] = 0
          for (let a = 0; a < w.endpoints; a++) for (let b = 0; b < w.endpoints; b++) if (groupOf[a] !== groupOf[b]) setCut(a, b, 1)
          w.note("partition", "", e.groups.map((g) => g.join(",")).join(" | "))
          if (e.for !== undefined) w.at(w.now + durationOf(e.for), "timeline heal", () => heal(w))
          return
        }
        case "cut": {
          w.faultBegins()
          const a = w.endpointIndex(e.a)
          const b = w.endpointIndex(e.b)
          setCut(a, b, 1)
          if (!e.oneWay) setCut(b, a, 1)
          w.note("cut", e.a, `${e.oneWay ? "→" : "↔"} ${e.b}`)
          if (e.for !== undefined) {
            w.at(w.now + durationOf(e.for), "timeline uncut", () => {
              setCut(a, b, 0)
              if (!e.oneWay) setCut(b, a, 0)
              w.note("uncut", e.a, e.b)
            })
          }
          return
        }
        case "heal":
          heal(w)
          return
        case "nats-leader-kill":
          w.leaderKill()
          return
        case "nats-node-down":
        case "nats-node-up": {
          if (e.do === "nats-node-down") w.faultBegins()
          const i = w.setup.natsNodes.indexOf(e.node)
          if (i >= 0) w.natsUp[i] = e.do === "nats-node-up"
          w.note(e.do, e.node)
          return
        }
        case "syn-flood":
          traffic.synFlood(e.rate, w.now + durationOf(e.for))
          w.note("syn-flood", "", `${e.rate} SYN/s for ${durationOf(e.for)} ms`)
          return
        case "rolling-restart": {
          const gap = durationOf(e.gap)
          const downtime = e.downtime === undefined ? 1000 : durationOf(e.downtime)
          const servers = w.procs.filter((p) => p.role === "server" && p.running)
          servers.forEach((p, k) => {
            const stopOp = w.pending(`rolling-restart stop ${p.name}`)
            w.at(w.now + k * gap, `rolling-restart stop ${p.name}`, () => {
              w.done(stopOp)
              if (!p.running) return
              w.note("stop", p.name, "rolling restart")
              const boot = p.boot
              const startOp = w.pending(`rolling-restart start ${p.name}`, p)
              const prev = w.onExit
              w.onExit = (x) => {
                const mine = x === p && x.boot === boot
                prev(x)
                if (mine) {
                  w.at(w.now + downtime, `rolling-restart start ${p.name}`, () => {
                    w.done(startOp)
                    w.start(p)
                  })
                }
              }
              stop(w, p)
            })
          })
          return
        }
        case "scale": {
          const every = durationOf(e.every)
          const running = w.procs.filter((p) => p.role === "server" && p.running)
          if (e.to > running.length) {
            const idle = w.procs.filter((p) => p.role === "server" && !p.running)
            idle.slice(0, e.to - running.length).forEach((p, k) => {
              const step = w.pending(`scale start ${p.name}`)
              w.at(w.now + k * every, `scale start ${p.name}`, () => {
                w.done(step)
                w.start(p)
              })
            })
          } else {
            const victims = running.slice(e.to).reverse()
            victims.forEach((p, k) => {
              const step = w.pending(`scale stop ${p.name}`)
              w.at(w.now + k * every, `scale stop ${p.name}`, () => {
                w.done(step)
                if (!p.running) return
                w.note("stop", p.name, "scale down")
                stop(w, p)
              })
            })
          }
          return
        }
      }
    })
  }
}

/** The events `farm weight NODE W` appends: WeightChanged and the rebalance it decides (none for a node not in the farm). */
const decided = (state: FarmState, node: string, weight: number): ReadonlyArray<FarmEvent> => {
  const d = decide({ _tag: "SetWeight", node, weight, cause: { kind: "operator", by: "sim" } }, state)
  return Result.isSuccess(d) ? d.success : []
}

const durationOf = (d: number | string): number => (typeof d === "number" ? d : resolveDuration(d))

const heal = (w: World): void => {
  w.cut.fill(0)
  w.note("heal", "")
}
