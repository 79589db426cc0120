/**
 * The simulated application of each server, supervised by the REAL checker state machine
 * (`runtime/src/app/health.ts`) and failure policy (`runtime/src/app/policy.ts`), driven the
 * way the daemon's `Supervisor` (`runtime/src/app/runner.ts`) drives them, in simulated time:
 *
 * - one `tcp`-like checker: a probe answers after {@link PROBE_MS}; it passes while the
 *   application's process is alive and fails with "connection refused" while it is dead;
 * - the policy's commands run one at a time: a start takes `startMs` and fails while an
 *   `app-broken` fault lasts; a stop takes `stopMs`; a restart is a stop, a reset of the
 *   checkers, then a start;
 * - the farm reports become `ctl.onAppHealth(...)` as the daemon maps them: `Ready` and
 *   `ReportRecovered` healthy, `ReportUnhealthy` with its checker and reason, `Leave` with
 *   checker `policy`.
 *
 * Faults: `app-crash` (the process exits once), `app-broken` (it exits and cannot start until
 * the fault ends). Each is measured from the failure: the report (ReportUnhealthy), the
 * buckets owned by other servers, the Leave, and the server back in (Ready/ReportRecovered).
 */
import {
  dueProbes, type HealthState, initHealth, nextProbeAt, probeFinished, probeStarted, resetHealth, summarize
} from "../../runtime/src/app/health.ts"
import { type FarmReport, initPolicy, nextWakeAt, type PolicyAction, type PolicyInput, type PolicyState, step } from "../../runtime/src/app/policy.ts"
import { Prng } from "./prng.ts"
import type { AppFailureRecord } from "./report.ts"
import type { AppSetup } from "./setup.ts"
import type { AppStanding, Proc, World } from "./world.ts"

/** Time a simulated tcp probe takes to answer (connect or refused). */
export const PROBE_MS = 1

/** One server's application: its process and (while the daemon runs) its supervisor. */
interface App {
  /** The application's process is running. */
  alive: boolean
  /** Start commands fail until then (an `app-broken` fault). */
  brokenUntil: number
  /** Supervisor generation: bumped when the daemon goes (events of an older one are ignored). */
  gen: number
  health: HealthState
  policy: PolicyState
  commands: Array<PolicyAction>
  running: boolean
  lastSummary: string
  wakeSeq: number
  standing: AppStanding
  /** The open failure record (until the server is back in). */
  open: PendingAppFailure | null
}

interface PendingAppFailure {
  readonly node: string
  readonly fault: string
  readonly atMs: number
  /** Index in World.failovers of the takeover measured from the failure (-1: none). */
  readonly failover: number
  reportedAt: number | null
  leftAt: number | null
  backAt: number | null
  restarts: number
  startFailures: number
}

/** The applications of a world's servers. */
export class SimApps {
  private readonly apps = new Map<number, App>()
  private readonly records: Array<PendingAppFailure> = []
  /** Its own stream (the world's draws stay as they were): the phase of each supervisor's probes. */
  private readonly rng: Prng

  constructor(private readonly w: World, private readonly cfg: AppSetup) {
    w.onStart = (p) => this.daemonStarted(p)
    w.onDown = (p, how) => this.daemonDown(p, how)
    w.appStanding = (p) => this.apps.get(p.idx)?.standing ?? { healthy: false }
    this.rng = new Prng((w.seed ^ 0x5eed_a99) >>> 0)
  }

  // ---- faults -------------------------------------------------------------------------

  /** `app-crash`: the application's process exits once. */
  crash(p: Proc): void {
    this.fail(p, "app-crash", "process exited")
  }

  /** `app-broken`: the process exits and no start succeeds for `forMs` (Infinity: until healed). */
  broken(p: Proc, forMs: number): void {
    const a = this.apps.get(p.idx)
    if (a === undefined) return
    a.brokenUntil = this.w.now + forMs
    this.fail(p, "app-broken", forMs === Infinity ? "cannot start" : `cannot start for ${forMs} ms`)
    if (forMs !== Infinity) this.w.at(this.w.now + forMs, `timeline app-fixed ${p.name}`, () => this.fix(p))
  }

  /** The application can start again. */
  fix(p: Proc): void {
    const a = this.apps.get(p.idx)
    if (a === undefined || a.brokenUntil <= this.w.now) return
    a.brokenUntil = this.w.now
    this.w.note("app-fixed", p.name)
  }

  /** Every `app-broken` fault ends (the liveness phase). */
  healAll(): void {
    for (const p of this.w.procs) this.fix(p)
  }

  private fail(p: Proc, fault: string, detail: string): void {
    const a = this.apps.get(p.idx)
    const w = this.w
    if (a === undefined || !a.alive) {
      w.note(fault, p.name, `${detail} (the application was not running)`)
      return
    }
    this.die(p, a)
    w.note(fault, p.name, detail)
    const before = w.failovers.length
    if (p.running) w.beginFailover(p, fault, false)
    const rec: PendingAppFailure = {
      node: p.name, fault, atMs: w.now, failover: w.failovers.length > before ? before : -1,
      reportedAt: null, leftAt: null, backAt: null, restarts: 0, startFailures: 0
    }
    if (a.open !== null && a.open.backAt === null) a.open.backAt = -1 // superseded
    a.open = rec
    this.records.push(rec)
  }

  private die(p: Proc, a: App): void {
    a.alive = false
    p.appDown = true
    // its sockets are gone: the flows it held are lost to the fault
    this.w.sockGen[p.idx]++
    this.w.faultGen[p.idx]++
  }

  // ---- the daemon's side: the supervisor ------------------------------------------------

  private daemonStarted(p: Proc): void {
    if (p.role !== "server") return
    const now = this.w.now
    const old = this.apps.get(p.idx)
    const a: App = {
      alive: old?.alive ?? false,
      brokenUntil: old?.brokenUntil ?? 0,
      gen: (old?.gen ?? 0) + 1,
      health: initHealth([this.cfg.checker], now),
      policy: initPolicy(this.cfg.policy, now),
      commands: [],
      running: false,
      lastSummary: "",
      wakeSeq: 0,
      standing: { healthy: false },
      open: old?.open ?? null
    }
    this.apps.set(p.idx, a)
    // the supervisor starts the application a little after the daemon: the probes' phase varies with the seed
    const gen = a.gen
    this.w.at(now + this.rng.uniform(0, this.cfg.checker.intervalMs), `app-supervisor ${p.name}`, () => {
      if (this.live(p, a, gen)) this.feed(p, a, { _tag: "Start" })
    })
  }

  private daemonDown(p: Proc, how: "crash" | "kill" | "exit"): void {
    const a = this.apps.get(p.idx)
    if (a === undefined) return
    a.gen++ // the supervisor dies with the daemon
    a.commands = []
    a.running = false
    a.standing = { healthy: false }
    if (how === "crash" && a.alive) this.die(p, a)
  }

  private live(p: Proc, a: App, gen: number): boolean {
    return a.gen === gen && this.apps.get(p.idx) === a
  }

  private feed(p: Proc, a: App, input: PolicyInput): void {
    const now = this.w.now
    const before = a.policy.phase
    const r = step(a.policy, input, now)
    a.policy = r.state
    if (r.state.phase !== before && a.open !== null) this.w.note("app-state", p.name, r.state.phase)
    for (const act of r.actions) this.act(p, a, act)
    this.schedule(p, a)
  }

  private act(p: Proc, a: App, act: PolicyAction): void {
    switch (act._tag) {
      case "RunStart":
      case "RunStop":
      case "RunRestart":
        a.commands.push(act)
        this.pump(p, a)
        return
      case "ReportApplication":
        // the daemon appends it to the log (ApplicationChanged, no bucket effect); the trace shows it
        this.w.note("app:ReportApplication", p.name, `${act.state}: ${act.reason}`)
        return
      default:
        this.report(p, a, act)
    }
  }

  /** A farm report: as the daemon maps it onto the controller. */
  private report(p: Proc, a: App, r: FarmReport): void {
    const w = this.w
    const rec = a.open
    switch (r._tag) {
      case "Ready":
      case "ReportRecovered":
        a.standing = { healthy: true }
        if (rec !== null && rec.backAt === null) rec.backAt = w.now
        break
      case "ReportUnhealthy":
        a.standing = { healthy: false, failing: { checker: r.checker, reason: r.reason } }
        if (rec !== null && rec.reportedAt === null) rec.reportedAt = w.now
        break
      case "Leave":
        a.standing = { healthy: false, failing: { checker: "policy", reason: r.reason } }
        if (rec !== null && rec.leftAt === null) rec.leftAt = w.now
        break
    }
    w.note(`app:${r._tag}`, p.name, r._tag === "ReportUnhealthy" ? `${r.checker}: ${r.reason}` : r._tag === "Leave" ? r.reason : "")
    w.pushHealth(p)
  }

  /** Run the queued commands one at a time (in simulated time). */
  private pump(p: Proc, a: App): void {
    if (a.running) return
    const next = a.commands.shift()
    if (next === undefined) return
    a.running = true
    const gen = a.gen
    const w = this.w
    const done = (fn: () => void): void => {
      if (!this.live(p, a, gen)) return
      fn()
      a.running = false
      this.pump(p, a)
    }
    const start = (then: (ok: boolean, error: string | null) => void): void => {
      this.resetChecks(a)
      this.schedule(p, a)
      w.at(w.now + this.cfg.startMs, `app-start ${p.name}`, () => {
        if (!this.live(p, a, gen)) return
        if (w.now < a.brokenUntil) {
          if (a.open !== null) a.open.startFailures++
          then(false, "start command failed (exit 1): the application is broken")
          return
        }
        if (!a.alive) {
          a.alive = true
          p.appDown = false
          w.sockGen[p.idx]++ // a new process: sockets of the old one are not its
        }
        then(true, null)
      })
    }
    const stop = (then: () => void): void => {
      w.at(w.now + this.cfg.stopMs, `app-stop ${p.name}`, () => {
        if (!this.live(p, a, gen)) return
        if (a.alive) this.die(p, a)
        then()
      })
    }
    switch (next._tag) {
      case "RunStart":
        start((ok, error) => done(() => {
          this.feed(p, a, { _tag: "StartDone", ok, error })
          this.feedHealth(p, a)
        }))
        return
      case "RunStop":
        stop(() => done(() => this.feed(p, a, { _tag: "StopDone", ok: true, error: null })))
        return
      case "RunRestart":
        if (a.open !== null) a.open.restarts++
        w.note("app-restart", p.name)
        stop(() => {
          if (!this.live(p, a, gen)) return
          start((ok, error) => done(() => {
            this.feed(p, a, { _tag: "RestartDone", ok, error })
            this.feedHealth(p, a)
          }))
        })
        return
    }
  }

  private resetChecks(a: App): void {
    a.health = resetHealth(a.health, this.w.now)
    a.lastSummary = ""
  }

  private feedHealth(p: Proc, a: App): void {
    const s = summarize(a.health)
    a.lastSummary = JSON.stringify([s.allUp, s.failing?.checker ?? null])
    this.feed(p, a, { _tag: "Health", allUp: s.allUp, failing: s.failing })
  }

  /** One wake-up at the earliest probe or policy deadline (older ones are ignored). */
  private schedule(p: Proc, a: App): void {
    const times = [nextProbeAt(a.health), nextWakeAt(a.policy)].filter((t): t is number => t !== null)
    if (times.length === 0) return
    const at = Math.max(this.w.now, Math.min(...times))
    const seq = ++a.wakeSeq
    const gen = a.gen
    this.w.at(at, `app-wake ${p.name}`, () => {
      if (!this.live(p, a, gen) || a.wakeSeq !== seq) return
      this.wake(p, a)
    })
  }

  private wake(p: Proc, a: App): void {
    const now = this.w.now
    const wakeAt = nextWakeAt(a.policy)
    if (wakeAt !== null && wakeAt <= now) this.feed(p, a, { _tag: "Tick" })
    for (const name of dueProbes(a.health, now)) this.probe(p, a, name)
    this.schedule(p, a)
  }

  private probe(p: Proc, a: App, name: string): void {
    const w = this.w
    const started = probeStarted(a.health, name, w.now)
    a.health = started.state
    const gen = a.gen
    const timeout = this.cfg.checker.timeoutMs
    w.at(w.now + Math.min(PROBE_MS, timeout), `app-probe ${p.name}`, () => {
      if (!this.live(p, a, gen)) return
      const result = a.alive ? { ok: true as const } : { ok: false as const, error: "connect: connection refused" }
      const r = probeFinished(a.health, name, started.token, result, w.now)
      a.health = r.state
      if (r.change !== null) w.note("app-check", p.name, `${r.change.checker} ${r.change.from} → ${r.change.to}${r.change.error ? `: ${r.change.error}` : ""}`)
      const s = summarize(a.health)
      if (JSON.stringify([s.allUp, s.failing?.checker ?? null]) !== a.lastSummary) this.feedHealth(p, a)
      else this.schedule(p, a)
    })
  }

  // ---- the report -----------------------------------------------------------------------

  /** Every application failure, measured. */
  failures(): Array<AppFailureRecord> {
    const r3 = (x: number | null): number | null => (x === null || x < 0 ? null : Math.round(x * 1000) / 1000)
    return this.records.map((r) => {
      const f = r.failover >= 0 ? this.w.failovers[r.failover] : undefined
      return {
        node: r.node, fault: r.fault, atMs: r3(r.atMs)!,
        reportedMs: r.reportedAt === null ? null : r3(r.reportedAt - r.atMs),
        takenOverMs: f === undefined || f.doneAt === null ? null : r3(f.doneAt - r.atMs),
        buckets: f?.total ?? 0,
        leftMs: r.leftAt === null ? null : r3(r.leftAt - r.atMs),
        backMs: r.backAt === null || r.backAt < 0 ? null : r3(r.backAt - r.atMs),
        restarts: r.restarts,
        startFailures: r.startFailures
      }
    })
  }
}
