/**
 * The application supervisor: runs the module's checkers on schedule, feeds the pure
 * checker state machine (`health.ts`) and policy (`policy.ts`), runs the commands the policy
 * asks for (one at a time), and hands the farm-facing reports to the daemon.
 *
 * Interface for the daemon (small on purpose):
 * - `reports`: `Ready` (join first if this server left), `ReportUnhealthy{checker, reason}`,
 *   `ReportRecovered`, `Leave{reason}`; each maps to the domain command of the same name.
 *   Send `Join` at start-up as before; the first `Ready` comes once every checker passes.
 * - `onApplication`: what the application is doing and why (`ReportApplication`: running,
 *   restarting, left, healing, stopped, failed), for the log's audit.
 * - `status()`: the application's state for `farm status` (`up`, `unhealthy` with the failing
 *   checker and its last error, `restarting`, `stopped`, or `starting` before it first passes).
 * - `start` / `stop` (operator), `reload`.
 * When the layer's scope closes the application is stopped (unless `stopOnClose: false`).
 */
import { Context, Effect, Layer, Queue, Stream } from "effect"
import { log } from "../log.ts"
import type { YamlError } from "../yamlSchema.ts"
import { type CommandResult, runCommand } from "./command.ts"
import {
  type CheckerStatus, dueProbes, type HealthState, initHealth, nextProbeAt, probeFinished, probeStarted, resetHealth, summarize
} from "./health.ts"
import { type AppModule, loadModule, type ModuleOptions } from "./module.ts"
import {
  type AppHandover, type ApplicationReport, type AppStateView, type FarmReport, handoverOf, initPolicy, nextWakeAt, type PolicyAction, type PolicyInput, type PolicyState, step, viewOf
} from "./policy.ts"
import { probeChecker } from "./probes.ts"

/** The application's state for `farm status`. */
export interface AppStatus extends AppStateView {
  readonly module: string
  readonly checkers: ReadonlyArray<{
    readonly name: string
    readonly type: string
    readonly status: CheckerStatus
    readonly lastError: string | null
    /** Duration of the last probe (ms), null before the first one finished. */
    readonly latencyMs: number | null
  }>
}

/** Options of the supervisor. */
export interface SupervisorOptions {
  /** Stop the application when the supervisor closes (default true). */
  readonly stopOnClose?: boolean
  /** Node name for log lines. */
  readonly node?: string
  /** Start the application at once (default true); false: wait for `start()`. */
  readonly autoStart?: boolean
  /**
   * What the previous daemon handed over (`farm restart`): `up` adopts the running
   * application (no start command, no report: the checkers decide from here), `stopped`
   * leaves it stopped, `other` starts it as usual. Ignored for another module.
   */
  readonly handover?: AppHandover | null
}

type Listener = (r: FarmReport, at: number) => void
type AppListener = (r: ApplicationReport, at: number) => void

const monotonic = () => performance.now()

/** The supervisor as a plain object (tests and tools); the daemon uses the {@link AppSupervisor} layer. */
export class Supervisor {
  private health: HealthState
  private policy: PolicyState
  private timer: NodeJS.Timeout | undefined
  private closed = false
  private readonly listeners = new Set<Listener>()
  private readonly appListeners = new Set<AppListener>()
  private readonly commands: Array<PolicyAction> = []
  private running = false
  private readonly waiters: Array<{ until: (s: PolicyState) => boolean; resolve: () => void }> = []
  private lastSummary = ""
  private readonly latency = new Map<string, number>()

  constructor(readonly module: AppModule, private readonly options: SupervisorOptions = {}) {
    const now = monotonic()
    this.health = initHealth(module.checkers, now)
    this.policy = initPolicy(module.policy, now)
  }

  /** Begin checking and start the application (unless `autoStart: false`, or a handover says otherwise). */
  run(): void {
    this.schedule(0)
    const h = this.options.handover
    const standing = h != null && h.module === this.module.name ? h.standing : null
    if (standing !== null) log("info", "app.handover", { node: this.options.node, module: this.module.name, standing, restarts: h!.restartsAgoMs.length })
    if (standing === "up") this.feed({ _tag: "Adopt", restartsAgoMs: h!.restartsAgoMs })
    else if (standing !== "stopped" && this.options.autoStart !== false) this.feed({ _tag: "Start" })
  }

  /** Whether the farm may count this server's application as healthy now (adopted, or up). */
  healthy(): boolean {
    return this.policy.phase === "up" && this.policy.farm === "up"
  }

  /** What to hand to the next daemon of a keep-serving restart. */
  handover(): AppHandover {
    return handoverOf(this.policy, this.module.name, monotonic())
  }

  /** Be told of every farm-facing report; returns an unsubscribe function. */
  onReport(f: Listener): () => void {
    this.listeners.add(f)
    return () => this.listeners.delete(f)
  }

  /** Be told what the application is doing (every `ReportApplication`); returns an unsubscribe function. */
  onApplication(f: AppListener): () => void {
    this.appListeners.add(f)
    return () => this.appListeners.delete(f)
  }

  /** The application's state now. */
  status(): AppStatus {
    const v = viewOf(this.policy, monotonic())
    return {
      ...v,
      module: this.module.name,
      checkers: this.health.checkers.map((c) => {
        const spec = this.module.checkers.find((s) => s.name === c.timing.name)!
        return { name: c.timing.name, type: spec.type, status: c.status, lastError: c.lastError, latencyMs: this.latency.get(c.timing.name) ?? null }
      })
    }
  }

  /** Operator start (after a stop); resolves when the application passes or fails. */
  start(): Promise<void> {
    this.feed({ _tag: "Start" })
    return this.until((s) => s.phase !== "starting" && s.phase !== "waiting")
  }

  /** Operator stop: leave and stop the application; resolves when stopped. */
  stop(): Promise<void> {
    this.feed({ _tag: "Stop" })
    return this.until((s) => s.phase === "stopped")
  }

  /** Run the module's reload command (if any). */
  reload(): Promise<CommandResult | null> {
    const m = this.module
    if (m.reload === null) return Promise.resolve(null)
    return runCommand(m.reload.command, { ...this.ctx("app.reload"), timeoutMs: m.reload.timeoutMs, graceMs: m.stop.graceMs })
  }

  /** Stop checking (and stop the application unless `stopOnClose: false`). */
  async close(): Promise<void> {
    if (this.closed) return
    if (this.options.stopOnClose !== false && this.policy.phase !== "stopped") {
      this.feed({ _tag: "Stop", reason: "the daemon is stopping" })
      await this.until((s) => s.phase === "stopped")
    }
    this.closed = true
    clearTimeout(this.timer)
    for (const w of this.waiters.splice(0)) w.resolve()
  }

  private until(p: (s: PolicyState) => boolean): Promise<void> {
    if (p(this.policy) || this.closed) return Promise.resolve()
    return new Promise((resolve) => this.waiters.push({ until: p, resolve }))
  }

  private ctx(op: string) {
    return { op, module: this.module.name, cwd: this.module.dir, env: this.module.vars as Record<string, string> }
  }

  private feed(input: PolicyInput): void {
    if (this.closed) return
    const now = monotonic()
    const before = this.policy
    const r = step(this.policy, input, now)
    this.policy = r.state
    if (r.state.phase !== before.phase) {
      const v = viewOf(r.state, now)
      log("info", "app.state", { node: this.options.node, module: this.module.name, phase: r.state.phase, state: v.state, checker: v.checker, error: v.error, restarts: v.restarts })
    }
    for (const a of r.actions) this.act(a, now)
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      if (this.waiters[i].until(this.policy)) this.waiters.splice(i, 1)[0].resolve()
    }
    this.schedule(0)
  }

  private act(a: PolicyAction, now: number): void {
    switch (a._tag) {
      case "RunStart":
      case "RunStop":
      case "RunRestart":
        this.commands.push(a)
        void this.pump()
        return
      case "ReportApplication":
        log(a.state === "running" ? "info" : "warn", "app.application", {
          node: this.options.node, module: this.module.name, state: a.state, reason: a.reason, checker: a.checker, restarts: a.restarts
        })
        for (const f of this.appListeners) f(a, now)
        return
      default: {
        log(a._tag === "ReportRecovered" || a._tag === "Ready" ? "info" : "warn", "app.report", {
          node: this.options.node, module: this.module.name, report: a._tag,
          checker: a._tag === "ReportUnhealthy" ? a.checker : undefined,
          reason: a._tag === "ReportUnhealthy" || a._tag === "Leave" ? a.reason : undefined
        })
        for (const f of this.listeners) f(a, now)
      }
    }
  }

  private async pump(): Promise<void> {
    if (this.running) return
    this.running = true
    try {
      while (this.commands.length > 0) {
        const a = this.commands.shift()!
        if (a._tag === "RunStart") {
          this.resetChecks()
          const r = await this.runStart()
          this.feed({ _tag: "StartDone", ok: r.ok, error: r.error })
          this.feedHealth()
        } else if (a._tag === "RunStop") {
          const r = await this.runStop()
          this.feed({ _tag: "StopDone", ok: r.ok, error: r.error })
        } else if (a._tag === "RunRestart") {
          await this.runStop("app.restart")
          this.resetChecks()
          const r = await this.runStart("app.restart")
          this.feed({ _tag: "RestartDone", ok: r.ok, error: r.error })
          this.feedHealth()
        }
      }
    } finally {
      this.running = false
    }
  }

  private feedHealth(): void {
    const s = summarize(this.health)
    this.lastSummary = JSON.stringify([s.allUp, s.failing?.checker ?? null])
    this.feed({ _tag: "Health", allUp: s.allUp, failing: s.failing })
  }

  private resetChecks(): void {
    this.health = resetHealth(this.health, monotonic())
    this.lastSummary = ""
  }

  private runStart(op = "app.start"): Promise<CommandResult> {
    const m = this.module
    return runCommand(m.start.command, { ...this.ctx(op), timeoutMs: m.start.timeoutMs, graceMs: m.stop.graceMs })
  }

  private async runStop(op = "app.stop"): Promise<CommandResult> {
    const m = this.module
    const r = await runCommand(m.stop.command, { ...this.ctx(op), timeoutMs: m.stop.timeoutMs, graceMs: m.stop.graceMs })
    if (r.ok || m.stop.force === null) return r
    const f = await runCommand(m.stop.force, { ...this.ctx(`${op}.force`), timeoutMs: m.stop.timeoutMs, graceMs: m.stop.graceMs })
    return f.ok ? { ...f, error: null } : f
  }

  private schedule(delayHint: number): void {
    if (this.closed) return
    clearTimeout(this.timer)
    const now = monotonic()
    const times = [nextProbeAt(this.health), nextWakeAt(this.policy)].filter((t): t is number => t !== null)
    const at = times.length === 0 ? now + 1000 : Math.min(...times)
    this.timer = setTimeout(() => this.wake(), Math.max(delayHint, Math.ceil(at - now)))
  }

  private wake(): void {
    if (this.closed) return
    const now = monotonic()
    const wakeAt = nextWakeAt(this.policy)
    if (wakeAt !== null && wakeAt <= now) this.feed({ _tag: "Tick" })
    for (const name of dueProbes(this.health, now)) this.probe(name, now)
    this.schedule(0)
  }

  private probe(name: string, now: number): void {
    const started = probeStarted(this.health, name, now)
    this.health = started.state
    const spec = this.module.checkers.find((c) => c.name === name)!
    const guard = new Promise<{ ok: false; error: string }>((resolve) =>
      setTimeout(() => resolve({ ok: false, error: `no answer within ${spec.timeoutMs} ms` }), spec.timeoutMs + 200).unref()
    )
    void Promise.race([probeChecker(spec, { cwd: this.module.dir, env: this.module.vars }), guard]).then((result) => {
      if (this.closed) return
      const at = monotonic()
      this.latency.set(name, at - now)
      const r = probeFinished(this.health, name, started.token, result, at)
      this.health = r.state
      if (r.change !== null) {
        log(r.change.to === "down" ? "warn" : "info", "app.check", {
          node: this.options.node, module: this.module.name, checker: name, from: r.change.from, to: r.change.to, error: r.change.error
        })
      }
      const s = summarize(this.health)
      if (JSON.stringify([s.allUp, s.failing?.checker ?? null]) !== this.lastSummary) this.feedHealth()
      else this.schedule(0)
    })
  }
}

/** The application supervisor as an Effect service (one module per daemon). */
export class AppSupervisor extends Context.Service<AppSupervisor, {
  /** Farm-facing reports, in order, buffered until read (one consumer: the daemon). */
  readonly reports: Stream.Stream<FarmReport>
  /** Callback form of `reports` (every subscriber sees reports from now on). */
  readonly onReport: (f: (r: FarmReport) => void) => () => void
  /** What the application is doing and why (for the log's ApplicationChanged events). */
  readonly onApplication: (f: (r: ApplicationReport) => void) => () => void
  /** The application's state for `farm status`. */
  readonly status: () => AppStatus
  /** Whether the farm may count the application as healthy now (adopted, or up). */
  readonly healthy: () => boolean
  /** What to hand to the next daemon of a keep-serving restart. */
  readonly handover: () => AppHandover
  /** Operator start after a stop. */
  readonly start: Effect.Effect<void>
  /** Operator stop: leave the farm and stop the application. */
  readonly stop: Effect.Effect<void>
  /** Run the module's reload command (null without one). */
  readonly reload: Effect.Effect<CommandResult | null>
  readonly module: AppModule
}>()("vipfarm/AppSupervisor") {
  /** Supervise a loaded module for the layer's lifetime (stops the application on release). */
  static readonly layer = (module: AppModule, options: SupervisorOptions = {}): Layer.Layer<AppSupervisor> =>
    Layer.effect(AppSupervisor, makeSupervisor(module, options))

  /** Load `DIR/module.yaml` (with var overrides) and supervise it. */
  static readonly layerFromDir = (dir: string, options: SupervisorOptions & ModuleOptions = {}): Layer.Layer<AppSupervisor, YamlError> =>
    Layer.effect(AppSupervisor, Effect.flatMap(loadModule(dir, options), (m) => makeSupervisor(m, options)))
}

/** Scoped construction of the service: starts supervising; on release stops the application. */
export const makeSupervisor = (module: AppModule, options: SupervisorOptions = {}) =>
  Effect.gen(function*() {
    const queue = yield* Queue.unbounded<FarmReport>()
    const sup = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const s = new Supervisor(module, options)
        s.onReport((r) => {
          Queue.offerUnsafe(queue, r)
        })
        s.run()
        return s
      }),
      (s) => Effect.promise(() => s.close())
    )
    return AppSupervisor.of({
      reports: Stream.fromQueue(queue),
      onReport: (f) => sup.onReport((r) => f(r)),
      onApplication: (f) => sup.onApplication((r) => f(r)),
      status: () => sup.status(),
      healthy: () => sup.healthy(),
      handover: () => sup.handover(),
      start: Effect.promise(() => sup.start()),
      stop: Effect.promise(() => sup.stop()),
      reload: Effect.promise(() => sup.reload()),
      module
    })
  })
